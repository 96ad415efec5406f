"""Conversations that follow the person across devices (issue 19), in two headless Chromiums.

Two separate browser profiles (a laptop and a phone: nothing shared but the person) each sign in
as the same person through the real OpenID provider, behind the UI image's nginx, to one real
chat-api with its SQLite store (tests/e2e/signin_stack.py, as tests/e2e/test_signin_ui.py). What is
stored is read as a third client would: signed in over HTTP as that person (sign_in_over_http).
Exact replies come from FakeOpenAIUpstream (tests/e2e/doubles.py). Screenshots: 30-... and 31-....
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import Page
from tests.e2e.chat_page import COMPOSER, LAST_ANSWER, LOGS, MODELS_LISTED, send
from tests.e2e.doubles import FakeOpenAIUpstream
from tests.e2e.signin_stack import SIGNIN_BUTTON, sign_in_at_provider
from tests.fixtures.oidc_provider import sign_in_over_http

pytestmark = pytest.mark.e2e

PERSON = "ada@example.com"  # admitted by the stack's allowlist (example.com)
LOCAL_CONVERSATION = {
    "id": "local-before-sign-in",
    "title": "Written before signing in",
    "createdAt": 1_764_000_000_000,
    "updatedAt": 1_764_000_000_000,
    "settings": {"systemPrompt": "", "temperature": 0.7, "maxTokens": 512, "model": ""},
    "messages": [
        {"id": "m1", "role": "user", "content": "A question from the old days", "status": "complete"},
        {"id": "m2", "role": "assistant", "content": "An old answer", "status": "complete"},
    ],
}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s: {what}"
        time.sleep(0.2)


def sign_in(page: Page, url: str) -> None:
    """Open the chat, sign in at the provider as PERSON, wait for the chat and its model list."""
    page.goto(url)
    page.click(SIGNIN_BUTTON)
    sign_in_at_provider(page, PERSON)
    page.wait_for(COMPOSER, timeout=30)
    page.wait_until(MODELS_LISTED, timeout=30)


def test_a_persons_conversations_follow_them_to_another_device(
    page: Page, signin_stack_factory, tmp_path: Path
) -> None:
    with (
        FakeOpenAIUpstream("Two tides: the moon pulls the near and the far side.") as upstream,
        httpx.Client(timeout=10) as reader,
    ):
        stack = signin_stack_factory(
            upstream.url, CHAT_API_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
        )
        assert sign_in_over_http(reader, stack.url, PERSON).status_code == 303

        def stored() -> dict[str, dict]:
            """What chat-api holds for the person, by id (read by a third client, signed in too)."""
            export = reader.get(f"{stack.url}/api/conversations/export?format=json")
            export.raise_for_status()
            return {c["id"]: c for c in export.json()["conversations"]}

        # The laptop: this browser already held a conversation from before the person signed in.
        # (Seeded on the origin before the app loads: a page of the same origin that is not the app.)
        page.goto(f"{stack.url}/healthz")
        seeded = json.dumps({"conversations": [LOCAL_CONVERSATION], "activeId": None})
        page.eval(f"localStorage.setItem('llama-chat.v1', {json.dumps(seeded)})")
        sign_in(page, stack.url)
        page.wait_for(".import-offer", timeout=30)
        assert "1 conversation from before you signed in" in page.text(".import-offer")
        page.screenshot("30-server-history-import-offer")
        page.click(".import-offer button:has-text('Import')")
        page.wait_until("!document.querySelector('.import-offer')", timeout=30)
        assert page.texts(".conversation-title") == ["Written before signing in"]
        assert "local-before-sign-in" in stored()

        page.click("button.new-chat")
        send(page, "Why are there two tides a day?")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)

        def tides_saved() -> bool:
            return any(
                [m.get("status") for m in c["messages"]] == ["complete", "complete"]
                and c["title"] == "Why are there two tides a day?"
                for c in stored().values()
            )

        wait_for(tides_saved, 15, "the laptop's new conversation is saved on the server, answer complete")

        # The phone: another browser profile, nothing in its localStorage, the same person.
        phone = Page(LOGS / "browser-server-history-phone.log")
        try:
            phone.viewport(390, 844)
            sign_in(phone, stack.url)
            phone.click("button[aria-label='Conversations']")
            phone.wait_until(
                "[...document.querySelectorAll('.conversation-title')]"
                ".map(b => b.textContent.trim()).includes('Why are there two tides a day?')",
                timeout=30,
            )
            assert sorted(phone.texts(".conversation-title")) == [
                "Why are there two tides a day?",
                "Written before signing in",
            ]
            assert phone.count(".import-offer") == 0  # nothing of its own to import
            phone.click(".conversation-title:has-text('Why are there two tides')")
            phone.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=10)
            assert (
                phone.text(f"{LAST_ANSWER} .markdown")
                == "Two tides: the moon pulls the near and the far side."
            )
            phone.screenshot("31-server-history-on-a-second-device")

            # The phone continues the conversation; the laptop sees it after a reload.
            upstream.reply = "Spring tides come with new and full moons."
            phone.fill(COMPOSER, "And spring tides?")
            phone.click("button[type=submit]")  # a phone's Enter adds a line
            phone.wait_until("document.querySelectorAll('.message.assistant').length === 2", timeout=30)
            phone.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
            wait_for(
                lambda: any(len(c["messages"]) == 4 for c in stored().values()),
                15,
                "the phone's follow-up is saved on the server",
            )
            seen = phone.seen()
        finally:
            phone.close()
        assert not seen["pageErrors"], seen["pageErrors"]

        page.reload()
        page.wait_for(COMPOSER)
        page.wait_until("[...document.querySelectorAll('.conversation-title')].length === 2", timeout=30)
        page.click(".conversation-title:has-text('Why are there two tides')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=10)
        assert page.text(f"{LAST_ANSWER} .markdown") == "Spring tides come with new and full moons."
        # The browser's own copy was never overwritten with the account's conversations.
        local = json.loads(page.eval("localStorage.getItem('llama-chat.v1')"))
        assert [c["title"] for c in local["conversations"] if c["messages"]] == ["Written before signing in"]
