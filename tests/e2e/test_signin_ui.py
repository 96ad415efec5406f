"""A person signs in, chats and signs out in Chromium, through the UI image's nginx config (real
nginx), real chat-api and a real OpenID provider (npm oidc-provider with its own login form).

The stack is what a signed-in install runs: nginx on the page's origin proxies /auth/, /api/ and
/v1/ to chat-api (the chart's api-proxy.conf), config.json says sign-in is on (the chart's
chat-ui.config.signIn), chat-api signs people in with authlib against the provider.
Screenshots: test-artifacts/screenshots/20-signin-page.png, 21-signed-in-chat.png,
22-signin-refused.png, 23-session-expired.png.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.browser import Page
from tests.e2e.chat_page import COMPOSER, LAST_ANSWER, send, set_max_tokens
from tests.e2e.doubles import FakeOpenAIUpstream
from tests.e2e.signin_stack import SIGNIN_BUTTON, SignInStack, sign_in_at_provider
from tests.fixtures.stack import VllmServer

pytestmark = pytest.mark.e2e


def test_a_person_signs_in_chats_and_signs_out(
    page: Page, signin_stack_factory: Callable[..., SignInStack], vllm_server: VllmServer
) -> None:
    stack = signin_stack_factory(vllm_server.base_url)
    page.goto(stack.url)
    page.wait_for(SIGNIN_BUTTON)
    assert page.count(COMPOSER) == 0, "nobody is signed in: no chat"
    page.screenshot("26-signin-page")

    page.click(SIGNIN_BUTTON)
    sign_in_at_provider(page, "ada@example.com")
    page.wait_for(COMPOSER, timeout=30)
    assert page.text(".account-name") == "Ada Lovelace"
    assert page.eval("location.href") == f"{stack.url}/"
    # The session cookie is HttpOnly: the page's script cannot read it.
    assert "chat_session" not in page.eval("document.cookie")

    page.wait_until("document.querySelector('.model-picker select option')?.value.length > 0", timeout=60)
    set_max_tokens(page, 16)
    send(page, "Hello from a signed-in person")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    page.screenshot("27-signed-in-chat")

    page.click("button.signout")
    # The provider asks before it ends its own session (RP-Initiated Logout), then sends us back.
    page.click("button[name=logout][value=yes]")
    page.wait_for(SIGNIN_BUTTON, timeout=30)
    assert page.eval("fetch('/auth/me').then(r => r.status)") == 401
    assert page.eval("fetch('/v1/models').then(r => r.status)") == 401

    # Someone outside the allowlist is told so, and gets no session.
    page.click(SIGNIN_BUTTON)
    sign_in_at_provider(page, "mallory@other.org")
    page.wait_for("#signin-message", timeout=30)
    assert "mallory@other.org may not use this service" in page.text("#signin-message")
    assert "example.com" in page.text("#signin-message")
    page.screenshot("28-signin-refused")
    assert page.eval("fetch('/auth/me').then(r => r.status)") == 401


def test_a_session_that_ends_mid_conversation_keeps_the_answer_and_offers_sign_in(
    page: Page, signin_stack_factory: Callable[..., SignInStack]
) -> None:
    # A slow answer (a double: the real tiny model's length and speed cannot be chosen) outlives
    # a 15 s session: the answer that started keeps streaming to its end, the page says the
    # session is over, the next message is refused with a way to sign in, and nothing is lost.
    reply = "word " * 120
    with FakeOpenAIUpstream(reply, piece_chars=5, delay_s=0.2) as upstream:
        stack = signin_stack_factory(upstream.url, CHAT_API_SESSION_MAX_AGE_S="15")
        page.goto(stack.url)
        page.click(SIGNIN_BUTTON)
        sign_in_at_provider(page, "ada@example.com")
        page.wait_for(COMPOSER, timeout=30)
        page.wait_until("document.querySelector('.model-picker select option')?.value.length > 0")
        send(page, "Tell me a long story")
        page.wait_for(f"{LAST_ANSWER}[data-status=streaming]", timeout=30)

        page.wait_for(".session-expired", timeout=40)
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=60)
        assert page.text(f"{LAST_ANSWER} .markdown").strip() == reply.strip()

        send(page, "And another one")
        page.wait_for(f"{LAST_ANSWER} .problem", timeout=30)
        assert "Your sign-in has expired" in page.text(f"{LAST_ANSWER} .problem")
        assert page.count(f"{LAST_ANSWER} a.signin-again") == 1
        page.screenshot("29-session-expired")
        requests_before = len(upstream.requests)

        # Signing in again: the provider's session still holds, so no form; back to the same page.
        page.click(f"{LAST_ANSWER} a.signin-again")
        page.wait_for(COMPOSER, timeout=30)
        page.wait_for(".account-name")
        assert page.count(".session-expired") == 0
        # The page merges what the server did not take (kept in this browser) once it has loaded the
        # account's conversations: wait for it rather than read the first render.
        answers = "[...document.querySelectorAll('.message .markdown')]"
        kept = f"{answers}.some(e => e.textContent.trim() === {json.dumps(reply.strip())})"
        try:
            page.wait_until(kept, timeout=30)
        except Exception as error:  # say what the page shows and what the browser kept
            stored = page.eval("JSON.stringify(Object.keys(localStorage))")
            raise AssertionError(
                f"the first answer is kept: {page.texts('.message .markdown')!r} {stored}"
            ) from error
        assert any("And another one" in t for t in page.texts(".message.user")), "so is the refused question"
        assert len(upstream.requests) == requests_before, "nothing reached the model while signed out"
