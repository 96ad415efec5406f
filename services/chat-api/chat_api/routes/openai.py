"""OpenAI-compatible routes: POST /v1/chat/completions (streaming and not), GET /v1/models."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from chat_api.errors import UpstreamError
from chat_api.guard import StreamGuard, http_disconnect
from chat_api.relay import ProxyStream, record_usage, timeout_error
from chat_api.routes.common import admit, identify, info_of, release, services_of
from chat_api.streamparse import Usage
from chat_api.upstream import dumps
from chat_api.validation import normalize_completion_request, parse_json_body

router = APIRouter()
CHAT_ROUTE = "/v1/chat/completions"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "integer", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in {
        400: "invalid request (the message names the field and the limit)",
        401: "missing or invalid API key",
        404: "model not offered",
        413: "request body too large",
        429: "over the concurrency or rate limit; see Retry-After",
        502: "vLLM failed",
        503: "vLLM unavailable",
        504: "vLLM timed out",
    }.items()
}


def completion_body_schema(max_tokens_cap: int) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": {"type": "string", "maxLength": 2000},
        },
    }
    return {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": {"type": "array", "minItems": 1, "maxItems": 16, "items": message},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": max_tokens_cap},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
            "stop": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 4},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        },
    }


@router.post(
    CHAT_ROUTE,
    response_model=None,
    summary="OpenAI chat completion (streaming or not), proxied to vLLM",
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": completion_body_schema(4096)}},
        }
    },
)
async def chat_completions(request: Request) -> Response:
    services = services_of(request)
    info = info_of(request)
    info.identity = identify(services, request.headers, request.client)
    body, stream = normalize_completion_request(
        parse_json_body(await request.body(), services.settings), services.settings
    )
    info.log["model"] = body.get("model")
    info.log["stream"] = stream
    if services.settings.log_prompts:
        info.log["messages"] = body.get("messages")
    if stream:
        options = body.get("stream_options") or {}
        forward_usage = bool(options.get("include_usage"))
        # Token counts come from vLLM's final usage chunk, so chat-api never parses the others.
        body["stream_options"] = {**options, "include_usage": True}
        await admit(services)
        return ProxyStream(services, info, dumps(body), forward_usage, CHAT_ROUTE)
    await admit(services)
    settings = services.settings
    total = settings.total_timeout_s
    guard = StreamGuard(total, total, total, watch=http_disconnect(request.receive))
    try:
        status, content, content_type = await services.upstream.complete(dumps(body), info.request_id)
    except asyncio.CancelledError:
        reason = guard.absorb()
        if reason is None:
            raise
        if reason == "disconnect":
            services.metrics.cancellations.labels(CHAT_ROUTE).inc()
            info.log["outcome"] = "cancelled"
            return Response(status_code=499)
        services.metrics.upstream_errors.labels("timeout").inc()
        raise timeout_error(services, reason) from None
    except UpstreamError:
        raise
    finally:
        guard.close()
        release(services)
    try:
        usage = json.loads(content).get("usage") or {}
        record_usage(services, info, Usage(usage.get("prompt_tokens"), usage.get("completion_tokens")))
    except (ValueError, AttributeError):
        pass
    info.log["outcome"] = "ok"
    return Response(content=content, status_code=status, media_type=content_type)


@router.get(
    "/v1/models",
    summary="Models vLLM serves (filtered by CHAT_API_ALLOWED_MODELS)",
    responses=ERROR_RESPONSES,
)
async def list_models(request: Request) -> JSONResponse:
    services = services_of(request)
    info_of(request).identity = identify(services, request.headers, request.client)
    return JSONResponse(await services.upstream.list_models())
