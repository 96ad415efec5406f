"""The lean network backend speaks HTTP/1.1 to a real socket server, streamed and pooled."""

from __future__ import annotations

import asyncio

import httpcore
import pytest
from chat_api.config import Settings
from chat_api.netstream import LeanBackend
from chat_api.upstream import make_client

pytestmark = pytest.mark.unit

BODY = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]


async def _server(heads: list[bytes] | None = None) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if heads is not None:
                    heads.append(head)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                    b"content-type: text/event-stream\r\n\r\n"
                )
                for part in BODY:
                    writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.01)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_plain_http_upstreams_use_the_lean_backend_and_reuse_connections():
    server, port = await _server()
    async with server:
        client = make_client(Settings(upstream_url=f"http://127.0.0.1:{port}"))
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, LeanBackend)
        for _ in range(2):
            async with client.stream("GET", "/v1/chat/completions") as response:
                chunks = [c async for c in response.aiter_raw()]
            assert b"".join(chunks) == b"".join(BODY)
        assert len(pool.connections) == 1  # kept alive and reused
        await client.aclose()


async def test_https_upstreams_keep_httpx_default_backend():
    client = make_client(Settings(upstream_url="https://vllm.example:8000"))
    assert not isinstance(getattr(client._transport._pool, "_network_backend", None), LeanBackend)  # type: ignore[attr-defined]
    await client.aclose()


async def test_a_refused_connection_is_a_connect_error():
    with pytest.raises(httpcore.ConnectError):
        await LeanBackend().connect_tcp("127.0.0.1", 1, timeout=2)


async def test_the_raw_body_reader_yields_the_same_bytes_as_httpx_and_closes_cleanly():
    from chat_api.netstream import RawChunkedBody, raw_body
    from chat_api.upstream import body_chunks

    server, port = await _server()
    async with server:
        settings = Settings(upstream_url=f"http://127.0.0.1:{port}")
        client = make_client(settings)
        async with client.stream("GET", "/v1/chat/completions") as response:
            assert isinstance(raw_body(response), RawChunkedBody)
            chunks = [c async for c in body_chunks(response)]
        assert b"".join(chunks) == b"".join(BODY)
        # The connection is not reused (h11 never saw the end); the next request opens a fresh one.
        async with client.stream("GET", "/v1/chat/completions") as response:
            assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
        await client.aclose()


async def test_the_raw_body_reader_reports_a_cut_stream_as_an_httpx_error():
    import httpx
    from chat_api.netstream import RawChunkedBody

    class Cut:
        async def read(self, max_bytes, timeout=None):  # noqa: ASYNC109 - httpcore's signature
            return b""

    reader = RawChunkedBody(Cut(), b"5\r\nhel")  # type: ignore[arg-type]
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        async for _ in reader:
            pass


async def test_the_streaming_post_goes_to_the_transport_with_its_headers_and_the_raw_reader():
    from chat_api.metrics import Metrics
    from chat_api.netstream import RawChunkedBody, raw_body
    from chat_api.upstream import Upstream, body_chunks, make_transport

    heads: list[bytes] = []
    server, port = await _server(heads)
    async with server:
        settings = Settings(upstream_url=f"http://127.0.0.1:{port}")
        transport = make_transport(settings)
        upstream = Upstream(settings, make_client(settings, transport), Metrics(), transport)
        response = await upstream.open_stream(b"{}", "req-42")
        try:
            assert isinstance(raw_body(response), RawChunkedBody)
            assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
        finally:
            await response.aclose()
        head = heads[0].decode().lower()
        assert head.startswith("post /v1/chat/completions http/1.1\r\n")
        for line in (f"host: 127.0.0.1:{port}", "x-request-id: req-42", "content-length: 2"):
            assert f"\r\n{line}\r\n" in head
        assert "accept-encoding" not in head  # an SSE stream must not be compressed on the way
        await upstream.client.aclose()
