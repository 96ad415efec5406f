// The side list: search over titles and contents, and grouping by date like ChatGPT and Open WebUI.

import type { Conversation } from "./store";

/** Conversations whose title or any message contains every word of `query` (case-insensitive). */
export function searchConversations(conversations: Conversation[], query: string): Conversation[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return conversations;
  return conversations.filter((c) => {
    const haystack = [c.title, ...c.messages.map((m) => m.content)].join("\n").toLowerCase();
    return words.every((w) => haystack.includes(w));
  });
}

export interface DateGroup {
  label: string;
  conversations: Conversation[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Newest first, in groups by last activity: Today, Yesterday, Previous 7 days, Previous 30 days, Older. */
export function groupByDate(conversations: Conversation[], now: number): DateGroup[] {
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  const today = midnight.getTime();
  const bounds: [string, number][] = [
    ["Today", today],
    ["Yesterday", today - DAY_MS],
    ["Previous 7 days", today - 7 * DAY_MS],
    ["Previous 30 days", today - 30 * DAY_MS],
    ["Older", Number.NEGATIVE_INFINITY],
  ];
  const groups: DateGroup[] = bounds.map(([label]) => ({ label, conversations: [] }));
  const sorted = [...conversations].sort((a, b) => b.updatedAt - a.updatedAt);
  for (const c of sorted) {
    const index = bounds.findIndex(([, from]) => c.updatedAt >= from);
    groups[index].conversations.push(c);
  }
  return groups.filter((g) => g.conversations.length > 0);
}
