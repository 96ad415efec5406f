// A small line protocol over stdin/stdout that lets pytest drive one headless Chromium page with
// playwright-core (tests/e2e/browser.py is the other end). One JSON request per line:
//   {"id": 1, "op": "click", "args": {"selector": "text=Send"}}
// answered by one JSON line: {"id": 1, "ok": true, "value": ...} or {"id": 1, "ok": false, "error": "..."}.
// The browser is Debian's /usr/bin/chromium (CHROMIUM_PATH overrides), with a fresh profile per run.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const profile = mkdtempSync(join(tmpdir(), "chat-ui-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: FLAGS,
  viewport: { width: 1280, height: 800 },
  colorScheme: "light",
  permissions: ["clipboard-read", "clipboard-write"],
});
const page = context.pages()[0] ?? (await context.newPage());

// What the page did that a test may want to see: console errors (CSP violations land here),
// uncaught exceptions, and dialogs (an alert() from injected markup would be one).
const seen = { console: [], pageErrors: [], dialogs: [] };
page.on("console", (msg) => {
  if (msg.type() === "error" || msg.type() === "warning") seen.console.push(`${msg.type()}: ${msg.text()}`);
});
page.on("pageerror", (err) => seen.pageErrors.push(String(err)));
page.on("dialog", async (dialog) => {
  seen.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
  await dialog.dismiss();
});

const ops = {
  goto: ({ url }) => page.goto(url, { waitUntil: "load" }).then(() => page.url()),
  reload: () => page.reload({ waitUntil: "load" }).then(() => page.url()),
  click: ({ selector, timeout }) => page.locator(selector).first().click({ timeout }),
  fill: ({ selector, text }) => page.locator(selector).first().fill(text),
  press: ({ selector, key }) => page.locator(selector).first().press(key),
  type: ({ selector, text }) => page.locator(selector).first().pressSequentially(text),
  waitFor: ({ selector, state = "visible", timeout = 30000 }) =>
    page.locator(selector).first().waitFor({ state, timeout }),
  // Polled with evaluate (CDP, not eval in the page): page.waitForFunction with a string needs
  // 'unsafe-eval', which the app's Content-Security-Policy rightly refuses.
  waitForFunction: async ({ expression, timeout = 30000 }) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      const value = await page.evaluate(expression);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`still false after ${timeout} ms: ${expression}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  },
  selectOption: ({ selector, value }) => page.locator(selector).first().selectOption(value),
  // A key pressed wherever the focus is (no element to aim at: Tab through a focus trap).
  keyboard: ({ key }) => page.keyboard.press(key),
  text: ({ selector }) => page.locator(selector).first().innerText(),
  texts: ({ selector }) => page.locator(selector).allInnerTexts(),
  count: ({ selector }) => page.locator(selector).count(),
  attr: ({ selector, name }) => page.locator(selector).first().getAttribute(name),
  enabled: ({ selector }) => page.locator(selector).first().isEnabled(),
  focused: ({ selector }) => page.locator(selector).first().evaluate((el) => el === document.activeElement),
  eval: ({ expression }) => page.evaluate(expression),
  screenshot: ({ path, fullPage = false }) => page.screenshot({ path, fullPage }).then(() => path),
  viewport: ({ width, height }) => page.setViewportSize({ width, height }),
  colorScheme: ({ scheme }) => page.emulateMedia({ colorScheme: scheme }),
  // Serve `body` as JSON for requests matching `glob` (e.g. a config.json rendered by the chart).
  routeJson: ({ glob, body }) =>
    page.route(glob, (route) => route.fulfill({ status: 200, contentType: "application/json", body })),
  // Mouse wheel over the page (a reader scrolling up), at the viewport point x, y.
  wheel: async ({ x, y, dy }) => {
    await page.mouse.move(x, y);
    await page.mouse.wheel(0, dy);
  },
  seen: () => seen,
  close: async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    return "closed";
  },
};

const lines = createInterface({ input: process.stdin });
const reply = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
reply({ id: 0, ok: true, value: "ready" });

for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    reply({ id: null, ok: false, error: `not JSON: ${line.slice(0, 80)}` });
    continue;
  }
  const op = ops[request.op];
  if (!op) {
    reply({ id: request.id, ok: false, error: `unknown op ${request.op}` });
    continue;
  }
  try {
    const value = await op(request.args ?? {});
    reply({ id: request.id, ok: true, value: value ?? null });
  } catch (error) {
    reply({ id: request.id, ok: false, error: String(error?.message ?? error) });
  }
  if (request.op === "close") break;
}
// stdin closed (pytest went away) or close: leave no browser behind.
await context.close().catch(() => {});
rmSync(profile, { recursive: true, force: true });
process.exit(0);
