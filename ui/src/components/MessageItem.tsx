import { type KeyboardEvent, useEffect, useRef, useState } from "react";
import { formatStats } from "../lib/format";
import type { Message } from "../lib/store";
import { CopyButton } from "./CopyButton";
import { Markdown } from "./Markdown";
import { ProblemBox } from "./ProblemBox";

interface Props {
  message: Message;
  isLastUser: boolean;
  isLastAnswer: boolean;
  busy: boolean;
  waitS: number;
  onRegenerate: () => void;
  onEdit: (text: string) => void;
}

const STATUS_NOTE: Partial<Record<Message["status"], string>> = {
  stopped: "Stopped by you",
  interrupted: "Incomplete: the answer was cut off",
};

export function MessageItem({ message, isLastUser, isLastAnswer, busy, waitS, onRegenerate, onEdit }: Props) {
  const [editing, setEditing] = useState(false);
  const isUser = message.role === "user";
  const streaming = message.status === "streaming";
  const note = STATUS_NOTE[message.status];
  const stats = [formatStats(message.stats), message.stats?.finishReason === "length" ? "reached max tokens" : ""]
    .filter(Boolean)
    .join(" · ");

  return (
    <article
      className={`message ${message.role} status-${message.status}`}
      aria-label={isUser ? "You said" : "Assistant said"}
      data-status={message.status}
    >
      <div className="message-role" aria-hidden="true">
        {isUser ? "You" : "Assistant"}
        {streaming && <span className="writing"> · writing…</span>}
      </div>
      {editing ? (
        <EditBox
          initial={message.content}
          onCancel={() => setEditing(false)}
          onSave={(text) => {
            setEditing(false);
            onEdit(text);
          }}
        />
      ) : !message.content && !streaming ? null : (
        <div className="message-body">
          {isUser ? (
            <p className="plain">{message.content}</p>
          ) : message.content ? (
            <Markdown source={message.content} />
          ) : streaming ? (
            <p className="waiting">
              <span className="dots" aria-hidden="true" /> Waiting for the first token…
            </p>
          ) : null}
        </div>
      )}
      {note && <div className={`message-note note-${message.status}`}>{note}</div>}
      {message.problem && (
        <ProblemBox
          problem={message.problem}
          waitS={waitS}
          onRetry={isLastAnswer ? onRegenerate : undefined}
          retryDisabled={busy}
        />
      )}
      {!editing && !streaming && (
        <div className="message-meta">
          {stats && <span className="stats">{stats}</span>}
          <span className="message-actions">
            {message.content && <CopyButton text={message.content} />}
            {isLastUser && !busy && (
              <button type="button" className="ghost small" onClick={() => setEditing(true)}>
                Edit
              </button>
            )}
            {isLastAnswer && !busy && !message.problem && (
              <button type="button" className="ghost small" onClick={onRegenerate}>
                Regenerate
              </button>
            )}
          </span>
        </div>
      )}
    </article>
  );
}

function EditBox({ initial, onSave, onCancel }: { initial: string; onSave: (t: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Escape") onCancel();
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      if (text.trim()) onSave(text);
    }
  };
  return (
    <div className="edit-box">
      <label className="offscreen" htmlFor="edit-last">
        Edit your message
      </label>
      <textarea id="edit-last" ref={ref} value={text} rows={3} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown} />
      <div className="edit-actions">
        <button type="button" className="ghost" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" onClick={() => onSave(text)} disabled={!text.trim()}>
          Save and send
        </button>
      </div>
    </div>
  );
}
