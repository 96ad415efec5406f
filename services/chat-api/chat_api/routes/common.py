"""What every chat route does before it talks to vLLM: who is it, may it, is there room."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from chat_api.auth import presented_key
from chat_api.context import RequestInfo, Services
from chat_api.errors import Rejected, Unauthorized


def services_of(request: Any) -> Services:
    return request.app.state.services


def info_of(request: Request) -> RequestInfo:
    return request.scope["chat_api"]


def identify(
    services: Services, headers: Any, client: Any, query_key: str | None = None, rate: bool = True
) -> str:
    """Authenticate and apply the per-key rate limit; returns the identity (key name or address)."""
    try:
        name = services.keys.identify(presented_key(headers, query_key))
    except Unauthorized:
        services.metrics.rejections.labels("auth").inc()
        raise
    identity = f"key:{name}" if name else f"addr:{client.host if client else 'unknown'}"
    if not rate:
        return identity
    try:
        services.rate.check(identity)
    except Rejected:
        services.metrics.rejections.labels("rate_limit").inc()
        raise
    return identity


async def admit(services: Services) -> None:
    """Take a concurrency slot (maybe after a short queue); the caller must release it."""
    try:
        await services.limiter.acquire()
    except Rejected:
        services.metrics.rejections.labels("concurrency").inc()
        raise
    services.metrics.inflight.inc()


def release(services: Services) -> None:
    services.limiter.release()
    services.metrics.inflight.dec()
