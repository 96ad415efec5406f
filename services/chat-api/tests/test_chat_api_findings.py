"""The security review's findings, each reproduced against real chat-api (uvicorn, in-process) in
front of a crafted upstream (crafted_upstream.py) that sends what vLLM never would."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest
from crafted_upstream import (
    SSE_HEAD,
    USAGE,
    Stack,
    chat_body,
    chunk,
    delta,
    event,
    good_stream,
    good_stream_body,
    raw,
    sse,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def stack():
    with Stack(max_event_bytes=64 * 1024, max_response_bytes=256 * 1024, body_timeout_s=1.0) as s:
        yield s


@pytest.fixture(autouse=True)
def _good_upstream(stack):
    stack.upstream.script = good_stream()
    yield
    deadline = time.monotonic() + 5
    while stack.inflight() != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.inflight() == 0, "a stream kept its concurrency slot"


def healthz_fast(stack) -> None:
    started = time.monotonic()
    assert httpx.get(stack.url + "/healthz", timeout=2).status_code == 200
    assert time.monotonic() - started < 1


def closed_by_chat_api(stack) -> bool:
    """chat-api closed the upstream connection (what makes vLLM abort), within 3 s."""
    deadline = time.monotonic() + 3
    while not stack.upstream.connections[-1].closed_by_peer and time.monotonic() < deadline:
        time.sleep(0.02)
    return stack.upstream.connections[-1].closed_by_peer


def last_event(response: httpx.Response) -> tuple[str, dict]:
    return sse(response.text)[-1]


# --- the hand-written HTTP layer: every framing error is aiohttp's parser's (llhttp) to find, and ends it

MALFORMED_FRAMING = {
    "negative chunk size": SSE_HEAD + b"-6b\r\n" + b"x" * 200,
    "hex prefix": SSE_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n",
    "plus sign": SSE_HEAD + b"+5\r\nhello\r\n0\r\n\r\n",
    "no CRLF after data": SSE_HEAD + chunk(event(delta("a")))[:-2] + b"XX" + b"0\r\n\r\n",
    "garbage status line": b"HTTP/1.1 2OO OK\r\n\r\n",
}


@pytest.mark.parametrize("framing", MALFORMED_FRAMING.values(), ids=MALFORMED_FRAMING.keys())
def test_malformed_chunked_framing_ends_the_ui_stream_with_an_error_and_never_spins(stack, framing):
    stack.upstream.script = raw(framing, then="hang")
    started = time.monotonic()
    response = stack.post("/api/chat", chat_body(), timeout=10)
    assert time.monotonic() - started < 5
    if response.status_code == 200:
        name, data = last_event(response)
        assert name == "error" and data["code"] in ("stream_interrupted", "upstream_error")
    else:
        assert response.status_code in (502, 503)
    healthz_fast(stack)
    assert closed_by_chat_api(stack), "a connection after a malformed answer is not reused"


def test_a_200_mb_declared_chunk_costs_no_quadratic_copy(stack):
    body = SSE_HEAD + b"%x\r\n" % (200 * 1024 * 1024) + (b"data: " + b"x" * (4 * 1024 * 1024)) + b"\n"
    stack.upstream.script = raw(body, then="hang")
    started = time.monotonic()
    response = stack.post("/api/chat", chat_body(), timeout=10)
    assert time.monotonic() - started < 5
    name, data = last_event(response) if response.status_code == 200 else ("error", response.json())
    assert name == "error"
    assert "CHAT_API_MAX_EVENT_BYTES" in json.dumps(data)
    healthz_fast(stack)


@pytest.mark.parametrize("route", ["/api/chat", "/v1/chat/completions"])
def test_an_event_that_never_ends_is_cut_at_the_event_limit(stack, route):
    endless = b"data: " + b"y" * (128 * 1024)  # no blank line, ever
    stack.upstream.script = raw(SSE_HEAD + chunk(event(delta("a"))) + chunk(endless), then="hang")
    response = stack.post(
        route, chat_body(stream=True) if route.startswith("/v1") else chat_body(), timeout=10
    )
    assert response.status_code in (200, 502)
    assert "CHAT_API_MAX_EVENT_BYTES" in response.text
    assert closed_by_chat_api(stack)


def test_a_slow_client_slows_the_upstream_read(stack):
    """Backpressure: a client that does not read makes chat-api stop reading vLLM, so neither
    chat-api's memory nor vLLM's send buffer grows with the answer."""
    sent = {"bytes": 0}
    piece = chunk(event(delta("z" * 4000)))

    async def firehose(reader, writer):
        writer.write(SSE_HEAD)
        for _ in range(50_000):  # 200 MB if nothing pushed back
            writer.write(piece)
            await writer.drain()
            sent["bytes"] += len(piece)
        await reader.read(1)

    stack.upstream.script = firehose
    body = json.dumps(chat_body(stream=True)).encode()
    with socket.create_connection(("127.0.0.1", stack.port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
        time.sleep(3)  # and never read
        stalled_at = sent["bytes"]
        time.sleep(1)
        assert sent["bytes"] - stalled_at < 1024 * 1024, "upstream kept being read while the client did not"
        assert stalled_at < 32 * 1024 * 1024, (
            f"{stalled_at} bytes went into buffers for a client reading nothing"
        )


# --- the browser edge ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/chat"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_refused_before_anything_starts(stack, route, content_type):
    headers = {"content-type": content_type} if content_type else {}
    before = len(stack.upstream.chat_requests)
    response = httpx.post(stack.url + route, content=json.dumps(chat_body()), headers=headers, timeout=10)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]
    assert len(stack.upstream.chat_requests) == before


def test_there_is_no_websocket_route(stack):
    response = httpx.get(
        stack.url + "/api/chat/ws",
        headers={
            "connection": "upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "origin": "https://evil.example",
        },
        timeout=5,
    )
    assert response.status_code != 101


# --- resource exhaustion ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/chat"])
def test_a_body_over_the_limit_is_refused_by_its_declared_length_before_it_is_read(stack, route):
    limit = stack.settings.max_body_bytes
    with socket.create_connection(("127.0.0.1", stack.port)) as client:
        client.sendall(
            f"POST {route} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {50 * 1024 * 1024}\r\n\r\n".encode()
        )  # and send none of the 50 MB
        client.settimeout(5)
        answer = b""
        while not answer.endswith(b"}"):  # the JSON body may come in a second segment
            more = client.recv(65536)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert str(limit).encode() in answer


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/chat"])
def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(stack, route):
    def body():
        for _ in range(40):
            yield b" " * 65536

    response = httpx.post(stack.url + route, content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_body_that_trickles_in_is_cut_off_by_the_body_timeout(stack):
    with socket.create_connection(("127.0.0.1", stack.port)) as client:
        client.sendall(
            b"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n{"
        )
        client.settimeout(5)
        started = time.monotonic()
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3


def test_a_non_streaming_answer_over_the_response_cap_is_refused_and_vllm_aborted(stack):
    huge = json.dumps({"choices": [{"message": {"content": "x" * (1024 * 1024)}}], "usage": {}}).encode()
    stack.upstream.script = raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(huge) + huge,
        then="hang",
    )
    response = stack.post("/v1/chat/completions", chat_body())
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "response_too_large"
    assert closed_by_chat_api(stack)


def test_a_non_streaming_answer_reports_usage_from_its_tail(stack):
    answer = json.dumps(
        {"id": "c", "choices": [{"message": {"content": "hi"}}], "usage": USAGE["usage"]}
    ).encode()
    stack.upstream.script = raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(answer)
        + answer
    )
    before = stack.services.metrics.registry.get_sample_value("chat_api_completion_tokens_total")
    response = stack.post("/v1/chat/completions", chat_body())
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 2
    assert stack.services.metrics.registry.get_sample_value("chat_api_completion_tokens_total") == before + 2


@pytest.mark.parametrize(
    "extra",
    [
        {"ignore_eos": True},
        {"request_id": "victim-id"},
        {"n": 8, "max_tokens": 4096},
        {"top_logprobs": 20, "logprobs": True},
    ],
)
def test_costly_or_internal_fields_never_reach_vllm(stack, extra):
    before = len(stack.upstream.chat_requests)
    response = stack.post("/v1/chat/completions", chat_body(**extra))
    assert response.status_code == 400
    assert len(stack.upstream.chat_requests) == before


def test_the_clients_request_id_is_logged_but_vllm_gets_chat_apis_own(stack, caplog):
    with caplog.at_level(logging.INFO, logger="chat_api.access"):
        response = stack.post("/api/chat", chat_body(), headers={"x-request-id": "victim-id"})
        assert response.status_code == 200
        ours = response.headers["x-request-id"]
        # The access line is written after the last byte reached the client: wait for it (inside
        # the at_level block, or a line that comes late is dropped).
        deadline = time.monotonic() + 5
        lines: list[logging.LogRecord] = []
        while not lines and time.monotonic() < deadline:
            lines = [r for r in caplog.records if getattr(r, "request_id", None) == ours]
            time.sleep(0.02)
    assert ours != "victim-id"
    _, headers, body = stack.upstream.chat_requests[-1]
    assert headers["x-request-id"] == ours and b"victim-id" not in body
    assert lines and lines[0].client_request_id == "victim-id"


# --- leaks and rough edges ----------------------------------------------------------------------


def test_deep_json_is_a_400(stack):
    deep = b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = httpx.post(stack.url + "/api/chat", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]


def test_a_key_in_the_query_string_is_refused(stack):
    response = stack.post("/v1/chat/completions?api_key=sk-secret", chat_body())
    assert response.status_code == 400 and response.json()["error"]["code"] == "secret_in_query"
    assert "sk-secret" not in response.text


def test_upstream_failures_reach_the_client_as_a_generic_message_with_the_request_id_logged(caplog):
    with Stack() as stack:
        stack.upstream.server.close()  # type: ignore[union-attr]
        stack.call(stack.upstream.server.wait_closed())  # type: ignore[union-attr]
        with caplog.at_level(logging.WARNING, logger="chat_api"):
            response = stack.post("/api/chat", chat_body())
            ready = httpx.get(stack.url + "/readyz", timeout=5)
    assert response.status_code == 503
    for text in (response.text, ready.text):
        assert "Errno" not in text and "127.0.0.1" not in text and "CHAT_API" not in text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == response.headers["x-request-id"]]
    assert any("Connect" in getattr(r, "error", "") for r in logged), "the details are in the log"


def test_auth_comes_before_the_body_is_read_or_parsed(tmp_path):
    (tmp_path / "team").write_text("good-key")
    with Stack(api_keys_dir=tmp_path) as stack:
        no_key = httpx.post(
            stack.url + "/api/chat", content=b"{not json", headers={"content-type": "application/json"}
        )
        huge = httpx.post(
            stack.url + "/v1/chat/completions",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
        good = stack.post("/api/chat", chat_body(), headers={"authorization": "Bearer good-key"})
    assert no_key.status_code == 401 and huge.status_code == 401
    assert good.status_code == 200


def test_the_v1_stream_passes_vllms_bytes_through_and_drops_the_usage_chunk_nobody_asked_for(stack):
    response = stack.post("/v1/chat/completions", chat_body(stream=True))
    assert response.text == good_stream_body().decode().replace(event(USAGE).decode(), "")
    asked = stack.post("/v1/chat/completions", chat_body(stream=True, stream_options={"include_usage": True}))
    assert asked.text == good_stream_body().decode()


def test_the_guard_timers_fire_while_upstream_floods_a_reading_client():
    """Reads that never wait must not starve the total timeout: a steady flood still ends on time."""

    async def flood(reader, writer):
        writer.write(SSE_HEAD)
        piece = chunk(event(delta("w")) * 50)
        while True:
            writer.write(piece)
            await writer.drain()

    with Stack(total_timeout_s=1.5) as stack:
        stack.upstream.script = flood
        started = time.monotonic()
        response = stack.post("/api/chat", chat_body(), timeout=10)
        elapsed = time.monotonic() - started
        name, data = last_event(response)
    assert name == "error" and data["code"] == "upstream_timeout" and "TOTAL_TIMEOUT" in data["message"]
    assert elapsed < 4


def test_client_connections_are_capped():
    with Stack(max_connections=4) as stack:
        idle = [socket.create_connection(("127.0.0.1", stack.port)) for _ in range(5)]
        try:
            time.sleep(0.2)
            response = httpx.get(stack.url + "/healthz", timeout=5)
        finally:
            for sock in idle:
                sock.close()
    assert response.status_code == 503
