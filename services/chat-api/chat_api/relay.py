"""The OpenAI streaming path: vLLM's SSE bytes go to the client as they arrive.

This is the hot path, so it is a raw ASGI response, not a generator behind StreamingResponse:
per upstream chunk it stores a timestamp, checks that the chunk ends on an event boundary, looks
for the usage marker with one `in` (a C memmem), and sends the same bytes object on. Only the
final usage chunk is JSON-decoded (for token metrics), and it is dropped again when the client
did not ask for usage (chat-api always asks vLLM for it). No per-chunk logging, no buffering
middleware: the access log line is written once per request by the middleware.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from starlette.responses import Response

from chat_api.context import RequestInfo, Services
from chat_api.errors import ApiError, StreamInterrupted, UpstreamError, UpstreamTimeout
from chat_api.guard import StreamGuard, http_disconnect
from chat_api.streamparse import USAGE_MARK, Usage, extract_usage
from chat_api.upstream import body_chunks, dumps

log = logging.getLogger("chat_api.relay")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style proxies in front of chat-api not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]
DONE_TAIL = b"data: [DONE]\n\n"
TIMEOUT_MESSAGES = {
    "first_token": "vLLM sent no token within {s:g} s (CHAT_API_FIRST_TOKEN_TIMEOUT_S)",
    "idle": "vLLM sent nothing for {s:g} s in the middle of the answer (CHAT_API_IDLE_TIMEOUT_S)",
    "total": "the answer took longer than {s:g} s in total (CHAT_API_TOTAL_TIMEOUT_S)",
}


def timeout_error(services: Services, reason: str) -> UpstreamTimeout:
    s = services.settings
    seconds = {"first_token": s.first_token_timeout_s, "idle": s.idle_timeout_s, "total": s.total_timeout_s}[
        reason
    ]
    return UpstreamTimeout(TIMEOUT_MESSAGES[reason].format(s=seconds), code=f"upstream_timeout_{reason}")


async def send_error(send: Any, exc: ApiError) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": exc.body_bytes(), "more_body": False})


def sse_error_event(exc: ApiError) -> bytes:
    return b"data: " + dumps(exc.body()) + b"\n\n"


async def _noop() -> None:
    return None


def record_usage(services: Services, info: RequestInfo, usage: Usage | None) -> None:
    if usage is None:
        return
    if usage.prompt_tokens:
        services.metrics.prompt_tokens.inc(usage.prompt_tokens)
    if usage.completion_tokens:
        services.metrics.completion_tokens.inc(usage.completion_tokens)
    info.log["prompt_tokens"] = usage.prompt_tokens
    info.log["completion_tokens"] = usage.completion_tokens


class ProxyStream(Response):
    """ASGI response for `stream: true` on /v1/chat/completions. The caller has admitted it
    (a concurrency slot is held); this object releases the slot when the stream ends."""

    def __init__(
        self, services: Services, info: RequestInfo, body: bytes, forward_usage: bool, route: str
    ) -> None:
        # Not Response.__init__: the body streams from __call__; FastAPI only needs these two.
        self.background = None
        self.status_code = 200
        self.services = services
        self.info = info
        self.body = body
        self.forward_usage = forward_usage
        self.route = route

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        services, info = self.services, self.info
        settings, metrics = services.settings, services.metrics
        loop_time = asyncio.get_running_loop().time
        raw_send = info.raw_send or send
        guard = StreamGuard(
            settings.first_token_timeout_s,
            settings.idle_timeout_s,
            settings.total_timeout_s,
            watch=http_disconnect(receive),
        )
        response: httpx.Response | None = None
        started = False
        client_gone = False
        usage: Usage | None = None
        tail_error: bytes | None = None
        early_error: ApiError | None = None
        try:
            try:
                response = await services.upstream.open_stream(self.body, info.request_id)
            except UpstreamError as exc:
                early_error = exc
                raise
            pending = b""
            first = True
            saw_done = False
            async for chunk in body_chunks(response):
                guard.last = loop_time()
                if pending:
                    chunk = pending + chunk
                    pending = b""
                if not chunk.endswith(b"\n\n"):
                    # Forward whole events only, so a usage chunk is never split across sends.
                    cut = chunk.rfind(b"\n\n")
                    pending = chunk[cut + 2 :] if cut >= 0 else chunk
                    chunk = chunk[: cut + 2] if cut >= 0 else b""
                    if not chunk:
                        continue
                if first:
                    # Headers go out with the first bytes: until then a failure (first-token
                    # timeout) can still be a plain HTTP error that every client understands.
                    first = False
                    metrics.ttft.labels(self.route).observe(time.perf_counter() - info.started)
                    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                    started = True
                if USAGE_MARK in chunk:
                    found, stripped = extract_usage(chunk)
                    if found is not None:
                        usage = found
                        if not self.forward_usage:
                            chunk = stripped
                if chunk.endswith(DONE_TAIL):
                    saw_done = True
                if chunk:
                    await raw_send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not saw_done:
                raise StreamInterrupted("vLLM closed the stream before it finished (no [DONE])")
            info.log["outcome"] = "ok"
        except asyncio.CancelledError:
            reason = guard.absorb()
            if reason is None:
                raise
            if reason == "disconnect":
                client_gone = True
                info.log["outcome"] = "cancelled"
                metrics.cancellations.labels(self.route).inc()
            else:
                exc = timeout_error(services, reason)
                metrics.upstream_errors.labels(exc.kind).inc()
                info.log["outcome"] = exc.code
                if started:
                    tail_error = sse_error_event(exc)
                else:
                    early_error = exc
        except (httpx.HTTPError, StreamInterrupted) as exc:
            error = (
                exc
                if isinstance(exc, StreamInterrupted)
                else StreamInterrupted(
                    f"the stream from vLLM broke after it started ({type(exc).__name__}); "
                    "the answer is incomplete"
                )
            )
            metrics.upstream_errors.labels(error.kind).inc()
            info.log["outcome"] = error.code
            if started:
                tail_error = sse_error_event(error)
            else:
                early_error = error
        except UpstreamError as exc:
            if exc is not early_error:
                raise
            info.log["outcome"] = exc.code
        except OSError:
            # The client vanished while we were writing to it.
            client_gone = True
            info.log["outcome"] = "cancelled"
            metrics.cancellations.labels(self.route).inc()
        finally:
            guard.close()
            services.limiter.release()
            metrics.inflight.dec()
            record_usage(services, info, usage)
            if response is not None:
                # Closing before the end drops the connection: that is what makes vLLM abort.
                await guard.close_then(response.aclose)
            elif guard.reason is not None:
                await guard.close_then(_noop)
        # Sent only now, with the guard closed, so its watcher cannot cancel these last writes.
        if early_error is not None:
            await send_error(send, early_error)
        elif started and not client_gone:
            try:
                if tail_error is not None:
                    await raw_send({"type": "http.response.body", "body": tail_error, "more_body": True})
                await raw_send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
