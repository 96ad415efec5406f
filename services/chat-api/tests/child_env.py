"""The environment for a `python -m chat_api` child process: this one's, without any CHAT_API_*
setting the test runner happens to have (chat-api refuses unknown ones and would read stray ones),
plus the settings the test gives."""

from __future__ import annotations

import os


def chat_api_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_API_")}
    env.update(settings)
    return env
