import { type FormEvent, type KeyboardEvent, forwardRef, useState } from "react";

interface Props {
  busy: boolean;
  /** Why sending is not possible right now (shown next to the button), or "" */
  blockedReason: string;
  onSend: (text: string) => boolean;
  onStop: () => void;
}

/** The message box: Enter sends, Shift+Enter adds a line; Stop while an answer streams. */
export const Composer = forwardRef<HTMLTextAreaElement, Props>(function Composer(
  { busy, blockedReason, onSend, onStop },
  ref,
) {
  const [text, setText] = useState("");
  const empty = text.trim() === "";
  const canSend = !busy && !empty && !blockedReason;

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (canSend && onSend(text)) setText("");
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor="composer-input" className="offscreen">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        value={text}
        rows={1}
        placeholder="Message the model (Enter sends, Shift+Enter adds a line)"
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby="composer-hint"
      />
      {busy ? (
        <button type="button" className="stop" onClick={onStop}>
          Stop
        </button>
      ) : (
        <button type="submit" disabled={!canSend}>
          Send
        </button>
      )}
      <div id="composer-hint" className="composer-hint" aria-live="polite">
        {blockedReason || (busy ? "Stop ends the answer here and keeps what arrived." : "Enter sends · Shift+Enter adds a line")}
      </div>
    </form>
  );
});
