// The store switch (issue 19): the whole page with chat-api's conversation routes answered by a
// double that follows services/chat-api/chat_api/routes/conversations.py (statuses, shapes).

import { act } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { click, key, render, typeValue } from "./components/testing";
import { IMPORT_OFFERED_KEY } from "./lib/serverHistory";
import { type Conversation, DEFAULT_SETTINGS, STORAGE_KEY } from "./lib/store";

// A person's own API key as `python -m chat_api keys create` makes it (llp_ and 43 characters).
const PERSONAL_KEY = "llp_" + "k".repeat(43);
const CONFIG = { apiBaseUrl: "http://api.test", apiKey: PERSONAL_KEY, title: "Chat", defaultSystemPrompt: "", savedPrompts: [], signIn: false };

function conversation(id: string, title: string, updatedAt = Date.now()): Conversation {
  return {
    id,
    title,
    createdAt: updatedAt,
    updatedAt,
    settings: DEFAULT_SETTINGS,
    messages: [{ id: `${id}-m`, role: "user", content: `about ${title}`, status: "complete" }],
  };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** chat-api for one person: `person` false answers 403 as for an anonymous caller. */
function chatApi(person: boolean, stored: Conversation[]) {
  const server = new Map(stored.map((c) => [c.id, c]));
  const calls: { method: string; path: string; body?: unknown }[] = [];
  const fetcher = vi.fn(async (input: string, init: RequestInit = {}) => {
    const url = new URL(input);
    const method = init.method ?? "GET";
    const body = typeof init.body === "string" ? JSON.parse(init.body) : undefined;
    calls.push({ method, path: url.pathname + url.search, body });
    if (url.pathname === "/readyz") return json({ status: "unavailable", detail: "x" }, 503);
    if (!url.pathname.startsWith("/api/conversations")) return json({ error: { message: "no" } }, 404);
    if (!person)
      return json({ error: { code: "history_needs_person", message: "conversations are stored ... anonymous" } }, 403);
    const rest = url.pathname.slice("/api/conversations".length);
    if (rest === "" && method === "GET") return json({ conversations: [], total: server.size });
    if (rest === "/export") return json({ version: 1, conversations: [...server.values()] });
    if (rest === "/import" && method === "POST") {
      for (const c of (body as { conversations: Conversation[] }).conversations) server.set(c.id, c);
      return json({ imported: 1, updated: 0, unchanged: 0 });
    }
    const id = decodeURIComponent(rest.slice(1));
    if (method === "PUT") {
      const created = !server.has(id);
      server.set(id, body as Conversation);
      return json({ id }, created ? 201 : 200);
    }
    if (method === "DELETE") return server.delete(id) ? new Response(null, { status: 204 }) : json({}, 404);
    return json({ error: { message: "not handled by the double" } }, 500);
  });
  return { fetcher, calls, server };
}

const settle = () => act(async () => void (await new Promise((r) => setTimeout(r, 0))));
const titles = (c: HTMLElement) => [...c.querySelectorAll(".conversation-title")].map((b) => b.textContent?.trim());

beforeEach(() => {
  localStorage.clear();
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ conversations: [conversation("local-1", "Local plans")], activeId: "local-1" }));
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
  document.body.innerHTML = "";
});

describe("where the conversations live", () => {
  it("signed in (GET /api/conversations is 200): the server's, never written to localStorage, import offered once", async () => {
    const api = chatApi(true, [conversation("srv-1", "From the laptop")]);
    vi.stubGlobal("fetch", api.fetcher);
    const before = localStorage.getItem(STORAGE_KEY);
    const { container } = render(<App config={CONFIG} />);
    await settle();
    await settle();
    expect(titles(container)).toEqual(["From the laptop"]);
    expect(container.textContent).toContain("Saved to your account");
    expect(localStorage.getItem(STORAGE_KEY)).toBe(before); // the browser's own history is left as it was

    const offer = container.querySelector(".import-offer");
    expect(offer?.textContent).toContain("1 conversation from before you signed in");
    const importButton = [...(offer?.querySelectorAll("button") ?? [])].find((b) => b.textContent === "Import");
    click(importButton as HTMLButtonElement);
    await settle();
    await settle();
    const posted = api.calls.find((c) => c.path === "/api/conversations/import");
    expect((posted?.body as { conversations: Conversation[] }).conversations.map((c) => c.id)).toEqual(["local-1"]);
    expect(titles(container).sort()).toEqual(["From the laptop", "Local plans"]);
    expect(container.querySelector(".import-offer")).toBeNull();
    expect(localStorage.getItem(IMPORT_OFFERED_KEY)).not.toBeNull();
  });

  it("saves a change after the delay as a PUT of that conversation, and a deletion as a DELETE", async () => {
    const api = chatApi(true, [conversation("srv-1", "From the laptop")]);
    vi.stubGlobal("fetch", api.fetcher);
    localStorage.setItem(IMPORT_OFFERED_KEY, "earlier");
    const { container } = render(<App config={CONFIG} />);
    await settle();
    await settle();
    expect(container.querySelector(".import-offer")).toBeNull(); // offered once only
    expect(api.calls.filter((c) => c.method !== "GET")).toEqual([]); // loading sends nothing back

    // Rename in the sidebar: one PUT of the whole conversation with the new title.
    click(container.querySelector("[aria-label='Rename From the laptop']") as HTMLButtonElement);
    const field = container.querySelector<HTMLInputElement>("[aria-label='Conversation name']") as HTMLInputElement;
    typeValue(field, "Renamed here");
    key(field, "Enter");
    await act(async () => void (await new Promise((r) => setTimeout(r, 1000))));
    const puts = api.calls.filter((c) => c.method === "PUT");
    expect(puts.map((c) => c.path)).toEqual(["/api/conversations/srv-1"]);
    expect((puts[0].body as Conversation).title).toBe("Renamed here");
    expect(api.server.get("srv-1")?.messages).toHaveLength(1);

    // Delete the conversation from the sidebar: the server deletes it too.
    click(container.querySelector("[aria-label='Delete Renamed here']") as HTMLButtonElement);
    const confirm = [...container.querySelectorAll("button")].find((b) => b.textContent === "Delete");
    click(confirm as HTMLButtonElement);
    await act(async () => void (await new Promise((r) => setTimeout(r, 1000))));
    expect(api.calls.filter((c) => c.method === "DELETE").map((c) => c.path)).toEqual(["/api/conversations/srv-1"]);
    expect(api.server.size).toBe(0);
  });

  it("anonymous (403): localStorage stays the store, no offer, no export", async () => {
    const api = chatApi(false, []);
    vi.stubGlobal("fetch", api.fetcher);
    const { container } = render(<App config={CONFIG} />);
    await settle();
    await settle();
    expect(titles(container)).toEqual(["Local plans"]);
    expect(container.querySelector(".import-offer")).toBeNull();
    expect(container.querySelector(".export-buttons")).toBeNull();
    expect(container.textContent).not.toContain("Saved to your account");
    expect(api.calls.filter((c) => c.path.startsWith("/api/conversations")).map((c) => c.method)).toEqual(["GET"]);
  });
});
