import { type KeyboardEvent, type ReactNode, useEffect, useMemo, useRef, useState } from "react";
import { groupByDate, searchConversations } from "../lib/history";
import type { Conversation } from "../lib/store";

interface Props {
  conversations: Conversation[];
  activeId: string | null;
  /** Conversations with an answer streaming right now. */
  busyIds: Record<string, string>;
  /** The phone drawer is open: focus stays inside it and Escape closes it. */
  open: boolean;
  onClose: () => void;
  onNew: () => void;
  onSelect: (id: string) => void;
  onRename: (id: string, title: string) => void;
  onDelete: (id: string) => void;
  /** Below the list: where the conversations are kept, export buttons. */
  footer?: ReactNode;
}

const FOCUSABLE = "button:not([disabled]), input:not([disabled]), [href], [tabindex]:not([tabindex='-1'])";

export function Sidebar({
  conversations,
  activeId,
  busyIds,
  open,
  onClose,
  onNew,
  onSelect,
  onRename,
  onDelete,
  footer,
}: Props) {
  const [query, setQuery] = useState("");
  const navRef = useRef<HTMLElement>(null);
  const groups = useMemo(
    () => groupByDate(searchConversations(conversations, query), Date.now()),
    [conversations, query],
  );

  // The phone drawer takes the focus when it opens.
  useEffect(() => {
    if (open) navRef.current?.querySelector<HTMLElement>(FOCUSABLE)?.focus();
  }, [open]);

  const onKeyDown = (event: KeyboardEvent<HTMLElement>) => {
    if (!open) return;
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      onClose();
    } else if (event.key === "Tab") {
      // A modal drawer keeps Tab inside itself.
      const items = [...(navRef.current?.querySelectorAll<HTMLElement>(FOCUSABLE) ?? [])];
      const first = items[0];
      const last = items.at(-1);
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last?.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first?.focus();
      }
    }
  };

  return (
    <nav
      ref={navRef}
      className={`sidebar ${open ? "open" : ""}`}
      aria-label="Conversations"
      id="sidebar"
      onKeyDown={onKeyDown}
      {...(open ? { role: "dialog", "aria-modal": true } : {})}
    >
      <button type="button" className="new-chat" onClick={onNew} title="New conversation (Ctrl+Shift+O)">
        + New conversation
      </button>
      <input
        type="search"
        className="search"
        aria-label="Search conversations"
        placeholder="Search titles and messages"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {conversations.length === 0 ? (
        <p className="empty-list">No conversations yet. They are kept in this browser.</p>
      ) : groups.length === 0 ? (
        <p className="empty-list">No conversation contains “{query.trim()}”.</p>
      ) : (
        groups.map((group) => (
          <section key={group.label} className="date-group" aria-label={group.label}>
            <h2 className="date-label">{group.label}</h2>
            <ul className="conversation-list">
              {group.conversations.map((c) => (
                <ConversationRow
                  key={c.id}
                  conversation={c}
                  active={c.id === activeId}
                  busy={c.id in busyIds}
                  onSelect={() => onSelect(c.id)}
                  onRename={(title) => onRename(c.id, title)}
                  onDelete={() => onDelete(c.id)}
                />
              ))}
            </ul>
          </section>
        ))
      )}
      {footer}
    </nav>
  );
}

function ConversationRow({
  conversation,
  active,
  busy,
  onSelect,
  onRename,
  onDelete,
}: {
  conversation: Conversation;
  active: boolean;
  busy: boolean;
  onSelect: () => void;
  onRename: (title: string) => void;
  onDelete: () => void;
}) {
  const [mode, setMode] = useState<"view" | "rename" | "confirm">("view");
  const [draft, setDraft] = useState(conversation.title);
  const titleRef = useRef<HTMLButtonElement>(null);
  /** Where the keyboard goes when renaming or confirming ends (not to <body>). */
  const returnFocus = useRef(false);
  useEffect(() => {
    if (mode === "view" && returnFocus.current) {
      returnFocus.current = false;
      titleRef.current?.focus();
    }
  }, [mode]);
  const backToView = () => {
    returnFocus.current = true;
    setMode("view");
  };

  if (mode === "rename") {
    /** Enter saves and keeps the keyboard on this row; leaving the field (a click elsewhere) just saves. */
    const save = (keepFocus: boolean) => {
      if (draft.trim()) onRename(draft);
      if (keepFocus) backToView();
      else setMode("view");
    };
    const onKeyDown = (event: KeyboardEvent<HTMLInputElement>) => {
      if (event.key === "Enter") save(true);
      if (event.key === "Escape") {
        event.preventDefault(); // cancels the rename only, not the drawer
        backToView();
      }
    };
    return (
      <li className="conversation editing">
        <input
          aria-label="Conversation name"
          value={draft}
          autoFocus
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKeyDown}
          onBlur={() => save(false)}
        />
      </li>
    );
  }

  return (
    <li className={`conversation ${active ? "active" : ""} ${busy ? "busy" : ""}`}>
      <button
        type="button"
        ref={titleRef}
        className="conversation-title"
        aria-current={active ? "page" : undefined}
        onClick={onSelect}
      >
        {conversation.title}
        {busy && (
          <span className="busy-mark" title="Answering">
            <span className="offscreen"> (answering)</span>
          </span>
        )}
      </button>
      {mode === "confirm" ? (
        <span
          className="row-actions confirm"
          role="group"
          aria-label={`Delete ${conversation.title}?`}
          onKeyDown={(event) => {
            if (event.key === "Escape") {
              event.preventDefault(); // cancels the deletion only, not the drawer
              backToView();
            }
          }}
        >
          <button type="button" className="danger small" onClick={onDelete}>
            Delete
          </button>
          <button type="button" className="ghost small" onClick={backToView} autoFocus>
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
