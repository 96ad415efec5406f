import { describe, expect, it } from "vitest";
import { groupByDate, searchConversations } from "./history";
import { type Conversation, DEFAULT_SETTINGS } from "./store";

const conversation = (id: string, title: string, updatedAt: number, text = ""): Conversation => ({
  id,
  title,
  createdAt: updatedAt,
  updatedAt,
  settings: DEFAULT_SETTINGS,
  messages: text ? [{ id: `${id}-m`, role: "user", content: text, status: "complete" }] : [],
});

describe("searchConversations", () => {
  const all = [
    conversation("a", "Bread recipes", 1, "How long to proof sourdough?"),
    conversation("b", "Kubernetes", 2, "Why is my pod Pending?"),
  ];
  it("matches titles and message contents, case-insensitively, every word", () => {
    expect(searchConversations(all, "bread").map((c) => c.id)).toEqual(["a"]);
    expect(searchConversations(all, "SOURDOUGH").map((c) => c.id)).toEqual(["a"]);
    expect(searchConversations(all, "pod pending").map((c) => c.id)).toEqual(["b"]);
    expect(searchConversations(all, "pod bread")).toEqual([]);
  });
  it("returns everything for an empty query", () => {
    expect(searchConversations(all, "  ")).toEqual(all);
  });
});

describe("groupByDate", () => {
  it("groups by last activity, newest first, leaving out empty groups", () => {
    const now = new Date(2026, 11, 1, 15, 0).getTime();
    const day = 24 * 3600 * 1000;
    const groups = groupByDate(
      [
        conversation("old", "old", now - 90 * day),
        conversation("today2", "t2", now - 3600 * 1000),
        conversation("yesterday", "y", now - day),
        conversation("week", "w", now - 4 * day),
        conversation("today1", "t1", now),
        conversation("month", "m", now - 20 * day),
      ],
      now,
    );
    expect(groups.map((g) => [g.label, g.conversations.map((c) => c.id)])).toEqual([
      ["Today", ["today1", "today2"]],
      ["Yesterday", ["yesterday"]],
      ["Previous 7 days", ["week"]],
      ["Previous 30 days", ["month"]],
      ["Older", ["old"]],
    ]);
  });
});
