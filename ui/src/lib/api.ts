// The only module that talks to chat-api (docs/interfaces.md): config, readiness, models, chat stream.

import { ApiError, parseRetryAfter } from "./errors";
import { type ChatEvent, readChatEvents } from "./sse";

export interface RuntimeConfig {
  /** "" = same origin (behind an ingress); otherwise the chat-api origin, e.g. http://127.0.0.1:8080 */
  apiBaseUrl: string;
  apiKey?: string;
  title: string;
  /** What the operator says about the model that answers (`make up`: a 135M demo model, how to serve a bigger one). */
  modelNote?: string;
}

export const DEFAULT_CONFIG: RuntimeConfig = { apiBaseUrl: "", title: "Llama Chat" };

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
  };
}

export type Readiness =
  | { state: "ready"; models: string[] }
  | { state: "loading" | "unavailable"; detail: string }
  | { state: "unreachable"; detail: string };

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
    if (body.status === "loading") return { state: "loading", detail };
    if (response.status === 503) return { state: "unavailable", detail };
    return { state: "unreachable", detail };
  }

  async models(): Promise<string[]> {
    const response = await this.send("/v1/models", { headers: this.headers() });
    const body = (await response.json()) as { data?: { id?: unknown }[] };
    return (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
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
