import { describe, expect, it } from "vitest";
import {
  type Conversation,
  DEFAULT_SETTINGS,
  emptyState,
  loadState,
  type Message,
  reduce,
  STORAGE_KEY,
  saveState,
  type StoreState,
  toRequestMessages,
} from "./store";

class MemoryStorage {
  data = new Map<string, string>();
  getItem(k: string) {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.data.set(k, v);
  }
}

const user = (id: string, content: string): Message => ({ id, role: "user", content, status: "complete" });
const bot = (id: string, content: string, status: Message["status"] = "complete"): Message => ({
  id,
  role: "assistant",
  content,
  status,
});

function withConversation(): StoreState {
  return reduce(emptyState(), { type: "create", id: "c1", now: 1 });
}

describe("conversation updates", () => {
  it("creates a conversation, makes it active and gives it default settings", () => {
    const s = withConversation();
    expect(s.activeId).toBe("c1");
    expect(s.conversations[0].settings).toEqual(DEFAULT_SETTINGS);
  });

  it("names an untitled conversation after its first user message", () => {
    const s = reduce(withConversation(), { type: "append", id: "c1", message: user("m1", "How do  I\nbake bread?"), now: 2 });
    expect(s.conversations[0].title).toBe("How do I bake bread?");
  });

  it("renames, ignoring a blank title", () => {
    let s = reduce(withConversation(), { type: "rename", id: "c1", title: "  Bread  " });
    expect(s.conversations[0].title).toBe("Bread");
    s = reduce(s, { type: "rename", id: "c1", title: "   " });
    expect(s.conversations[0].title).toBe("Bread");
  });

  it("deletes and moves the selection to the next conversation", () => {
    let s = reduce(withConversation(), { type: "create", id: "c2", now: 2 });
    expect(s.activeId).toBe("c2");
    s = reduce(s, { type: "delete", id: "c2" });
    expect(s.conversations.map((c) => c.id)).toEqual(["c1"]);
    expect(s.activeId).toBe("c1");
    s = reduce(s, { type: "delete", id: "c1" });
    expect(s).toEqual({ conversations: [], activeId: null });
  });

  it("clamps settings to their limits", () => {
    const s = reduce(withConversation(), { type: "settings", id: "c1", settings: { temperature: 9, maxTokens: 0 } });
    expect(s.conversations[0].settings.temperature).toBe(2);
    expect(s.conversations[0].settings.maxTokens).toBe(1);
  });

  it("appends streamed text to one message and truncates from a message on", () => {
    let s = reduce(withConversation(), { type: "append", id: "c1", message: user("m1", "hi"), now: 2 });
    s = reduce(s, { type: "append", id: "c1", message: bot("m2", "", "streaming"), now: 3 });
    s = reduce(s, { type: "appendText", id: "c1", messageId: "m2", text: "Hel" });
    s = reduce(s, { type: "appendText", id: "c1", messageId: "m2", text: "lo" });
    expect(s.conversations[0].messages[1].content).toBe("Hello");
    s = reduce(s, { type: "truncateFrom", id: "c1", messageId: "m2" });
    expect(s.conversations[0].messages.map((m) => m.id)).toEqual(["m1"]);
  });
});

describe("persistence", () => {
  it("round-trips through storage", () => {
    const storage = new MemoryStorage();
    const s = reduce(withConversation(), { type: "append", id: "c1", message: user("m1", "hi"), now: 2 });
    expect(saveState(storage, s)).toBe(true);
    expect(loadState(storage)).toEqual(s);
  });

  it("starts empty on corrupt or foreign data instead of breaking", () => {
    const storage = new MemoryStorage();
    storage.setItem(STORAGE_KEY, "{not json");
    expect(loadState(storage)).toEqual(emptyState());
    storage.setItem(STORAGE_KEY, JSON.stringify({ conversations: "nope" }));
    expect(loadState(storage)).toEqual(emptyState());
  });

  it("drops malformed conversations and repairs the active id", () => {
    const storage = new MemoryStorage();
    const good = withConversation().conversations[0];
    storage.setItem(STORAGE_KEY, JSON.stringify({ conversations: [{ id: 3 }, good], activeId: "gone" }));
    const s = loadState(storage);
    expect(s.conversations.map((c) => c.id)).toEqual(["c1"]);
    expect(s.activeId).toBe("c1");
  });

  it("marks an answer that was still streaming when the page closed as interrupted", () => {
    const storage = new MemoryStorage();
    let s = reduce(withConversation(), { type: "append", id: "c1", message: bot("m1", "part", "streaming"), now: 2 });
    saveState(storage, s);
    s = loadState(storage);
    expect(s.conversations[0].messages[0]).toMatchObject({ status: "interrupted", content: "part" });
  });

  it("reports a refused write (quota) instead of throwing", () => {
    const full = {
      setItem() {
        throw new DOMException("full", "QuotaExceededError");
      },
    };
    expect(saveState(full, emptyState())).toBe(false);
  });
});

describe("toRequestMessages", () => {
  it("puts the system prompt first and leaves out failed or empty answers", () => {
    const c: Conversation = {
      ...withConversation().conversations[0],
      settings: { ...DEFAULT_SETTINGS, systemPrompt: "Be brief." },
      messages: [user("1", "a"), bot("2", "", "failed"), user("3", "b"), bot("4", "partial", "interrupted")],
    };
    expect(toRequestMessages(c)).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "a" },
      { role: "user", content: "b" },
      { role: "assistant", content: "partial" },
    ]);
  });
});

describe("delete any message and answer variants", () => {
  function chat(): StoreState {
    let s = withConversation();
    for (const m of [user("u1", "q1"), bot("a1", "first"), user("u2", "q2"), bot("a2", "second")])
      s = reduce(s, { type: "append", id: "c1", message: m, now: 2 });
    return s;
  }

  it("deletes one message, any of them, and leaves the rest", () => {
    const s = reduce(chat(), { type: "deleteMessage", id: "c1", messageId: "u1" });
    expect(s.conversations[0].messages.map((m) => m.id)).toEqual(["a1", "u2", "a2"]);
  });

  it("keeps the earlier answer as a variant on regenerate and switches between them", () => {
    let s = reduce(chat(), { type: "patchMessage", id: "c1", messageId: "a2", patch: { stats: { ttftMs: 5 } } });
    s = reduce(s, { type: "newVariant", id: "c1", messageId: "a2" });
    let a2 = s.conversations[0].messages[3];
    expect(a2).toMatchObject({ content: "", status: "streaming", variant: 1, stats: undefined });
    expect(a2.variants?.map((v) => v.content)).toEqual(["second", ""]);
    s = reduce(s, { type: "appendText", id: "c1", messageId: "a2", text: "third" });
    s = reduce(s, { type: "patchMessage", id: "c1", messageId: "a2", patch: { status: "complete" } });
    s = reduce(s, { type: "selectVariant", id: "c1", messageId: "a2", index: 0 });
    a2 = s.conversations[0].messages[3];
    expect(a2).toMatchObject({ content: "second", status: "complete", variant: 0, stats: { ttftMs: 5 } });
    expect(a2.variants?.map((v) => v.content)).toEqual(["second", "third"]);
    // What is sent next is the variant shown.
    expect(toRequestMessages(s.conversations[0]).at(-1)).toEqual({ role: "assistant", content: "second" });
  });

  it("replaces a failed empty answer instead of keeping it as a variant", () => {
    let s = reduce(chat(), { type: "patchMessage", id: "c1", messageId: "a2", patch: { content: "", status: "failed" } });
    s = reduce(s, { type: "newVariant", id: "c1", messageId: "a2" });
    expect(s.conversations[0].messages[3].variants).toHaveLength(1);
  });

  it("does not switch variants while the answer streams", () => {
    let s = reduce(chat(), { type: "newVariant", id: "c1", messageId: "a2" });
    s = reduce(s, { type: "selectVariant", id: "c1", messageId: "a2", index: 0 });
    expect(s.conversations[0].messages[3].status).toBe("streaming");
  });
});
