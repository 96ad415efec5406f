// Server-Sent Events from a fetch() body, and chat-api's typed chat events on top of them.
// EventSource cannot POST, send an Authorization header or be aborted per request, so the
// stream is read from fetch with an AbortController and parsed here.

export interface SSEMessage {
  event: string;
  data: string;
}

/**
 * Incremental SSE parser (WHATWG rules that matter here): feed it text as it arrives, in
 * chunks cut anywhere (inside a line, between \r and \n), and it returns the complete events.
 */
export class SSEParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private pendingCR = false;

  push(chunk: string): SSEMessage[] {
    let text = chunk;
    // A \r ending the previous chunk may be the first half of \r\n.
    if (this.pendingCR && text.startsWith("\n")) text = text.slice(1);
    this.pendingCR = false;
    this.buffer += text;
    const out: SSEMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      const line = this.buffer.slice(start, i);
      if (ch === "\r") {
        if (i + 1 === this.buffer.length) this.pendingCR = true;
        else if (this.buffer[i + 1] === "\n") i++;
      }
      start = i + 1;
      const message = this.line(line);
      if (message) out.push(message);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** At end of stream: an event without its blank line is incomplete and is dropped (per spec). */
  get hasPartial(): boolean {
    return this.buffer.length > 0 || this.data.length > 0;
  }

  private line(line: string): SSEMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message = { event: this.event || "message", data: this.data.join("\n") };
      this.event = "";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    return null; // id and retry are not used by chat-api
  }
}

// ---- chat-api's events (docs/interfaces.md) ----

export interface DoneData {
  finish_reason: "stop" | "length" | "abort" | string;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  timings?: { ttft_ms?: number; total_ms?: number; tokens_per_s?: number };
}

export type ErrorCode =
  | "upstream_unavailable"
  | "upstream_timeout"
  | "upstream_error"
  | "rate_limited"
  | "invalid_request"
  | "stream_interrupted";

export interface ErrorData {
  code: ErrorCode | string;
  message: string;
  retry_after_s?: number;
}

export type ChatEvent =
  | { type: "delta"; content: string }
  | { type: "done"; data: DoneData }
  | { type: "error"; data: ErrorData };

/** One SSE message -> a chat event; unknown event names are ignored (forward compatible). */
export function toChatEvent(message: SSEMessage): ChatEvent | null {
  let payload: unknown;
  try {
    payload = JSON.parse(message.data);
  } catch {
    return {
      type: "error",
      data: { code: "stream_interrupted", message: `the server sent an unreadable ${message.event} event` },
    };
  }
  const data = (payload ?? {}) as Record<string, unknown>;
  switch (message.event) {
    case "delta":
      return { type: "delta", content: typeof data.content === "string" ? data.content : "" };
    case "done":
      return { type: "done", data: data as unknown as DoneData };
    case "error":
      return {
        type: "error",
        data: {
          code: typeof data.code === "string" ? data.code : "upstream_error",
          message: typeof data.message === "string" ? data.message : "",
          retry_after_s: typeof data.retry_after_s === "number" ? data.retry_after_s : undefined,
        },
      };
    default:
      return null;
  }
}

/**
 * Reads a text/event-stream body and yields chat events. Bytes are decoded with a streaming
 * TextDecoder, so a multi-byte character split across chunks stays whole. When the body ends
 * without a `done` or `error` event the stream broke: a `stream_interrupted` error is yielded.
 */
export async function* readChatEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ChatEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  let finished = false;
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // Stop (AbortError) and our own timeout are decided by the caller; anything else is a broken connection.
        if (error instanceof DOMException && error.name === "AbortError") throw error;
        yield {
          type: "error",
          data: { code: "stream_interrupted", message: "the connection broke before the answer was complete" },
        };
        return;
      }
      const { value, done } = chunk;
      const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (const message of parser.push(text)) {
        const event = toChatEvent(message);
        if (!event) continue;
        if (event.type !== "delta") finished = true;
        yield event;
        if (finished) return;
      }
      if (done) break;
    }
  } finally {
    reader.releaseLock();
  }
  if (!finished) {
    yield {
      type: "error",
      data: { code: "stream_interrupted", message: "the connection closed before the answer was complete" },
    };
  }
}
