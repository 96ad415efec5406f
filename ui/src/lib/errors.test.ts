import { describe, expect, it } from "vitest";
import { ApiError, describeError, parseRetryAfter } from "./errors";

describe("parseRetryAfter", () => {
  it("reads seconds", () => expect(parseRetryAfter("12")).toBe(12));
  it("reads an HTTP date relative to now", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)).toBe(30);
  });
  it("ignores missing or malformed values", () => {
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});

describe("describeError", () => {
  it("says the backend is unreachable for a network failure and that retrying may help", () => {
    const p = describeError(new ApiError("network", "Failed to fetch"));
    expect(p.title).toMatch(/can't reach/i);
    expect(p.action).toMatch(/retry/i);
    expect(p.retryable).toBe(true);
  });

  it("carries Retry-After for HTTP 429", () => {
    const p = describeError(new ApiError("http", "limit", 429, "rate_limited", 9));
    expect(p.title).toMatch(/too many requests/i);
    expect(p.retryAfterS).toBe(9);
    expect(p.action).toMatch(/wait/i);
  });

  it.each([
    [401, /not authorised/i, false],
    [403, /not authorised/i, false],
    [404, /not found/i, false],
    [413, /too long/i, false],
    [422, /refused/i, false],
    [502, /not available/i, true],
    [503, /not available/i, true],
    [504, /too long to answer/i, true],
    [500, /HTTP 500/, true],
  ])("maps HTTP %i to a message that says what happened", (status, title, retryable) => {
    const p = describeError(new ApiError("http", "", status));
    expect(p.title).toMatch(title);
    expect(p.retryable).toBe(retryable);
    expect(p.action.length).toBeGreaterThan(10);
  });

  it.each([
    ["upstream_unavailable", /not available/i],
    ["upstream_timeout", /too long/i],
    ["upstream_error", /reported an error/i],
    ["rate_limited", /too many/i],
    ["invalid_request", /refused/i],
    ["stream_interrupted", /cut off/i],
    ["something_new", /reported an error/i],
  ])("maps the stream error code %s", (code, title) => {
    expect(describeError(new ApiError("event", "detail text", undefined, code)).title).toMatch(title);
  });

  it("keeps the server's words as detail", () => {
    expect(describeError(new ApiError("event", "vLLM said no", undefined, "upstream_error")).detail).toBe("vLLM said no");
  });

  it("says a timeout is a timeout", () => {
    expect(describeError(new ApiError("timeout", "no data for 120 s")).title).toMatch(/in time/i);
  });

  it("still says something useful for an unexpected exception", () => {
    const p = describeError(new Error("boom"));
    expect(p.detail).toBe("boom");
    expect(p.action).toMatch(/reload/i);
  });
});

describe("a model that is no longer served (issue 19, bug 4)", () => {
  it("says so for chat-api's model_not_found instead of blaming apiBaseUrl", () => {
    const p = describeError(new ApiError("http", "model 'old' is not offered", 404, "model_not_found"));
    expect(p.title).toBe("This model is not served any more");
    expect(p.action).toMatch(/Pick a served model/);
    expect(p.action).not.toMatch(/apiBaseUrl/);
  });
  it("recognises vLLM's own 'model does not exist' 404 passed through", () => {
    const p = describeError(new ApiError("http", "The model `old` does not exist.", 404, "404"));
    expect(p.title).toBe("This model is not served any more");
  });
  it("still blames the address for a 404 that is not about a model", () => {
    expect(describeError(new ApiError("http", "Not Found", 404)).title).toBe("The chat endpoint was not found");
  });
});

describe("sign-in problems", () => {
  it("an expired session says so, keeps the conversation and offers sign-in", () => {
    const p = describeError(new ApiError("http", "your sign-in has expired", 401, "session_expired"));
    expect(p.title).toBe("Your sign-in has expired");
    expect(p.signIn).toBe(true);
    expect(p.action).toContain("kept in this browser");
  });
  it("no session at all is 'signed out'; a plain 401 (a bad API key) is not a sign-in problem", () => {
    expect(describeError(new ApiError("http", "", 401, "signin_required")).title).toBe("You are signed out");
    expect(describeError(new ApiError("http", "", 401, "invalid_api_key")).signIn).toBeUndefined();
  });
});
