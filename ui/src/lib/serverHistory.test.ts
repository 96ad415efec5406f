import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "./errors";
import {
  HistoryClient,
  HistorySync,
  IMPORT_OFFERED_KEY,
  importableLocal,
  planSync,
  sendUnsaved,
  UNSAVED_KEY,
  unsavedConversations,
} from "./serverHistory";
import { type Conversation, DEFAULT_SETTINGS, STORAGE_KEY, type StoreState } from "./store";

const client = new HistoryClient({ apiBaseUrl: "http://api.test", apiKey: "k-1" });

function conversation(id: string, messages = 1): Conversation {
  return {
    id,
    title: id,
    createdAt: 1,
    updatedAt: 2,
    settings: DEFAULT_SETTINGS,
    messages: Array.from({ length: messages }, (_, i) => ({
      id: `${id}-${i}`,
      role: "user" as const,
      content: "hi",
      status: "complete" as const,
    })),
  };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("which store the page uses", () => {
  it("is the server when chat-api answers 200 for this person, with the key sent", async () => {
    const fetcher = vi.fn(async () => json({ conversations: [], total: 0 }));
    vi.stubGlobal("fetch", fetcher);
    expect(await client.detect()).toBe("server");
    const [url, init] = fetcher.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("http://api.test/api/conversations?limit=1");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer k-1");
  });

  it.each([
    ["anonymous (403 history_needs_person)", () => json({ error: { code: "history_needs_person", message: "m" } }, 403)],
    ["an older chat-api without the route (404)", () => json({ error: { message: "Not Found" } }, 404)],
    ["chat-api unreachable", () => Promise.reject(new TypeError("Failed to fetch"))],
  ])("is localStorage when %s", async (_, answer) => {
    vi.stubGlobal("fetch", vi.fn(answer));
    expect(await client.detect()).toBe("local");
  });
});

describe("loading from the server", () => {
  it("applies localStorage's checks: a message left streaming is interrupted, a broken one dropped", async () => {
    const streaming = conversation("a");
    streaming.messages[0] = { ...streaming.messages[0], role: "assistant", status: "streaming" };
    vi.stubGlobal("fetch", vi.fn(async () => json({ conversations: [streaming, { id: 5 }] })));
    const loaded = await client.loadAll();
    expect(loaded.map((c) => c.id)).toEqual(["a"]);
    expect(loaded[0].messages[0].status).toBe("interrupted");
  });
});

describe("planSync", () => {
  it("sends changed conversations, deletes removed ones and keeps unsaved empty ones local", () => {
    const same = conversation("same");
    const old = conversation("edited");
    const saved = new Map([
      ["same", same],
      ["edited", old],
      ["gone", conversation("gone")],
    ]);
    const edited = { ...old, title: "new title" };
    const fresh = conversation("fresh");
    const empty = conversation("empty", 0);
    const state: StoreState = { conversations: [same, edited, fresh, empty], activeId: "same" };
    expect(planSync(saved, state)).toEqual({ put: [edited, fresh], remove: ["gone"] });
    // An emptied conversation that the server holds is saved empty.
    const emptied = { ...same, messages: [] };
    expect(planSync(saved, { conversations: [emptied, old], activeId: null }).put).toEqual([emptied]);
  });
});

describe("HistorySync", () => {
  it("saves at most once per delay, one request per changed conversation, and retries after a failure", async () => {
    vi.useFakeTimers();
    const put = vi.fn(async (_: Conversation) => {});
    const remove = vi.fn(async (_: string) => {});
    const results: (ApiError | null)[] = [];
    const sync = new HistorySync({ put, remove }, (e) => results.push(e), 800);
    const a = conversation("a");
    const b = conversation("b");
    sync.prime({ conversations: [a, b], activeId: "a" });

    let current = a;
    for (let i = 0; i < 40; i++) {
      current = { ...current, messages: [...current.messages, { ...current.messages[0], id: `t${i}` }] };
      sync.schedule({ conversations: [current, b], activeId: "a" }); // a streaming answer: 40 changes in 1.2 s
      await vi.advanceTimersByTimeAsync(30);
    }
    await vi.advanceTimersByTimeAsync(800);
    // At 800 ms what the 27th change left, then the rest: two requests for 40 changes; b never.
    expect(put.mock.calls.map(([c]) => c.messages.length)).toEqual([28, 41]);
    expect(results).toEqual([null, null]);

    put.mockRejectedValueOnce(new ApiError("http", "over the limit", 413, "history_limit"));
    const renamed = { ...current, title: "renamed" };
    sync.schedule({ conversations: [renamed], activeId: "a" });
    await vi.advanceTimersByTimeAsync(800);
    expect(results.at(-1)?.message).toBe("over the limit");
    expect(remove).not.toHaveBeenCalled(); // nothing after a failed put in the same round

    sync.schedule({ conversations: [renamed], activeId: "a" });
    await vi.advanceTimersByTimeAsync(800);
    expect(put.mock.calls.at(-1)?.[0]).toBe(renamed);
    expect(remove.mock.calls).toEqual([["b"]]);
    expect(results.at(-1)).toBeNull();
  });
});

describe("the import offer", () => {
  it("offers the browser's conversations with messages, once", () => {
    const items = new Map<string, string>([
      [STORAGE_KEY, JSON.stringify({ conversations: [conversation("x"), conversation("empty", 0)], activeId: "x" })],
    ]);
    const storage = { getItem: (k: string) => items.get(k) ?? null };
    expect(importableLocal(storage).map((c) => c.id)).toEqual(["x"]);
    items.set(IMPORT_OFFERED_KEY, "2026-12-01");
    expect(importableLocal(storage)).toEqual([]);
  });
});

describe("changes the server did not take (the session ended mid-answer)", () => {
  function memory() {
    const items = new Map<string, string>();
    return {
      items,
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => void items.set(k, v),
      removeItem: (k: string) => void items.delete(k),
    };
  }

  it("are kept in this browser and sent by the next page, which then forgets them", async () => {
    vi.useFakeTimers();
    const storage = memory();
    const put = vi.fn().mockRejectedValueOnce(new ApiError("http", "Your sign-in has expired", 401, "session_expired"));
    const sync = new HistorySync({ put, remove: vi.fn() }, () => {}, 800, storage);
    const answered = conversation("a", 2);
    sync.prime({ conversations: [conversation("a")], activeId: "a" });
    sync.schedule({ conversations: [answered], activeId: "a" });
    await vi.advanceTimersByTimeAsync(800);
    expect(unsavedConversations(storage)).toEqual([answered]);

    // The next page (signed in again) sends it before it shows the server's conversations.
    const next = vi.fn().mockResolvedValue(undefined);
    expect(await sendUnsaved({ put: next }, storage)).toBe(1);
    expect(next.mock.calls).toEqual([[answered]]);
    expect(storage.items.has(UNSAVED_KEY)).toBe(false);
    vi.useRealTimers();
  });

  it("give way to a newer copy saved from another device (409)", async () => {
    const storage = memory();
    storage.setItem(UNSAVED_KEY, JSON.stringify([conversation("a")]));
    const put = vi.fn().mockRejectedValue(new ApiError("http", "changed elsewhere", 409, "conversation_changed"));
    expect(await sendUnsaved({ put }, storage)).toBe(0);
    expect(unsavedConversations(storage)).toEqual([]);
  });
});
