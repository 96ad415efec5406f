"""Property tests of the stream session against arbitrary upstream bytes (hypothesis): whatever
vLLM's side of the socket sends (any chunk sizes, split points, broken framing, silence), chat-api
ends the answer within its timeouts, with a clear `error` event or a clean end, holds no more
than one event's worth of bytes, and gives its concurrency slot back."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from chat_api.context import RequestInfo
from chat_api.errors import StreamInterrupted
from chat_api.session import EventSplitter, Passthrough, UiEvents
from crafted_upstream import (
    SSE_HEAD,
    USAGE,
    Stack,
    chat_body,
    chunk,
    event,
    good_stream_body,
    raw,
    sse,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

texts = st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=6).map(tuple)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# --- the encoders alone: any split of a valid stream gives the same answer ----------------------


@given(texts, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30), st.booleans())
def test_passthrough_output_does_not_depend_on_where_the_bytes_were_split(words, cuts, with_usage):
    body = good_stream_body(words)
    encoder = Passthrough(forward_usage=with_usage, max_event_bytes=4096)
    out = b"".join(encoder.feed(piece) for piece in split(body, cuts)) + encoder.finish()
    expected = body if with_usage else body.replace(event(USAGE), b"")
    assert out == expected
    assert encoder.usage == {"prompt_tokens": 3, "completion_tokens": 2}


@given(texts, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_ui_events_do_not_depend_on_where_the_bytes_were_split(words, cuts):
    encoder = UiEvents(RequestInfo(request_id="x"), max_event_bytes=4096)
    out = b"".join(encoder.feed(piece) for piece in split(good_stream_body(words), cuts))
    events = sse(out.decode())
    assert "".join(d["content"] for name, d in events if name == "delta") == "".join(words)
    assert events[-1][0] == "done" and events[-1][1]["usage"]["completion_tokens"] == 2


@given(st.lists(st.binary(max_size=3000), max_size=40))
def test_the_splitter_never_holds_more_than_one_event_limit(pieces):
    splitter = EventSplitter(limit=2048)
    for piece in pieces:
        try:
            splitter.feed(piece)
        except StreamInterrupted:
            return
        assert len(splitter.buf) <= 2048


# --- the whole session, over real sockets ------------------------------------------------------

BAD_SIZES = [b"-6b", b"0x5", b"+5", b" 5", b"5 ", b"fffffffffffffffffff", b"zz", b"", b"5;x=\x00"]


@st.composite
def upstream_bytes(draw):
    kind = draw(st.sampled_from(["chunked", "bad-size", "length", "close-delimited", "garbage"]))
    body = draw(
        st.one_of(
            texts.map(good_stream_body),
            st.binary(max_size=600),
            st.tuples(texts.map(good_stream_body), st.binary(max_size=200)).map(
                lambda t: t[0][: len(t[0]) // 2] + t[1]
            ),
        )
    )
    if kind == "chunked":
        framed = b"".join(chunk(p) for p in split(body, draw(st.lists(st.integers(0, 5000), max_size=12))))
        framed += draw(st.sampled_from([b"0\r\n\r\n", b"", b"0\r\n"]))
        return SSE_HEAD + framed
    if kind == "bad-size":
        return SSE_HEAD + draw(st.sampled_from(BAD_SIZES)) + b"\r\n" + body
    if kind == "length":
        declared = len(body) + draw(st.integers(-5, 5000))
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
            % max(0, declared)
            + body
        )
    if kind == "close-delimited":
        return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + body
    return draw(st.binary(max_size=300))


@pytest.fixture(scope="module")
def fuzz_stack():
    with Stack(
        first_token_timeout_s=1.0, idle_timeout_s=0.5, total_timeout_s=3.0, max_event_bytes=8192
    ) as stack:
        yield stack


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=upstream_bytes(),
    then=st.sampled_from(["close", "hang"]),
    route=st.sampled_from(["/api/chat", "/v1"]),
)
def test_any_upstream_bytes_end_in_a_clear_error_or_a_clean_end_within_the_timeouts(
    fuzz_stack, data, then, route
):
    stack = fuzz_stack
    stack.upstream.script = raw(data, then=then)
    started = time.monotonic()
    if route == "/api/chat":
        response = stack.post("/api/chat", chat_body(), timeout=10)
    else:
        response = stack.post("/v1/chat/completions", chat_body(stream=True), timeout=10)
    assert time.monotonic() - started < 5, "the answer outlived the total timeout"
    if response.status_code == 200:
        if route == "/api/chat":
            name, last = sse(response.text)[-1]
            assert name in ("done", "error"), response.text[-300:]
            if name == "error":
                assert last["code"] and last["message"]
        else:
            tail = response.text.rstrip("\n").rsplit("\n", 1)[-1]
            assert tail == "data: [DONE]" or '"error"' in tail, response.text[-300:]
    else:
        assert response.status_code in (502, 503, 504), response.text
        assert response.json()["error"]["message"]
    deadline = time.monotonic() + 3
    while stack.inflight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stack.inflight() == 0
    assert httpx.get(stack.url + "/healthz", timeout=2).status_code == 200
