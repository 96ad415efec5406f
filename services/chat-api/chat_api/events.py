"""The UI stream: vLLM's chunks become typed events (`delta`, `done`, `error`), for SSE and WebSocket.

`relay_events` owns an open upstream response: it emits the events through `emit`, turns a
client's Stop/disconnect or a timeout into the right ending, and always closes the upstream
response (so vLLM aborts whatever is left).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from chat_api.context import RequestInfo, Services
from chat_api.errors import StreamInterrupted
from chat_api.guard import StreamGuard
from chat_api.relay import record_usage, timeout_error
from chat_api.streamparse import ChatStreamParser, Delta, Done, Usage
from chat_api.upstream import body_chunks

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


def timings(
    info: RequestInfo, first_at: float | None, completion_tokens: int | None
) -> dict[str, float | None]:
    """ttft_ms: arrival to first text; tokens_per_s: completion tokens over the time after the first one."""
    end = time.perf_counter()
    total_ms = (end - info.started) * 1000
    ttft_ms = (first_at - info.started) * 1000 if first_at is not None else None
    rate = None
    if completion_tokens and first_at is not None:
        decode_s = end - first_at
        rate = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else None
    return {
        "ttft_ms": round(ttft_ms, 1) if ttft_ms is not None else None,
        "total_ms": round(total_ms, 1),
        "tokens_per_s": round(rate, 2) if rate is not None else None,
    }


async def relay_events(
    services: Services,
    info: RequestInfo,
    response: httpx.Response,
    guard: StreamGuard,
    emit: Emit,
    route: str,
) -> str:
    """Pump one upstream stream into events; returns the outcome for the access log."""
    metrics = services.metrics
    loop_time = asyncio.get_running_loop().time
    parser = ChatStreamParser()
    first_at: float | None = None
    deltas = 0
    outcome = "ok"
    try:
        try:
            async for chunk in body_chunks(response):
                guard.last = loop_time()
                for event in parser.feed(chunk):
                    if type(event) is Delta:
                        if first_at is None:
                            first_at = time.perf_counter()
                            metrics.ttft.labels(route).observe(first_at - info.started)
                        deltas += 1
                        await emit("delta", {"content": event.content})
                    elif type(event) is Done:
                        record_usage(services, info, event.usage)
                        await emit(
                            "done",
                            {
                                "finish_reason": event.finish_reason or "stop",
                                "usage": event.usage.as_dict(),
                                "timings": timings(info, first_at, event.usage.completion_tokens),
                            },
                        )
                        return outcome
                    else:
                        metrics.upstream_errors.labels("protocol").inc()
                        await emit("error", {"code": "upstream_error", "message": event.message})
                        return "upstream_error"
            raise StreamInterrupted("vLLM closed the stream before it finished; the answer is incomplete")
        except asyncio.CancelledError:
            reason = guard.absorb()
            if reason is None:
                raise
            if reason in ("disconnect", "stop"):
                metrics.cancellations.labels(route).inc()
                if reason == "stop":
                    # vLLM sends no usage for an aborted request: count what reached the client.
                    usage = Usage(None, deltas)
                    await emit(
                        "done",
                        {
                            "finish_reason": "abort",
                            "usage": usage.as_dict(),
                            "timings": timings(info, first_at, deltas),
                        },
                    )
                return "cancelled"
            exc = timeout_error(services, reason)
            metrics.upstream_errors.labels(exc.kind).inc()
            await emit("error", exc.event())
            return exc.code
        except (httpx.HTTPError, StreamInterrupted) as exc:
            error = (
                exc
                if isinstance(exc, StreamInterrupted)
                else StreamInterrupted(
                    f"the stream from vLLM broke ({type(exc).__name__}); the answer is incomplete"
                )
            )
            metrics.upstream_errors.labels(error.kind).inc()
            await emit("error", error.event())
            return error.code
    finally:
        await guard.close_then(response.aclose)
