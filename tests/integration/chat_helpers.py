"""Small helpers shared by the chat-api integration tests (not fixtures: see tests/fixtures/stack.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

# Greedy decoding of the tiny random model never emits EOS for this prompt (checked on the pinned
# vLLM), so "long" streams really last until max_tokens or until someone stops them.
LONG_PROMPT = [{"role": "user", "content": "Tell me a long story"}]
SUCCESS = "vllm:request_success_total"
LONG_MAX_TOKENS = 1500


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a chat-api /api/chat stream."""
    event = "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line[5:])
            event = "message"


def long_openai_body(model: str, max_tokens: int = LONG_MAX_TOKENS) -> dict[str, Any]:
    return {
        "model": model,
        "messages": LONG_PROMPT,
        "max_tokens": max_tokens,
        "stream": True,
        # Greedy: this prompt never meets EOS on the tiny model (chat-api refuses vLLM's ignore_eos).
        "temperature": 0,
    }
