"""The chat UI in a real headless Chromium, against the built ui/dist, real chat-api and real vLLM CPU.

Each test is one thing a person does in the page. Screenshots of the main states go to
test-artifacts/screenshots/ for review. Where one exact model reply is needed, `FakeOpenAIUpstream`
(tests/e2e/doubles.py, a named test double) stands where vLLM would be, with the real chat-api in
front of it. The cold start (a real vLLM started after the UI) and the other daily-use scenarios of
issue 19 are in test_chat_ui_daily_use.py.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.browser import Page
from tests.e2e.chat_page import (
    COMPOSER,
    JS_LAST_ANSWER,
    LAST_ANSWER,
    open_chat,
    record_answer_lengths,
    send,
    set_max_tokens,
)
from tests.e2e.doubles import FakeOpenAIUpstream
from tests.fixtures.stack import VllmServer

pytestmark = pytest.mark.e2e


# ---------------------------------------------------------------- tests against real vLLM


def test_reply_streams_into_the_page_token_by_token(
    page: Page, ui_stack_factory, vllm_server: VllmServer
) -> None:
    stack = ui_stack_factory(vllm_server.base_url)
    open_chat(page, stack.ui_url)
    assert page.texts(".model-picker select option") == ["tiny-llama"], "the model list comes from /v1/models"

    # Empty input cannot be sent, by button or by Enter.
    assert not page.enabled("button[type=submit]")
    page.press(COMPOSER, "Enter")
    assert page.count(".message") == 0
    # Shift+Enter adds a line instead of sending.
    page.fill(COMPOSER, "first line")
    page.press(COMPOSER, "Shift+Enter")
    page.call("type", selector=COMPOSER, text="second line")
    assert page.eval(f"document.querySelector('{COMPOSER}').value") == "first line\nsecond line"
    assert page.count(".message") == 0
    page.fill(COMPOSER, "")

    set_max_tokens(page, 200)
    record_answer_lengths(page)
    send(page, "Tell me a story about llamas")
    page.wait_for(f"{LAST_ANSWER}[data-status=streaming] .markdown", timeout=60)
    page.screenshot("01-answer-streaming")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    page.screenshot("02-answer-complete-with-timings")

    lengths = [n for status, n in page.eval("window.__lengths") if status == "streaming" and n > 0]
    assert len(set(lengths)) >= 3, f"the answer should appear in several steps while streaming, saw {lengths}"
    assert lengths == sorted(lengths), "streamed text only grows"
    stats = page.text(f"{LAST_ANSWER} .stats")
    assert re.search(r"first token \d+(\.\d+)? m?s · \d+\.\d tokens/s · \d+ tokens", stats), stats
    assert page.focused(COMPOSER), "the keyboard stays in the message box"


def test_stop_mid_stream_makes_vllm_abort_the_request(
    page: Page, ui_stack_factory, vllm_server: VllmServer
) -> None:
    """Stop closes the stream; chat-api closes its upstream request; vLLM stops generating.

    vLLM 0.32 does not count a client abort in vllm:request_success_total{finished_reason="abort"}
    (its OutputProcessor.abort_requests records no finished-request stats), so the test watches
    what an abort does: no request left running, and no more tokens generated, long before
    max_tokens. If the counter does rise (other vLLM versions), that is checked too.
    """
    max_tokens = 1500
    stack = ui_stack_factory(vllm_server.base_url)
    open_chat(page, stack.ui_url)
    set_max_tokens(page, max_tokens)  # far longer than the test waits: Stop must end it

    def finished() -> dict[str, float]:
        reasons = ("stop", "length", "abort", "error", "repetition")
        return {r: vllm_server.metric_value("vllm:request_success_total", finished_reason=r) for r in reasons}

    def generated() -> float:
        return vllm_server.metric_value("vllm:generation_tokens_total")

    finished_before, generated_before = finished(), generated()
    send(page, "Write a very long answer")
    for _attempt in range(3):
        page.wait_until(
            f"(() => {{ const a = {JS_LAST_ANSWER}; return a && (a.dataset.status !== 'streaming'"
            " || (a.querySelector('.markdown')?.innerText.length ?? 0) > 20); })()",
            timeout=60,
        )
        if page.attr(LAST_ANSWER, "data-status") == "streaming":
            break
        # The random model ended on its own before Stop (it can emit end-of-text): ask again.
        page.click("button:has-text('Regenerate')")
        finished_before, generated_before = finished(), generated()
    assert vllm_server.metric_value("vllm:num_requests_running") == 1, "the answer is being generated"
    page.click("button.stop")
    page.wait_for(f"{LAST_ANSWER}[data-status=stopped]", timeout=15)
    page.screenshot("03-stopped-partial-answer-kept")

    assert page.text(f"{LAST_ANSWER} .message-note") == "Stopped by you"
    assert len(page.text(f"{LAST_ANSWER} .markdown")) > 20, "the partial answer stays"
    assert page.count("button[type=submit]") == 1, "Send is back once the answer stopped"

    vllm_server.wait_metric("vllm:num_requests_running", lambda n: n == 0, timeout=15)
    settled = generated()
    time.sleep(2)
    assert generated() == settled, "vLLM kept generating after Stop"
    assert settled - generated_before < max_tokens, "the request ran to max_tokens: it was not aborted"
    grown = {r: n - finished_before[r] for r, n in finished().items() if n > finished_before[r]}
    # Nothing finished normally (stop, length): the request ended by abort, counted as such or not at all.
    assert set(grown) <= {"abort"}, f"vLLM finished the stopped request normally: {grown}"


def test_conversation_and_its_name_survive_a_reload(
    page: Page, ui_stack_factory, vllm_server: VllmServer
) -> None:
    stack = ui_stack_factory(vllm_server.base_url)
    open_chat(page, stack.ui_url)
    set_max_tokens(page, 24)
    send(page, "Remember the llama named Lola")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    answer = page.text(f"{LAST_ANSWER} .markdown")

    # A second conversation, renamed, so the list has two entries to come back to.
    page.click("button.new-chat")
    send(page, "Second chat")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    page.click("button[aria-label='Rename Second chat']")
    page.fill("input[aria-label='Conversation name']", "Renamed chat")
    page.press("input[aria-label='Conversation name']", "Enter")

    page.reload()
    page.wait_for(".conversation-list")
    assert page.texts(".conversation-title") == ["Renamed chat", "Remember the llama named Lola"]
    page.click("button.conversation-title:has-text('Remember the llama')")
    assert page.text(".message.user .plain") == "Remember the llama named Lola"
    assert page.text(f"{LAST_ANSWER} .markdown") == answer
    page.screenshot("04-after-reload-conversations-kept")

    # Delete asks first, then removes it from the list (and from storage).
    page.click("button[aria-label='Delete Renamed chat']")
    page.click(".row-actions.confirm button:has-text('Delete')")
    assert page.texts(".conversation-title") == ["Remember the llama named Lola"]
    page.reload()
    page.wait_for(".conversation-list")
    assert page.texts(".conversation-title") == ["Remember the llama named Lola"]


def test_backend_down_shows_the_error_and_the_page_recovers_when_it_returns(
    page: Page, ui_stack_factory, vllm_server: VllmServer
) -> None:
    stack = ui_stack_factory(vllm_server.base_url)
    open_chat(page, stack.ui_url)
    set_max_tokens(page, 16)
    send(page, "Hello")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)

    stack.stop_api()
    send(page, "Are you there?")
    page.wait_for(f"{LAST_ANSWER}[data-status=failed] .problem", timeout=30)
    assert "Can't reach the chat server" in page.text(f"{LAST_ANSWER} .problem")
    assert "retry" in page.text(f"{LAST_ANSWER} .problem").lower(), "the error says what to do"
    page.wait_for(".banner[data-state=unreachable]", timeout=20)
    page.screenshot("05-backend-down-error-state")

    stack.restart_api()
    page.wait_for(".banner[data-state=unreachable]", state="detached", timeout=30)
    page.click(f"{LAST_ANSWER} .problem button:has-text('Retry')")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    assert page.count(".problem") == 0
    assert [m.split("\n")[0] for m in page.texts(".message")] == ["You", "Assistant", "You", "Assistant"]
    page.screenshot("06-backend-back-recovered")


# ---------------------------------------------------------------- tests with the upstream double

HOSTILE_REPLY = (
    "Here is an image: <img src=x onerror=\"window.__xss=1;alert('xss')\"> and a script "
    "<script>window.__xss=2</script>, then **bold** text.\n\n"
    '```python\ndef greet(name):\n    return f"hello {name}"\n```\n'
)


def test_model_reply_with_html_renders_as_text_not_markup(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream(HOSTILE_REPLY) as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)
        send(page, "Show me HTML")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        page.screenshot("07-html-in-reply-shown-as-text")

        body = page.text(f"{LAST_ANSWER} .markdown")
        assert "<img src=x onerror=\"window.__xss=1;alert('xss')\">" in body
        assert "<script>window.__xss=2</script>" in body
        assert page.count(".message img, .message script") == 0
        assert page.eval("window.__xss === undefined"), "markup from the model ran in the page"
        assert page.seen()["dialogs"] == []
        # Markdown itself still works: bold, and a highlighted code block with its copy button.
        assert page.text(f"{LAST_ANSWER} .markdown strong") == "bold"
        assert page.text(f"{LAST_ANSWER} .hljs-keyword") == "def"
        page.click(f"{LAST_ANSWER} button.copy-code")
        assert page.eval("navigator.clipboard.readText()").startswith("def greet(name):")
        assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "Show me HTML"}


def test_phone_layout_in_dark_mode_fits_the_screen(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream("Short answer with `code` and a [link](https://example.com).") as upstream:
        stack = ui_stack_factory(upstream.url)
        page.viewport(390, 844)
        page.color_scheme("dark")
        open_chat(page, stack.ui_url)
        # A phone keyboard has no Shift: Enter adds a line there, and the Send button sends.
        page.fill(COMPOSER, "Hi from a phone")
        page.press(COMPOSER, "Enter")
        page.call("type", selector=COMPOSER, text="second line")
        assert page.eval(f"document.querySelector('{COMPOSER}').value") == "Hi from a phone\nsecond line"
        assert page.count(".message") == 0, "Enter did not send on a phone"
        page.click("button[type=submit]")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert page.text(".message.user .plain") == "Hi from a phone\nsecond line"
        assert page.eval("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
        background = page.eval("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 22, 27)", f"dark theme follows the system, got {background}"
        assert page.attr(f"{LAST_ANSWER} a", "rel") == "noopener noreferrer nofollow"
        page.screenshot("09-phone-dark")
        # The side list opens from the menu button on a phone.
        page.click("button.menu")
        page.wait_for(".sidebar.open")
        page.wait_until("document.querySelector('.sidebar').getBoundingClientRect().left === 0", timeout=5)
        page.screenshot("10-phone-dark-conversations")


def test_broken_stream_keeps_the_partial_answer_marks_it_and_retry_completes_it(
    page: Page, ui_stack_factory
) -> None:
    reply = "The first part arrives, and then the server dies before the end."
    with FakeOpenAIUpstream(reply, piece_chars=6) as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)
        upstream.break_after = 3
        send(page, "Tell me something")
        page.wait_for(f"{LAST_ANSWER}[data-status=interrupted]", timeout=30)
        page.screenshot("11-broken-stream-partial-kept")
        assert page.text(f"{LAST_ANSWER} .markdown") == reply[:18]
        assert page.text(f"{LAST_ANSWER} .message-note") == "Incomplete: the answer was cut off"
        assert "The answer was cut off" in page.text(f"{LAST_ANSWER} .problem")

        page.click(f"{LAST_ANSWER} .problem button:has-text('Retry')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert page.text(f"{LAST_ANSWER} .markdown") == reply
        assert page.count(".message.assistant") == 1, "the retry replaces the broken answer"


def test_rate_limit_shows_the_retry_after_wait_then_retry_succeeds(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream("Allowed.") as upstream:
        # A burst of two (the page's /v1/models call and the first message), then one request per 10 s:
        # the second message in a row is refused with a Retry-After of up to 10 s.
        limits = {"CHAT_API_RATE_LIMIT_PER_MINUTE": "6", "CHAT_API_RATE_LIMIT_BURST": "2"}
        stack = ui_stack_factory(upstream.url, env=limits)
        open_chat(page, stack.ui_url)
        send(page, "First")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        send(page, "Second, right away")
        page.wait_for(f"{LAST_ANSWER}[data-status=failed] .problem", timeout=30)
        problem = page.text(f"{LAST_ANSWER} .problem")
        assert "Too many requests" in problem and "Wait until the countdown ends" in problem
        retry = f"{LAST_ANSWER} .problem button"
        assert re.fullmatch(r"Retry in ([1-9]|10) s", page.text(retry)), page.text(retry)
        assert not page.enabled(retry)
        assert page.text("#composer-hint").startswith("Rate limited: you can send again in")
        page.screenshot("12-rate-limited-countdown")

        page.wait_until(f"document.querySelector('{LAST_ANSWER} .problem button').innerText === 'Retry'", 15)
        page.click(retry)
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert page.text(f"{LAST_ANSWER} .markdown") == "Allowed."


def test_regenerate_and_edit_last_message_resend_to_the_model(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream("An answer.") as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)
        page.click("button:has-text('Settings')")
        page.fill("#system-prompt", "Answer in one line.")
        page.click("button:has-text('Settings')")
        send(page, "First try")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert upstream.requests[-1]["messages"] == [
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "First try"},
        ]

        page.click(f"{LAST_ANSWER} button:has-text('Regenerate')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert len(upstream.requests) == 2 and upstream.requests[1] == upstream.requests[0]
        assert page.count(".message.assistant") == 1, "Regenerate replaces the last answer"

        page.click(".message.user button:has-text('Edit')")
        page.fill("#edit-message", "Second try")
        page.click("button:has-text('Save and send')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "Second try"}
        assert [t.split("\n")[-1] for t in page.texts(".message .message-body")] == [
            "Second try",
            "An answer.",
        ]
