// The model's context window: a token estimate, and which turns of a conversation still fit.
//
// vLLM refuses a request whose prompt tokens plus max_tokens exceed the model's max_model_len
// (HTTP 400), and before this module the UI re-sent a too-long message with every later one, so
// the conversation never worked again. The UI has no tokenizer (the model's would be megabytes),
// so it estimates on the safe side and leaves out the oldest turns, saying so, instead of failing.

import type { Message } from "./store";

/** Chat-template tokens around each message (Llama 3: header, role, end-of-turn) rounded up. */
export const TOKENS_PER_MESSAGE = 8;
/** BOS, the template's own system block (Llama 3.2 adds a date line) and the assistant header. */
export const TOKENS_PER_REQUEST = 40;
/** An answer shorter than this is not worth asking for: the message must be shortened instead. */
export const MIN_ANSWER_TOKENS = 16;

/**
 * Tokens of `text`, estimated high: English runs about 4 characters per token in Llama 3's
 * tokenizer, so 3 per token over-counts; any other script counts one token per character.
 */
export function estimateTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const ch of text) {
    if (ch.charCodeAt(0) < 128) ascii++;
    else other++;
  }
  return Math.ceil(ascii / 3) + other;
}

export interface ContextPlan {
  /** The messages to send (the newest ones that fit), oldest first. */
  kept: Message[];
  /** How many of the oldest messages are left out. */
  dropped: number;
  /** Estimated prompt tokens of what is sent. */
  promptTokens: number;
  /** max_tokens to ask for: the setting, lowered when the prompt leaves less room. */
  maxTokens: number;
  /** False when even the newest message alone leaves no room for an answer. */
  fits: boolean;
}

/**
 * Which messages fit: newest first while the estimate plus the answer's reserve stays within `contextTokens`;
 * the newest message is always the last one kept. Without a known context length everything is sent.
 * A kept history never starts with an answer whose question was left out.
 */
export function planContext(
  messages: Message[],
  systemPrompt: string,
  contextTokens: number | undefined,
  maxTokens: number,
  scale = 1,
): ContextPlan {
  const tokens = (text: string) => Math.ceil(estimateTokens(text) * scale);
  const fixed = TOKENS_PER_REQUEST + (systemPrompt.trim() ? tokens(systemPrompt) + TOKENS_PER_MESSAGE : 0);
  const cost = (m: Message) => tokens(m.content) + TOKENS_PER_MESSAGE;
  const total = fixed + messages.reduce((sum, m) => sum + cost(m), 0);
  if (!contextTokens || messages.length === 0)
    return { kept: messages, dropped: 0, promptTokens: total, maxTokens, fits: true };

  // Room kept for the answer while deciding what history fits: max tokens, but never more than a
  // quarter of the context, so a large max tokens does not starve the conversation of its history.
  // What the answer then gets is what the prompt leaves (vLLM 0.32 clamps max_tokens the same way).
  const reserve = Math.min(maxTokens, Math.max(MIN_ANSWER_TOKENS, Math.floor(contextTokens / 4)));
  let first = messages.length - 1;
  let used = fixed + cost(messages[first]);
  while (first > 0 && used + cost(messages[first - 1]) + reserve <= contextTokens) {
    first--;
    used += cost(messages[first]);
  }
  while (first < messages.length - 1 && messages[first].role === "assistant") {
    used -= cost(messages[first]);
    first++;
  }
  const room = contextTokens - used;
  return {
    kept: messages.slice(first),
    dropped: first,
    promptTokens: used,
    maxTokens: Math.min(maxTokens, room),
    fits: room >= MIN_ANSWER_TOKENS,
  };
}

export function formatTokens(n: number): string {
  return n.toLocaleString("en-US");
}

// ---- learning the scale from the server ----

const SCALE_KEY = "llama-chat.token-scale.v1";
const MAX_SCALE = 8;

/** Answers to shorter prompts teach nothing: their count is mostly the chat template's. */
export const MIN_LEARNING_TOKENS = 200;

/** Per model: real tokens / estimated tokens (>= 1: the estimate only ever gets more careful). */
export class TokenScale {
  private scales: Record<string, number>;

  constructor(private readonly storage?: Pick<Storage, "getItem" | "setItem">) {
    let saved: unknown;
    try {
      saved = JSON.parse(storage?.getItem(SCALE_KEY) ?? "{}");
    } catch {
      saved = {};
    }
    this.scales = {};
    for (const [model, value] of Object.entries((saved ?? {}) as Record<string, unknown>))
      if (typeof value === "number" && value >= 1 && value <= MAX_SCALE) this.scales[model] = value;
  }

  of(model: string): number {
    return this.scales[model] ?? 1;
  }

  /**
   * The estimate of what was sent against the server's count (10% margin). The scale only rises: a
   * short prompt is mostly template tokens and would pull it down, and too careful only costs history.
   */
  learn(model: string, estimated: number, actual: number, margin = 1.1): number {
    if (!(estimated > 0 && actual > 0)) return this.of(model);
    const scale = Math.min(MAX_SCALE, Math.max(this.of(model), (this.of(model) * actual * margin) / estimated));
    this.scales[model] = scale;
    try {
      this.storage?.setItem(SCALE_KEY, JSON.stringify(this.scales));
    } catch {
      // storage full: the scale still holds for this page
    }
    return scale;
  }
}

/**
 * vLLM's refusal of a prompt longer than the context (vllm/renderers/params.py, 0.32): the real input
 * token count when it says one ("your prompt contains [at least] N input tokens"), 0 when it only
 * counted characters, null when the error is about something else.
 */
export function contextOverflowTokens(message: string): number | null {
  if (!/maximum context length/i.test(message)) return null;
  const tokens = /contains (?:at least )?(\d+) input tokens/i.exec(message);
  return tokens ? Number(tokens[1]) : 0;
}
