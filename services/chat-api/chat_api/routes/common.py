"""What every chat route does before it talks to vLLM, in this order: who is it (a person's key,
an operator key or the client address), may it (request rate), then read the body within the
limits (content type, size, time), then the token budget. One place for all of them; identity
and rate come before any byte of the body is parsed."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from chat_api.auth import presented_key
from chat_api.config import Settings
from chat_api.context import RequestInfo, Services
from chat_api.errors import (
    BodyTimeout,
    InvalidRequest,
    PayloadTooLarge,
    Rejected,
    Unauthorized,
    UnsupportedMediaType,
)
from chat_api.identity import Principal
from chat_api.quotas import estimate_prompt_tokens
from chat_api.signin import SignInRequired
from chat_api.store import StoreUnavailable, count_usage, is_person_key


class RequestRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns a `Response`, and does its own
    checks in the order above (`identify`, `read_json_body`, the contract). FastAPI's handler
    would solve dependencies, read and parse the body and serialize the answer for every
    request; such an endpoint needs none of it, and skipping it takes about 0.2 ms off each chat
    request's first byte (docs/benchmarks.md). `get_route_handler` is FastAPI's documented hook
    for this ("Custom Request and APIRoute class"); FastAPI still builds the OpenAPI entry,
    matches the route and maps exceptions to the app's handlers.

    Because nothing would run them, an endpoint with parameters besides the `Request`, or with
    dependencies, is refused when the route is built. Include these routers without
    `dependencies=` for the same reason."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        parameters = list(inspect.signature(self.endpoint).parameters)
        if self.dependant.dependencies or parameters != [self.dependant.request_param_name]:
            raise TypeError(
                f"{self.path}: a RequestRoute endpoint takes the Request and nothing else (no "
                "other parameters, no dependencies: nothing would resolve them); use APIRoute for it"
            )
        return self.endpoint


def services_of(request: Any) -> Services:
    return request.app.state.services


def info_of(request: Request) -> RequestInfo:
    return request.scope["chat_api"]


async def identify(services: Services, request: Request, rate: bool = True) -> Principal:
    """Authenticate and count the request against the principal's rate limits; returns who it is for.

    A signed-in person's session first, then an API key; with sign-in on, one of the two is
    required (nobody is anonymous), with it off and no keys, the client address is who it is."""
    try:
        principal = await resolve_principal(services, request)
    except Unauthorized:
        services.metrics.rejections.labels("auth").inc()
        raise
    except StoreUnavailable:
        services.metrics.rejections.labels("store_unavailable").inc()
        raise
    info = info_of(request)
    info.identity = principal.id
    info.principal = principal
    if principal.key_name and principal.kind == "person":
        info.log["key_name"] = principal.key_name
    services.metrics.principals.labels(principal.kind, principal.via).inc()
    if rate:
        async with quota_refusals_counted(services, principal.id):
            await services.quotas.check_request(principal.id)
    return principal


@asynccontextmanager
async def quota_refusals_counted(services: Services, principal_id: str) -> AsyncIterator[None]:
    """A limit's refusal counted in the metrics and in the person's usage; a silent store in the metrics."""
    try:
        yield
    except Rejected as exc:
        services.metrics.rejections.labels(exc.reason).inc()
        await count_usage(services.store, principal_id, services.settings.usage_retention_days, refused=1)
        raise
    except StoreUnavailable:
        services.metrics.rejections.labels("store_unavailable").inc()
        raise


async def resolve_principal(services: Services, request: Request) -> Principal:
    """Who the request is for. A key that looks like a person's key (`llp_...`) is looked up in
    the shared store when there is one; any other key is an operator key from the mounted Secret
    directory."""
    signin = services.signin
    if signin is not None:
        person = signin.principal(request)  # raises SessionExpired for a session past its time
        if person is not None:
            return person
    presented = presented_key(request.headers)
    if signin is not None and not presented:
        raise SignInRequired()
    if presented and services.person_keys is not None and is_person_key(presented):
        return await services.person_keys.resolve(presented, time.time())
    name = services.keys.identify(presented)
    if name:
        return Principal.operator_key(name)
    if signin is not None:
        # Sign-in on, operator keys off: a presented key matches nothing.
        raise Unauthorized()
    client = request.client
    return Principal.anonymous(client.host if client else "unknown")


async def admit_tokens(services: Services, request: Request, messages: list[dict[str, Any]]) -> None:
    """Charge the prompt estimate to the principal's token budgets (chat_api.quotas)."""
    info = info_of(request)
    principal = info.principal
    if principal is None or not services.quotas.budgets_enabled:
        return
    async with quota_refusals_counted(services, principal.id):
        info.charged_tokens = await services.quotas.admit_tokens(
            principal.id, estimate_prompt_tokens(messages)
        )


async def read_json_body(request: Request, settings: Settings, limit: int | None = None) -> bytes:
    """The raw body, refused before it is parsed when it is not JSON, too large or too slow.

    JSON only: a `text/plain` or form POST is a "simple" cross-site request that a browser sends
    from any page without asking (no CORS preflight)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType()
    limit = limit or settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise PayloadTooLarge(f"request body is over {limit} bytes; the limit is {limit} bytes")
    except TimeoutError:
        raise BodyTimeout(
            f"the request body did not arrive within {settings.body_timeout_s:g} s (CHAT_API_BODY_TIMEOUT_S)"
        ) from None
    except ClientDisconnect:
        raise InvalidRequest("the client left before it sent the whole body") from None
    if not body:
        raise InvalidRequest("request body is empty; send a JSON object with `messages`")
    return bytes(body)
