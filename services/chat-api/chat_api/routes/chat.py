"""The UI's chat: POST /api/chat (SSE) and WS /api/chat/ws, both streaming typed events.

Events (docs/interfaces.md): `delta` {content}, `done` {finish_reason, usage, timings},
`error` {code, message, retry_after_s?}. Over SSE a request refused before the stream starts
gets a plain HTTP error; over WebSocket everything is an event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chat_api.context import RequestInfo, Services, request_id_from
from chat_api.errors import ApiError, InvalidRequest, Unauthorized
from chat_api.events import relay_events
from chat_api.guard import StreamGuard, http_disconnect
from chat_api.relay import SSE_HEADERS, send_error, timeout_error
from chat_api.routes.common import admit, identify, info_of, release, services_of
from chat_api.routes.openai import ERROR_RESPONSES
from chat_api.upstream import dumps
from chat_api.validation import check_max_tokens, check_messages, check_model

log = logging.getLogger("chat_api.access")
router = APIRouter()
SSE_ROUTE = "/api/chat"
WS_ROUTE = "/api/chat/ws"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)


async def upstream_body(services: Services, req: ChatRequest) -> dict[str, Any]:
    settings = services.settings
    messages = [m.model_dump() for m in req.messages]
    check_messages(messages, settings)
    model = check_model(req.model, settings) or await services.upstream.default_model()
    body: dict[str, Any] = {
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": check_max_tokens(req.max_tokens, settings),
    }
    if model:
        body["model"] = model
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    return body


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class EventStream(Response):
    """ASGI response: the SSE flavour. A concurrency slot is held; released at the end."""

    def __init__(self, services: Services, info: RequestInfo, body: bytes) -> None:
        # Not Response.__init__: the body streams from __call__; FastAPI only needs these two.
        self.background = None
        self.status_code = 200
        self.services = services
        self.info = info
        self.body = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        services, info, settings = self.services, self.info, self.services.settings
        guard = StreamGuard(
            settings.first_token_timeout_s,
            settings.idle_timeout_s,
            settings.total_timeout_s,
            watch=http_disconnect(receive),
        )
        raw_send = info.raw_send or send
        try:
            try:
                response = await services.upstream.open_stream(self.body, info.request_id)
            except asyncio.CancelledError:
                reason = guard.absorb()
                if reason is None:
                    raise
                guard.close()
                if reason == "disconnect":
                    services.metrics.cancellations.labels(SSE_ROUTE).inc()
                    info.log["outcome"] = "cancelled"
                    return
                services.metrics.upstream_errors.labels("timeout").inc()
                await send_error(send, timeout_error(services, reason))
                return
            except ApiError as exc:
                guard.close()
                info.log["outcome"] = exc.code
                await send_error(send, exc)
                return
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            gone = False

            async def emit(event: str, data: dict[str, Any]) -> None:
                nonlocal gone
                if gone:
                    return
                try:
                    await raw_send(
                        {"type": "http.response.body", "body": sse_event(event, data), "more_body": True}
                    )
                except OSError:
                    gone = True

            info.log["outcome"] = await relay_events(services, info, response, guard, emit, SSE_ROUTE)
            if not gone and info.log["outcome"] != "cancelled":
                try:
                    await raw_send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    pass
        finally:
            guard.close()
            release(services)


@router.post(
    SSE_ROUTE,
    response_model=None,
    summary="Chat for the UI: typed events (delta, done, error) over SSE",
    responses={**ERROR_RESPONSES, 200: {"description": "text/event-stream of delta/done/error events"}},
)
async def chat_sse(request: Request, chat: ChatRequest) -> EventStream:
    services = services_of(request)
    info = info_of(request)
    info.identity = identify(services, request.headers, request.client)
    body = await upstream_body(services, chat)
    info.log["model"] = body.get("model")
    if services.settings.log_prompts:
        info.log["messages"] = body["messages"]
    await admit(services)
    return EventStream(services, info, dumps(body))


async def ws_send(ws: WebSocket, event: str, data: dict[str, Any]) -> None:
    await ws.send_text(json.dumps({"event": event, "data": data}, ensure_ascii=False))


@router.websocket(WS_ROUTE)
async def chat_ws(ws: WebSocket) -> None:
    services = services_of(ws)
    metrics = services.metrics
    await ws.accept()
    try:
        identity = identify(services, ws.headers, ws.client, ws.query_params.get("api_key"), rate=False)
    except ApiError as exc:
        metrics.count_request(WS_ROUTE, "WS", exc.status)
        await ws_send(ws, "error", exc.event())
        await ws.close(code=1008, reason="authentication failed")
        return
    try:
        while True:
            raw = await ws.receive_text()
            await serve_ws_request(ws, services, identity, raw)
    except WebSocketDisconnect:
        return


async def serve_ws_request(ws: WebSocket, services: Services, identity: str, raw: str) -> None:
    metrics = services.metrics
    info = RequestInfo(request_id=request_id_from(ws.headers.get("x-request-id")), identity=identity)
    try:
        frame = json.loads(raw)
        if isinstance(frame, dict) and frame.get("type") == "stop":
            return  # nothing is streaming: a late Stop is harmless
        try:
            chat = ChatRequest.model_validate(frame)
        except ValidationError as exc:
            raise InvalidRequest(describe(exc)) from None
        try:
            services.rate.check(identity)
        except ApiError:
            metrics.rejections.labels("rate_limit").inc()
            raise
        body = await upstream_body(services, chat)
        await admit(services)
    except ValueError:
        metrics.rejections.labels("validation").inc()
        metrics.count_request(WS_ROUTE, "WS", 400)
        await ws_send(ws, "error", {"code": "invalid_request", "message": "the frame is not JSON"})
        return
    except ApiError as exc:
        if isinstance(exc, InvalidRequest) and not isinstance(exc, Unauthorized):
            metrics.rejections.labels("validation").inc()
        metrics.count_request(WS_ROUTE, "WS", exc.status)
        await ws_send(ws, "error", exc.event())
        return
    settings = services.settings

    async def watch(guard: StreamGuard) -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                guard.trip("disconnect")
                return
            text = message.get("text") or ""
            try:
                if json.loads(text).get("type") == "stop":
                    guard.trip("stop")
                    return
            except (ValueError, AttributeError):
                pass

    guard = StreamGuard(
        settings.first_token_timeout_s, settings.idle_timeout_s, settings.total_timeout_s, watch=watch
    )
    outcome = "ok"
    status = 200
    try:
        try:
            response = await services.upstream.open_stream(dumps(body), info.request_id)
        except asyncio.CancelledError:
            reason = guard.absorb()
            if reason is None:
                raise
            guard.close()
            metrics.cancellations.labels(WS_ROUTE).inc()
            outcome = "cancelled"
            if reason == "stop":
                await ws_send(
                    ws,
                    "done",
                    {
                        "finish_reason": "abort",
                        "usage": {"prompt_tokens": None, "completion_tokens": 0},
                        "timings": {"ttft_ms": None, "total_ms": 0, "tokens_per_s": None},
                    },
                )
            return
        except ApiError as exc:
            guard.close()
            outcome, status = exc.code, exc.status
            await ws_send(ws, "error", exc.event())
            return

        async def emit(event: str, data: dict[str, Any]) -> None:
            await ws_send(ws, event, data)

        outcome = await relay_events(services, info, response, guard, emit, WS_ROUTE)
    finally:
        guard.close()
        release(services)
        metrics.count_request(WS_ROUTE, "WS", status)
        log.info(
            "request",
            extra={"request_id": info.request_id, "route": WS_ROUTE, "outcome": outcome, **info.log},
        )
