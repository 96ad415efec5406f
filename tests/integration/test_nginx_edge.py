"""The UI's nginx (ui/nginx/default.conf.template + the chart's api-proxy.conf), run by Debian's
real nginx in front of real chat-api: the edge refuses what the security review reproduced
(DNS rebinding through any Host, slowloris, floods from one address, keys in the access log)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import LOG_DIR, ChatApiServer
from tests.fixtures.ui_nginx import UiNginx, skip_without_nginx, ui_nginx
from tests.integration.doubles import SlowUpstreamDouble

pytestmark = pytest.mark.integration


@pytest.fixture
def edge(chat_api_factory: Callable[..., ChatApiServer], tmp_path: Path) -> Iterator[UiNginx]:
    skip_without_nginx()
    with SlowUpstreamDouble("stall_before_first_token") as slow:
        api = chat_api_factory(
            upstream_url=slow.url,
            env={"CHAT_API_FIRST_TOKEN_TIMEOUT_S": "4", "CHAT_API_RATE_LIMIT_PER_MINUTE": "0"},
        )
        html = tmp_path / "html"
        html.mkdir()
        (html / "index.html").write_text("<html>chat</html>")
        with ui_nginx(tmp_path / "nginx", html, api.base_url, "localhost chat.example.com", LOG_DIR) as edge:
            yield edge


def raw_request(port: int, data: bytes, wait: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<still open>")
        return b"".join(chunks)


def test_only_our_host_names_and_bare_addresses_get_an_answer(edge: UiNginx) -> None:
    for host in ("127.0.0.1", "localhost", "chat.example.com"):
        answer = raw_request(
            edge.port, f"GET /config.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 200"), (host, answer[:100])
    # DNS rebinding: the attacker's name now points here; its page asks with its own Host.
    for host in ("rebind.attacker.example", "chat.example.com.attacker.example"):
        for path in ("/config.json", "/api/chat", "/readyz"):
            answer = raw_request(
                edge.port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            assert answer == b"", (host, path, answer[:100])


def test_a_client_that_never_finishes_its_headers_is_dropped(edge: UiNginx) -> None:
    started = time.monotonic()
    answer = raw_request(edge.port, b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1", wait=20)
    assert answer in (b"", b"HTTP/1.1 408") or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 15, "client_header_timeout did not drop the connection"


def test_a_flood_from_one_address_gets_429_at_the_edge(edge: UiNginx) -> None:
    with httpx.Client(timeout=10) as client:
        statuses = [client.get(f"{edge.url}/readyz").status_code for _ in range(80)]
    assert 429 in statuses, statuses
    assert statuses[0] != 429


def test_one_address_cannot_hold_more_than_32_connections(edge: UiNginx) -> None:
    async def stalled(client: httpx.AsyncClient) -> tuple[int, str]:
        response = await client.post(
            f"{edge.url}/api/chat", json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        )
        return response.status_code, response.text

    async def many() -> list[int]:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return await asyncio.gather(*(stalled(client) for _ in range(36)))

    answers = asyncio.run(many())
    statuses = [status for status, _ in answers]
    assert statuses.count(429) >= 1, statuses
    # The rest reach chat-api: their streams start when the upstream answers 200, then it stalls
    # and each ends in the first-token timeout's error event.
    started = [text for status, text in answers if status == 200]
    assert len(started) >= 30, statuses
    assert all("event: error" in text and "CHAT_API_FIRST_TOKEN_TIMEOUT_S" in text for text in started), (
        started[:1]
    )


def test_a_key_in_the_query_string_never_reaches_the_access_log(edge: UiNginx) -> None:
    httpx.get(f"{edge.url}/v1/models?api_key=sk-live-secret-123", timeout=10)
    httpx.get(f"{edge.url}/?api_key=sk-live-secret-123", timeout=10)
    time.sleep(0.2)
    log = edge.access_log.read_text()
    assert "/v1/models" in log and "sk-live-secret" not in log


def test_a_whole_conversation_passes_the_edge_where_a_chat_request_that_size_does_not(edge: UiNginx) -> None:
    """/api/conversations carries whole conversations and imports (chat-api bounds them itself);
    /api/chat keeps the edge's 1 MiB. chat-api answers the conversation anonymous: 403, its JSON."""
    big = b'{"title": "' + b"x" * 1_500_000 + b'"}'
    headers = {"Host": "localhost", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{edge.port}", timeout=30) as client:
        conversation = client.put("/api/conversations/c-1", content=big, headers=headers)
        assert conversation.status_code == 403, conversation.text[:200]
        assert conversation.json()["error"]["code"] == "history_needs_person"
        chat = client.post("/api/chat", content=big, headers=headers)
        assert chat.status_code == 413 and "nginx" in chat.text
