import { type KeyboardEvent, useState } from "react";
import type { Conversation } from "../lib/store";

interface Props {
  conversations: Conversation[];
  activeId: string | null;
  open: boolean;
  onNew: () => void;
  onSelect: (id: string) => void;
  onRename: (id: string, title: string) => void;
  onDelete: (id: string) => void;
}

export function Sidebar({ conversations, activeId, open, onNew, onSelect, onRename, onDelete }: Props) {
  return (
    <nav className={`sidebar ${open ? "open" : ""}`} aria-label="Conversations" id="sidebar">
      <button type="button" className="new-chat" onClick={onNew}>
        + New conversation
      </button>
      {conversations.length === 0 ? (
        <p className="empty-list">No conversations yet. They are kept in this browser.</p>
      ) : (
        <ul className="conversation-list">
          {conversations.map((c) => (
            <ConversationRow
              key={c.id}
              conversation={c}
              active={c.id === activeId}
              onSelect={() => onSelect(c.id)}
              onRename={(title) => onRename(c.id, title)}
              onDelete={() => onDelete(c.id)}
            />
          ))}
        </ul>
      )}
    </nav>
  );
}

function ConversationRow({
  conversation,
  active,
  onSelect,
  onRename,
  onDelete,
}: {
  conversation: Conversation;
  active: boolean;
  onSelect: () => void;
  onRename: (title: string) => void;
  onDelete: () => void;
}) {
  const [mode, setMode] = useState<"view" | "rename" | "confirm">("view");
  const [draft, setDraft] = useState(conversation.title);

  if (mode === "rename") {
    const save = () => {
      if (draft.trim()) onRename(draft);
      setMode("view");
    };
    const onKeyDown = (event: KeyboardEvent<HTMLInputElement>) => {
      if (event.key === "Enter") save();
      if (event.key === "Escape") setMode("view");
    };
    return (
      <li className="conversation editing">
        <input
          aria-label="Conversation name"
          value={draft}
          autoFocus
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKeyDown}
          onBlur={save}
        />
      </li>
    );
  }

  return (
    <li className={`conversation ${active ? "active" : ""}`}>
      <button type="button" className="conversation-title" aria-current={active ? "page" : undefined} onClick={onSelect}>
        {conversation.title}
      </button>
      {mode === "confirm" ? (
        <span className="row-actions confirm" role="group" aria-label={`Delete ${conversation.title}?`}>
          <button type="button" className="danger small" onClick={onDelete}>
            Delete
          </button>
          <button type="button" className="ghost small" onClick={() => setMode("view")} autoFocus>
            Keep
          </button>
        </span>
      ) : (
        <span className="row-actions">
          <button
            type="button"
            className="ghost small icon"
            aria-label={`Rename ${conversation.title}`}
            title="Rename"
            onClick={() => {
              setDraft(conversation.title);
              setMode("rename");
            }}
          >
            <PencilIcon />
          </button>
          <button
            type="button"
            className="ghost small icon"
            aria-label={`Delete ${conversation.title}`}
            title="Delete"
            onClick={() => setMode("confirm")}
          >
            <TrashIcon />
          </button>
        </span>
      )}
    </li>
  );
}

// Inline SVG icons: no icon font, no emoji font needed, and allowed by the strict CSP.
function PencilIcon() {
  return (
    <svg width="15" height="15" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d="M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4" fill="none" stroke="currentColor" strokeWidth="2" strokeLinejoin="round" />
    </svg>
  );
}

function TrashIcon() {
  return (
    <svg width="15" height="15" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3" fill="none" stroke="currentColor" strokeWidth="2" strokeLinejoin="round" />
    </svg>
  );
}
