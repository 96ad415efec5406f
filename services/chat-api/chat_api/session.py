"""One chat request to vLLM, from admission to the access-log line: `StreamSession`.

    async with StreamSession(services, info, route, receive, send) as session:
        await session.relay(body, encoder)

The session owns everything the routes used to repeat: the concurrency slot (taken in `relay`,
given back on exit), the StreamGuard (first-token, idle and total timeouts, and the client
leaving), closing the upstream response (that is what makes vLLM abort the generation), the
metrics, and the outcome of the access-log line. Every exception ends in `__aexit__`, which
maps it to one outcome and one ending: a JSON error with its status when nothing was sent yet
(refused, vLLM unreachable or answering an error, a buffered answer), the encoder's in-band
error event once a stream's head went out (as soon as vLLM answers 200), nothing when the
client is gone.

An encoder turns vLLM's body bytes into what the client gets:
- `Passthrough` (/v1, stream): vLLM's SSE bytes unchanged, cut at event boundaries; only the
  final usage chunk is decoded (chat-api always asks for it) and dropped again when the client
  did not ask for it;
- `UiEvents` (/api/chat): typed `delta` / `done` / `error` events (docs/interfaces.md);
- `Buffered` (/v1, not streaming): the JSON answer, at most CHAT_API_MAX_RESPONSE_BYTES.

Every `send` is awaited before the next upstream read, so a slow client slows the upstream
read (uvicorn's flow control). chat-api then holds one read plus one partial event, and aiohttp's
buffer, which stops reading from vLLM's socket above its high-water mark (2 x 64 KiB by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import aiohttp
from starlette.responses import Response

from chat_api.context import RequestInfo, Services
from chat_api.errors import (
    ApiError,
    Rejected,
    StreamInterrupted,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chat_api.guard import StreamGuard, http_disconnect
from chat_api.store import count_usage
from chat_api.upstream import UPSTREAM_ERRORS, body_chunks, close_response, dumps

log = logging.getLogger("chat_api.session")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style proxies in front of chat-api not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]
USAGE_MARK = b'"usage"'
DONE_PAYLOAD = b"[DONE]"
EVENT_BREAK = re.compile(rb"\r?\n\r?\n")
TIMEOUT_MESSAGES = {
    "first_token": "the model sent no token within {s:g} s (CHAT_API_FIRST_TOKEN_TIMEOUT_S)",
    "idle": "the model sent nothing for {s:g} s in the middle of the answer (CHAT_API_IDLE_TIMEOUT_S)",
    "total": "the answer took longer than {s:g} s in total (CHAT_API_TOTAL_TIMEOUT_S)",
}


class EventSplitter:
    """Cuts a byte stream after its last complete SSE event; holds at most `limit` bytes."""

    __slots__ = ("buf", "limit")

    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, chunk: bytes) -> bytes:
        if not self.buf and chunk.endswith(b"\n\n"):
            return chunk  # the usual case: a chunk is whole events
        start = max(0, len(self.buf) - 3)  # only new bytes can complete a boundary: linear time
        self.buf += chunk
        cut = max(self.buf.rfind(b"\n\n", start) + 2, self.buf.rfind(b"\n\r\n", start) + 3)
        if cut < 3:
            if len(self.buf) > self.limit:
                raise StreamInterrupted(
                    f"the model server sent an event over {self.limit} bytes (CHAT_API_MAX_EVENT_BYTES)"
                )
            return b""
        out = bytes(self.buf[:cut])
        del self.buf[:cut]
        return out


def payloads(events: bytes) -> list[bytes]:
    """The `data:` payloads of complete SSE events."""
    out = []
    for block in EVENT_BREAK.split(events):
        lines = [line[5:].strip() for line in block.splitlines() if line.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def usage_of(obj: Any) -> dict[str, Any] | None:
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return None
    return {k: v for k, v in usage.items() if k in ("prompt_tokens", "completion_tokens") and type(v) is int}


class Encoder:
    """What a session needs from an encoder."""

    streaming = True
    headers = SSE_HEADERS
    finished = False  # True: the answer is complete; stop reading upstream
    usage: dict[str, Any] | None = None
    # Stream events with content seen: the token count of an answer cut short without usage.
    chunks = 0

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        """Bytes after upstream ended; raises StreamInterrupted when the answer is incomplete."""
        raise NotImplementedError

    def error(self, exc: ApiError) -> bytes:
        raise NotImplementedError


class Passthrough(Encoder):
    def __init__(self, forward_usage: bool, max_event_bytes: int) -> None:
        self.forward_usage = forward_usage
        self.splitter = EventSplitter(max_event_bytes)

    def feed(self, chunk: bytes) -> bytes:
        events = self.splitter.feed(chunk)
        self.chunks += events.count(b"data:")
        if USAGE_MARK in events:  # only the final chunk carries a usage object
            events = self._take_usage(events)
        if DONE_PAYLOAD in events[-16:]:
            self.finished = True
        return events

    def _take_usage(self, events: bytes) -> bytes:
        """Reads usage from the event that carries it and drops that event when the client did not
        ask for usage. Only that event is looked at: `events` can be a whole answer when reads
        coalesce, and splitting all of it cost as much as the rest of the request."""
        at = events.find(USAGE_MARK)  # unescaped, so a key: it cannot occur inside a JSON string
        while at >= 0 and self.usage is None:
            before = (events.rfind(b"\n\n", 0, at), events.rfind(b"\n\r\n", 0, at))
            start = max(before[0] + 2 if before[0] >= 0 else 0, before[1] + 3 if before[1] >= 0 else 0)
            brk = EVENT_BREAK.search(events, at)
            end = brk.end() if brk else len(events)
            try:
                obj = json.loads(events[start : brk.start() if brk else end].partition(b"data:")[2])
            except ValueError:
                obj = None
            self.usage = usage_of(obj)
            if self.usage is not None and not self.forward_usage and not obj.get("choices"):
                return events[:start] + events[end:]
            at = events.find(USAGE_MARK, end)
        return events

    def finish(self) -> bytes:
        if not self.finished:
            raise StreamInterrupted("the model server closed the stream before it finished")
        return b""

    def error(self, exc: ApiError) -> bytes:
        return b"data: " + dumps(exc.body()) + b"\n\n"


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class UiEvents(Encoder):
    """vLLM's chunks -> `delta` {content}, `done` {finish_reason, usage, timings}, `error`."""

    def __init__(self, info: RequestInfo, max_event_bytes: int) -> None:
        self.info = info
        self.splitter = EventSplitter(max_event_bytes)
        self.finish_reason: str | None = None
        self.first_at: float | None = None

    def feed(self, chunk: bytes) -> bytes:
        out = []
        for payload in payloads(self.splitter.feed(chunk)):
            if payload == DONE_PAYLOAD:
                self.finished = True
                out.append(sse_event("done", self._done()))
                break
            try:
                obj = json.loads(payload)
            except ValueError:
                raise StreamInterrupted("the model server sent a stream event that is not JSON") from None
            if not isinstance(obj, dict):
                raise StreamInterrupted("the model server sent a stream event that is not a JSON object")
            if "error" in obj:
                raise UpstreamError("the model server reported an error during the answer")
            self.usage = usage_of(obj) or self.usage
            text = []
            for choice in obj.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    text.append(content)
            if text:
                self.chunks += 1
                if self.first_at is None:
                    self.first_at = time.perf_counter()
                out.append(sse_event("delta", {"content": "".join(text)}))
        return b"".join(out)

    def _done(self) -> dict[str, Any]:
        usage = self.usage or {}
        completion = usage.get("completion_tokens")
        end = time.perf_counter()
        started, first = self.info.started, self.first_at
        rate = None
        if completion and completion > 1 and first is not None and end > first:
            rate = round((completion - 1) / (end - first), 2)
        return {
            "finish_reason": self.finish_reason or "stop",
            "usage": {"prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": completion},
            "timings": {
                "ttft_ms": round((first - started) * 1000, 1) if first is not None else None,
                "total_ms": round((end - started) * 1000, 1),
                "tokens_per_s": rate,
            },
        }

    def finish(self) -> bytes:
        if not self.finished:
            raise StreamInterrupted("the model server closed the stream before it finished")
        return b""

    def error(self, exc: ApiError) -> bytes:
        return sse_event("error", exc.event())


class ResponseTooLarge(UpstreamError):
    code = "response_too_large"


class Buffered(Encoder):
    """A non-streaming answer, held up to `limit` bytes; usage from its tail, not a full parse."""

    streaming = False
    headers = JSON_HEADERS

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        self.buf += chunk
        if len(self.buf) > self.limit:
            raise ResponseTooLarge(
                f"the answer is over {self.limit} bytes (CHAT_API_MAX_RESPONSE_BYTES); "
                "ask for fewer tokens, fewer choices or fewer logprobs, or stream it"
            )
        return b""

    def finish(self) -> bytes:
        at = self.buf.rfind(USAGE_MARK)
        if at >= 0:
            tail = self.buf[at + len(USAGE_MARK) :].decode(errors="replace").lstrip(" :")
            try:
                self.usage = usage_of({"usage": json.JSONDecoder().raw_decode(tail)[0]})
            except ValueError:
                pass
        return bytes(self.buf)

    def error(self, exc: ApiError) -> bytes:  # pragma: no cover - nothing is sent before finish
        return b""


def timeout_error(services: Services, reason: str) -> UpstreamTimeout:
    s = services.settings
    seconds = {"first_token": s.first_token_timeout_s, "idle": s.idle_timeout_s, "total": s.total_timeout_s}
    return UpstreamTimeout(
        TIMEOUT_MESSAGES[reason].format(s=seconds[reason]), code=f"upstream_timeout_{reason}"
    )


class StreamSession:
    def __init__(self, services: Services, info: RequestInfo, route: str, receive: Any, send: Any) -> None:
        self.services = services
        self.info = info
        self.route = route
        self.receive = receive
        self.send = send
        self.encoder: Encoder | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.admitted = False
        self.started = False  # response headers sent
        self.sent_body = False

    async def __aenter__(self) -> StreamSession:
        s = self.services.settings
        self.guard = StreamGuard(
            s.first_token_timeout_s, s.idle_timeout_s, s.total_timeout_s, watch=http_disconnect(self.receive)
        )
        return self

    async def relay(self, body: bytes, encoder: Encoder) -> None:
        self.encoder = encoder
        await self.services.limiter.acquire()
        self.admitted = True
        self.services.metrics.inflight.inc()
        self.response = await self.services.upstream.open(body, self.info.request_id)
        if encoder.streaming:
            # vLLM took the request (it answers 4xx/5xx before its own head): the client gets its
            # head now too, as vLLM's own clients do, and reads it while the model prefills rather
            # than in front of the first token (0.3-0.7 ms of TTFT with an httpx client,
            # docs/benchmarks.md). From here a failure is an in-band error event, as in vLLM's and
            # OpenAI's streams; chat_api_stream_errors_total counts it.
            await self._start()
        loop_time = asyncio.get_running_loop().time
        async for chunk in body_chunks(self.response):
            self.guard.last = loop_time()
            if encoder.finished:
                continue  # read vLLM's end of message, so the connection goes back to the pool
            out = encoder.feed(chunk)
            if out:
                await self._send(out)
        tail = encoder.finish()
        if tail:
            await self._send(tail)

    async def _start(self) -> None:
        assert self.encoder is not None
        await self.send({"type": "http.response.start", "status": 200, "headers": self.encoder.headers})
        self.started = True

    async def _send(self, data: bytes) -> None:
        if not self.started:  # a buffered answer: its head goes out with it
            await self._start()
        if not self.sent_body:
            self.sent_body = True
            assert self.encoder is not None
            if self.encoder.streaming:
                self.services.metrics.ttft.labels(self.route).observe(time.perf_counter() - self.info.started)
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        # Closed first: no timer or watcher can cancel this cleanup any more.
        self.guard.close()
        error, client_gone = self._outcome(exc)
        if exc is not None and error is None and not client_gone:
            await self._cleanup()
            return False  # not ours (a server shutdown): let it propagate
        await self._cleanup()
        if client_gone:
            return True
        try:
            if error is not None and not self.started:
                headers = [
                    *JSON_HEADERS,
                    *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
                ]
                await self.send({"type": "http.response.start", "status": error.status, "headers": headers})
                await self.send(
                    {"type": "http.response.body", "body": error.body_bytes(), "more_body": False}
                )
                return True
            if error is not None and self.encoder is not None:
                self.services.metrics.stream_errors.labels(self.route).inc()
                await self.send(
                    {"type": "http.response.body", "body": self.encoder.error(error), "more_body": True}
                )
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client left during the last write
        return True

    def _outcome(self, exc: BaseException | None) -> tuple[ApiError | None, bool]:
        """(error to report, client gone); sets the access-log outcome and the metrics. The one place."""
        metrics, log_fields = self.services.metrics, self.info.log
        error: ApiError | None = None
        if exc is None:
            log_fields["outcome"] = "ok"
            return None, False
        if isinstance(exc, asyncio.CancelledError):
            reason = self.guard.absorb()
            if reason is None:
                log_fields["outcome"] = "shutdown"
                return None, False
            if reason == "disconnect":
                log_fields["outcome"] = "cancelled"
                metrics.cancellations.labels(self.route).inc()
                return None, True
            error = timeout_error(self.services, reason)
        elif isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, UPSTREAM_ERRORS):  # before OSError: aiohttp's errors are OSErrors too
            log.warning("vLLM stream failed", extra={"request_id": self.info.request_id, "error": repr(exc)})
            if self.started or self.response is not None:
                error = StreamInterrupted("the stream from the model server broke; the answer is incomplete")
            else:
                error = UpstreamUnavailable("the model server is unavailable; retry later")
        elif isinstance(exc, OSError):
            # The client vanished while we were writing to it.
            log_fields["outcome"] = "cancelled"
            metrics.cancellations.labels(self.route).inc()
            return None, True
        elif isinstance(exc, Exception):
            log.error(
                "unexpected error in a stream", exc_info=exc, extra={"request_id": self.info.request_id}
            )
            error = ApiError(f"chat-api hit an unexpected error (request id {self.info.request_id})")
        else:
            return None, False
        if isinstance(error, Rejected):
            metrics.rejections.labels(error.reason).inc()
        elif isinstance(error, UpstreamError):
            metrics.upstream_errors.labels(error.kind).inc()
            if error.status >= 500 and not isinstance(error, UpstreamTimeout | ResponseTooLarge):
                log.warning(
                    "upstream error", extra={"request_id": self.info.request_id, "error": error.message}
                )
        log_fields["outcome"] = error.code
        return error, False

    async def _cleanup(self) -> None:
        services = self.services
        if self.response is not None:
            # Closing before the end drops the connection: that is what makes vLLM abort.
            close_response(self.response)
        if self.admitted:
            self.admitted = False
            services.limiter.release()
            services.metrics.inflight.dec()
        usage = self.encoder.usage if self.encoder is not None else None
        if usage:
            if usage.get("prompt_tokens"):
                services.metrics.prompt_tokens.inc(usage["prompt_tokens"])
            if usage.get("completion_tokens"):
                services.metrics.completion_tokens.inc(usage["completion_tokens"])
            self.info.log.update(usage)
        await self._settle(usage)

    async def _settle(self, usage: dict[str, Any] | None) -> None:
        """Charge the answer's tokens beyond the admission estimate, and count the person's usage
        (chat_api.quotas). Never raises: the answer is already given."""
        principal = self.info.principal
        if principal is None or self.response is None:
            return  # vLLM was never asked (refused or unreachable): only the admission estimate counts
        if usage:
            prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
        else:  # cut short: the estimate, plus one token per content chunk seen
            prompt = self.info.charged_tokens
            completion = self.encoder.chunks if self.encoder is not None else 0
        try:
            used = prompt + completion
            await self.services.quotas.settle_tokens(principal.id, self.info.charged_tokens, used)
            await count_usage(
                self.services.store,
                principal.id,
                self.services.settings.usage_retention_days,
                requests=1,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
        except Exception:  # a store failure must not turn a finished answer into an error
            log.warning("could not settle usage", exc_info=True, extra={"request_id": self.info.request_id})


class SessionResponse(Response):
    """The ASGI response of a chat route: one StreamSession with one encoder."""

    def __init__(
        self, services: Services, info: RequestInfo, route: str, body: bytes, encoder: Encoder
    ) -> None:
        # Not Response.__init__: the body streams from __call__; FastAPI only needs these two.
        self.background = None
        self.status_code = 200
        self.services, self.info, self.route, self.body, self.encoder = services, info, route, body, encoder

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with StreamSession(self.services, self.info, self.route, receive, send) as session:
            await session.relay(self.body, self.encoder)
