"""The app factory: settings -> one pooled httpx client (owned by the lifespan) -> routes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chat_api import __version__
from chat_api.auth import ApiKeys
from chat_api.config import Settings
from chat_api.context import RequestInfo, Services, request_id_from
from chat_api.errors import ApiError, InvalidRequest, Unauthorized
from chat_api.limits import ConcurrencyLimiter, RateLimiter
from chat_api.metrics import UNMATCHED_ROUTE, Metrics
from chat_api.routes import chat, health, openai
from chat_api.upstream import Upstream, make_client, make_transport

access_log = logging.getLogger("chat_api.access")
log = logging.getLogger("chat_api")
UNCOUNTED_ROUTES = frozenset({"/metrics", "/healthz"})


class RequestMiddleware:
    """Request id, one access-log line and the request metrics, per HTTP request.

    Pure ASGI: it rewrites only `http.response.start` (to add X-Request-ID and learn the
    status); streaming bodies go through the server's own `send` (RequestInfo.raw_send).
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
                break
        info = RequestInfo(request_id=request_id_from(request_id), raw_send=send)
        scope["chat_api"] = info
        status = 500
        id_header = (b"x-request-id", info.request_id.encode())

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED_ROUTE
            if path not in UNCOUNTED_ROUTES:
                elapsed = time.perf_counter() - info.started
                self.metrics.count_request(path, scope["method"], status)
                self.metrics.duration.labels(path).observe(elapsed)
                access_log.info(
                    "request",
                    extra={
                        "request_id": info.request_id,
                        "method": scope["method"],
                        "route": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        **({"identity": info.identity} if info.identity else {}),
                        **info.log,
                    },
                )


def build_services(settings: Settings, metrics: Metrics) -> Services:
    return Services(
        settings=settings,
        metrics=metrics,
        upstream=None,  # type: ignore[arg-type] - set by the lifespan, which owns the client
        limiter=ConcurrencyLimiter(
            settings.max_concurrent_streams, settings.queue_size, settings.queue_timeout_s
        ),
        rate=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        keys=ApiKeys(settings.api_keys_dir),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    services = build_services(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        transport = make_transport(settings)
        client = make_client(settings, transport)
        services.upstream = Upstream(settings, client, metrics, transport)
        log.info(
            "chat-api started",
            extra={
                "upstream": settings.upstream_url,
                "auth": services.keys.enabled,
                "max_concurrent_streams": settings.max_concurrent_streams,
            },
        )
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="chat-api",
        version=__version__,
        description="OpenAI-compatible proxy and UI event stream in front of vLLM (llama-platform).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # chat-api reports through its own Prometheus metrics and JSON logs. Left on, FastAPI's
        # OpenTelemetry hooks look up the global providers on every request, even unconfigured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.services = services
    app.include_router(openai.router)
    app.include_router(chat.router)
    app.include_router(health.router)
    install_error_handlers(app, metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
            max_age=600,
        )
    # Outermost, around Starlette's own error middleware, so `raw_send` is the server's send and
    # streamed chunks skip every wrapper.
    inner_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestMiddleware(inner_stack(), metrics)  # type: ignore[method-assign]
    patch_openapi(app, settings)
    return app


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def respond(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, InvalidRequest):
            metrics.rejections.labels("validation").inc()
        info = request.scope.get("chat_api")
        if info is not None:
            info.log["outcome"] = exc.code
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejections.labels("validation").inc()
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg')}")
        return respond(InvalidRequest("invalid request: " + "; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(
            str(exc.detail), status=exc.status_code, code="not_found" if exc.status_code == 404 else None
        )
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error.body(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", extra={"route": request.url.path})
        return respond(ApiError("chat-api hit an unexpected error; see its log for the request id"))


def patch_openapi(app: FastAPI, settings: Settings) -> None:
    """Advertise the configured max_tokens cap in the schema (tools and fuzzers read it)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            body = schema["paths"][openai.CHAT_ROUTE]["post"]["requestBody"]["content"]["application/json"][
                "schema"
            ]
            body["properties"]["max_tokens"]["maximum"] = settings.max_tokens_cap
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["Unauthorized", "create_app"]
