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
from chat_api.history.migrate import migrate
from chat_api.history.store import Limits, Store, describe_url
from chat_api.limits import ConcurrencyLimiter, RateLimiter
from chat_api.metrics import UNMATCHED_ROUTE, Metrics
from chat_api.quotas import Quotas
from chat_api.routes import chat, conversations, health, keys, openai
from chat_api.signin import SignIn
from chat_api.signin import install as install_signin
from chat_api.store import PersonKeys, connect
from chat_api.upstream import Upstream, make_client
from chat_api.vllm_pods import from_settings as vllm_pods_from_settings

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
    store = connect(settings) if settings.store_enabled else None
    return Services(
        settings=settings,
        metrics=metrics,
        upstream=None,  # type: ignore[arg-type] - set by the lifespan, which owns the client
        limiter=ConcurrencyLimiter(
            settings.max_concurrent_streams, settings.queue_size, settings.queue_timeout_s
        ),
        quotas=Quotas(settings),
        history_rate=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        keys=ApiKeys(settings.api_keys_dir),
        person_keys=PersonKeys(store) if store is not None else None,
        store=store,
        contract=build_contract(settings),
        signin=SignIn(settings) if settings.signin_enabled else None,
    )


def open_history(settings: Settings) -> Store:
    return Store(
        settings.database_url,
        Limits(
            max_conversations=settings.history_max_conversations,
            max_conversation_bytes=settings.history_max_conversation_bytes,
            max_total_bytes=settings.history_max_bytes,
        ),
        pool_size=settings.database_pool_size,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics(stream_routes=(openai.CHAT_ROUTE, chat.SSE_ROUTE))
    services = build_services(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        history = open_history(settings) if settings.database_url else None
        try:
            if history is not None and settings.database_migrate == "startup":
                await migrate(history.engine)
        except Exception as exc:
            await history.close()
            # The URL may carry a password: log it masked; the cause names host or file.
            raise RuntimeError(
                f"cannot open the conversation database {describe_url(settings.database_url)}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        services.history = history
        client = make_client(settings)
        pods = vllm_pods_from_settings(
            settings.vllm_pod_selector,
            settings.kubernetes_api_url,
            settings.kubernetes_account_dir,
            timeout_s=min(settings.connect_timeout_s, 2.0),
        )
        services.upstream = Upstream(settings, client, metrics, pods)
        log.info(
            "chat-api started",
            extra={
                "upstream": settings.upstream_url,
                "auth": services.keys.enabled,
                "signin": settings.oidc_issuer_url or "off",
                # Never the URL: it may hold the store's password.
                "store": "redis" if settings.store_enabled else "none (limits per process)",
                "max_concurrent_streams": settings.max_concurrent_streams,
                "vllm_pod_status": pods is not None,
            },
        )
        try:
            yield
        finally:
            services.history = None
            await client.close()
            if pods is not None:
                await pods.aclose()
            if services.store is not None:
                await services.store.aclose()
            if history is not None:
                await history.close()

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
    # openai's and chat's routes are RequestRoutes (routes.common): give these two no
    # `dependencies=`, since nothing would run them.
    app.include_router(openai.router)
    app.include_router(chat.router)
    app.include_router(keys.router)
    app.include_router(health.router)
    app.include_router(conversations.router)
    install_error_handlers(app, metrics)
    install_signin(app, services.signin)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id", "retry-after", "content-disposition"],
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
