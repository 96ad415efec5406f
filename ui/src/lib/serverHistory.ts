// Conversations on the server (chat-api /api/conversations, issue 19) for a signed-in person.
//
// Which store: the page asks GET /api/conversations once. 200: the person has server history, and
// conversations load from and save to chat-api (debounced). Anything else (403 for an anonymous
// `make up` user, 404 from an older chat-api, no network): localStorage stays the store.

import type { RuntimeConfig } from "./api";
import { ApiError } from "./errors";
import { type Conversation, loadState, type StoreState } from "./store";

export type StoreKind = "local" | "server";
/** Set once the browser's own conversations were imported to the account or the offer declined. */
export const IMPORT_OFFERED_KEY = "llama-chat.import-offered.v1";
/**
 * Changes the server has not acknowledged (the session ended, the network dropped): kept in this
 * browser until the next page in server mode sends them, so signing in again loses nothing.
 */
export const UNSAVED_KEY = "llama-chat.unsaved.v1";

type KeyValueStore = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export function unsavedConversations(storage: Pick<Storage, "getItem">): Conversation[] {
  try {
    const value: unknown = JSON.parse(storage.getItem(UNSAVED_KEY) ?? "[]");
    return Array.isArray(value) ? (value as Conversation[]) : [];
  } catch {
    return [];
  }
}

function keepUnsaved(storage: KeyValueStore, conversations: Conversation[]): void {
  const byId = new Map(unsavedConversations(storage).map((c) => [c.id, c]));
  for (const conversation of conversations) byId.set(conversation.id, conversation);
  try {
    storage.setItem(UNSAVED_KEY, JSON.stringify([...byId.values()]));
  } catch {
    // Storage full or off: the save problem is already reported.
  }
}

function forgetUnsaved(storage: KeyValueStore, id: string, sent?: Conversation): void {
  // Only the copy that was sent: a newer change kept meanwhile stays until it is sent too.
  const same = (c: Conversation) => c.id === id && (!sent || JSON.stringify(c) === JSON.stringify(sent));
  const left = unsavedConversations(storage).filter((c) => !same(c));
  if (left.length) storage.setItem(UNSAVED_KEY, JSON.stringify(left));
  else storage.removeItem(UNSAVED_KEY);
}

/**
 * Send what an earlier page could not save; a conversation the server holds a newer copy of
 * (409: changed on another device since) is left as the server has it. Returns how many were sent.
 */
export async function sendUnsaved(
  client: Pick<HistoryClient, "put">,
  storage: KeyValueStore,
): Promise<number> {
  let sent = 0;
  for (const conversation of unsavedConversations(storage)) {
    try {
      await client.put(conversation);
      sent += 1;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) throw error;
    }
    forgetUnsaved(storage, conversation.id);
  }
  return sent;
}
export const SAVE_DELAY_MS = 800;

export interface ImportResult {
  imported: number;
  updated: number;
  unchanged: number;
}

export class HistoryClient {
  constructor(private readonly config: Pick<RuntimeConfig, "apiBaseUrl" | "apiKey">) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
    if (this.config.apiKey) headers.Authorization = `Bearer ${this.config.apiKey}`;
    let response: Response;
    try {
      response = await fetch(`${this.config.apiBaseUrl}/api/conversations${path}`, {
        ...init,
        headers,
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError("network", error instanceof Error ? error.message : String(error));
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => null)) as { error?: { message?: string; code?: string } } | null;
      throw new ApiError("http", body?.error?.message ?? `HTTP ${response.status}`, response.status, body?.error?.code);
    }
    return response;
  }

  /** Which store this page uses: "server" only when chat-api keeps conversations for this person. */
  async detect(): Promise<StoreKind> {
    try {
      await this.request("?limit=1");
      return "server";
    } catch {
      return "local";
    }
  }

  /** Every conversation of the person, newest first, in the UI's shape (as the JSON export holds them). */
  async loadAll(): Promise<Conversation[]> {
    const response = await this.request("/export?format=json");
    const body = (await response.json()) as { conversations?: unknown };
    // The same checks and repairs as localStorage gets (a message left "streaming" is interrupted).
    return loadState({ getItem: () => JSON.stringify({ conversations: body.conversations ?? [], activeId: null }) })
      .conversations;
  }

  async put(conversation: Conversation): Promise<void> {
    await this.request(`/${encodeURIComponent(conversation.id)}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(conversation),
    });
  }

  async remove(id: string): Promise<void> {
    try {
      await this.request(`/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (error) {
      // Never saved (an empty conversation) or deleted on another device: gone either way.
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
  }

  async importLocal(conversations: Conversation[]): Promise<ImportResult> {
    const response = await this.request("/import", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conversations }),
    });
    return (await response.json()) as ImportResult;
  }

  /** The export as a file: the body and the name chat-api gives it. */
  async exportFile(format: "markdown" | "json"): Promise<{ blob: Blob; filename: string }> {
    const response = await this.request(`/export?format=${format}`);
    const disposition = response.headers.get("content-disposition") ?? "";
    const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `conversations.${format === "json" ? "json" : "md"}`;
    return { blob: await response.blob(), filename };
  }
}

/** The browser's own conversations worth offering for import (those with at least one message). */
export function importableLocal(storage: Pick<Storage, "getItem">): Conversation[] {
  if (storage.getItem(IMPORT_OFFERED_KEY)) return [];
  return loadState(storage).conversations.filter((c) => c.messages.length > 0);
}

export interface SyncPlan {
  put: Conversation[];
  remove: string[];
}

/**
 * What to send so the server holds `state`, given what it last acknowledged (`saved`, by id; the
 * reducer replaces a conversation object only when it changed, so identity says "changed").
 * An empty conversation that was never saved stays in the browser until it has a message.
 */
export function planSync(saved: ReadonlyMap<string, Conversation>, state: StoreState): SyncPlan {
  const ids = new Set(state.conversations.map((c) => c.id));
  return {
    put: state.conversations.filter((c) => saved.get(c.id) !== c && (c.messages.length > 0 || saved.has(c.id))),
    remove: [...saved.keys()].filter((id) => !ids.has(id)),
  };
}

/**
 * Saves the state to the server at most once per `delayMs` (a streaming answer changes the state
 * 20 times a second), one request per changed conversation, in order. A failure is reported and
 * retried with the next change.
 */
export class HistorySync {
  private saved = new Map<string, Conversation>();
  private latest: StoreState | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: Pick<HistoryClient, "put" | "remove">,
    private readonly onResult: (error: ApiError | null) => void,
    private readonly delayMs = SAVE_DELAY_MS,
    private readonly unsaved: KeyValueStore | null = null,
  ) {}

  /** What the server holds now (just loaded): nothing of it is sent back. */
  prime(state: StoreState): void {
    this.saved = new Map(state.conversations.map((c) => [c.id, c]));
    this.latest = state;
  }

  schedule(state: StoreState): void {
    this.latest = state;
    // Written ahead: a page closed (or sent to sign in) before the save leaves the change here.
    if (this.unsaved) {
      const pending = planSync(this.saved, state).put;
      if (pending.length) keepUnsaved(this.unsaved, pending);
    }
    if (this.timer === undefined) this.timer = setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Send what changed now (also what the page does before it is closed). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.running.then(() => this.send());
    return this.running;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async send(): Promise<void> {
    const state = this.latest;
    if (!state) return;
    const plan = planSync(this.saved, state);
    if (plan.put.length === 0 && plan.remove.length === 0) return;
    try {
      for (const conversation of plan.put) {
        await this.client.put(conversation);
        this.saved.set(conversation.id, conversation);
        if (this.unsaved) forgetUnsaved(this.unsaved, conversation.id, conversation);
      }
      for (const id of plan.remove) {
        await this.client.remove(id);
        this.saved.delete(id);
      }
      this.onResult(null);
    } catch (error) {
      // Keep what the server did not take in this browser, for the next page to send.
      const unsent = plan.put.filter((c) => this.saved.get(c.id) !== c);
      if (this.unsaved && unsent.length) keepUnsaved(this.unsaved, unsent);
      this.onResult(error instanceof ApiError ? error : new ApiError("network", String(error)));
    }
  }
}
