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

/** One answer to the same question (Regenerate keeps the earlier ones: ‹n/m›). */
export interface AnswerVariant {
  content: string;
  status: MessageStatus;
  stats?: AnswerStats;
  problem?: Problem;
  /** How many of the oldest messages were left out of this answer's request to fit the context. */
  droppedForContext?: number;
}

export interface Message extends AnswerVariant {
  id: string;
  role: Role;
  /** Every answer generated for this turn (assistant only); the shown one is `variants[variant]`,
   *  mirrored in the message's own fields, which are what is sent and rendered. */
  variants?: AnswerVariant[];
  variant?: number;
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
    messages: c.messages.map((m) => ({
      ...interruptIfStreaming(m),
      ...(m.variants ? { variants: m.variants.map(interruptIfStreaming) } : {}),
    })),
  }));
  const activeId = (raw as StoreState).activeId;
  return {
    conversations,
    activeId: conversations.some((c) => c.id === activeId) ? activeId : (conversations[0]?.id ?? null),
  };
}

function interruptIfStreaming<T extends AnswerVariant>(m: T): T {
  return m.status === "streaming" ? { ...m, status: "interrupted" as const } : m;
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
  /** Replace every conversation (the person's, loaded from the server); the first becomes active. */
  | { type: "load"; conversations: Conversation[] }
  | { type: "rename"; id: string; title: string }
  | { type: "delete"; id: string }
  | { type: "settings"; id: string; settings: Partial<ConversationSettings> }
  | { type: "append"; id: string; message: Message; now: number }
  | { type: "patchMessage"; id: string; messageId: string; patch: Partial<Message> }
  | { type: "appendText"; id: string; messageId: string; text: string }
  | { type: "truncateFrom"; id: string; messageId: string }
  | { type: "deleteMessage"; id: string; messageId: string }
  /** Regenerate: keep the shown answer as a variant and start a new, empty one in the same message. */
  | { type: "newVariant"; id: string; messageId: string }
  | { type: "selectVariant"; id: string; messageId: string; index: number };

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
    case "load":
      return {
        conversations: action.conversations,
        activeId: action.conversations.some((c) => c.id === state.activeId)
          ? state.activeId
          : (action.conversations[0]?.id ?? null),
      };
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
    case "deleteMessage":
      return mapConversation(state, action.id, (c) => ({
        ...c,
        messages: c.messages.filter((m) => m.id !== action.messageId),
      }));
    case "newVariant":
      return mapMessage(state, action.id, action.messageId, (m) => {
        // An answer that failed with nothing in it is replaced, not kept as a variant.
        const variants = withCurrentVariant(m).filter((v) => v.content || v.status !== "failed");
        const fresh: AnswerVariant = { content: "", status: "streaming" };
        return { ...m, ...CLEAR_VARIANT, ...fresh, variants: [...variants, fresh], variant: variants.length };
      });
    case "selectVariant":
      return mapMessage(state, action.id, action.messageId, (m) => {
        const variants = withCurrentVariant(m);
        const chosen = variants[action.index];
        if (!chosen || m.status === "streaming") return m;
        return { ...m, ...CLEAR_VARIANT, ...chosen, variants, variant: action.index };
      });
  }
}

const CLEAR_VARIANT: Partial<AnswerVariant> = {
  stats: undefined,
  problem: undefined,
  droppedForContext: undefined,
};

/** The variants list with the shown answer's latest state written back into its slot. */
function withCurrentVariant(m: Message): AnswerVariant[] {
  const current: AnswerVariant = {
    content: m.content,
    status: m.status,
    stats: m.stats,
    problem: m.problem,
    droppedForContext: m.droppedForContext,
  };
  const variants = m.variants?.length ? [...m.variants] : [current];
  variants[m.variant ?? variants.length - 1] = current;
  return variants;
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

/** The turns worth sending to the model: failed, streaming or empty answers are left out. */
export function sendableMessages(messages: Message[]): Message[] {
  return messages.filter((m) => !(m.role === "assistant" && (m.status === "failed" || m.status === "streaming" || !m.content)));
}

export type RequestMessage = { role: "system" | "user" | "assistant"; content: string };

/** The messages sent to the model: system prompt first, then the given turns. */
export function requestMessages(systemPrompt: string, messages: Message[]): RequestMessage[] {
  const out: RequestMessage[] = [];
  if (systemPrompt.trim()) out.push({ role: "system", content: systemPrompt });
  for (const m of messages) out.push({ role: m.role, content: m.content });
  return out;
}

/** The messages sent to the model: system prompt first, then the finished turns (failed answers left out). */
export function toRequestMessages(conversation: Conversation): RequestMessage[] {
  return requestMessages(conversation.settings.systemPrompt, sendableMessages(conversation.messages));
}
