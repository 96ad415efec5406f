"""Probes and metrics: /healthz (process alive), /readyz (vLLM ready, or what it is doing), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from chat_api.routes.common import services_of

router = APIRouter()


@router.get("/healthz", summary="200 while the process serves")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="200 when vLLM answers /health and lists the model; 503 otherwise, with what it is doing",
    responses={503: {"description": "starting (with the pod stage), loading, wrong model or down"}},
)
async def readyz(request: Request) -> JSONResponse:
    services = services_of(request)
    if services.draining:
        return JSONResponse({"status": "unavailable", "detail": "chat-api is shutting down"}, status_code=503)
    state = await services.upstream.readiness()
    # Readiness.detail (it names vLLM's address) is in the log; /readyz is proxied to the internet, so
    # it shows only fixed sentences, the pod's stage and Kubernetes' reason words (chat_api.readiness).
    return JSONResponse(state.public(), status_code=200 if state.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    m = services_of(request).metrics
    return Response(m.render(), media_type=m.content_type)
