"""OpenAI-compatible routes: POST /v1/chat/completions (streaming and not), GET /v1/models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chat_api.contract import upstream_body
from chat_api.routes.common import RequestRoute, admit_tokens, identify, info_of, read_json_body, services_of
from chat_api.session import Buffered, Passthrough, SessionResponse
from chat_api.upstream import dumps

router = APIRouter(route_class=RequestRoute)
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
        408: "the body did not arrive in time",
        413: "request body too large",
        415: "the body is not application/json",
        429: "over the concurrency or rate limit; see Retry-After",
        502: "vLLM failed",
        503: "vLLM unavailable",
        504: "vLLM timed out",
    }.items()
}
# The request body schema is the contract's (chat_api.contract), put in by app.openapi.
BODY_FROM_CONTRACT = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}


@router.post(
    CHAT_ROUTE,
    response_model=None,
    summary="OpenAI chat completion (streaming or not), proxied to vLLM",
    responses=ERROR_RESPONSES,
    openapi_extra=BODY_FROM_CONTRACT,
)
async def chat_completions(request: Request) -> SessionResponse:
    services, info = services_of(request), info_of(request)
    await identify(services, request)
    contract = services.contract
    req: Any = contract.parse(contract.completion, await read_json_body(request, services.settings))
    model = contract.check_model_name(req.model)
    body = upstream_body(contract, req, model, req.stream)
    info.log["model"] = model
    await admit_tokens(services, request, body["messages"])
    info.log["stream"] = req.stream
    if services.settings.log_prompts:
        info.log["messages"] = body["messages"]
    if req.stream:
        forward_usage = bool(req.stream_options and req.stream_options.include_usage)
        encoder: Passthrough | Buffered = Passthrough(forward_usage, services.settings.max_event_bytes)
    else:
        encoder = Buffered(services.settings.max_response_bytes)
    return SessionResponse(services, info, CHAT_ROUTE, dumps(body), encoder)


@router.get(
    "/v1/models",
    summary="Models vLLM serves (filtered by CHAT_API_ALLOWED_MODELS)",
    responses=ERROR_RESPONSES,
)
async def list_models(request: Request) -> JSONResponse:
    services = services_of(request)
    await identify(services, request)
    return JSONResponse(await services.upstream.list_models(info_of(request).request_id))
