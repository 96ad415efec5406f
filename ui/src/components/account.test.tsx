import { act } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { App } from "../App";
import { DEFAULT_CONFIG } from "../lib/api";
import { render } from "./testing";

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** chat-api as the page sees it: /auth/me answers `me`, the rest says ready with one model. */
function stubApi(me: () => Response) {
  const fetch = vi.fn(async (url: string) => {
    if (url.endsWith("/auth/me")) return me();
    if (url.endsWith("/readyz")) return answer(200, { status: "ready", models: ["m"] });
    if (url.endsWith("/v1/models")) return answer(200, { data: [{ id: "m" }] });
    return answer(404, {});
  });
  vi.stubGlobal("fetch", fetch);
  return fetch;
}

async function settle() {
  await act(async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
  document.body.innerHTML = "";
  window.localStorage.clear();
});

describe("sign-in in the page", () => {
  it("shows the sign-in page, not the chat, when nobody is signed in", async () => {
    stubApi(() => answer(401, { error: { code: "signin_required" } }));
    const { container } = render(<App config={{ ...DEFAULT_CONFIG, signIn: true }} />);
    await settle();
    const link = container.querySelector<HTMLAnchorElement>("a.signin-button");
    expect(link?.getAttribute("href")).toBe("/auth/login");
    expect(container.querySelector("#composer-input")).toBeNull();
  });

  it("shows who is signed in and a Sign out in the chat", async () => {
    stubApi(() => answer(200, { id: "user:i:1", email: "ada@example.com", name: "Ada Lovelace", expiresAt: 4e9 }));
    const { container } = render(<App config={{ ...DEFAULT_CONFIG, signIn: true }} />);
    await settle();
    expect(container.querySelector(".account-name")?.textContent).toBe("Ada Lovelace");
    expect(container.querySelector("button.signout")?.textContent).toBe("Sign out");
    expect(container.querySelector("#composer-input")).not.toBeNull();
  });

  it("never asks /auth/me when sign-in is off (make up on 127.0.0.1)", async () => {
    const fetch = stubApi(() => answer(500, {}));
    const { container } = render(<App config={DEFAULT_CONFIG} />);
    await settle();
    expect(fetch.mock.calls.some(([url]) => String(url).endsWith("/auth/me"))).toBe(false);
    expect(container.querySelector(".account")).toBeNull();
    expect(container.querySelector("#composer-input")).not.toBeNull();
  });
});
