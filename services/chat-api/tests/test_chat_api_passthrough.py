"""The /v1 encoder passes vLLM's bytes through when a whole answer arrives in one read."""

from __future__ import annotations

import json

from chat_api.session import Passthrough


def event(obj: object, sep: bytes = b"\n\n") -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + sep


DELTA = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
USAGE = {"id": "c", "object": "chat.completion.chunk", "choices": [],
         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip


def test_a_whole_answer_in_one_read_keeps_every_other_event_byte_for_byte() -> None:
    # CRLF framing (allowed by the SSE spec): the old encoder re-joined every event with LF.
    deltas = event(DELTA, b"\r\n\r\n") * 40
    answer = deltas + event(USAGE, b"\r\n\r\n") + event(b"[DONE]", b"\r\n\r\n")
    encoder = Passthrough(forward_usage=False, max_event_bytes=1 << 20)
    out = encoder.feed(answer)
    assert out == deltas + event(b"[DONE]", b"\r\n\r\n")
    assert encoder.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert encoder.finished


def test_usage_is_forwarded_when_asked_and_read_from_the_event_that_carries_it() -> None:
    answer = event({**DELTA, "usage": None}) + event(DELTA) + event(USAGE) + event(b"[DONE]")
    encoder = Passthrough(forward_usage=True, max_event_bytes=1 << 20)
    assert encoder.feed(answer) == answer
    assert encoder.usage == {"prompt_tokens": 3, "completion_tokens": 2}
