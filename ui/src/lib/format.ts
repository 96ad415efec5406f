import type { AnswerStats } from "./store";

/** "first token 85 ms · 41.3 tokens/s · 64 tokens" from a `done` event's numbers. */
export function formatStats(stats: AnswerStats | undefined): string {
  if (!stats) return "";
  const parts: string[] = [];
  if (stats.ttftMs !== undefined) parts.push(`first token ${formatMs(stats.ttftMs)}`);
  if (stats.tokensPerS !== undefined) parts.push(`${stats.tokensPerS.toFixed(1)} tokens/s`);
  if (stats.completionTokens !== undefined) parts.push(`${stats.completionTokens} tokens`);
  return parts.join(" · ");
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatElapsed(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
