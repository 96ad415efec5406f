"""Conversations that follow the person across devices (issue 19), in two headless Chromiums.

Two separate browser profiles (a laptop and a phone: nothing shared but the person) talk to one
real chat-api with its SQLite store. The person is a personal API key through chat-api's test hook
(CHAT_API_TEST_PERSON_KEYS: a key file named `person-<who>`), until sign-in (issue 15) lands: the
UI sends the key from config.json, and chat-api's identify() makes it a person Principal. Exact
replies come from FakeOpenAIUpstream (tests/e2e/doubles.py). Screenshots: 30-... and 31-....
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import Page
from tests.e2e.chat_page import COMPOSER, LAST_ANSWER, LOGS, open_chat, send
from tests.e2e.doubles import FakeOpenAIUpstream

pytestmark = pytest.mark.e2e

PERSON_KEY = "alice-personal-key-e2e"
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


def stored(api_url: str) -> dict[str, dict]:
    """What chat-api holds for the person, by id (read the way any client would, with the key)."""
    headers = {"Authorization": f"Bearer {PERSON_KEY}"}
    export = httpx.get(f"{api_url}/api/conversations/export?format=json", headers=headers, timeout=10)
    export.raise_for_status()
    return {c["id"]: c for c in export.json()["conversations"]}


def test_a_persons_conversations_follow_them_to_another_device(
    page: Page, ui_stack_factory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "person-alice@example.com").write_text(PERSON_KEY)
    with FakeOpenAIUpstream("Two tides: the moon pulls the near and the far side.") as upstream:
        stack = ui_stack_factory(
            upstream.url,
            env={
                "CHAT_API_API_KEYS_DIR": str(keys),
                "CHAT_API_TEST_PERSON_KEYS": "true",
                "CHAT_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
            },
        )
        config = json.dumps({"apiBaseUrl": stack.api.base_url, "apiKey": PERSON_KEY, "title": "Llama Chat"})

        # The laptop: this browser already held a conversation from before the person signed in.
        page.route_json("**/config.json", config)
        # (Seeded on the origin before the app loads: a page of the same origin that is not the app.)
        page.goto(f"{stack.ui_url}/robots.txt")
        seeded = json.dumps({"conversations": [LOCAL_CONVERSATION], "activeId": None})
        page.eval(f"localStorage.setItem('llama-chat.v1', {json.dumps(seeded)})")
        page.goto(stack.ui_url)
        page.wait_for(".import-offer", timeout=30)
        assert "1 conversation from before you signed in" in page.text(".import-offer")
        page.screenshot("30-server-history-import-offer")
        page.click(".import-offer button:has-text('Import')")
        page.wait_until("!document.querySelector('.import-offer')", timeout=30)
        assert page.texts(".conversation-title") == ["Written before signing in"]
        assert "local-before-sign-in" in stored(stack.api.base_url)

        page.click("button.new-chat")
        page.wait_until("document.querySelector('.model-picker select option')?.value.length > 0", timeout=30)
        send(page, "Why are there two tides a day?")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)

        def tides_saved() -> bool:
            return any(
                [m.get("status") for m in c["messages"]] == ["complete", "complete"]
                and c["title"] == "Why are there two tides a day?"
                for c in stored(stack.api.base_url).values()
            )

        wait_for(tides_saved, 15, "the laptop's new conversation is saved on the server, answer complete")

        # The phone: another browser profile, nothing in its localStorage, the same person.
        phone = Page(LOGS / "browser-server-history-phone.log")
        try:
            phone.viewport(390, 844)
            phone.route_json("**/config.json", config)
            open_chat(phone, stack.ui_url)
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
                lambda: any(len(c["messages"]) == 4 for c in stored(stack.api.base_url).values()),
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
