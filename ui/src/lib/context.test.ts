import { describe, expect, it } from "vitest";
import {
  contextOverflowTokens,
  estimateTokens,
  MIN_ANSWER_TOKENS,
  planContext,
  TOKENS_PER_MESSAGE,
  TOKENS_PER_REQUEST,
  TokenScale,
} from "./context";
import type { Message } from "./store";

const user = (id: string, content: string): Message => ({ id, role: "user", content, status: "complete" });
const bot = (id: string, content: string): Message => ({ id, role: "assistant", content, status: "complete" });

describe("estimateTokens", () => {
  it("over-counts English (3 characters a token) and counts other scripts per character", () => {
    expect(estimateTokens("")).toBe(0);
    expect(estimateTokens("abcdef")).toBe(2);
    expect(estimateTokens("abcdefg")).toBe(3);
    expect(estimateTokens("日本語")).toBe(3);
  });
});

describe("planContext", () => {
  const words = (n: number) => "word ".repeat(n); // 5 characters: 5/3 tokens each

  it("sends everything when the context length is unknown", () => {
    const messages = [user("1", words(5000)), user("2", "hi")];
    const plan = planContext(messages, "", undefined, 512);
    expect(plan).toMatchObject({ kept: messages, dropped: 0, maxTokens: 512, fits: true });
  });

  it("keeps every turn while they fit with max tokens", () => {
    const messages = [user("1", "hello"), bot("2", "hi there"), user("3", "how are you")];
    const plan = planContext(messages, "Be brief.", 2048, 512);
    expect(plan.dropped).toBe(0);
    expect(plan.kept).toEqual(messages);
    expect(plan.maxTokens).toBe(512);
  });

  it("leaves out a long old message instead of re-sending it with every later one (bug 1)", () => {
    // One message longer than the context was sent once and failed; the next question must still work.
    const long = user("1", words(3000));
    const messages = [long, bot("2", ""), user("3", "Shorter question")].filter((m) => m.content);
    const plan = planContext(messages, "", 2048, 512);
    expect(plan.fits).toBe(true);
    expect(plan.kept.map((m) => m.id)).toEqual(["3"]);
    expect(plan.dropped).toBe(1);
    expect(plan.promptTokens + plan.maxTokens).toBeLessThanOrEqual(2048);
  });

  it("drops the oldest turns first and never starts the history with an orphaned answer", () => {
    const messages = [user("1", words(300)), bot("2", words(300)), user("3", words(300)), bot("4", words(300)), user("5", "last")];
    const plan = planContext(messages, "", 2048, 512);
    expect(plan.kept[0].role).toBe("user");
    expect(plan.kept.at(-1)?.id).toBe("5");
    expect(plan.dropped).toBeGreaterThan(0);
    expect(plan.promptTokens + plan.maxTokens).toBeLessThanOrEqual(2048);
  });

  it("keeps the history with a large max tokens and asks for what the prompt leaves (1800 of 2048)", () => {
    const messages = [user("1", "first"), bot("2", words(200)), user("3", words(300))];
    const plan = planContext(messages, "", 2048, 1800);
    expect(plan.dropped).toBe(0);
    expect(plan.fits).toBe(true);
    expect(plan.maxTokens).toBe(2048 - plan.promptTokens);
    expect(plan.maxTokens).toBeLessThan(1800);
  });

  it("keeps at most a quarter of the context for the answer when choosing history", () => {
    const messages = [user("1", words(500)), bot("2", "ok"), user("3", words(300))];
    expect(planContext(messages, "", 2048, 2048).dropped).toBe(0); // 2048 max tokens: reserve 512
    expect(planContext(messages, "", 2048, 1024).dropped).toBe(0);
    expect(planContext(messages, "", 1600, 1024).dropped).toBe(2);
  });

  it("says when the newest message alone leaves no room for an answer", () => {
    const plan = planContext([user("1", words(1300))], "", 2048, 512);
    expect(plan.fits).toBe(false);
    expect(plan.maxTokens).toBeLessThan(MIN_ANSWER_TOKENS);
  });

  it("counts the system prompt and the per-message template tokens", () => {
    const plan = planContext([user("1", "abc")], "abcdef", 4096, 10);
    expect(plan.promptTokens).toBe(TOKENS_PER_REQUEST + 2 + TOKENS_PER_MESSAGE + 1 + TOKENS_PER_MESSAGE);
  });
});

describe("learning the estimate from the server", () => {
  class MemoryStorage {
    data = new Map<string, string>();
    getItem(k: string) {
      return this.data.get(k) ?? null;
    }
    setItem(k: string, v: string) {
      this.data.set(k, v);
    }
  }

  it("raises a model's scale when the server counts more tokens, keeps it across reloads, never below 1", () => {
    const storage = new MemoryStorage();
    const scale = new TokenScale(storage);
    expect(scale.of("tiny")).toBe(1);
    expect(scale.learn("tiny", 100, 250)).toBeCloseTo(2.75);
    expect(new TokenScale(storage).of("tiny")).toBeCloseTo(2.75);
    expect(scale.learn("llama", 100, 60)).toBe(1);
    expect(scale.learn("tiny", 100, 50)).toBeCloseTo(2.75); // a short prompt (mostly template) does not lower it
  });

  it("plans with the scale: the same text costs more for a model with a hungrier tokenizer", () => {
    const messages = [user("1", "word ".repeat(600)), user("2", "hi")];
    expect(planContext(messages, "", 2048, 512, 1).dropped).toBe(0);
    expect(planContext(messages, "", 2048, 512, 2.5).dropped).toBe(1);
  });

  it("reads vLLM's refusal of a prompt longer than the context", () => {
    const tokens =
      "This model's maximum context length is 2048 tokens. However, your prompt contains at least 2049 input tokens, " +
      "which exceeds this limit even without any output tokens. Please reduce the length of the input prompt.";
    expect(contextOverflowTokens(tokens)).toBe(2049);
    const chars =
      "This model's maximum context length is 2048 tokens. However, your prompt contains 90000 characters (more than " +
      "81920 characters, which is the upper bound for 2048 input tokens). Please reduce the length of the input prompt.";
    expect(contextOverflowTokens(chars)).toBe(0);
    expect(contextOverflowTokens("temperature must be at most 2")).toBeNull();
  });
});
