"""The only module that talks to vLLM. Routes call it; it calls httpx; nothing else does.

Retries (bounded, exponential backoff with jitter) happen only here and only before any byte
of the answer exists, so a client never sees a half answer followed by a repeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from chat_api.config import Settings
from chat_api.errors import (
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_http_error,
)
from chat_api.metrics import Metrics
from chat_api.netstream import ConnectionSlots, raw_body

log = logging.getLogger("chat_api.upstream")

CHAT_PATH = "/v1/chat/completions"
JSON_HEADERS = {"content-type": "application/json", "accept": "text/event-stream, application/json"}
# Statuses worth one more try before the first byte: vLLM restarting or momentarily overloaded.
RETRY_STATUSES = frozenset({502, 503, 504})
# Errors on a request whose bytes vLLM did not act on (refused, stale pooled connection).
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


def make_limits(settings: Settings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
        # Under vLLM's own idle keep-alive (uvicorn's 5 s, VLLM_HTTP_TIMEOUT_KEEP_ALIVE), so chat-api
        # drops an idle connection before vLLM does, not while a request is being written to it.
        keepalive_expiry=4.0,
    )


def make_timeout(settings: Settings) -> httpx.Timeout:
    # The read timeout is only a backstop: the StreamGuard enforces first-token/idle/total precisely.
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=max(settings.first_token_timeout_s, settings.idle_timeout_s, settings.total_timeout_s) + 5,
        write=settings.connect_timeout_s * 2,
        pool=settings.queue_timeout_s + settings.connect_timeout_s,
    )


def make_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """httpx's transport to vLLM: one-connection slots over the lean backend for plain HTTP,
    httpx's default for TLS."""
    limits = make_limits(settings)
    if settings.upstream_url.startswith("http://"):
        return ConnectionSlots(limits)
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)


def make_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The app's single pooled client (owned by the lifespan), on `transport` when given."""
    return httpx.AsyncClient(
        # The transport carries the connection limits; a client given one ignores its own.
        transport=transport or make_transport(settings),
        base_url=settings.upstream_url,
        timeout=make_timeout(settings),
        trust_env=False,
        follow_redirects=False,
    )


@dataclass
class Readiness:
    status: str  # ready | loading | unavailable
    detail: str = ""
    models: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class Upstream:
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        # The streaming POST goes to the client's transport (`transport`) directly, with a request built once
        # per call from a pre-parsed URL: the client layer's URL merging, cookie jar, auth and
        # redirect hooks cost about as much per request as relaying 15 tokens, and a proxy to
        # vLLM uses none of them. Timeouts travel in the request, as the client would put them.
        self.transport = transport
        self.chat_url = httpx.URL(settings.upstream_url.rstrip("/") + CHAT_PATH)
        self.request_extensions = {"timeout": make_timeout(settings).as_dict()}
        self._readiness: Readiness | None = None
        self._readiness_at = 0.0
        self._readiness_lock = asyncio.Lock()

    def _error(self, exc: UpstreamError) -> UpstreamError:
        self.metrics.upstream_errors.labels(exc.kind).inc()
        return exc

    def _backoff(self, attempt: int) -> float:
        base = self.settings.retry_backoff_s * (2**attempt)
        return min(self.settings.retry_backoff_max_s, base) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter

    def _transport_error(self, exc: httpx.HTTPError) -> UpstreamError:
        url = self.settings.upstream_url
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return UpstreamTimeout(f"vLLM at {url} did not answer in time ({type(exc).__name__})")
        return UpstreamUnavailable(
            f"vLLM at {url} is unavailable ({type(exc).__name__}: {exc or 'connection failed'}); "
            "check that the model server runs and CHAT_API_UPSTREAM_URL points at it"
        )

    async def open_stream(self, body: bytes, request_id: str) -> httpx.Response:
        """POST a streaming chat completion; return the open 200 response (headers read, body not)."""
        headers = {**JSON_HEADERS, "x-request-id": request_id}
        attempt = 0
        while True:
            try:
                response = await self._send_streaming(body, headers)
            except RETRY_ERRORS as exc:
                if attempt < self.settings.retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._error(self._transport_error(exc)) from None
            except httpx.HTTPError as exc:
                raise self._error(self._transport_error(exc)) from None
            if response.status_code == 200:
                return response
            error_body = await response.aread()
            await response.aclose()
            if response.status_code in RETRY_STATUSES and attempt < self.settings.retries:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            raise self._error(upstream_http_error(response.status_code, error_body))

    async def _send_streaming(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request = httpx.Request(
            "POST", self.chat_url, content=body, headers=headers, extensions=self.request_extensions
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    async def complete(self, body: bytes, request_id: str) -> tuple[int, bytes, str]:
        """A non-streaming call: (status, body, content type); errors raised as UpstreamError."""
        headers = {**JSON_HEADERS, "x-request-id": request_id}
        attempt = 0
        while True:
            try:
                response = await self.client.post(CHAT_PATH, content=body, headers=headers)
            except RETRY_ERRORS as exc:
                # Only a refused/failed connection is safe to repeat; a dropped answer is not.
                if (
                    isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                    and attempt < self.settings.retries
                ):
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._error(self._transport_error(exc)) from None
            except httpx.HTTPError as exc:
                raise self._error(self._transport_error(exc)) from None
            if response.status_code == 200:
                return 200, response.content, response.headers.get("content-type", "application/json")
            if response.status_code in RETRY_STATUSES and attempt < self.settings.retries:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            raise self._error(upstream_http_error(response.status_code, response.content))

    async def list_models(self) -> dict[str, Any]:
        try:
            response = await self.client.get("/v1/models", timeout=self.settings.connect_timeout_s * 2)
        except httpx.HTTPError as exc:
            raise self._error(self._transport_error(exc)) from None
        if response.status_code != 200:
            raise self._error(upstream_http_error(response.status_code, response.content))
        try:
            data = response.json()
        except ValueError:
            raise self._error(
                UpstreamError("vLLM answered /v1/models with something that is not JSON")
            ) from None
        if self.settings.allowed_models and isinstance(data.get("data"), list):
            data["data"] = [m for m in data["data"] if m.get("id") in self.settings.allowed_models]
        return data

    async def readiness(self) -> Readiness:
        """vLLM answers /health and lists the model; cached briefly so probes do not load vLLM."""
        now = time.monotonic()
        if self._readiness is not None and now - self._readiness_at < self.settings.readiness_cache_s:
            return self._readiness
        async with self._readiness_lock:
            if (
                self._readiness is not None
                and time.monotonic() - self._readiness_at < self.settings.readiness_cache_s
            ):
                return self._readiness
            self._readiness = await self._check_readiness()
            self._readiness_at = time.monotonic()
            return self._readiness

    async def _check_readiness(self) -> Readiness:
        url = self.settings.upstream_url
        timeout = min(self.settings.connect_timeout_s, 2.0)
        try:
            health = await self.client.get("/health", timeout=timeout)
        except httpx.HTTPError as exc:
            return Readiness("unavailable", f"vLLM at {url} does not answer ({type(exc).__name__})")
        if health.status_code != 200:
            return Readiness(
                "loading", f"vLLM at {url} answers /health with {health.status_code}: still loading"
            )
        try:
            listed = await self.client.get("/v1/models", timeout=timeout)
            models = [m["id"] for m in listed.json().get("data", [])] if listed.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
            models = []
        wanted = self.settings.default_model
        if not models:
            return Readiness("loading", f"vLLM at {url} is up but lists no model yet")
        if wanted and wanted not in models:
            return Readiness(
                "loading",
                f"vLLM at {url} does not list model {wanted!r} (it lists {', '.join(models)})",
                models,
            )
        return Readiness("ready", "", models)

    async def default_model(self) -> str | None:
        """The configured default, else the first model vLLM lists (for UI requests without one)."""
        if self.settings.default_model:
            return self.settings.default_model
        state = await self.readiness()
        return state.models[0] if state.models else None


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives: the raw fast path when possible, else httpx's own.

    Callers read it under a StreamGuard (the timeouts); httpx's read timeout is only a backstop
    on the fallback path."""
    fast = raw_body(response)
    if fast is not None:
        return fast.__aiter__()
    return response.aiter_raw()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = [
    "CHAT_PATH",
    "Readiness",
    "Upstream",
    "UpstreamError",
    "UpstreamHTTPError",
    "dumps",
    "make_client",
    "make_transport",
]
