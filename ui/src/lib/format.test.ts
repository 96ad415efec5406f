import { describe, expect, it } from "vitest";
import { formatElapsed, formatStats } from "./format";

describe("formatStats", () => {
  it("shows time to first token and tokens per second from the done event", () => {
    expect(formatStats({ ttftMs: 85.4, tokensPerS: 41.26, completionTokens: 64 })).toBe(
      "first token 85 ms · 41.3 tokens/s · 64 tokens",
    );
    expect(formatStats({ ttftMs: 1500 })).toBe("first token 1.50 s");
    expect(formatStats(undefined)).toBe("");
  });
});

describe("formatElapsed", () => {
  it("counts seconds, then minutes", () => {
    expect(formatElapsed(42.7)).toBe("42 s");
    expect(formatElapsed(125)).toBe("2 min 5 s");
  });
});
