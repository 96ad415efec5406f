"""The one stream parser: OpenAI SSE bytes in any split -> delta / done / error events."""

from __future__ import annotations

import json

import pytest
from chat_api.streamparse import ChatStreamParser, Delta, Done, StreamError, Usage, extract_usage

pytestmark = pytest.mark.unit


def chunk(content: str | None = None, finish: str | None = None, **extra) -> bytes:
    delta = {} if content is None else {"content": content}
    obj = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    obj.update(extra)
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}\n\n'
STREAM = chunk("") + chunk("Hel") + chunk("lo") + chunk("!", finish="length") + USAGE + b"data: [DONE]\n\n"


def test_a_whole_stream_gives_deltas_then_one_done_with_usage_and_finish_reason():
    events = ChatStreamParser().feed(STREAM)
    assert events == [Delta("Hel"), Delta("lo"), Delta("!"), Done("length", Usage(7, 3))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_split_of_the_bytes_gives_the_same_events(size):
    parser = ChatStreamParser()
    events = []
    for i in range(0, len(STREAM), size):
        events += parser.feed(STREAM[i : i + size])
    assert events == ChatStreamParser().feed(STREAM)
    assert parser.finished


def test_crlf_line_endings_are_understood():
    events = ChatStreamParser().feed(STREAM.replace(b"\n", b"\r\n"))
    assert events[-1] == Done("length", Usage(7, 3))


def test_an_error_event_from_vllm_becomes_a_stream_error_with_its_message():
    events = ChatStreamParser().feed(
        chunk("a") + b'data: {"error": {"message": "engine died", "code": 500}}\n\n'
    )
    assert events == [Delta("a"), StreamError("upstream_error", "engine died")]


def test_a_payload_that_is_not_json_is_a_stream_error_not_a_crash():
    (event,) = ChatStreamParser().feed(b"data: {broken\n\n")
    assert isinstance(event, StreamError) and "not JSON" in event.message


def test_comments_and_empty_deltas_produce_nothing():
    assert ChatStreamParser().feed(b": keep-alive\n\n" + chunk("") + chunk(None)) == []


def test_extract_usage_drops_the_usage_chunk_and_keeps_the_rest_byte_for_byte():
    tail = chunk("x") + USAGE + b"data: [DONE]\n\n"
    usage, rest = extract_usage(tail)
    assert usage == Usage(7, 3)
    assert rest == chunk("x") + b"data: [DONE]\n\n"


def test_extract_usage_keeps_a_chunk_that_also_carries_text():
    both = chunk("y", usage={"prompt_tokens": 1, "completion_tokens": 2})
    usage, rest = extract_usage(both)
    assert usage == Usage(1, 2) and rest == both


def test_usage_text_inside_content_is_not_mistaken_for_the_usage_chunk():
    text = chunk('"usage":{"prompt_tokens": 99}')
    usage, rest = extract_usage(text)
    assert usage is None and rest == text
