"""Test doubles for what real vLLM cannot do on demand. Used only by tests.

`SlowUpstreamDouble` is a tiny HTTP/1.1 server speaking just enough of vLLM's API (/health,
/v1/models, a streaming /v1/chat/completions) to stall where a test says: vLLM cannot be made
slow at will, and chat-api's timeouts must be tested against a peer that really goes quiet.
It records whether the peer (chat-api) closed the stalled connection, which is what makes a
real vLLM abort.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

from scripts.local_run.process import free_port

ROLE_CHUNK = {
    "id": "chatcmpl-double",
    "object": "chat.completion.chunk",
    "model": "tiny-llama",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
}
TEXT_CHUNK = {
    "id": "chatcmpl-double",
    "object": "chat.completion.chunk",
    "model": "tiny-llama",
    "choices": [{"index": 0, "delta": {"content": "slow"}, "finish_reason": None}],
}


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


@dataclass
class SlowUpstreamDouble:
    """mode: `stall_before_first_token` (headers, then silence) or `stall_after_first_token`."""

    mode: str = "stall_before_first_token"
    port: int = field(default_factory=free_port)
    closed_by_peer: threading.Event = field(default_factory=threading.Event)
    chat_requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowUpstreamDouble:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("SlowUpstreamDouble did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._handle(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                if path == "/v1/chat/completions" and method == "POST":
                    await self._stream(reader, writer)
                    return
                if path == "/health":
                    body = b""
                elif path == "/v1/models":
                    body = json.dumps(
                        {"object": "list", "data": [{"id": "tiny-llama", "object": "model"}]}
                    ).encode()
                else:
                    body = b'{"error": "not found"}'
                status = "200 OK" if path in ("/health", "/v1/models") else "404 Not Found"
                head = (
                    f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                )
                head += "\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.chat_requests += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        if self.mode == "stall_after_first_token":
            for obj in (ROLE_CHUNK, TEXT_CHUNK):
                writer.write(_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n"))
        await writer.drain()
        # Now go quiet; a read returning b"" means the peer closed the connection.
        data = await reader.read(1)
        if data == b"":
            self.closed_by_peer.set()
