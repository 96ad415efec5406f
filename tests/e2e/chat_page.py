"""The chat page's selectors and the steps tests take in it (one place, so a markup change is one edit)."""

from __future__ import annotations

from scripts.local_run.process import REPO_ROOT
from tests.e2e.browser import Page

LOGS = REPO_ROOT / "test-artifacts" / "e2e-logs"
COMPOSER = "#composer-input"
LAST_ANSWER = ".log > .message.assistant:last-child"
JS_LAST_ANSWER = "[...document.querySelectorAll('.message.assistant')].pop()"
MODELS_LISTED = "document.querySelector('.model-picker select option')?.value.length > 0"


def send(page: Page, text: str) -> None:
    page.fill(COMPOSER, text)
    page.press(COMPOSER, "Enter")


def set_max_tokens(page: Page, value: int) -> None:
    page.click("button:has-text('Settings')")
    page.fill("#max-tokens", str(value))
    page.click("button:has-text('Settings')")


def open_chat(page: Page, url: str) -> None:
    """Load the page and wait until it is ready: the model list came from chat-api's /v1/models."""
    page.goto(url)
    page.wait_for(COMPOSER)
    page.wait_until(MODELS_LISTED, timeout=30)


def record_answer_lengths(page: Page) -> None:
    """From now on, window.__lengths collects [status, length] of the last answer at every DOM change."""
    page.eval(
        """(() => { window.__lengths = [];
        new MutationObserver(() => {
          const a = [...document.querySelectorAll('.message.assistant')].pop();
          const md = a && a.querySelector('.markdown');
          if (md) window.__lengths.push([a.dataset.status, md.innerText.length]);
        }).observe(document.querySelector('.log'),
                   {subtree: true, childList: true, characterData: true}); })()"""
    )
