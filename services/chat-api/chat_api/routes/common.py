"""What every chat route does before it talks to vLLM, in this order: who is it (API key), may
it (rate), then read the body within the limits (content type, size, time). One place for all
three, before any byte of the body is parsed."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
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


def services_of(request: Any) -> Services:
    return request.app.state.services


def info_of(request: Request) -> RequestInfo:
    return request.scope["chat_api"]


def identify(services: Services, request: Request, rate: bool = True) -> Principal:
    """Authenticate and apply the per-principal rate limit; returns who the request is for."""
    try:
        name = services.keys.identify(presented_key(request.headers))
    except Unauthorized:
        services.metrics.rejections.labels("auth").inc()
        raise
    client = request.client
    principal = (
        Principal.operator_key(name) if name else Principal.anonymous(client.host if client else "unknown")
    )
    # TEST HOOK (issue 19) until personal API keys (issue 15b) land: with
    # CHAT_API_TEST_PERSON_KEYS=true, an operator key file named `person-<who>` is <who>'s own key.
    if services.settings.test_person_keys and name.startswith("person-"):
        principal = Principal(id=f"person:{name.removeprefix('person-')}", kind="person", via="key")
    info = info_of(request)
    info.identity = principal.id
    info.principal = principal
    if rate:
        try:
            services.rate.check(principal.id)
        except Rejected:
            services.metrics.rejections.labels("rate_limit").inc()
            raise
    return principal


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
