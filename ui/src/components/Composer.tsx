import { type FormEvent, type KeyboardEvent, forwardRef, useState } from "react";

export interface DraftCheck {
  /** Shown in the hint line: the token estimate. */
  note: string;
  /** Why this draft cannot be sent (too long for the context), or "". */
  blocked: string;
}

interface Props {
  busy: boolean;
  /** Why sending is not possible right now (shown next to the button), or "" */
  blockedReason: string;
  /** On phones (no Shift key on the on-screen keyboard) Enter adds a line and the Send button sends. */
  enterSends: boolean;
  checkDraft: (text: string) => DraftCheck;
  onSend: (text: string) => boolean;
  onStop: () => void;
  /** ↑ in an empty box: edit the last question. */
  onEditLast: () => void;
}

/** The message box: Enter sends, Shift+Enter adds a line; Stop while an answer streams. */
export const Composer = forwardRef<HTMLTextAreaElement, Props>(function Composer(
  { busy, blockedReason, enterSends, checkDraft, onSend, onStop, onEditLast },
  ref,
) {
  const [text, setText] = useState("");
  const empty = text.trim() === "";
  const check = checkDraft(text);
  const canSend = !busy && !empty && !blockedReason && !check.blocked;

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (canSend && onSend(text)) setText("");
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing && enterSends) {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && text === "" && !busy) {
      event.preventDefault();
      onEditLast();
    }
  };
  const keys = enterSends ? "Enter sends · Shift+Enter adds a line · ↑ edits your last message" : "Enter adds a line · tap Send to send";

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
        placeholder={enterSends ? "Message the model (Enter sends, Shift+Enter adds a line)" : "Message the model"}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby="composer-hint"
        enterKeyHint={enterSends ? "send" : "enter"}
      />
      {busy ? (
        <button type="button" className="stop" onClick={onStop} title="Stop (Esc)">
          Stop
        </button>
      ) : (
        <button type="submit" disabled={!canSend}>
          Send
        </button>
      )}
      <div id="composer-hint" className={`composer-hint ${check.blocked ? "blocked" : ""}`} aria-live="polite">
        <span>
          {check.blocked || blockedReason || (busy ? "Stop (Esc) ends the answer here and keeps what arrived." : keys)}
        </span>
        {check.note && <span className="token-estimate">{check.note}</span>}
      </div>
    </form>
  );
});
