import { describe, expect, it } from "vitest";
import { type ChatEvent, readChatEvents, SSEParser } from "./sse";

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<ChatEvent[]> {
  const out: ChatEvent[] = [];
  for await (const e of readChatEvents(body)) out.push(e);
  return out;
}

const DONE =
  'event: done\ndata: {"finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":2},' +
  '"timings":{"ttft_ms":12,"total_ms":40,"tokens_per_s":50}}\n\n';

describe("SSEParser", () => {
  it("parses events with names and data", () => {
    const parser = new SSEParser();
    expect(parser.push('event: delta\ndata: {"content":"Hi"}\n\n')).toEqual([
      { event: "delta", data: '{"content":"Hi"}' },
    ]);
  });

  it("returns an event only once its blank line arrives, wherever the chunks are cut", () => {
    const text = 'event: delta\ndata: {"content":"a"}\n\nevent: delta\ndata: {"content":"b"}\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const parser = new SSEParser();
      const events = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(events.map((e) => e.data)).toEqual(['{"content":"a"}', '{"content":"b"}']);
    }
  });

  it("accepts CRLF and CR line endings, also when CR and LF land in different chunks", () => {
    const parser = new SSEParser();
    const events = [
      ...parser.push("event: delta\r"),
      ...parser.push('\ndata: {"content":"x"}\r\n\r'),
      ...parser.push("\n"),
      ...parser.push('event: done\rdata: {}\r\r'),
    ];
    expect(events).toEqual([
      { event: "delta", data: '{"content":"x"}' },
      { event: "done", data: "{}" },
    ]);
  });

  it("joins multi-line data, ignores comments and defaults the event name to message", () => {
    const parser = new SSEParser();
    expect(parser.push(": keep-alive\n\ndata: one\ndata: two\n\n")).toEqual([{ event: "message", data: "one\ntwo" }]);
  });

  it("reports a trailing event without its blank line as partial", () => {
    const parser = new SSEParser();
    parser.push('event: delta\ndata: {"content":"a"}\n');
    expect(parser.hasPartial).toBe(true);
  });
});

describe("readChatEvents", () => {
  it("yields deltas then done with timings", async () => {
    const events = await collect(
      streamOf(['event: delta\ndata: {"content":"Hel', 'lo"}\n\nevent: delta\ndata: {"content":" there"}\n\n', DONE]),
    );
    expect(events.slice(0, 2)).toEqual([
      { type: "delta", content: "Hello" },
      { type: "delta", content: " there" },
    ]);
    expect(events[2]).toMatchObject({ type: "done", data: { finish_reason: "stop", timings: { ttft_ms: 12 } } });
  });

  it("keeps a multi-byte character whole when its bytes are split across chunks", async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: {"content":"é🦙"}\n\n' + DONE);
    const split = new TextEncoder().encode('event: delta\ndata: {"content":"').length + 1; // inside "é"'s two bytes
    const events = await collect(streamOf([bytes.slice(0, split), bytes.slice(split, split + 3), bytes.slice(split + 3)]));
    expect(events[0]).toEqual({ type: "delta", content: "é🦙" });
  });

  it("turns an error event into a typed error with retry_after_s", async () => {
    const events = await collect(
      streamOf(['event: error\ndata: {"code":"rate_limited","message":"slow down","retry_after_s":7}\n\n']),
    );
    expect(events).toEqual([{ type: "error", data: { code: "rate_limited", message: "slow down", retry_after_s: 7 } }]);
  });

  it("reports stream_interrupted when the body ends without done or error", async () => {
    const events = await collect(streamOf(['event: delta\ndata: {"content":"partial"}\n\nevent: delta\ndata: {"con']));
    expect(events).toEqual([
      { type: "delta", content: "partial" },
      { type: "error", data: expect.objectContaining({ code: "stream_interrupted" }) },
    ]);
  });

  it("reports stream_interrupted when the connection errors mid-stream", async () => {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode('event: delta\ndata: {"content":"par"}\n\n'));
        controller.error(new TypeError("network error"));
      },
    });
    const events = await collect(body);
    expect(events.at(-1)).toMatchObject({ type: "error", data: { code: "stream_interrupted" } });
    expect(events[0]).toEqual({ type: "delta", content: "par" });
  });

  it("rethrows an abort (Stop) instead of calling it a broken stream", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new DOMException("aborted", "AbortError"));
      },
    });
    await expect(collect(body)).rejects.toThrow("aborted");
  });

  it("ignores unknown event names", async () => {
    const events = await collect(streamOf(['event: ping\ndata: {}\n\n', DONE]));
    expect(events.map((e) => e.type)).toEqual(["done"]);
  });

  it("calls unreadable JSON a broken stream", async () => {
    const events = await collect(streamOf(["event: delta\ndata: {not json\n\n"]));
    expect(events).toEqual([{ type: "error", data: expect.objectContaining({ code: "stream_interrupted" }) }]);
  });
});
