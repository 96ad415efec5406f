"""A crafted upstream (a test double of vLLM that speaks raw bytes) and real chat-api in front of it.

vLLM cannot be made to send a negative chunk size, a 200 MB chunk or an endless event, but
chat-api must survive a peer that does. `CraftedUpstream` answers /health and /v1/models like
vLLM 0.32 (vllm/entrypoints/openai/api_server.py: 200 with an empty body; {"object": "list",
"data": [{"id": ..., "object": "model"}]}) and runs `script` for POST /v1/chat/completions,
writing whatever bytes the test wants, status line included. It records each request (head and
body), each connection, and whether chat-api closed the connection (that is what makes a real
vLLM abort).

`Stack` runs both in one background event loop: chat-api under real uvicorn with the same
server options as `python -m chat_api` (chat_api.server.server_config), on a free port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from chat_api.app import create_app
from chat_api.config import Settings
from chat_api.server import server_config

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
MODELS = json.dumps({"object": "list", "data": [{"id": "tiny-llama", "object": "model"}]}).encode()


def chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def event(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def delta(text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "tiny-llama",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}  # fmt: skip


USAGE = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "tiny-llama", "choices": [],
         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}  # fmt: skip


def good_stream_body(texts: tuple[str, ...] = ("Hel", "lo")) -> bytes:
    """The body (SSE, before chunked framing) of a correct vLLM answer with usage."""
    return b"".join(event(delta(t)) for t in texts) + event(USAGE) + event(b"[DONE]")


def raw(data: bytes, then: str = "close") -> Script:
    """Write `data` as is, then close (`close`) or go quiet until chat-api closes (`hang`)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then == "hang":
            await reader.read(1)

    return script


def good_stream(texts: tuple[str, ...] = ("Hel", "lo")) -> Script:
    return raw(SSE_HEAD + chunk(good_stream_body(texts)) + b"0\r\n\r\n")


@dataclass
class Connection:
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    closed_by_peer: bool = False


class CraftedUpstream:
    def __init__(self) -> None:
        self.script: Script = good_stream()
        self.connections: list[Connection] = []
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def chat_requests(self) -> list[tuple[str, dict[str, str], bytes]]:
        return [r for c in self.connections for r in c.requests if r[0] == "/v1/chat/completions"]

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """vLLM gone: no new connections, the kept-alive ones closed (3.11 has no close_clients)."""
        assert self.server is not None
        self.server.close()
        for writer in list(self._writers):
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection()
        self.connections.append(conn)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                conn.requests.append((path, headers, body))
                if method == "POST" and path == "/v1/chat/completions":
                    await self.script(reader, writer)
                    conn.closed_by_peer = reader.at_eof()  # a `hang` script waits for that
                    return
                payload = MODELS if path == "/v1/models" else b""
                status = "200 OK" if path in ("/health", "/v1/models") else "404 Not Found"
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-length: {len(payload)}\r\n\r\n".encode() + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            conn.closed_by_peer = True
        finally:
            self._writers.discard(writer)
            writer.close()


TEST_SETTINGS = {
    "first_token_timeout_s": 3.0,
    "idle_timeout_s": 1.0,
    "total_timeout_s": 8.0,
    "retries": 0,
    "default_model": "tiny-llama",
    "rate_limit_per_minute": 0,
}


class Stack:
    """Real chat-api (uvicorn, in a background loop) in front of a CraftedUpstream."""

    def __init__(self, **settings: Any) -> None:
        self.settings_overrides = {**TEST_SETTINGS, **settings}
        self.upstream = CraftedUpstream()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def call(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def __enter__(self) -> Stack:
        import uvicorn

        self._thread.start()
        upstream_port = self.call(self.upstream.start())
        # No conversation database (not what these tests are about; the default would be a file here).
        overrides = {"database_url": "", **self.settings_overrides}
        self.settings = Settings(
            upstream_url=f"http://127.0.0.1:{upstream_port}", host="127.0.0.1", **overrides
        )
        self.app = create_app(self.settings)
        config = server_config(self.app, self.settings, port=0, loop="asyncio", log_level="warning")
        self.server = uvicorn.Server(config)

        async def serve() -> None:
            await self.server.serve()

        self._serving = asyncio.run_coroutine_threadsafe(serve(), self._loop)

        async def started() -> int:
            while not self.server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await asyncio.sleep(0.01)
            return self.server.servers[0].sockets[0].getsockname()[1]

        self.port = self.call(started())
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        try:
            self._serving.result(10)
        finally:
            assert self.upstream.server is not None
            self._loop.call_soon_threadsafe(self.upstream.server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def services(self) -> Any:
        return self.app.state.services

    def inflight(self) -> float:
        return self.services.metrics.registry.get_sample_value("chat_api_inflight_streams")

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 20)
        return httpx.post(self.url + path, json=body, **kwargs)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of an /api/chat answer."""
    out = []
    for block in text.split("\n\n"):
        name, data = "message", None
        for line in block.split("\n"):  # SSE lines end at LF; str.splitlines would also cut at U+2028
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
        if data is not None:
            out.append((name, data))
    return out
