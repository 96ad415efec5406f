"""A CHAT_API_* variable that is no setting is refused at start with the setting meant; the ones the
chart sets and the ones Kubernetes adds itself (service links) are not."""

from __future__ import annotations

import subprocess
import sys

import pytest
from chat_api.config import Settings, unknown_settings
from child_env import chat_api_env

pytestmark = pytest.mark.unit

TYPO = "CHAT_API_MAX_BODY_BYTE is no chat-api setting; did you mean CHAT_API_MAX_BODY_BYTES?"


def test_a_mistyped_setting_names_the_one_meant() -> None:
    problems = unknown_settings({"CHAT_API_MAX_BODY_BYTE": "1", "CHAT_API_PORT": "8080", "HOME": "/"})
    assert problems == [
        "CHAT_API_MAX_BODY_BYTE is no chat-api setting; did you mean CHAT_API_MAX_BODY_BYTES?"
    ]


def test_every_setting_and_kubernetes_service_links_pass() -> None:
    every = {f"CHAT_API_{name.upper()}": "x" for name in Settings.model_fields}
    links = {
        "CHAT_API_SERVICE_HOST": "10.96.0.7",
        "CHAT_API_SERVICE_PORT_HTTP": "8080",
        "CHAT_API_PORT_8080_TCP_ADDR": "10.96.0.7",
        "CHAT_API_REDIS_SERVICE_HOST": "10.96.0.8",
    }
    assert unknown_settings(every | links) == []
    assert unknown_settings({"CHAT_API_NOTHING_LIKE_IT": "1"}) == [
        "CHAT_API_NOTHING_LIKE_IT is no chat-api setting; docs/chat-api.md lists the settings"
    ]


@pytest.mark.parametrize("argv", [[], ["migrate"]], ids=["serve", "operator-command"])
def test_python_m_chat_api_refuses_to_start_with_a_typo(argv: list[str]) -> None:
    env = chat_api_env(CHAT_API_MAX_BODY_BYTE="2048")
    done = subprocess.run(
        [sys.executable, "-m", "chat_api", *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert (
        "CHAT_API_MAX_BODY_BYTE is no chat-api setting; did you mean CHAT_API_MAX_BODY_BYTES?" in done.stderr
    )
