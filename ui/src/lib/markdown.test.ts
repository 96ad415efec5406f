import { describe, expect, it } from "vitest";
import { renderMarkdown } from "./markdown";

function dom(html: string): HTMLElement {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

describe("renderMarkdown", () => {
  it("shows raw HTML from the model as text, not as elements", () => {
    const out = dom(renderMarkdown('Look: <img src=x onerror="alert(1)"> and <script>alert(2)</script>'));
    expect(out.querySelector("img")).toBeNull();
    expect(out.querySelector("script")).toBeNull();
    expect(out.textContent).toContain('<img src=x onerror="alert(1)">');
    expect(out.innerHTML).not.toMatch(/<img/i);
  });

  it("drops javascript: links", () => {
    const out = dom(renderMarkdown("[click](javascript:alert(1))"));
    expect(out.querySelector("a")?.getAttribute("href") ?? "").not.toMatch(/javascript/i);
  });

  it("renders code blocks with highlighting, a language label and a copy button", () => {
    const out = dom(renderMarkdown("```python\ndef f():\n    return 1\n```"));
    expect(out.querySelector(".code-head span")?.textContent).toBe("python");
    expect(out.querySelector("button.copy-code")).not.toBeNull();
    expect(out.querySelector("code .hljs-keyword")?.textContent).toBe("def");
  });

  it("escapes code in an unknown language", () => {
    const out = dom(renderMarkdown("```klingon\n<b>x</b>\n```"));
    expect(out.querySelector("code b")).toBeNull();
    expect(out.querySelector("code")?.textContent).toContain("<b>x</b>");
  });

  it("shows a Markdown image as a link instead of loading it", () => {
    const out = dom(renderMarkdown("![pixel](https://tracker.example/p.gif)"));
    expect(out.querySelector("img")).toBeNull();
    expect(out.querySelector("a")?.getAttribute("rel")).toContain("noopener");
  });
});

describe("tables and task lists (issue 19, bug 6)", () => {
  it("puts a table in a box that scrolls sideways", () => {
    const out = dom(renderMarkdown("| n | ratio |\n| - | - |\n| 1 | 819/2 |"));
    const box = out.querySelector(".table-scroll");
    expect(box?.firstElementChild?.tagName).toBe("TABLE");
    expect(out.querySelector("td:last-child")?.textContent).toBe("819/2");
  });
  it("keeps task-list checkmarks as marks, without form inputs", () => {
    const out = dom(renderMarkdown("- [x] done thing\n- [ ] open thing"));
    const items = [...out.querySelectorAll("li")].map((li) => li.textContent?.trim());
    expect(items).toEqual(["☑ done thing", "☐ open thing"]);
    expect(out.querySelectorAll(".task-mark.done")).toHaveLength(1);
    expect(out.querySelector("input")).toBeNull();
  });
  it("does not let a raw <table> from the model open a scroll box", () => {
    const out = dom(renderMarkdown("<table><tr><td>x</td></tr></table>"));
    expect(out.querySelector("table, .table-scroll")).toBeNull();
  });
});
