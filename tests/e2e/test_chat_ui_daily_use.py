"""A day of real use of the chat UI (issue 19), in headless Chromium against the built ui/dist and a
real chat-api: context limits, two conversations answering at once, a model that is gone, the
settings and keyboard, team defaults, answer variants and search, and a cold start of a real vLLM.

Exact replies come from `FakeOpenAIUpstream` (tests/e2e/doubles.py, a named test double that refuses
what vLLM 0.32 refuses); the context and the cold start use real vLLM CPU. Screenshots of each new
state go to test-artifacts/screenshots/ (13-... onwards). The vLLM pod's stages come from a named
double of the Kubernetes API (tests/fixtures/kube_api_double.py) serving tests/fixtures/kube_pods/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from scripts import chart
from scripts.local_run.process import free_port
from scripts.local_run.vllm import DEFAULT_SERVED_NAME, start_vllm
from tests.chart import cases
from tests.e2e.browser import Page
from tests.e2e.chat_page import COMPOSER, LAST_ANSWER, LOGS, open_chat, send, set_max_tokens
from tests.e2e.doubles import FakeOpenAIUpstream
from tests.fixtures.kube_api_double import VLLM_SELECTOR, KubeApiDouble, recorded_pod
from tests.fixtures.stack import VllmServer

pytestmark = pytest.mark.e2e

SEND = "button[type=submit]"
STOP = "button.stop"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s: {what}"
        time.sleep(0.1)


# ---------------------------------------------------------------- bug 1: context, with real vLLM


def test_long_messages_never_brick_the_conversation(
    page: Page, ui_stack_factory, vllm_server: VllmServer
) -> None:
    """vLLM serves the tiny model with a 2048-token context (--max-model-len 2048), and its tokenizer
    spends about one token per 2.5 characters of English: more than the UI's first estimate, so this
    also proves that the UI learns the real count from vLLM's refusal instead of failing for good."""
    stack = ui_stack_factory(vllm_server.base_url)
    open_chat(page, stack.ui_url)
    page.click("button:has-text('Settings')")
    assert page.text("#max-tokens-note") == "1 to 2,048 (the model's context)", (
        "max_model_len read from /v1/models"
    )
    page.click("button:has-text('Settings')")

    # Far longer than the context: refused in the composer, before anything is sent.
    page.fill(COMPOSER, "word " * 2400)
    assert not page.enabled(SEND)
    hint = page.text("#composer-hint")
    assert "Shorten it or split it" in hint and "2,048" in hint, hint
    page.screenshot("13-message-longer-than-the-context-refused")

    # Longer than the context in vLLM's tokens, not in the first estimate: vLLM refuses it (400); the UI
    # learns vLLM's count and says what to do instead of a generic error.
    send(page, "word " * 1100)
    page.wait_for(f"{LAST_ANSWER}[data-status=failed] .problem", timeout=60)
    assert "This message is too long for the model" in page.text(f"{LAST_ANSWER} .problem")

    # The conversation still works: the next question goes without the long one, and the page says so.
    set_max_tokens(page, 32)
    send(page, "A short question")
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    assert "Answered without the 1 oldest message" in page.text(f"{LAST_ANSWER} .context-note")
    assert "no longer sent to the model" in page.text(".context-divider")
    page.screenshot("14-oldest-messages-left-out-of-the-context")

    # Any message can be deleted: the long one goes, and with it the divider.
    page.click(".message.user:first-child button[aria-label='Delete your message']")
    page.click(".message.user:first-child .confirm button:has-text('Delete')")
    assert page.count(".context-divider") == 0
    assert page.texts(".message.user .plain")[0] == "A short question"


# ---------------------------------------------------------------- bugs 2-4 with the double


def test_a_tall_fast_answer_stays_in_view_and_a_reader_who_scrolled_up_is_left_alone(
    page: Page, ui_stack_factory
) -> None:
    reply = "\n\n".join(f"Paragraph {i}: the answer keeps going." for i in range(60))
    with FakeOpenAIUpstream(reply, piece_chars=500, delay_s=0.08) as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)
        send(page, "A long answer, fast")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete] .stats", timeout=30)
        time.sleep(0.3)
        gap = page.eval(LOG_GAP)
        assert gap < 5, (
            f"each update was taller than the old 160 px threshold; the log stopped {gap} px short"
        )
        assert page.eval(
            f"document.querySelector('{LAST_ANSWER} .stats').getBoundingClientRect().bottom <= "
            "document.querySelector('.log').getBoundingClientRect().bottom"
        ), "the timings and Regenerate are in view"

        upstream.delay_s = 0.3
        page.click(f"{LAST_ANSWER} button:has-text('Regenerate')")
        page.wait_for(f"{LAST_ANSWER}[data-status=streaming] .markdown", timeout=30)
        page.wheel(600, 300, -1500)
        time.sleep(0.3)
        top = page.eval("document.querySelector('.log').scrollTop")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=60)
        assert page.eval("document.querySelector('.log').scrollTop") == top, (
            "the page pulled a reader back down"
        )


def test_two_conversations_answer_at_once_each_with_its_own_stop(page: Page, ui_stack_factory) -> None:
    reply = "A slow answer that takes a few seconds to arrive in full, piece by piece. " * 4
    with FakeOpenAIUpstream(reply, piece_chars=4, delay_s=0.06) as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)
        send(page, "First chat")
        page.wait_for(f"{LAST_ANSWER}[data-status=streaming] .markdown", timeout=30)

        page.click("button.new-chat")
        assert page.count(".message") == 0
        assert page.count(STOP) == 0 and page.count(SEND) == 1, "the other chat's Stop is not shown here"
        busy = [" ".join(t.split()) for t in page.texts(".conversation.busy .conversation-title")]
        assert busy == ["First chat (answering)"], "the side list marks the chat that is answering"
        send(page, "Second chat")  # Enter is not ignored while the first chat answers
        page.wait_for(f"{LAST_ANSWER}[data-status=streaming]", timeout=30)
        assert page.count(".conversation.busy") == 2
        page.screenshot("15-two-conversations-answering")

        page.click("button.conversation-title:has-text('First chat')")
        assert page.count(STOP) == 1
        page.press(COMPOSER, "Escape")  # Esc stops this chat's answer, only this one
        page.wait_for(f"{LAST_ANSWER}[data-status=stopped]", timeout=15)
        page.click("button.conversation-title:has-text('Second chat')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=60)
        assert page.text(f"{LAST_ANSWER} .markdown") == reply.strip()

        # Deleting a chat while it answers stops its generation (the upstream stream is closed).
        page.click("button.conversation-title:has-text('First chat')")
        page.click(f"{LAST_ANSWER} button:has-text('Regenerate')")
        page.wait_for(f"{LAST_ANSWER}[data-status=streaming] .markdown", timeout=30)
        before = upstream.disconnects
        page.click("button[aria-label='Delete First chat']")
        page.click(".row-actions.confirm button:has-text('Delete')")
        wait_for(lambda: upstream.disconnects > before, 15, "the deleted chat's answer was not stopped")
        assert page.texts(".conversation-title") == ["Second chat"]


def test_a_conversation_whose_model_is_gone_falls_back_to_the_served_model(
    page: Page, ui_stack_factory
) -> None:
    with FakeOpenAIUpstream("Answered by the served model.") as upstream:
        stack = ui_stack_factory(upstream.url)
        saved = {
            "conversations": [
                {
                    "id": "old",
                    "title": "From last month",
                    "createdAt": 1,
                    "updatedAt": 1,
                    "settings": {
                        "systemPrompt": "",
                        "temperature": 0.7,
                        "maxTokens": 256,
                        "model": "retired-model",
                    },
                    "messages": [
                        {"id": "u1", "role": "user", "content": "Hello", "status": "complete"},
                        {"id": "a1", "role": "assistant", "content": "Hi!", "status": "complete"},
                    ],
                }
            ],
            "activeId": "old",
        }
        open_chat(page, stack.ui_url)  # the page has saved its own first state: overwrite it, then reload
        page.eval(f"localStorage.setItem('llama-chat.v1', {json.dumps(json.dumps(saved))})")
        open_chat(page, stack.ui_url)
        note = page.text(".model-fallback")
        assert "retired-model" in note and "no longer serves" in note and "double-model" in note, note
        assert page.text(".model-picker select option:checked") == "retired-model (not served)"
        page.screenshot("16-model-no-longer-served")
        send(page, "Still there?")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert upstream.requests[-1]["model"] == "double-model"
        assert upstream.refused == []


# ---------------------------------------------------------------- bugs 5-7: settings, rendering, keyboard

TABLE_REPLY = (
    "| step | ratio | what happens |\n| --- | --- | --- |\n"
    "| 1 | 819/2 | tokenization of the incoming prompt |\n"
    "| 2 | 4096/8 | sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 |\n\n"
    "- [x] measured\n- [ ] written down\n"
)


def test_settings_tables_and_keyboard(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream(TABLE_REPLY) as upstream:
        stack = ui_stack_factory(upstream.url)
        open_chat(page, stack.ui_url)

        # Max tokens: an emptied field stays empty while typing; above the context it is clamped on blur.
        page.click("button:has-text('Settings')")
        page.click("#max-tokens")
        page.press("#max-tokens", "End")
        for _ in range(3):
            page.press("#max-tokens", "Backspace")
        assert page.eval("document.querySelector('#max-tokens').value") == ""
        page.call("type", selector="#max-tokens", text="1024")
        assert page.eval("document.querySelector('#max-tokens').value") == "1024"
        page.fill("#max-tokens", "99999")
        page.press("#max-tokens", "Tab")
        assert page.eval("document.querySelector('#max-tokens').value") == "2048"
        assert "the model's context holds 2,048 tokens" in page.text("#max-tokens-note")
        page.click("button:has-text('Settings')")

        # A phone: a table scrolls sideways in its box, no cell breaks "819/2", checkmarks stay.
        page.viewport(390, 844)
        page.color_scheme("dark")
        page.fill(COMPOSER, "A table please")
        page.click(SEND)
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        cell = f"{LAST_ANSWER} td:nth-child(2)"
        assert page.text(cell) == "819/2"
        lines = page.eval(
            f"(() => {{ const r = document.createRange();"
            f" r.selectNodeContents(document.querySelector('{cell}'));"
            " return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; })()"
        )
        assert lines == 1, f"'819/2' was broken over {lines} lines"
        box = "document.querySelector('.table-scroll')"
        assert page.eval(f"{box}.scrollWidth > {box}.clientWidth"), "the table box scrolls sideways"
        assert page.eval("document.documentElement.scrollWidth <= window.innerWidth"), (
            "only the table scrolls"
        )
        assert [t.strip() for t in page.texts(f"{LAST_ANSWER} li")] == ["☑ measured", "☐ written down"]
        # Placeholder contrast in dark mode (WCAG AA: 4.5:1).
        ratio = page.eval(CONTRAST_OF_PLACEHOLDER)
        assert ratio >= 4.5, f"placeholder contrast {ratio:.2f}:1"
        page.screenshot("17-phone-dark-table-scrolls-sideways")

        # The phone drawer: takes the focus, keeps Tab inside, Escape closes it and returns to the menu.
        page.click("button.menu")
        page.wait_for(".sidebar.open")
        for _ in range(8):
            page.call("keyboard", key="Tab")
            inside = page.eval("document.querySelector('.sidebar').contains(document.activeElement)")
            assert inside, "Tab left the drawer"
        page.screenshot("18-phone-drawer-focus-trapped")
        page.call("keyboard", key="Escape")
        page.wait_for(".sidebar.open", state="detached", timeout=5)
        assert page.focused("button.menu")
        page.viewport(1280, 800)

        # Rename keeps the keyboard on the row; Escape cancels a delete confirmation.
        page.click("button[aria-label='Rename A table please']")
        page.fill("input[aria-label='Conversation name']", "Tables")
        page.press("input[aria-label='Conversation name']", "Enter")
        assert page.eval("document.activeElement.className") == "conversation-title"
        page.click("button[aria-label='Delete Tables']")
        page.press(".row-actions.confirm button:has-text('Keep')", "Escape")
        assert page.count(".row-actions.confirm") == 0 and page.texts(".conversation-title") == ["Tables"]

        # Ctrl+Shift+O opens a new chat, and a second press reuses that empty one.
        page.press(COMPOSER, "Control+Shift+O")
        page.press(COMPOSER, "Control+Shift+O")
        page.click("button.new-chat")
        assert page.count(".conversation") == 2
        # ↑ in the empty box edits the last question (in the chat that has one).
        page.click("button.conversation-title:has-text('Tables')")
        page.click(COMPOSER)
        page.press(COMPOSER, "ArrowUp")
        assert page.eval("document.querySelector('#edit-message').value") == "A table please"
        assert page.focused("#edit-message")


LOG_GAP = "(l => l.scrollHeight - l.scrollTop - l.clientHeight)(document.querySelector('.log'))"

CONTRAST_OF_PLACEHOLDER = """(() => {
  const box = document.querySelector('#composer-input');
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const fg = lum(getComputedStyle(box, '::placeholder').color);
  const bg = lum(getComputedStyle(box).backgroundColor);
  return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
})()"""


# ---------------------------------------------------------------- features


def chart_config_json(**config: object) -> str:
    """config.json exactly as the chat-ui chart's ConfigMap renders it for these values."""
    manifests = chart.render(
        [],
        release="llama",
        namespace="llama",
        extra_values=cases.with_image_registry([], {"chat-ui": {"config": config}}),
    )
    configmap = next(
        m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "llama-chat-ui"
    )
    return configmap["data"]["config.json"]


def test_team_defaults_variants_and_search(page: Page, ui_stack_factory) -> None:
    with FakeOpenAIUpstream("First answer.") as upstream:
        stack = ui_stack_factory(upstream.url)
        rendered = json.loads(
            chart_config_json(
                defaultSystemPrompt="You are the ACME team's assistant.",
                savedPrompts=[{"title": "Reviewer", "text": "Review the code I paste."}],
            )
        )
        assert rendered["apiBaseUrl"] == ""  # same origin: the stack's nginx proxies the API
        page.route_json("**/config.json", json.dumps(rendered))
        open_chat(page, stack.ui_url)

        send(page, "Sourdough timing?")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert upstream.requests[-1]["messages"][0] == {
            "role": "system",
            "content": "You are the ACME team's assistant.",
        }

        # Regenerate keeps the first answer: 2/2, and Previous goes back to it.
        upstream.reply = "Second answer."
        page.click(f"{LAST_ANSWER} button:has-text('Regenerate')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert page.text(f"{LAST_ANSWER} .variant-count") == "2/2"
        assert page.text(f"{LAST_ANSWER} .markdown") == "Second answer."
        page.click(f"{LAST_ANSWER} button[aria-label='Previous answer']")
        assert page.text(f"{LAST_ANSWER} .variant-count") == "1/2"
        assert page.text(f"{LAST_ANSWER} .markdown") == "First answer."
        page.screenshot("19-answer-variants")

        # A saved prompt of the team, picked in Settings, is what the next request carries.
        page.click("button:has-text('Settings')")
        page.call("selectOption", selector="select[aria-label='Use a saved prompt']", value="0")
        assert page.eval("document.querySelector('#system-prompt').value") == "Review the code I paste."
        page.click("button:has-text('Settings')")
        upstream.reply = "Reviewed."
        send(page, "def f(): pass")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert upstream.requests[-1]["messages"][0] == {
            "role": "system",
            "content": "Review the code I paste.",
        }
        # Edit any question (here the first): the rest of the conversation is replaced.
        page.click(".message.user:first-child button:has-text('Edit')")
        page.fill("#edit-message", "Rye timing?")
        page.click("button:has-text('Save and send')")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert [t.split("\n")[0] for t in page.texts(".message .message-body")] == [
            "Rye timing?",
            "Reviewed.",
        ]

        # Search finds conversations by content; the list is grouped by date.
        page.click("button.new-chat")
        upstream.reply = "Pods wait for a node."
        send(page, "Why is my pod Pending?")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=30)
        assert [t.lower() for t in page.texts(".date-label")] == ["today"]
        page.fill("input[aria-label='Search conversations']", "rye")
        assert page.texts(".conversation-title") == ["Sourdough timing?"]
        page.screenshot("20-search-and-date-groups")


# ---------------------------------------------------------------- bug 8: a real cold start


def test_cold_start_of_a_real_vllm_started_after_the_ui(
    page: Page, ui_stack_factory, tiny_model: Path
) -> None:
    """Real vLLM does not listen until its model is loaded: chat-api says "starting" (it has never
    reached vLLM), the page says so and lets nobody send meanwhile, and opens up by itself when vLLM is
    ready. Once vLLM has answered and stops, chat-api says "unavailable": a page opened after that
    (which never saw the model) says the model server stopped answering, not that it is starting."""
    port = free_port()
    stack = ui_stack_factory(f"http://127.0.0.1:{port}")
    assert httpx.get(f"{stack.api.base_url}/readyz", timeout=10).json()["status"] == "starting"
    page.goto(stack.ui_url)
    page.wait_for(".banner[data-state=starting]", timeout=30)
    assert "The model server is starting" in page.text(".banner")
    page.fill(COMPOSER, "Hello")
    assert not page.enabled(SEND), "sending waits for the model"
    assert "still starting" in page.text("#composer-hint")

    vllm = start_vllm(tiny_model, port, LOGS / f"vllm-cold-start-{port}.log", wait=False)
    try:
        page.wait_until(r"/\(([3-9]|\d\d+) s so far\)/.test(document.querySelector('.banner').innerText)", 30)
        page.screenshot("08-model-starting")
        page.wait_for(".banner[data-state=starting]", state="detached", timeout=240)
        page.wait_until("document.querySelector('.model-picker select option')?.value.length > 0", 30)
        assert page.texts(".model-picker select option") == [DEFAULT_SERVED_NAME]
        set_max_tokens(page, 8)
        page.fill(COMPOSER, "Hello")
        page.press(COMPOSER, "Enter")
        page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=120)
    finally:
        vllm.stop()
    # Once it has answered, a silent model server is down, not starting: chat-api remembers, so a page
    # opened now (it never saw the model ready) says so too, and sending is blocked with the reason.
    page.wait_for(".banner[data-state=unavailable]", timeout=60)
    assert "stopped answering" in page.text(".banner")
    page.reload()
    page.wait_for(".banner[data-state=unavailable]", timeout=30)
    assert "stopped answering" in page.text(".banner")
    page.fill(COMPOSER, "Are you there?")
    assert not page.enabled(SEND)
    assert "No model is served: the model server is not answering" in page.text("#composer-hint")
    page.screenshot("21-model-server-stopped-answering")


# ---------------------------------------------------------------- bug 8: the vLLM pod's stage


def test_the_vllm_pods_stage_is_shown_while_it_starts_and_a_crash_loop_blocks_sending(
    page: Page, ui_stack_factory, tmp_path: Path
) -> None:
    """In a cluster chat-api reads the vLLM pod's status from the Kubernetes API (here the named
    double of it, tests/fixtures/kube_api_double.py, serving Pod objects of each stage) and the page shows the
    stage: pulling, downloading, loading; a crash loop is an outage with its reason. vLLM itself
    does not listen (as during a real cold start)."""
    with KubeApiDouble(tmp_path) as kube:
        kube.pods = [recorded_pod("other-app"), recorded_pod("pulling")]
        stack = ui_stack_factory(
            f"http://127.0.0.1:{free_port()}",
            env={
                "CHAT_API_VLLM_POD_SELECTOR": VLLM_SELECTOR,
                "CHAT_API_KUBERNETES_API_URL": kube.url,
                "CHAT_API_KUBERNETES_ACCOUNT_DIR": str(kube.account_dir),
            },
        )
        page.goto(stack.ui_url)
        page.wait_for(".banner[data-state=starting][data-stage=pulling]", timeout=30)
        assert page.text(".banner strong") == "Starting: pulling the vLLM image…"

        kube.pods = [recorded_pod("other-app"), recorded_pod("downloading")]
        page.wait_for(".banner[data-stage=downloading]", timeout=30)
        assert page.text(".banner strong") == "Starting: downloading the model weights…"
        page.fill(COMPOSER, "Hello")
        assert not page.enabled(SEND), "nothing to send to while the weights download"
        assert (
            "The model is still starting (downloading the model weights); "
            "you can send as soon as it is ready."
        ) in page.text("#composer-hint")
        page.screenshot("22-starting-downloading-the-model-weights")

        kube.pods = [recorded_pod("other-app"), recorded_pod("loading")]
        page.wait_for(".banner[data-stage=loading]", timeout=30)
        assert page.text(".banner strong").startswith("Starting: loading the model")

        kube.pods = [recorded_pod("other-app"), recorded_pod("crashloop")]
        page.wait_for(".banner[data-state=unavailable][data-stage=crashloop]", timeout=30)
        assert page.text(".banner strong") == (
            "The model server is down: crash-looping (restarted 4 times; last: OOMKilled)"
        )
        assert not page.enabled(SEND)
        hint = page.text("#composer-hint")
        assert hint.startswith("No model is served. Model server: crash-looping (restarted 4 times"), hint
        page.screenshot("23-model-server-crash-looping-send-blocked")
        assert {s.path for s in kube.seen} == {"/api/v1/namespaces/llama/pods"}
        assert {s.user for s in kube.seen} == {"system:serviceaccount:llama:llama-chat-api"}
