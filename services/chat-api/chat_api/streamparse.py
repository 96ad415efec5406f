"""OpenAI chat-completion SSE stream -> typed events (`Delta`, `Done`, `StreamError`).

One parser for everything that reads vLLM's stream: the UI routes of chat-api and the load
generator (scripts/bench.py). Standard library only, so the benchmark can import it without
the web stack. Feed it bytes exactly as they arrive (any split); it returns the events that
became complete.

The proxy route (/v1/chat/completions) does NOT parse every chunk: it forwards bytes and only
looks at the final usage chunk (see `extract_usage`), because JSON-decoding each token is the
cost that makes other proxies slow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DONE_SENTINEL = b"[DONE]"
USAGE_MARK = b'"usage"'


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass(slots=True)
class Delta:
    content: str


@dataclass(slots=True)
class Done:
    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class StreamError:
    code: str
    message: str


Event = Delta | Done | StreamError


class SSEDecoder:
    """Splits a byte stream into the `data:` payloads of complete SSE events."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return []
        self._buffer = data[end + 2 :]
        payloads = []
        for block in data[: end + 2].split(b"\n\n"):
            if not block:
                continue
            lines = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
            if lines:
                payloads.append(b"\n".join(lines))
        return payloads

    @property
    def pending(self) -> bytes:
        return self._buffer


class ChatStreamParser:
    """Turns an OpenAI `chat.completion.chunk` stream into events; `Done` once, after `[DONE]`."""

    __slots__ = ("_decoder", "_finish_reason", "_usage", "finished")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._finish_reason: str | None = None
        self._usage = Usage()
        self.finished = False

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        for payload in self._decoder.feed(chunk):
            event = self._payload_event(payload)
            if event is not None:
                events.append(event)
        return events

    def _payload_event(self, payload: bytes) -> Event | None:
        if payload == DONE_SENTINEL:
            self.finished = True
            return Done(self._finish_reason, self._usage)
        try:
            obj = json.loads(payload)
        except ValueError:
            return StreamError(
                "upstream_error", f"vLLM sent a stream event that is not JSON: {payload[:200]!r}"
            )
        if not isinstance(obj, dict):
            return StreamError("upstream_error", "vLLM sent a stream event that is not a JSON object")
        if "error" in obj:
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            return StreamError("upstream_error", str(err.get("message") or "vLLM reported an error"))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._usage = Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        content_parts = []
        for choice in obj.get("choices") or ():
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                content_parts.append(text)
        if content_parts:
            return Delta("".join(content_parts))
        return None


def extract_usage(event_bytes: bytes) -> tuple[Usage | None, bytes]:
    """Find the usage chunk among complete SSE events; return it and the events without it.

    Called by the proxy only for the byte run that contains `"usage"` (the final chunk), so the
    JSON cost is paid once per request, not once per token.
    """
    kept: list[bytes] = []
    found: Usage | None = None
    for block in event_bytes.split(b"\n\n"):
        if not block:
            continue
        if found is None and USAGE_MARK in block:
            payload = block.split(b"data:", 1)[-1].strip()
            try:
                obj: Any = json.loads(payload)
                usage = obj.get("usage") if isinstance(obj, dict) else None
            except ValueError:
                usage = None
            if isinstance(usage, dict):
                found = Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
                # A usage chunk also carrying choices (continuous stats) must still reach the client.
                if obj.get("choices"):
                    kept.append(block)
                continue
        kept.append(block)
    rest = b"".join(block + b"\n\n" for block in kept)
    return found, rest
