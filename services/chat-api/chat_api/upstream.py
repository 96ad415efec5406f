"""The only module that talks to vLLM, through httpx's public API (one pooled AsyncClient).

Retries (bounded, exponential backoff with jitter) happen only here and only before any byte
of the answer exists, so a client never sees a half answer followed by a repeat. Failure
details (addresses, errno, vLLM's 5xx bodies) go to the log under the request id; clients get
a generic message with that id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import httpx

from chat_api.config import Settings
from chat_api.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable, upstream_http_error
from chat_api.metrics import Metrics
from chat_api.readiness import Probe, Readiness, decide
from chat_api.vllm_pods import VllmPods

log = logging.getLogger("chat_api.upstream")

CHAT_PATH = "/v1/chat/completions"
JSON_HEADERS = {"content-type": "application/json", "accept": "text/event-stream, application/json"}
# Statuses worth one more try before the first byte: vLLM restarting or momentarily overloaded.
RETRY_STATUSES = frozenset({502, 503, 504})
# Errors on a request whose bytes vLLM did not act on (refused, stale pooled connection).
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
ERROR_BODY_BYTES = 64 * 1024


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The app's single pooled client (owned by the lifespan)."""
    limits = httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
        # Under vLLM's own idle keep-alive (uvicorn's 5 s), so chat-api drops an idle connection
        # before vLLM does, not while a request is being written to it.
        keepalive_expiry=4.0,
    )
    # httpx's read timeout bounds each socket read; the StreamGuard enforces first-token, idle
    # and total precisely, so this is only a backstop.
    read = max(settings.first_token_timeout_s, settings.idle_timeout_s) + 5
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=read,
        write=settings.connect_timeout_s * 2,
        pool=settings.queue_timeout_s + settings.connect_timeout_s,
    )
    return httpx.AsyncClient(
        base_url=settings.upstream_url,
        limits=limits,
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
        headers={"accept-encoding": "identity"},
    )


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of a response body (an error body is for a message, not for memory)."""
    out = bytearray()
    async for chunk in response.aiter_raw():
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


class Upstream:
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        metrics: Metrics,
        pods: VllmPods | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.pods = pods  # the vLLM pods' stage from the Kubernetes API (in a cluster), else None
        self.started = time.monotonic()
        # vLLM answered (any HTTP status) at least once since chat-api started: silence now means down.
        self.ever_reached = False
        self._readiness: Readiness | None = None
        self._readiness_at = 0.0
        self._readiness_lock = asyncio.Lock()

    def _error(self, exc: UpstreamError) -> UpstreamError:
        self.metrics.upstream_errors.labels(exc.kind).inc()
        return exc

    def _backoff(self, attempt: int) -> float:
        base = self.settings.retry_backoff_s * (2**attempt)
        return min(self.settings.retry_backoff_max_s, base) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter

    def _transport_error(self, exc: httpx.HTTPError, request_id: str) -> UpstreamError:
        log.warning(
            "vLLM request failed",
            extra={"request_id": request_id, "upstream": self.settings.upstream_url, "error": repr(exc)},
        )
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return UpstreamTimeout("the model server did not answer in time; retry later")
        return UpstreamUnavailable("the model server is unavailable; retry later")

    async def open(self, body: bytes, request_id: str) -> httpx.Response:
        """POST a chat completion; return the open 200 response (headers read, body not)."""
        request = self.client.build_request(
            "POST", CHAT_PATH, content=body, headers={**JSON_HEADERS, "x-request-id": request_id}
        )
        attempt = 0
        while True:
            try:
                response = await self.client.send(request, stream=True)
            except RETRY_ERRORS as exc:
                if attempt < self.settings.retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._error(self._transport_error(exc, request_id)) from None
            except httpx.HTTPError as exc:
                raise self._error(self._transport_error(exc, request_id)) from None
            self.ever_reached = True
            if response.status_code == 200:
                return response
            try:
                error_body = await read_capped(response, ERROR_BODY_BYTES)
            except httpx.HTTPError:
                error_body = b""
            finally:
                await response.aclose()
            if response.status_code in RETRY_STATUSES and attempt < self.settings.retries:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code >= 500:
                log.warning(
                    "vLLM answered with an error",
                    extra={
                        "request_id": request_id,
                        "upstream_status": response.status_code,
                        "upstream_body": error_body[:2000].decode(errors="replace"),
                    },
                )
            raise self._error(upstream_http_error(response.status_code, error_body))

    async def list_models(self, request_id: str) -> dict[str, Any]:
        try:
            response = await self.client.get("/v1/models", timeout=self.settings.connect_timeout_s * 2)
        except httpx.HTTPError as exc:
            raise self._error(self._transport_error(exc, request_id)) from None
        if response.status_code != 200:
            raise self._error(upstream_http_error(response.status_code, response.content[:ERROR_BODY_BYTES]))
        try:
            data = response.json()
            listed = data.get("data")
        except (ValueError, AttributeError):
            raise self._error(UpstreamError("the model server sent a model list that is not JSON")) from None
        if self.settings.allowed_models and isinstance(listed, list):
            data["data"] = [
                m for m in listed if isinstance(m, dict) and m.get("id") in self.settings.allowed_models
            ]
        return data

    async def readiness(self) -> Readiness:
        """vLLM answers /health and lists the model; cached briefly so probes do not load vLLM."""
        if self._fresh():
            assert self._readiness is not None
            return self._readiness
        async with self._readiness_lock:
            if not self._fresh():
                state = await self._check_readiness()
                if self._readiness is None or state.public() != self._readiness.public():
                    log.info("readiness changed", extra={"status": state.status, "detail": state.detail})
                self._readiness, self._readiness_at = state, time.monotonic()
            assert self._readiness is not None
            return self._readiness

    def _fresh(self) -> bool:
        return (
            self._readiness is not None
            and time.monotonic() - self._readiness_at < self.settings.readiness_cache_s
        )

    async def _check_readiness(self) -> Readiness:
        """Ask vLLM; when it does not answer, ask the cluster what its pod is doing (chat_api.readiness)."""
        probe = await self._probe()
        if probe.answered:
            self.ever_reached = True
        pod = await self.pods.stage() if self.pods is not None and not probe.answered else None
        return decide(
            probe,
            upstream_url=self.settings.upstream_url,
            wanted_model=self.settings.default_model,
            ever_reached=self.ever_reached,
            since_start_s=time.monotonic() - self.started,
            cold_start_timeout_s=self.settings.cold_start_timeout_s,
            pod=pod,
        )

    async def _probe(self) -> Probe:
        timeout = min(self.settings.connect_timeout_s, 2.0)
        try:
            health = await self.client.get("/health", timeout=timeout)
        except httpx.HTTPError as exc:
            return Probe(answered=False, error=repr(exc))
        if health.status_code != 200:
            return Probe(answered=True, health_status=health.status_code)
        try:
            listed = await self.client.get("/v1/models", timeout=timeout)
            models = [m["id"] for m in listed.json().get("data", [])] if listed.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
            models = []
        return Probe(answered=True, health_status=200, models=tuple(models))

    async def default_model(self) -> str | None:
        """The configured default, else the first model vLLM lists (for UI requests without one)."""
        if self.settings.default_model:
            return self.settings.default_model
        state = await self.readiness()
        return state.models[0] if state.models else None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
