import { type KeyboardEvent, memo, useEffect, useRef, useState } from "react";
import { formatStats } from "../lib/format";
import type { Message } from "../lib/store";
import { CopyButton } from "./CopyButton";
import { Markdown } from "./Markdown";
import { ProblemBox } from "./ProblemBox";

interface Props {
  message: Message;
  isLastAnswer: boolean;
  /** An answer is streaming in this conversation: no edits meanwhile. */
  busy: boolean;
  waitS: number;
  editing: boolean;
  onStartEdit: (messageId: string | null) => void;
  onRegenerate: () => void;
  onEdit: (messageId: string, text: string) => void;
  onDelete: (messageId: string) => void;
  onSelectVariant: (messageId: string, index: number) => void;
}

const STATUS_NOTE: Partial<Record<Message["status"], string>> = {
  stopped: "Stopped by you",
  interrupted: "Incomplete: the answer was cut off",
};

export const MessageItem = memo(function MessageItem({
  message,
  isLastAnswer,
  busy,
  waitS,
  editing,
  onStartEdit,
  onRegenerate,
  onEdit,
  onDelete,
  onSelectVariant,
}: Props) {
  const [confirmDelete, setConfirmDelete] = useState(false);
  const variants = message.variants ?? [];
  const variantIndex = message.variant ?? 0;
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
          onCancel={() => onStartEdit(null)}
          onSave={(text) => {
            onStartEdit(null);
            onEdit(message.id, text);
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
      {!!message.droppedForContext && (
        <div className="message-note context-note">
          Answered without the {message.droppedForContext} oldest message{message.droppedForContext > 1 ? "s" : ""}: the
          conversation is longer than the model's context.
        </div>
      )}
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
          {variants.length > 1 && (
            <span className="variants" role="group" aria-label="Answers to this message">
              <button
                type="button"
                className="ghost small icon"
                aria-label="Previous answer"
                disabled={busy || variantIndex === 0}
                onClick={() => onSelectVariant(message.id, variantIndex - 1)}
              >
                ‹
              </button>
              <span className="variant-count">
                {variantIndex + 1}/{variants.length}
              </span>
              <button
                type="button"
                className="ghost small icon"
                aria-label="Next answer"
                disabled={busy || variantIndex === variants.length - 1}
                onClick={() => onSelectVariant(message.id, variantIndex + 1)}
              >
                ›
              </button>
            </span>
          )}
          {stats && <span className="stats">{stats}</span>}
          <span className="message-actions">
            {confirmDelete ? (
              <span
                className="confirm"
                role="group"
                aria-label="Delete this message?"
                onKeyDown={(event) => {
                  if (event.key === "Escape") {
                    event.preventDefault();
                    setConfirmDelete(false);
                  }
                }}
              >
                <button type="button" className="danger small" onClick={() => onDelete(message.id)}>
                  Delete
                </button>
                <button type="button" className="ghost small" onClick={() => setConfirmDelete(false)} autoFocus>
                  Keep
                </button>
              </span>
            ) : (
              <>
                {message.content && <CopyButton text={message.content} />}
                {isUser && !busy && (
                  <button type="button" className="ghost small" onClick={() => onStartEdit(message.id)}>
                    Edit
                  </button>
                )}
                {isLastAnswer && !busy && !message.problem && (
                  <button type="button" className="ghost small" onClick={onRegenerate}>
                    Regenerate
                  </button>
                )}
                {!busy && (
                  <button
                    type="button"
                    className="ghost small"
                    aria-label={isUser ? "Delete your message" : "Delete this answer"}
                    onClick={() => setConfirmDelete(true)}
                  >
                    Delete
                  </button>
                )}
              </>
            )}
          </span>
        </div>
      )}
    </article>
  );
});

function EditBox({ initial, onSave, onCancel }: { initial: string; onSave: (t: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Escape") {
      event.preventDefault(); // cancels the edit, does not stop an answer
      onCancel();
    }
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      if (text.trim()) onSave(text);
    }
  };
  return (
    <div className="edit-box">
      <label className="offscreen" htmlFor="edit-message">
        Edit your message (the answers after it are replaced)
      </label>
      <textarea id="edit-message" ref={ref} value={text} rows={3} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown} />
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
