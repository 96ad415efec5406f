"""Probes and metrics: /healthz (process alive), /readyz (vLLM ready and lists the model), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from chat_api.routes.common import services_of

router = APIRouter()
PUBLIC_DETAIL = {"loading": "the model is loading", "unavailable": "the model server is unavailable"}


@router.get("/healthz", summary="200 while the process serves")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="200 when vLLM answers /health and lists the model; 503 loading|unavailable otherwise",
    responses={503: {"description": "vLLM loading or unavailable"}},
)
async def readyz(request: Request) -> JSONResponse:
    services = services_of(request)
    if services.draining:
        return JSONResponse({"status": "unavailable", "detail": "chat-api is shutting down"}, status_code=503)
    state = await services.upstream.readiness()
    if state.ready:
        return JSONResponse({"status": "ready", "models": state.models})
    # The detail (it names vLLM's address) is in the log; /readyz is proxied to the internet.
    return JSONResponse({"status": state.status, "detail": PUBLIC_DETAIL[state.status]}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    m = services_of(request).metrics
    return Response(m.render(), media_type=m.content_type)
