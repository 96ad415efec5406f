"""A lean asyncio network backend for httpcore (plain HTTP to vLLM only).

httpx's default backend goes through anyio, which wraps every socket read of every streamed token
in a cancel scope and two context managers; on a CPU shared with vLLM that was the largest cost
left in the proxy path after httpx's own parsing (py-spy, see scripts/bench.py). This backend
reads with an asyncio Protocol: a chunk that arrived is returned as the same bytes object, and a
timer exists only while a read actually waits. TLS upstreams keep httpx's default backend.
"""

# ruff: noqa: ASYNC109 - the `timeout` parameters are httpcore's backend interface, not ours
from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import h11
import httpcore
import httpx

SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]


class _StreamProtocol(asyncio.Protocol):
    __slots__ = ("_chunks", "_drain", "_paused", "_waiter", "eof", "error", "transport")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)


class LeanStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        proto = self._protocol
        chunks = proto._chunks
        if not chunks:
            if proto.eof:
                if proto.error is not None:
                    raise httpcore.ReadError(str(proto.error) or type(proto.error).__name__)
                return b""
            waiter = proto._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                proto._waiter = None
                if timer is not None:
                    timer.cancel()
            if not chunks:
                if proto.error is not None:
                    raise httpcore.ReadError(str(proto.error) or type(proto.error).__name__)
                if proto.eof:
                    return b""
                raise httpcore.ReadTimeout("timed out waiting for vLLM")
        data = chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("connection to vLLM is closed")
        self._transport.write(buffer)
        proto = self._protocol
        if proto._paused:
            proto._drain = self._loop.create_future()
            try:
                await asyncio.wait_for(proto._drain, timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing to vLLM") from None
            finally:
                proto._drain = None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the lean backend is for plain HTTP; https upstreams use httpx's default")

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # What httpcore asks before reusing a pooled connection: has the peer sent or closed?
            return bool(self._protocol._chunks) or self._protocol.eof
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        return None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LeanBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _StreamProtocol, host, port, local_addr=local
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return LeanStream(transport, protocol)  # type: ignore[arg-type]

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> Any:
        raise httpcore.ConnectError("unix sockets are not supported by the lean backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def lean_transport(
    limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (its exception mapping, its pool) with the lean backend underneath.

    The lean backend never speaks TLS, so the SSL context httpx insists on is never used; pass
    one to share it (building one loads the CA bundle, about 5 ms)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False, verify=ssl_context or True)
    # httpx 0.28 has no public switch for the network backend; the pool is rebuilt with the same
    # arguments httpx passes (tests pin that the client really uses it).
    transport._pool = httpcore.AsyncConnectionPool(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        retries=0,
        network_backend=LeanBackend(),
    )
    return transport


class ConnectionSlots(httpx.AsyncBaseTransport):
    """httpx transport to vLLM that gives each request a lean transport holding one connection.

    A request takes the most recently freed slot (its keep-alive connection is the warmest) or
    opens a new one, up to `max_connections`; closing the response gives the slot back. This
    exists because of httpcore 1.0's pool: on every request and every close it walks all its
    connections once per idle connection (encode/httpcore#1035, quadratic). With connections
    kept alive at 64 streams that walk was over half of chat-api's CPU (py-spy), so one pool of
    64 connections became 64 pools of one, which have nothing to walk. Each slot is still
    httpx's own transport: its exception mapping, its keep-alive expiry, its reconnects.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._one = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=limits.keepalive_expiry
        )
        self._free: list[httpx.AsyncHTTPTransport] = []
        self._all: list[httpx.AsyncHTTPTransport] = []
        self._ssl = httpx.create_ssl_context(trust_env=False)
        self._capacity = asyncio.Semaphore(limits.max_connections or 1024)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._capacity.locked():
            # Every slot busy (admission control normally keeps well below this): wait as long
            # as httpx's pool timeout allows.
            wait = request.extensions.get("timeout", {}).get("pool")
            try:
                async with asyncio.timeout(wait):
                    await self._capacity.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "no free connection to vLLM (CHAT_API_UPSTREAM_MAX_CONNECTIONS)"
                ) from None
        else:
            await self._capacity.acquire()
        slot = self._free.pop() if self._free else self._open_slot()
        try:
            response = await slot.handle_async_request(request)
        except BaseException:
            self._release(slot)
            raise
        response.stream = _SlotStream(response.stream, self, slot)  # type: ignore[arg-type]
        return response

    def _open_slot(self) -> httpx.AsyncHTTPTransport:
        slot = lean_transport(self._one, self._ssl)
        self._all.append(slot)
        return slot

    def _release(self, slot: httpx.AsyncHTTPTransport) -> None:
        self._free.append(slot)
        self._capacity.release()

    @property
    def slots(self) -> int:
        return len(self._all)

    async def aclose(self) -> None:
        for slot in self._all:
            await slot.aclose()
        self._all.clear()
        self._free.clear()


class _SlotStream(httpx.AsyncByteStream):
    """The response body; closing it hands the slot back. `_stream` is what `raw_body` unwraps."""

    __slots__ = ("_owner", "_slot", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, owner: ConnectionSlots, slot: httpx.AsyncHTTPTransport):
        self._stream = stream
        self._owner = owner
        self._slot: httpx.AsyncHTTPTransport | None = slot

    async def __aiter__(self) -> Any:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            slot, self._slot = self._slot, None
            if slot is not None:
                self._owner._release(slot)


class RawChunkedBody:
    """Reads a chunked response body straight from a LeanStream, past httpx/httpcore/h11.

    httpx hands each streamed token through five async generators and h11's per-event parser;
    for a proxy whose whole job is moving those bytes that was most of its CPU. Once httpx has
    parsed the status line and headers, this takes the bytes h11 had already buffered and reads
    the rest from the socket itself, joining every complete chunk that is there into one piece.

    The connection stays reusable: when the body ends exactly with the last chunk (no trailers,
    nothing after it), h11 is told the end of the message, so httpcore pools the connection on
    `aclose()` as if h11 had read the body itself. A new TCP connection per stream cost vLLM's
    API server an accept and a connection setup on its busy event loop; at 64 streams a client
    sending `connection: close` straight to vLLM saw its time to first token double. A body that
    ends any other way (cut, trailers, extra bytes) leaves h11 where it was, and httpcore closes
    the connection.

    Its reads carry no timer: every caller reads under a StreamGuard, which enforces the
    first-token, idle and total timeouts with one timer per stream instead of one per token.
    """

    __slots__ = ("_buffer", "_h11", "_h11_has_end", "_stream")

    def __init__(self, stream: LeanStream, buffered: bytes, h11_connection: Any = None) -> None:
        self._stream = stream
        self._buffer = buffered
        # h11 still holds `buffered` unparsed. It can be handed the end of the message only if
        # those bytes are whole chunks; otherwise the connection is not offered back to the pool.
        whole, self._h11_has_end = _scan_chunks(buffered)
        self._h11 = h11_connection if whole else None

    async def __aiter__(self) -> Any:
        buf = self._buffer
        read = self._stream.read
        while True:
            pieces = []
            pos = 0
            finished = False
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                try:
                    size = int(buf[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("vLLM sent a malformed chunk header") from None
                if size == 0:
                    if len(buf) < eol + 4:
                        break  # the last chunk's closing CRLF has not arrived yet
                    finished = True
                    if buf[eol + 2 :] == b"\r\n":  # no trailers, nothing after the message
                        self._end_message()
                    break
                end = eol + 2 + size
                if len(buf) < end + 2:
                    break
                pieces.append(buf[eol + 2 : end])
                pos = end + 2
            if pos:
                buf = buf[pos:]
            if pieces:
                yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if finished:
                return
            try:
                data = await read(65536, None)
            except httpcore.TimeoutException as exc:
                raise httpx.ReadTimeout(str(exc)) from None
            except httpcore.NetworkError as exc:
                raise httpx.ReadError(str(exc)) from None
            if not data:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body (incomplete chunked read)"
                )
            buf = buf + data if buf else data

    def _end_message(self) -> None:
        """Let h11 parse the end of the body (its public API), so httpcore can pool the connection.

        h11 sees only the chunks it had buffered plus the last chunk; anything unexpected leaves
        it short of DONE, and httpcore then closes the connection as before."""
        conn = self._h11
        if conn is None:
            return
        try:
            if not self._h11_has_end:
                conn.receive_data(b"0\r\n\r\n")
            # Data events are the chunks h11 had buffered; it stops at EndOfMessage (pooled) or
            # at anything else (NEED_DATA: the connection is closed as before).
            while type(conn.next_event()) is h11.Data:
                pass
        except h11.ProtocolError:
            return


def _scan_chunks(data: bytes) -> tuple[bool, bool]:
    """(whether `data` is a run of whole chunks, whether it ends with the last chunk)."""
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return False, False
        try:
            size = int(data[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            return False, False
        if size == 0:
            ended = data[eol + 2 :] == b"\r\n"
            return ended, ended
        pos = eol + 2 + size + 2
    return pos == len(data), False


def raw_body(response: httpx.Response) -> RawChunkedBody | None:
    """The fast reader for `response`'s body when it came over a LeanStream, else None.

    It reaches through httpx 0.28 / httpcore 1.0 internals; anything unexpected means None and
    the caller keeps using `response.aiter_raw()` (a unit test pins that the fast path is taken).
    """
    if response.headers.get("transfer-encoding", "").lower() != "chunked":
        return None
    try:
        stream = response.stream
        # httpx's client (BoundAsyncStream) and ConnectionSlots (_SlotStream) each wrap the
        # transport's stream once; unwrap down to httpx's own AsyncResponseStream.
        while not hasattr(stream, "_httpcore_stream"):
            stream = stream._stream  # type: ignore[attr-defined]
        connection = stream._httpcore_stream._stream._connection  # type: ignore[attr-defined]
        network = connection._network_stream
        buffered, closed = connection._h11_state.trailing_data
    except AttributeError:
        return None
    if not isinstance(network, LeanStream) or closed:
        return None
    return RawChunkedBody(network, buffered, connection._h11_state)
