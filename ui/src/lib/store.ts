// Conversations kept in the browser (localStorage): types, pure updates, load and save.

import type { Problem } from "./errors";

export type Role = "user" | "assistant";

/** complete: answered in full; streaming: arriving; stopped: the user pressed Stop;
 *  interrupted: the stream broke (partial text kept); failed: no answer at all. */
export type MessageStatus = "complete" | "streaming" | "stopped" | "interrupted" | "failed";

export interface AnswerStats {
  ttftMs?: number;
  tokensPerS?: number;
  completionTokens?: number;
  finishReason?: string;
}

export interface Message {
  id: string;
  role: Role;
  content: string;
  status: MessageStatus;
  stats?: AnswerStats;
  problem?: Problem;
}

export interface ConversationSettings {
  systemPrompt: string;
  temperature: number;
  maxTokens: number;
  /** "" = the server's default model. */
  model: string;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  settings: ConversationSettings;
  messages: Message[];
}

export interface StoreState {
  conversations: Conversation[];
  activeId: string | null;
}

export const STORAGE_KEY = "llama-chat.v1";
export const DEFAULT_SETTINGS: ConversationSettings = {
  systemPrompt: "",
  temperature: 0.7,
  maxTokens: 512,
  model: "",
};
export const LIMITS = { temperature: [0, 2], maxTokens: [1, 32768] } as const;
const UNTITLED = "New conversation";

export function newId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export function emptyState(): StoreState {
  return { conversations: [], activeId: null };
}

// ---- persistence ----

/**
 * Reads the saved state. Anything unreadable starts empty rather than breaking the page; a
 * message still "streaming" when the page was closed is marked interrupted: its stream is gone.
 */
export function loadState(storage: Pick<Storage, "getItem">): StoreState {
  let raw: unknown;
  try {
    raw = JSON.parse(storage.getItem(STORAGE_KEY) ?? "null");
  } catch {
    return emptyState();
  }
  if (!raw || typeof raw !== "object" || !Array.isArray((raw as StoreState).conversations)) return emptyState();
  const conversations = (raw as StoreState).conversations.filter(isConversation).map((c) => ({
    ...c,
    settings: normaliseSettings(c.settings),
    messages: c.messages.map((m) => (m.status === "streaming" ? { ...m, status: "interrupted" as const } : m)),
  }));
  const activeId = (raw as StoreState).activeId;
  return {
    conversations,
    activeId: conversations.some((c) => c.id === activeId) ? activeId : (conversations[0]?.id ?? null),
  };
}

/** Saves the state; returns false when the browser refuses (quota, private mode) so the UI can say so. */
export function saveState(storage: Pick<Storage, "setItem">, state: StoreState): boolean {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(state));
    return true;
  } catch {
    return false;
  }
}

function isConversation(value: unknown): value is Conversation {
  const c = value as Conversation;
  return (
    !!c &&
    typeof c.id === "string" &&
    typeof c.title === "string" &&
    Array.isArray(c.messages) &&
    c.messages.every((m) => m && typeof m.id === "string" && typeof m.content === "string" && (m.role === "user" || m.role === "assistant"))
  );
}

export function normaliseSettings(value: Partial<ConversationSettings> | undefined): ConversationSettings {
  const s = { ...DEFAULT_SETTINGS, ...(value ?? {}) };
  return {
    systemPrompt: typeof s.systemPrompt === "string" ? s.systemPrompt : "",
    temperature: clamp(Number(s.temperature), ...LIMITS.temperature, DEFAULT_SETTINGS.temperature),
    maxTokens: Math.round(clamp(Number(s.maxTokens), ...LIMITS.maxTokens, DEFAULT_SETTINGS.maxTokens)),
    model: typeof s.model === "string" ? s.model : "",
  };
}

function clamp(value: number, min: number, max: number, fallback: number): number {
  if (!Number.isFinite(value)) return fallback;
  return Math.min(max, Math.max(min, value));
}

// ---- updates (pure: each returns a new state) ----

export type Action =
  | { type: "create"; id: string; now: number; settings?: Partial<ConversationSettings> }
  | { type: "select"; id: string }
  | { type: "rename"; id: string; title: string }
  | { type: "delete"; id: string }
  | { type: "settings"; id: string; settings: Partial<ConversationSettings> }
  | { type: "append"; id: string; message: Message; now: number }
  | { type: "patchMessage"; id: string; messageId: string; patch: Partial<Message> }
  | { type: "appendText"; id: string; messageId: string; text: string }
  | { type: "truncateFrom"; id: string; messageId: string };

export function reduce(state: StoreState, action: Action): StoreState {
  switch (action.type) {
    case "create": {
      const conversation: Conversation = {
        id: action.id,
        title: UNTITLED,
        createdAt: action.now,
        updatedAt: action.now,
        settings: normaliseSettings(action.settings),
        messages: [],
      };
      return { conversations: [conversation, ...state.conversations], activeId: action.id };
    }
    case "select":
      return state.conversations.some((c) => c.id === action.id) ? { ...state, activeId: action.id } : state;
    case "rename": {
      const title = action.title.trim().slice(0, 120);
      return title ? mapConversation(state, action.id, (c) => ({ ...c, title })) : state;
    }
    case "delete": {
      const conversations = state.conversations.filter((c) => c.id !== action.id);
      const activeId = state.activeId === action.id ? (conversations[0]?.id ?? null) : state.activeId;
      return { conversations, activeId };
    }
    case "settings":
      return mapConversation(state, action.id, (c) => ({
        ...c,
        settings: normaliseSettings({ ...c.settings, ...action.settings }),
      }));
    case "append":
      return mapConversation(state, action.id, (c) => ({
        ...c,
        // The first user message names an untitled conversation.
        title:
          c.title === UNTITLED && action.message.role === "user" && action.message.content.trim()
            ? titleFrom(action.message.content)
            : c.title,
        updatedAt: action.now,
        messages: [...c.messages, action.message],
      }));
    case "patchMessage":
      return mapMessage(state, action.id, action.messageId, (m) => ({ ...m, ...action.patch }));
    case "appendText":
      return mapMessage(state, action.id, action.messageId, (m) => ({ ...m, content: m.content + action.text }));
    case "truncateFrom":
      return mapConversation(state, action.id, (c) => {
        const index = c.messages.findIndex((m) => m.id === action.messageId);
        return index === -1 ? c : { ...c, messages: c.messages.slice(0, index) };
      });
  }
}

export function titleFrom(text: string): string {
  const line = text.trim().split(/\s+/).join(" ");
  return line.length > 48 ? `${line.slice(0, 47)}…` : line;
}

function mapConversation(state: StoreState, id: string, fn: (c: Conversation) => Conversation): StoreState {
  return { ...state, conversations: state.conversations.map((c) => (c.id === id ? fn(c) : c)) };
}

function mapMessage(state: StoreState, id: string, messageId: string, fn: (m: Message) => Message): StoreState {
  return mapConversation(state, id, (c) => ({
    ...c,
    messages: c.messages.map((m) => (m.id === messageId ? fn(m) : m)),
  }));
}

/** The messages sent to the model: system prompt first, then the finished turns (failed answers left out). */
export function toRequestMessages(
  conversation: Conversation,
): { role: "system" | "user" | "assistant"; content: string }[] {
  const out: { role: "system" | "user" | "assistant"; content: string }[] = [];
  if (conversation.settings.systemPrompt.trim()) out.push({ role: "system", content: conversation.settings.systemPrompt });
  for (const m of conversation.messages) {
    if (m.role === "assistant" && (m.status === "failed" || m.status === "streaming" || !m.content)) continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}
