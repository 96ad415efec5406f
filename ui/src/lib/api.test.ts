import { afterEach, describe, expect, it, vi } from "vitest";
import { ChatClient, parseConfig } from "./api";
import { ApiError } from "./errors";
import type { ChatEvent } from "./sse";

const client = new ChatClient({
  apiBaseUrl: "http://api.test",
  apiKey: "k-1",
  title: "t",
  defaultSystemPrompt: "",
  savedPrompts: [],
  signIn: false,
});

function sse(text: string, init: ResponseInit = {}): Response {
  return new Response(text, { status: 200, headers: { "Content-Type": "text/event-stream" }, ...init });
}

async function collect(signal = new AbortController().signal, idleTimeoutMs?: number): Promise<ChatEvent[]> {
  const out: ChatEvent[] = [];
  for await (const e of client.chat({ messages: [{ role: "user", content: "hi" }] }, { signal, idleTimeoutMs }))
    out.push(e);
  return out;
}

afterEach(() => vi.unstubAllGlobals());

describe("parseConfig", () => {
  it("trims a trailing slash and drops an empty key", () => {
    expect(parseConfig({ apiBaseUrl: "https://x.test/", apiKey: "" })).toEqual({
      apiBaseUrl: "https://x.test",
      apiKey: undefined,
      title: "Llama Chat",
      defaultSystemPrompt: "",
      savedPrompts: [],
      signIn: false,
    });
  });
  it("turns sign-in on only for a literal true", () => {
    expect(parseConfig({ signIn: true }).signIn).toBe(true);
    expect(parseConfig({ signIn: "true" }).signIn).toBe(false);
    expect(parseConfig({}).signIn).toBe(false);
  });
  it("keeps the operator's note about the model, and drops an empty or non-text one", () => {
    expect(parseConfig({ modelNote: " A 135M demo model. " }).modelNote).toBe("A 135M demo model.");
    expect(parseConfig({ modelNote: "  " }).modelNote).toBeUndefined();
    expect(parseConfig({ modelNote: 42 }).modelNote).toBeUndefined();
  });
  it("falls back to same origin for anything unexpected", () => {
    expect(parseConfig(null).apiBaseUrl).toBe("");
    expect(parseConfig({ apiBaseUrl: 42 }).apiBaseUrl).toBe("");
  });
});

describe("ChatClient.chat", () => {
  it("posts to /api/chat with the bearer key and yields the events", async () => {
    const fetch = vi.fn().mockResolvedValue(sse('event: delta\ndata: {"content":"a"}\n\nevent: done\ndata: {"finish_reason":"stop"}\n\n'));
    vi.stubGlobal("fetch", fetch);
    const events = await collect();
    expect(events.map((e) => e.type)).toEqual(["delta", "done"]);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("http://api.test/api/chat");
    expect(init.headers.Authorization).toBe("Bearer k-1");
    expect(JSON.parse(init.body)).toEqual({ messages: [{ role: "user", content: "hi" }] });
  });

  it("turns a 429 before the stream into an ApiError with Retry-After", async () => {
    const body = JSON.stringify({ error: { message: "slow down", code: "rate_limit_exceeded" } });
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(body, { status: 429, headers: { "Retry-After": "7" } })));
    const error = await collect().catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ kind: "http", status: 429, retryAfterS: 7, message: "slow down" });
  });

  it("calls a refused connection a network failure", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    await expect(collect()).rejects.toMatchObject({ kind: "network" });
  });

  it("calls the proxy's own 502 (chat-api down behind nginx) a network failure, and its 504 a timeout", async () => {
    const page = "<html><body><center><h1>502 Bad Gateway</h1></center></body></html>";
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(page, { status: 502 })));
    await expect(collect()).rejects.toMatchObject({ kind: "network", status: 502 });
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response("<html>504</html>", { status: 504 })));
    await expect(collect()).rejects.toMatchObject({ kind: "timeout", status: 504 });
    // chat-api's own 502 (JSON, with its code) stays what chat-api said.
    const own = JSON.stringify({ error: { message: "too large", code: "response_too_large" } });
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(own, { status: 502 })));
    await expect(collect()).rejects.toMatchObject({ kind: "http", status: 502, code: "response_too_large" });
  });

  it("gives up with a timeout when no byte arrives in time", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn((_url: string, init: RequestInit) =>
        Promise.resolve(
          new Response(
            new ReadableStream({
              start(controller) {
                init.signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
              },
            }),
          ),
        ),
      ),
    );
    await expect(collect(undefined, 50)).rejects.toMatchObject({ kind: "timeout" });
  });

  it("lets Stop surface as an abort, not as an error to show", async () => {
    const stop = new AbortController();
    vi.stubGlobal(
      "fetch",
      vi.fn((_url: string, init: RequestInit) => {
        stop.abort();
        return Promise.reject(init.signal?.aborted ? new DOMException("aborted", "AbortError") : new Error("x"));
      }),
    );
    await expect(collect(stop.signal)).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("ChatClient.readiness", () => {
  it("reports loading with chat-api's detail", async () => {
    const body = JSON.stringify({ status: "loading", detail: "vLLM answers /health with 503" });
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(body, { status: 503 })));
    expect(await client.readiness()).toEqual({ state: "loading", detail: "vLLM answers /health with 503" });
  });
  it("reports unreachable when nothing answers", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    expect((await client.readiness()).state).toBe("unreachable");
  });
  it("lists the models when ready", async () => {
    const body = JSON.stringify({ status: "ready", models: ["m1"] });
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(new Response(body, { status: 200 })));
    expect(await client.readiness()).toEqual({ state: "ready", models: ["m1"] });
  });
});

describe("issue 19: context length, cold start and team defaults", () => {
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status });

  it("reads max_model_len of each served model from /v1/models", async () => {
    const body = { data: [{ id: "llama", max_model_len: 2048 }, { id: "other" }, { nope: 1 }] };
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json(body)));
    expect(await client.models()).toEqual([{ id: "llama", maxModelLen: 2048 }, { id: "other", maxModelLen: undefined }]);
  });

  it("tells a model server that stopped answering (unavailable) from chat-api down (unreachable)", async () => {
    const body = { status: "unavailable", detail: "the model server stopped answering" };
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json(body, 503)));
    expect(await client.readiness()).toEqual({ state: "unavailable", detail: "the model server stopped answering" });
  });

  it("reports chat-api's wrong_model as a wrong model, not as loading forever", async () => {
    const detail = "the model server does not serve the model chat-api is set to use; it will not become ready by waiting";
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json({ status: "wrong_model", detail }, 503)));
    expect(await client.readiness()).toEqual({ state: "wrongModel", detail });
  });

  it("reads the vLLM pod's stage of a start, and of an outage with its reason and restarts", async () => {
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json({ status: "starting", detail: "d", stage: "downloading" }, 503)));
    expect(await client.readiness()).toEqual({ state: "starting", detail: "d", stage: "downloading" });
    const crash = { status: "unavailable", detail: "d", stage: "crashloop", reason: "OOMKilled", restarts: 4 };
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json(crash, 503)));
    expect(await client.readiness()).toEqual({ state: "unavailable", detail: "d", stage: "crashloop", reason: "OOMKilled", restarts: 4 });
    const odd = { status: "starting", detail: "d", stage: 3, reason: ["x"], restarts: "many" };
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(json(odd, 503)));
    expect(await client.readiness()).toEqual({ state: "starting", detail: "d" });
  });

  it("reads the team's default system prompt and saved prompts, leaving out broken entries", () => {
    const config = parseConfig({
      defaultSystemPrompt: "You are our team's assistant.",
      savedPrompts: [{ title: " Reviewer ", text: "Review code." }, { title: "", text: "x" }, { title: "t" }, "nope"],
    });
    expect(config.defaultSystemPrompt).toBe("You are our team's assistant.");
    expect(config.savedPrompts).toEqual([{ title: "Reviewer", text: "Review code." }]);
    expect(parseConfig({ savedPrompts: "nope", defaultSystemPrompt: 3 })).toMatchObject({
      defaultSystemPrompt: "",
      savedPrompts: [],
    });
  });
});

describe("sign-in (chat-api /auth)", () => {
  it("GET /auth/me: the signed-in person, or null on 401", async () => {
    const fetch = vi
      .fn()
      .mockResolvedValueOnce(
        new Response(JSON.stringify({ id: "user:idp:1", email: "ada@example.com", name: "Ada", expiresAt: 99 }), {
          status: 200,
        }),
      )
      .mockResolvedValueOnce(new Response(JSON.stringify({ error: { code: "signin_required" } }), { status: 401 }));
    vi.stubGlobal("fetch", fetch);
    expect(await client.me()).toEqual({ id: "user:idp:1", email: "ada@example.com", name: "Ada", expiresAt: 99 });
    expect(await client.me()).toBeNull();
    expect(fetch.mock.calls[0][0]).toBe("http://api.test/auth/me");
    expect(fetch.mock.calls[0][1].credentials).toBe("same-origin");
  });

  it("POST /auth/logout: where to go next (the provider's sign-out)", async () => {
    const fetch = vi.fn().mockResolvedValue(new Response(JSON.stringify({ next: "https://idp.test/end?x=1" })));
    vi.stubGlobal("fetch", fetch);
    expect(await client.signOut()).toBe("https://idp.test/end?x=1");
    expect(fetch.mock.calls[0][1].method).toBe("POST");
  });
});
