"""The lean network backend speaks HTTP/1.1 to a real socket server, streamed and pooled."""

from __future__ import annotations

import asyncio

import httpcore
import httpx
import pytest
from chat_api.config import Settings
from chat_api.netstream import LeanBackend
from chat_api.upstream import make_client

pytestmark = pytest.mark.unit

BODY = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]


def chunked(tail: bytes = b"0\r\n\r\n") -> bytes:
    """BODY in chunked transfer encoding, ended by `tail` (the last chunk, maybe with trailers)."""
    return b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in BODY) + tail


async def _server(
    heads: list[bytes] | None = None,
    tail: bytes = b"0\r\n\r\n",
    with_headers: int = 0,
    connections: list[int] | None = None,
) -> tuple[asyncio.AbstractServer, int]:
    """A chunked SSE server. `with_headers` bytes of the body go out in the same write as the
    headers (so h11 has them buffered); `connections` counts accepted connections."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connections is not None:
            connections.append(1)
        body = chunked(tail)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if heads is not None:
                    heads.append(head)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                    b"content-type: text/event-stream\r\n\r\n" + body[:with_headers]
                )
                await writer.drain()
                await asyncio.sleep(0.01)
                for start in range(with_headers, len(body), 16):
                    writer.write(body[start : start + 16])
                    await writer.drain()
                    await asyncio.sleep(0.002)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_plain_http_upstreams_use_lean_one_connection_slots_and_reuse_them():
    from chat_api.netstream import ConnectionSlots

    connections: list[int] = []
    server, port = await _server(connections=connections)
    async with server:
        client = make_client(Settings(upstream_url=f"http://127.0.0.1:{port}"))
        slots = client._transport  # type: ignore[attr-defined]
        assert isinstance(slots, ConnectionSlots)
        for _ in range(2):
            async with client.stream("GET", "/v1/chat/completions") as response:
                chunks = [c async for c in response.aiter_raw()]
            assert b"".join(chunks) == b"".join(BODY)
        assert slots.slots == 1 and len(connections) == 1  # one slot, its connection kept alive
        assert isinstance(slots._all[0]._pool._network_backend, LeanBackend)
        # Two streams at once take two slots; both come back and are reused afterwards.
        async with client.stream("GET", "/v1/chat/completions") as first:
            async with client.stream("GET", "/v1/chat/completions") as second:
                assert b"".join([c async for c in second.aiter_raw()]) == b"".join(BODY)
            assert b"".join([c async for c in first.aiter_raw()]) == b"".join(BODY)
        assert slots.slots == 2 and len(connections) == 2
        async with client.stream("GET", "/v1/chat/completions") as response:
            await response.aread()
        assert slots.slots == 2 and len(connections) == 2
        await client.aclose()


async def test_a_request_that_fails_gives_its_slot_back():
    from chat_api.netstream import ConnectionSlots

    slots = ConnectionSlots(httpx.Limits(max_connections=1))
    for _ in range(3):  # with one slot, a leaked slot would make the second try wait forever
        with pytest.raises(httpx.ConnectError):
            await asyncio.wait_for(slots.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/")), 5)
    assert slots.slots == 1
    await slots.aclose()


async def test_when_every_slot_is_busy_a_request_waits_up_to_the_pool_timeout():
    from chat_api.netstream import ConnectionSlots

    server, port = await _server()
    async with server:
        slots = ConnectionSlots(httpx.Limits(max_connections=1))
        url = f"http://127.0.0.1:{port}/"
        held = await slots.handle_async_request(httpx.Request("GET", url))
        with pytest.raises(httpx.PoolTimeout, match="CHAT_API_UPSTREAM_MAX_CONNECTIONS"):
            await slots.handle_async_request(
                httpx.Request("GET", url, extensions={"timeout": {"pool": 0.05}})
            )
        await held.aclose()
        again = await slots.handle_async_request(httpx.Request("GET", url))
        await again.aclose()
        await slots.aclose()


async def test_https_upstreams_keep_httpx_default_backend():
    client = make_client(Settings(upstream_url="https://vllm.example:8000"))
    transport = client._transport  # type: ignore[attr-defined]
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    assert not isinstance(getattr(transport._pool, "_network_backend", None), LeanBackend)
    await client.aclose()


async def test_a_refused_connection_is_a_connect_error():
    with pytest.raises(httpcore.ConnectError):
        await LeanBackend().connect_tcp("127.0.0.1", 1, timeout=2)


@pytest.mark.parametrize(
    ("with_headers", "why"),
    [(0, "nothing buffered"), (16, "one whole chunk buffered"), (56, "the whole body buffered")],
)
async def test_the_raw_body_reader_yields_httpx_bytes_and_keeps_the_connection(with_headers, why):
    from chat_api.netstream import RawChunkedBody, raw_body
    from chat_api.upstream import body_chunks

    connections: list[int] = []
    server, port = await _server(with_headers=with_headers, connections=connections)
    async with server:
        client = make_client(Settings(upstream_url=f"http://127.0.0.1:{port}"))
        for _ in range(3):
            async with client.stream("GET", "/v1/chat/completions") as response:
                assert isinstance(raw_body(response), RawChunkedBody)
                assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
        # h11 was handed the end of each message, so httpcore pooled and reused one connection.
        assert len(connections) == 1, why
        await client.aclose()


@pytest.mark.parametrize(
    ("tail", "with_headers", "why"),
    [
        (b"0\r\nx-trailer: 1\r\n\r\n", 0, "trailers after the last chunk"),
        (b"0\r\n\r\n", 5, "a partial chunk was buffered with the headers"),
    ],
)
async def test_a_body_the_raw_reader_cannot_hand_back_closes_its_connection(tail, with_headers, why):
    from chat_api.upstream import body_chunks

    connections: list[int] = []
    server, port = await _server(tail=tail, with_headers=with_headers, connections=connections)
    async with server:
        client = make_client(Settings(upstream_url=f"http://127.0.0.1:{port}"))
        for _ in range(2):
            async with client.stream("GET", "/v1/chat/completions") as response:
                assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
        assert len(connections) == 2, why
        await client.aclose()


async def test_a_kept_alive_connection_the_server_dropped_is_replaced_not_failed():
    """vLLM closes idle connections after 5 s; the next stream must open a fresh one, not error."""
    from chat_api.metrics import Metrics
    from chat_api.upstream import Upstream, body_chunks, make_transport

    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked())
        await writer.drain()
        writer.close()  # an idle keep-alive timeout, as far as the client can tell

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        settings = Settings(upstream_url=f"http://127.0.0.1:{port}")
        transport = make_transport(settings)
        upstream = Upstream(settings, make_client(settings, transport), Metrics(), transport)
        for i in range(3):
            response = await upstream.open_stream(b"{}", f"req-{i}")
            try:
                assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
            finally:
                await response.aclose()
            await asyncio.sleep(0.05)  # the server's close arrives while the slot is idle
        assert len(connections) == 3
        await upstream.client.aclose()


async def test_a_stream_left_early_closes_its_connection():
    """What makes vLLM abort a request whose client left: the connection closes, never pooled."""
    from chat_api.upstream import body_chunks

    connections: list[int] = []
    server, port = await _server(connections=connections)
    async with server:
        client = make_client(Settings(upstream_url=f"http://127.0.0.1:{port}"))
        async with client.stream("GET", "/v1/chat/completions") as response:
            async for _ in body_chunks(response):
                break
        async with client.stream("GET", "/v1/chat/completions") as response:
            assert b"".join([c async for c in body_chunks(response)]) == b"".join(BODY)
        assert len(connections) == 2
        await client.aclose()


async def test_the_raw_body_reader_reports_a_cut_stream_as_an_httpx_error():
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
