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
 * Which messages fit: newest first while the estimate plus `maxTokens` stays within `contextTokens`;
 * the newest message is always the last one kept. Without a known context length everything is sent.
 * A kept history never starts with an answer whose question was left out.
 */
export function planContext(
  messages: Message[],
  systemPrompt: string,
  contextTokens: number | undefined,
  maxTokens: number,
): ContextPlan {
  const fixed = TOKENS_PER_REQUEST + (systemPrompt.trim() ? estimateTokens(systemPrompt) + TOKENS_PER_MESSAGE : 0);
  const cost = (m: Message) => estimateTokens(m.content) + TOKENS_PER_MESSAGE;
  const total = fixed + messages.reduce((sum, m) => sum + cost(m), 0);
  if (!contextTokens || messages.length === 0)
    return { kept: messages, dropped: 0, promptTokens: total, maxTokens, fits: true };

  let first = messages.length - 1;
  let used = fixed + cost(messages[first]);
  while (first > 0 && used + cost(messages[first - 1]) + maxTokens <= contextTokens) {
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
