"""The UI's chat: POST /api/chat, typed SSE events (docs/interfaces.md).

Events: `delta` {content}, `done` {finish_reason, usage, timings}, `error` {code, message,
retry_after_s?}. A request refused before the stream starts gets a plain HTTP error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from chat_api.contract import upstream_body
from chat_api.routes.common import RequestRoute, admit_tokens, identify, info_of, read_json_body, services_of
from chat_api.routes.openai import BODY_FROM_CONTRACT, ERROR_RESPONSES
from chat_api.session import SessionResponse, UiEvents
from chat_api.upstream import dumps

router = APIRouter(route_class=RequestRoute)
SSE_ROUTE = "/api/chat"


@router.post(
    SSE_ROUTE,
    response_model=None,
    summary="Chat for the UI: typed events (delta, done, error) over SSE",
    responses={**ERROR_RESPONSES, 200: {"description": "text/event-stream of delta/done/error events"}},
    openapi_extra=BODY_FROM_CONTRACT,
)
async def chat_sse(request: Request) -> SessionResponse:
    services, info = services_of(request), info_of(request)
    await identify(services, request)
    contract = services.contract
    req: Any = contract.parse(contract.ui_chat, await read_json_body(request, services.settings))
    model = contract.check_model_name(req.model) or await services.upstream.default_model()
    body = upstream_body(contract, req, model, stream=True)
    info.log["model"] = model
    await admit_tokens(services, request, body["messages"])
    if services.settings.log_prompts:
        info.log["messages"] = body["messages"]
    encoder = UiEvents(info, services.settings.max_event_bytes)
    return SessionResponse(services, info, SSE_ROUTE, dumps(body), encoder)
