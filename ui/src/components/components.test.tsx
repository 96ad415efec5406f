import { act, useState } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Conversation, DEFAULT_SETTINGS } from "../lib/store";
import { Composer } from "./Composer";
import { MaxTokensField } from "./SettingsPanel";
import { Sidebar } from "./Sidebar";
import { notServedReason, StatusBanner, stageText } from "./StatusBanner";
import { blur, click, key, render, typeValue } from "./testing";

afterEach(() => {
  document.body.innerHTML = "";
});

function MaxTokens({ max, contextTokens }: { max: number; contextTokens?: number }) {
  const [value, setValue] = useState(512);
  return (
    <>
      <MaxTokensField value={value} max={max} contextTokens={contextTokens} onChange={setValue} />
      <output id="saved">{value}</output>
    </>
  );
}

describe("max tokens field (issue 19, bug 5)", () => {
  const field = (c: HTMLElement) => c.querySelector<HTMLInputElement>("#max-tokens") as HTMLInputElement;
  const saved = (c: HTMLElement) => c.querySelector("#saved")?.textContent;

  it("stays empty while typing: Backspace ×3 then 1024 gives 1024, not 11024", () => {
    const { container } = render(<MaxTokens max={2048} />);
    for (const text of ["51", "5", "", "1", "10", "102", "1024"]) typeValue(field(container), text);
    expect(field(container).value).toBe("1024");
    expect(saved(container)).toBe("1024");
  });

  it("clamps a value above the model's context on blur and says why", () => {
    const { container } = render(<MaxTokens max={2048} contextTokens={2048} />);
    typeValue(field(container), "99999");
    expect(saved(container)).toBe("512"); // not saved while out of range
    blur(field(container));
    expect(field(container).value).toBe("2048");
    expect(saved(container)).toBe("2048");
    expect(container.querySelector("#max-tokens-note")?.textContent).toMatch(/context holds 2,048 tokens/);
  });

  it("restores the saved value when left empty or invalid, with a message naming the range", () => {
    const { container } = render(<MaxTokens max={2048} />);
    typeValue(field(container), "");
    blur(field(container));
    expect(field(container).value).toBe("512");
    expect(container.querySelector("#max-tokens-note")?.textContent).toBe(
      "Max tokens must be a whole number from 1 to 2,048; kept 512.",
    );
    typeValue(field(container), "12.5");
    blur(field(container));
    expect(field(container).value).toBe("512");
  });
});

const conversation = (id: string, title: string, text = "hi"): Conversation => ({
  id,
  title,
  createdAt: Date.now(),
  updatedAt: Date.now(),
  settings: DEFAULT_SETTINGS,
  messages: [{ id: `${id}-1`, role: "user", content: text, status: "complete" }],
});

function renderSidebar(props: Partial<Parameters<typeof Sidebar>[0]> = {}) {
  const handlers = { onClose: vi.fn(), onNew: vi.fn(), onSelect: vi.fn(), onRename: vi.fn(), onDelete: vi.fn() };
  const view = render(
    <Sidebar
      conversations={[conversation("a", "Bread", "sourdough"), conversation("b", "Pods", "pending")]}
      activeId="a"
      busyIds={{ b: "m" }}
      open={false}
      {...handlers}
      {...props}
    />,
  );
  return { ...view, ...handlers };
}

describe("side list keyboard and features (issue 19, bug 7)", () => {
  it("Escape cancels a delete confirmation and nothing is deleted", () => {
    const { container, onDelete } = renderSidebar();
    click(container.querySelector("button[aria-label='Delete Bread']") as Element);
    const keep = container.querySelector(".row-actions.confirm button:last-child") as HTMLElement;
    act(() => keep.focus());
    key(keep, "Escape");
    expect(container.querySelector(".row-actions.confirm")).toBeNull();
    expect(onDelete).not.toHaveBeenCalled();
    expect(document.activeElement?.textContent).toBe("Bread");
  });

  it("keeps the keyboard on the conversation after a rename (not on <body>)", () => {
    const { container, onRename } = renderSidebar();
    click(container.querySelector("button[aria-label='Rename Bread']") as Element);
    const input = container.querySelector("input[aria-label='Conversation name']") as HTMLInputElement;
    typeValue(input, "Sourdough");
    key(input, "Enter");
    expect(onRename).toHaveBeenCalledWith("a", "Sourdough");
    expect(document.activeElement).not.toBe(document.body);
    expect(document.activeElement?.className).toBe("conversation-title");
  });

  it("marks a conversation whose answer is streaming", () => {
    const { container } = renderSidebar();
    const rows = [...container.querySelectorAll(".conversation")];
    expect(rows.map((r) => r.classList.contains("busy"))).toEqual([false, true]);
    expect(rows[1].textContent).toContain("(answering)");
  });

  it("searches titles and contents", () => {
    const { container } = renderSidebar();
    typeValue(container.querySelector("input[type=search]") as HTMLInputElement, "pending");
    expect([...container.querySelectorAll(".conversation-title")].map((b) => b.textContent)).toEqual([
      "Pods (answering)",
    ]);
    typeValue(container.querySelector("input[type=search]") as HTMLInputElement, "nothing like this");
    expect(container.querySelector(".empty-list")?.textContent).toMatch(/No conversation contains/);
  });

  it("as a phone drawer: takes the focus, keeps Tab inside, Escape closes it", () => {
    const { container, onClose } = renderSidebar({ open: true });
    const nav = container.querySelector("nav") as HTMLElement;
    expect(nav.getAttribute("aria-modal")).toBe("true");
    const focusable = [...nav.querySelectorAll<HTMLElement>("button, input")];
    expect(document.activeElement).toBe(focusable[0]);
    act(() => focusable.at(-1)?.focus());
    const tab = key(focusable.at(-1) as HTMLElement, "Tab");
    expect(tab.defaultPrevented).toBe(true);
    expect(document.activeElement).toBe(focusable[0]);
    key(focusable[0], "Tab", { shiftKey: true });
    expect(document.activeElement).toBe(focusable.at(-1));
    key(focusable[0], "Escape");
    expect(onClose).toHaveBeenCalled();
  });
});

describe("composer", () => {
  const props = {
    busy: false,
    blockedReason: "",
    checkDraft: () => ({ note: "", blocked: "" }),
    onStop: () => {},
    onEditLast: vi.fn(),
  };

  it("on a phone, Enter adds a line and only the Send button sends (bug 7)", () => {
    const onSend = vi.fn(() => true);
    const { container } = render(<Composer {...props} enterSends={false} onSend={onSend} />);
    const box = container.querySelector("textarea") as HTMLTextAreaElement;
    typeValue(box, "line one");
    const enter = key(box, "Enter");
    expect(enter.defaultPrevented).toBe(false); // the browser inserts the new line
    expect(onSend).not.toHaveBeenCalled();
    click(container.querySelector("button[type=submit]") as Element);
    expect(onSend).toHaveBeenCalledWith("line one");
  });

  it("on a computer, Enter sends", () => {
    const onSend = vi.fn(() => true);
    const { container } = render(<Composer {...props} enterSends onSend={onSend} />);
    const box = container.querySelector("textarea") as HTMLTextAreaElement;
    typeValue(box, "hello");
    key(box, "Enter");
    expect(onSend).toHaveBeenCalledWith("hello");
  });

  it("↑ in an empty box asks to edit the last message", () => {
    const onEditLast = vi.fn();
    const { container } = render(<Composer {...props} enterSends onSend={() => true} onEditLast={onEditLast} />);
    key(container.querySelector("textarea") as Element, "ArrowUp");
    expect(onEditLast).toHaveBeenCalled();
  });

  it("refuses a draft too long for the context and says why", () => {
    const blocked = "This message is about 9,000 tokens";
    const { container } = render(
      <Composer {...props} enterSends onSend={() => true} checkDraft={(t) => ({ note: "", blocked: t ? blocked : "" })} />,
    );
    typeValue(container.querySelector("textarea") as HTMLTextAreaElement, "long");
    expect((container.querySelector("button[type=submit]") as HTMLButtonElement).disabled).toBe(true);
    expect(container.querySelector("#composer-hint")?.textContent).toContain(blocked);
  });
});

describe("cold start and no model served (issue 19, bug 8)", () => {
  const banner = (c: HTMLElement) => c.querySelector(".banner") as HTMLElement;

  it("shows the vLLM pod's stage while it starts, and blocks sending with that reason", () => {
    const starting = { state: "starting" as const, detail: "the model server pod is downloading the model weights", stage: "downloading" };
    const { container } = render(<StatusBanner readiness={starting} elapsedS={75} onRecheck={() => {}} />);
    expect(banner(container).dataset.state).toBe("starting");
    expect(banner(container).dataset.stage).toBe("downloading");
    expect(banner(container).querySelector("strong")?.textContent).toBe("Starting: downloading the model weights…");
    expect(notServedReason(starting)).toBe(
      "The model is still starting (downloading the model weights); you can send as soon as it is ready.",
    );
  });

  it("says 'starting' without a stage outside a cluster", () => {
    const starting = { state: "starting" as const, detail: "d" };
    const { container } = render(<StatusBanner readiness={starting} elapsedS={3} onRecheck={() => {}} />);
    expect(banner(container).querySelector("strong")?.textContent).toBe("The model server is starting");
    expect(notServedReason(starting)).toBe("The model is still starting; you can send as soon as it is ready.");
  });

  it("calls a crash loop an outage, with the reason and restarts, and blocks sending", () => {
    const crash = { state: "unavailable" as const, detail: "d", stage: "crashloop", reason: "OOMKilled", restarts: 4 };
    const { container } = render(<StatusBanner readiness={crash} elapsedS={30} onRecheck={() => {}} />);
    expect(banner(container).dataset.state).toBe("unavailable");
    expect(banner(container).querySelector("strong")?.textContent).toBe(
      "The model server is down: crash-looping (restarted 4 times; last: OOMKilled)",
    );
    expect(notServedReason(crash)).toBe(
      "No model is served. Model server: crash-looping (restarted 4 times; last: OOMKilled). Sending is blocked until it is back.",
    );
  });

  it("blocks sending while nothing is served, and only then", () => {
    expect(notServedReason({ state: "unavailable", detail: "d" })).toBe(
      "No model is served: the model server is not answering. Sending is blocked until it is back.",
    );
    expect(notServedReason({ state: "wrongModel", detail: "d" })).toMatch(/^No model is served: the model server serves another model/);
    expect(notServedReason({ state: "loading", detail: "d" })).toMatch(/still loading/);
    expect(notServedReason({ state: "ready", models: ["m"] })).toBe("");
    expect(notServedReason(null)).toBe("");
    // chat-api itself down: a send fails with its own error and Retry (tests/e2e test_chat_ui.py).
    expect(notServedReason({ state: "unreachable", detail: "d" })).toBe("");
  });

  it("names a stage it does not know in plain words", () => {
    expect(stageText({ stage: "some_new_stage" })).toBe("some new stage");
    expect(stageText({})).toBe("");
  });
});
