// The only module that talks to chat-api (docs/interfaces.md): config, readiness, models, chat stream.

import { ApiError, parseRetryAfter } from "./errors";
import { type ChatEvent, readChatEvents } from "./sse";

/** A system prompt an operator offers the whole team (chart value chat-ui.config.savedPrompts). */
export interface SavedPrompt {
  title: string;
  text: string;
}

export interface RuntimeConfig {
  /** "" = same origin (behind an ingress); otherwise the chat-api origin, e.g. http://127.0.0.1:8080 */
  apiBaseUrl: string;
  apiKey?: string;
  title: string;
  /** What the operator says about the model that answers (`make up`: a 135M demo model, how to serve a bigger one). */
  modelNote?: string;
  /** System prompt of every new conversation (a 3B model depends on it); "" = none. */
  defaultSystemPrompt: string;
  savedPrompts: SavedPrompt[];
  /** People sign in (chat-api's OpenID Connect, /auth/*); the API must then be on this page's origin. */
  signIn: boolean;
}

export const DEFAULT_CONFIG: RuntimeConfig = {
  apiBaseUrl: "",
  title: "Llama Chat",
  defaultSystemPrompt: "",
  savedPrompts: [],
  signIn: false,
};

/** Who is signed in (chat-api's GET /auth/me). */
export interface Account {
  id: string;
  email: string;
  name: string;
  /** Seconds since the epoch when the session ends. */
  expiresAt: number;
}

/** A model chat-api serves, with vLLM's context length when it reports one (`max_model_len`). */
export interface ModelInfo {
  id: string;
  maxModelLen?: number;
}

/** Reads /config.json (provided by the chart's ConfigMap); a missing or broken file falls back to same origin. */
export async function loadConfig(fetcher: typeof fetch = fetch): Promise<RuntimeConfig> {
  try {
    const response = await fetcher("/config.json", { cache: "no-store" });
    if (!response.ok) return DEFAULT_CONFIG;
    return parseConfig(await response.json());
  } catch {
    return DEFAULT_CONFIG;
  }
}

export function parseConfig(raw: unknown): RuntimeConfig {
  const value = (raw ?? {}) as Record<string, unknown>;
  const base = typeof value.apiBaseUrl === "string" ? value.apiBaseUrl.trim().replace(/\/+$/, "") : "";
  return {
    apiBaseUrl: base,
    apiKey: typeof value.apiKey === "string" && value.apiKey ? value.apiKey : undefined,
    title: typeof value.title === "string" && value.title ? value.title : DEFAULT_CONFIG.title,
    modelNote: typeof value.modelNote === "string" && value.modelNote.trim() ? value.modelNote.trim() : undefined,
    defaultSystemPrompt: typeof value.defaultSystemPrompt === "string" ? value.defaultSystemPrompt : "",
    // Entries without a title and a text are left out rather than shown half.
    savedPrompts: Array.isArray(value.savedPrompts)
      ? value.savedPrompts
          .filter(
            (p): p is SavedPrompt =>
              !!p && typeof p.title === "string" && typeof p.text === "string" && !!p.title.trim() && !!p.text.trim(),
          )
          .map((p) => ({ title: p.title.trim(), text: p.text }))
      : [],
    signIn: value.signIn === true,
  };
}

/**
 * What chat-api's /readyz says (services/chat-api/chat_api/readiness.py has the table):
 * ready: vLLM answers /health and lists the model. starting: vLLM has not answered since chat-api
 * started, or (in a cluster) its pod is on the way up; `stage` then says where (scheduling, pulling,
 * downloading, initializing, loading). loading: vLLM answers but is not ready yet. wrongModel
 * (`wrong_model`): vLLM serves another model than chat-api is set to use; it will not fix itself.
 * unavailable: vLLM answered before and stopped, or did not answer for the whole cold-start timeout,
 * or its pod is crash-looping (`stage`, with Kubernetes' `reason` and `restarts`).
 * unreachable: chat-api itself does not answer.
 */
export interface PodStage {
  stage?: string;
  reason?: string;
  restarts?: number;
}
export type Readiness =
  | { state: "ready"; models: string[] }
  | { state: "loading" | "wrongModel"; detail: string }
  | ({ state: "starting" | "unavailable"; detail: string } & PodStage)
  | { state: "unreachable"; detail: string };

function podStage(body: Record<string, unknown>): PodStage {
  const stage: PodStage = {};
  if (typeof body.stage === "string") stage.stage = body.stage;
  if (typeof body.reason === "string") stage.reason = body.reason;
  if (typeof body.restarts === "number" && body.restarts > 0) stage.restarts = body.restarts;
  return stage;
}

export interface ChatRequest {
  model?: string;
  messages: { role: "system" | "user" | "assistant"; content: string }[];
  temperature?: number;
  max_tokens?: number;
}

export interface StreamOptions {
  signal: AbortSignal;
  /** Give up when no byte arrives for this long (the first token included). */
  idleTimeoutMs?: number;
}

export class ChatClient {
  constructor(private readonly config: RuntimeConfig) {}

  private url(path: string): string {
    return `${this.config.apiBaseUrl}${path}`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { ...extra };
    if (this.config.apiKey) headers.Authorization = `Bearer ${this.config.apiKey}`;
    return headers;
  }

  async readiness(): Promise<Readiness> {
    let response: Response;
    try {
      response = await fetch(this.url("/readyz"), { cache: "no-store", signal: AbortSignal.timeout(5000) });
    } catch (error) {
      return { state: "unreachable", detail: error instanceof Error ? error.message : String(error) };
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    const detail = typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    if (response.ok) {
      const models = Array.isArray(body.models) ? body.models.filter((m) => typeof m === "string") : [];
      return { state: "ready", models };
    }
    if (body.status === "starting") return { state: "starting", detail, ...podStage(body) };
    if (body.status === "wrong_model") return { state: "wrongModel", detail };
    if (body.status === "loading") return { state: "loading", detail };
    if (response.status === 503) return { state: "unavailable", detail, ...podStage(body) };
    return { state: "unreachable", detail };
  }

  /** The signed-in person, or null when nobody is (401). Throws ApiError when chat-api cannot say. */
  async me(): Promise<Account | null> {
    let response: Response;
    try {
      response = await fetch(this.url("/auth/me"), { cache: "no-store", credentials: "same-origin" });
    } catch (error) {
      throw new ApiError("network", error instanceof Error ? error.message : String(error));
    }
    if (response.status === 401) return null;
    if (!response.ok) throw new ApiError("http", `GET /auth/me answered HTTP ${response.status}`, response.status);
    const body = (await response.json()) as Partial<Account>;
    return {
      id: String(body.id ?? ""),
      email: String(body.email ?? ""),
      name: String(body.name ?? ""),
      expiresAt: Number(body.expiresAt ?? 0),
    };
  }

  /** Ends the session at chat-api; returns where the browser goes next (the provider's sign-out, or /). */
  async signOut(): Promise<string> {
    const response = await this.send("/auth/logout", { method: "POST", credentials: "same-origin" });
    const body = (await response.json().catch(() => ({}))) as { next?: unknown };
    return typeof body.next === "string" && body.next ? body.next : "/";
  }

  async models(): Promise<ModelInfo[]> {
    const response = await this.send("/v1/models", { headers: this.headers() });
    const body = (await response.json()) as { data?: { id?: unknown; max_model_len?: unknown }[] };
    return (body.data ?? []).flatMap((m) =>
      typeof m.id === "string"
        ? [
            {
              id: m.id,
              // vLLM's model card carries max_model_len (vllm/entrypoints/openai/models/protocol.py ModelCard).
              maxModelLen:
                typeof m.max_model_len === "number" && m.max_model_len > 0 ? m.max_model_len : undefined,
            },
          ]
        : [],
    );
  }

  /** POST /api/chat and yield its events; throws ApiError for failures before the stream starts. */
  async *chat(request: ChatRequest, options: StreamOptions): AsyncGenerator<ChatEvent> {
    const idleMs = options.idleTimeoutMs ?? 120_000;
    const local = new AbortController();
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        local.abort();
      }, idleMs);
    };
    const stop = () => local.abort();
    options.signal.addEventListener("abort", stop, { once: true });
    arm();
    try {
      const response = await this.send("/api/chat", {
        method: "POST",
        headers: this.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(request),
        signal: local.signal,
      });
      if (!response.body) throw new ApiError("network", "the server sent no stream");
      for await (const event of readChatEvents(withProgress(response.body, arm))) yield event;
    } catch (error) {
      if (timedOut) throw new ApiError("timeout", `no data for ${Math.round(idleMs / 1000)} s`);
      throw error;
    } finally {
      clearTimeout(timer);
      options.signal.removeEventListener("abort", stop);
      // Closing our side is what makes chat-api cancel the upstream request (Stop, or leaving early).
      local.abort();
    }
  }

  private async send(path: string, init: RequestInit): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.url(path), init);
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new ApiError("network", error instanceof Error ? error.message : String(error));
    }
    if (response.ok) return response;
    const body = (await response.json().catch(() => null)) as {
      error?: { message?: string; code?: string };
      detail?: unknown;
    } | null;
    const message = body?.error?.message ?? (typeof body?.detail === "string" ? body.detail : "");
    // A 502 or 504 that is not chat-api's own JSON error comes from the proxy in front of it (the
    // UI's nginx, in the cluster and with `make up`): chat-api itself did not answer in time or at all.
    if ((response.status === 502 || response.status === 504) && !body?.error) {
      throw new ApiError(
        response.status === 502 ? "network" : "timeout",
        `the proxy answered HTTP ${response.status}: chat-api did not answer`,
        response.status,
      );
    }
    throw new ApiError(
      "http",
      message,
      response.status,
      body?.error?.code ?? undefined,
      parseRetryAfter(response.headers.get("Retry-After")),
    );
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** Calls `tick` whenever bytes arrive, so an idle timer can be reset. */
function withProgress(body: ReadableStream<Uint8Array>, tick: () => void): ReadableStream<Uint8Array> {
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        tick();
        controller.enqueue(chunk);
      },
    }),
  );
}
