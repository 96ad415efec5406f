// Rendering components in jsdom for Vitest without a test library: React's act() and DOM events.

import { act, type ReactElement } from "react";
import { createRoot, type Root } from "react-dom/client";

// React warns unless the environment says it runs under act().
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export function render(element: ReactElement): { container: HTMLElement; root: Root; rerender: (e: ReactElement) => void } {
  const container = document.createElement("div");
  document.body.appendChild(container);
  const root = createRoot(container);
  act(() => root.render(element));
  return { container, root, rerender: (e) => act(() => root.render(e)) };
}

/** Types into a React-controlled field the way a browser does: the value changes, then "input" fires. */
export function typeValue(field: HTMLInputElement | HTMLTextAreaElement, value: string): void {
  const proto = field instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  act(() => {
    Object.getOwnPropertyDescriptor(proto, "value")?.set?.call(field, value);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });
}

export function key(target: Element, keyName: string, init: KeyboardEventInit = {}): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { key: keyName, bubbles: true, cancelable: true, ...init });
  act(() => {
    target.dispatchEvent(event);
  });
  return event;
}

export function click(target: Element): void {
  act(() => {
    (target as HTMLElement).click();
  });
}

export function blur(target: HTMLElement): void {
  act(() => {
    target.focus();
    target.blur();
  });
}
