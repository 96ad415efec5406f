// Every failure the UI can meet, mapped once to what a person reads: what happened, what to do.

/** A failure of a call to chat-api, before or during a stream. */
export class ApiError extends Error {
  constructor(
    /** http: a status code; event: an `error` event in the stream; network: no answer; timeout: we gave up. */
    readonly kind: "http" | "event" | "network" | "timeout",
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Problem {
  /** Short headline: what happened. */
  title: string;
  /** What the user can do about it. */
  action: string;
  /** The server's own words, when it gave any. */
  detail?: string;
  /** Seconds to wait before trying again (429 Retry-After, rate_limited). */
  retryAfterS?: number;
  /** Whether sending the same request again can succeed. */
  retryable: boolean;
  /** The session is missing or over: signing in again is the way on (a link to /auth/login). */
  signIn?: boolean;
}

/** chat-api's 401 codes when sign-in is on (services/chat-api/chat_api/signin.py). */
const SIGN_IN_CODES = new Set(["signin_required", "session_expired"]);

/** Retry-After is either seconds or an HTTP date; anything else is ignored. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

const BY_CODE: Record<string, Omit<Problem, "detail" | "retryAfterS">> = {
  upstream_unavailable: {
    title: "The model server is not available",
    action: "It may be starting or restarting. Wait a moment, then retry.",
    retryable: true,
  },
  upstream_timeout: {
    title: "The model took too long to answer",
    action: "Retry; if it keeps happening, ask for a shorter answer (lower max tokens).",
    retryable: true,
  },
  upstream_error: {
    title: "The model server reported an error",
    action: "Retry. If it happens again, tell whoever runs this service.",
    retryable: true,
  },
  rate_limited: {
    title: "Too many requests",
    action: "Wait until the countdown ends, then retry.",
    retryable: true,
  },
  invalid_request: {
    title: "The request was refused",
    action: "Check the settings (model, temperature, max tokens) or shorten the conversation, then send again.",
    retryable: false,
  },
  stream_interrupted: {
    title: "The answer was cut off",
    action: "The partial answer is kept. Retry to get a complete one.",
    retryable: true,
  },
};

/** Codes that say more than their HTTP status (chat-api's errors.py). */
const BY_HTTP_CODE: Record<string, Omit<Problem, "detail" | "retryAfterS">> = {
  // chat-api's ModelNotAllowed and vLLM's own "model does not exist" both arrive as 404 + this code:
  // the server answered, so this is not a wrong apiBaseUrl.
  model_not_found: {
    title: "This model is not served any more",
    action: "Pick a served model in the model menu (new messages use the served one), then retry.",
    retryable: false,
  },
  payload_too_large: {
    title: "The conversation is too long",
    action: "Delete or shorten earlier messages (each has a Delete button), then retry.",
    retryable: false,
  },
};

function byStatus(status: number): Omit<Problem, "detail" | "retryAfterS"> {
  if (status === 401 || status === 403)
    return {
      title: "Not authorised",
      action: "The API key in this site's config.json is missing or wrong; ask whoever runs this service.",
      retryable: false,
    };
  if (status === 404)
    return {
      title: "The chat endpoint was not found",
      action: "apiBaseUrl in config.json probably points at the wrong server; ask whoever runs this service.",
      retryable: false,
    };
  if (status === 408 || status === 504) return BY_CODE.upstream_timeout;
  if (status === 413)
    return {
      title: "The conversation is too long",
      action: "Start a new conversation or delete earlier messages, then send again.",
      retryable: false,
    };
  if (status === 429) return BY_CODE.rate_limited;
  if (status === 400 || status === 422) return BY_CODE.invalid_request;
  if (status === 502 || status === 503) return BY_CODE.upstream_unavailable;
  return {
    title: `The chat server failed (HTTP ${status})`,
    action: "Retry. If it happens again, tell whoever runs this service.",
    retryable: true,
  };
}

/** Maps anything thrown by the API client (or elsewhere) to a Problem. */
export function describeError(error: unknown): Problem {
  if (error instanceof ApiError) {
    const detail = error.message || undefined;
    if (error.status === 401 && SIGN_IN_CODES.has(error.code ?? ""))
      return {
        title: error.code === "session_expired" ? "Your sign-in has expired" : "You are signed out",
        action: "Sign in again, then retry. This conversation (and any partial answer) is kept in this browser.",
        detail,
        retryable: true,
        signIn: true,
      };
    if (error.kind === "network")
      return {
        title: "Can't reach the chat server",
        action: "Check your connection. If it is fine, the service may be down or restarting: retry in a moment.",
        detail,
        retryable: true,
      };
    if (error.kind === "timeout")
      return {
        title: "No answer in time",
        action: "The server or model is busy or stuck. Retry; if it keeps happening, lower max tokens.",
        detail,
        retryable: true,
      };
    const base =
      error.kind === "event"
        ? (BY_CODE[error.code ?? ""] ?? BY_CODE.upstream_error)
        : (BY_HTTP_CODE[error.code ?? ""] ??
          (error.status === 404 && /model/i.test(error.message) && /not exist|not found|not served/i.test(error.message)
            ? BY_HTTP_CODE.model_not_found
            : byStatus(error.status ?? 500)));
    return { ...base, detail, retryAfterS: error.retryAfterS };
  }
  return {
    title: "Something went wrong in this page",
    action: "Reload the page. Your conversations are kept in this browser.",
    detail: error instanceof Error ? error.message : String(error),
    retryable: true,
  };
}
