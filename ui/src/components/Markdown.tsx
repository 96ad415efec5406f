import { type MouseEvent, useMemo } from "react";
import { copyText } from "../lib/clipboard";
import { renderMarkdown } from "../lib/markdown";

/** Renders model Markdown. The HTML is sanitised by renderMarkdown; copy buttons of code blocks are delegated here. */
export function Markdown({ source }: { source: string }) {
  const html = useMemo(() => renderMarkdown(source), [source]);
  const onClick = async (event: MouseEvent<HTMLDivElement>) => {
    const button = (event.target as HTMLElement).closest("button.copy-code");
    const code = button?.closest(".code-block")?.querySelector("code");
    if (!button || !code) return;
    const ok = await copyText(code.textContent ?? "");
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  };
  // Safe to inject: renderMarkdown escapes raw HTML from the model and runs DOMPurify on the result.
  return <div className="markdown" onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />;
}
