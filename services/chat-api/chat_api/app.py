"""The app factory: settings -> one pooled aiohttp client session (owned by the lifespan) -> routes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chat_api import __version__
from chat_api.auth import ApiKeys
from chat_api.config import Settings
from chat_api.context import RequestInfo, Services, client_request_id, new_request_id
from chat_api.contract import build_contract
from chat_api.errors import ApiError, InvalidRequest
from chat_api.limits import ConcurrencyLimiter, RateLimiter
from chat_api.metrics import UNMATCHED_ROUTE, Metrics
from chat_api.routes import chat, health, openai
from chat_api.upstream import Upstream, make_client

access_log = logging.getLogger("chat_api.access")
log = logging.getLogger("chat_api")
UNCOUNTED_ROUTES = frozenset({"/metrics", "/healthz"})
# Query parameters that carry credentials in other APIs: refused, since URLs land in access logs.
SECRET_QUERY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token", "auth"})


class RequestMiddleware:
    """Request id, one access-log line and the request metrics, per HTTP request. Pure ASGI: it
    only rewrites `http.response.start` (to add X-Request-ID and learn the status)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        info = RequestInfo(request_id=new_request_id())
        if (given := client_request_id(client_id)) is not None:
            info.log["client_request_id"] = given
        scope["chat_api"] = info
        status = 0
        id_header = (b"x-request-id", info.request_id.encode())

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            if secret_in_query(scope["query_string"]):
                info.log["outcome"] = "secret_in_query"
                error = InvalidRequest(
                    "credentials are not accepted in the URL (URLs are logged); "
                    "send `Authorization: Bearer <key>`",
                    code="secret_in_query",
                )
                await JSONResponse(error.body(), status_code=400)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED_ROUTE
            if status == 0:
                status = 499 if info.log.get("outcome") == "cancelled" else 500
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


def secret_in_query(query: bytes) -> bool:
    if not query:
        return False
    return any(name.lower() in SECRET_QUERY_NAMES for name, _ in parse_qsl(query.decode("latin-1"), True))


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
        contract=build_contract(settings),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    services = build_services(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings)
        services.upstream = Upstream(settings, client, metrics)
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
            await client.close()

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
    app.add_middleware(RequestMiddleware, metrics=metrics)  # outermost of ours: sees CORS answers too
    app.openapi = lambda: contract_openapi(app, services)  # type: ignore[method-assign]
    return app


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def respond(request: Request, exc: ApiError) -> JSONResponse:
        info = request.scope.get("chat_api")
        if info is not None:
            info.log["outcome"] = exc.code
            if exc.status >= 500 or isinstance(exc, InvalidRequest):
                info.log["error"] = exc.message
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, InvalidRequest) and exc.status != 401:
            metrics.rejections.labels("validation").inc()
        return respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejections.labels("validation").inc()
        return respond(request, InvalidRequest("invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(
            str(exc.detail), status=exc.status_code, code="not_found" if exc.status_code == 404 else None
        )
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error.body(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        info = request.scope.get("chat_api")
        request_id = info.request_id if info is not None else "-"
        log.error(
            "unexpected error", exc_info=exc, extra={"request_id": request_id, "route": request.url.path}
        )
        return respond(request, ApiError(f"chat-api hit an unexpected error (request id {request_id})"))


def contract_openapi(app: FastAPI, services: Services) -> dict[str, Any]:
    """FastAPI's document with the request bodies of the chat routes from the contract, so the
    schema a client or fuzzer reads is the one that validates (chat_api.contract)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        contract = services.contract
        for route, model in ((openai.CHAT_ROUTE, contract.completion), (chat.SSE_ROUTE, contract.ui_chat)):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
            content = schema["paths"][route]["post"]["requestBody"]["content"]["application/json"]
            content["schema"] = {"$ref": f"#/components/schemas/{model.__name__}"}
        app.openapi_schema = schema
    return app.openapi_schema
