"""The only module that talks to vLLM, through aiohttp's public client API (one pooled session).

aiohttp rather than httpx: relaying a 64-token stream cost chat-api 2.5 times less CPU through
aiohttp (its C llhttp parser does the chunked decoding; httpx runs h11's pure-Python parser and an
anyio cancel scope per socket read), and it is what vLLM production-stack's router uses
(docs/benchmarks.md has the figures). Only documented API is used: `ClientSession.post`,
`response.content.iter_any()`, `release()` / `close()`.

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
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

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
# Errors on a request whose bytes vLLM did not act on: refused or timed-out connect, a pooled
# connection vLLM had closed (ServerDisconnectedError), a reset (ClientOSError).
RETRY_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError)  # fmt: skip
# Everything aiohttp raises for a failed exchange (its timeouts are TimeoutError subclasses too).
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)
ERROR_BODY_BYTES = 64 * 1024


def make_client(settings: Settings) -> aiohttp.ClientSession:
    """The app's single pooled session (owned by the lifespan; needs the running loop)."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections,
        # Under vLLM's own idle keep-alive (uvicorn's 5 s), so chat-api drops an idle connection
        # before vLLM does, not while a request is being written to it.
        keepalive_timeout=4.0,
    )
    # No read timeout here: every chat read runs under a StreamGuard (first-token, idle and total
    # timeouts, one timer per stream), and the small GETs pass a total. aiohttp's sock_read would
    # re-arm a timer on every chunk of every stream for nothing. `connect` covers waiting for a
    # pooled connection.
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.queue_timeout_s + settings.connect_timeout_s,
        sock_connect=settings.connect_timeout_s,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        auto_decompress=False,
        headers={"accept-encoding": "identity"},
        # vLLM's JSON and SSE go through as bytes; no cookies are kept between users' requests.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def body_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as it arrives (chunked framing already removed by aiohttp's parser)."""
    return response.content.iter_any()


def close_response(response: aiohttp.ClientResponse) -> None:
    """A complete answer gives its connection back to the pool; an unfinished one drops the
    connection, which is what makes vLLM abort the generation."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of a response body (an error body is for a message, not for memory)."""
    out = bytearray()
    async for chunk in body_chunks(response):
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


class Upstream:
    def __init__(
        self,
        settings: Settings,
        client: aiohttp.ClientSession,
        metrics: Metrics,
        pods: VllmPods | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.base_url = settings.upstream_url.rstrip("/")
        # Parsed once: aiohttp takes a URL object as it is, where a string is parsed per request.
        self.chat_url = URL(self.base_url + CHAT_PATH)
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

    def _transport_error(self, exc: BaseException, request_id: str) -> UpstreamError:
        log.warning(
            "vLLM request failed",
            extra={"request_id": request_id, "upstream": self.settings.upstream_url, "error": repr(exc)},
        )
        if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout("the model server did not answer in time; retry later")
        return UpstreamUnavailable("the model server is unavailable; retry later")

    async def open(self, body: bytes, request_id: str) -> aiohttp.ClientResponse:
        """POST a chat completion; return the open 200 response (headers read, body not). Its
        failures are counted in the metrics by the StreamSession, with every other outcome."""
        headers = {**JSON_HEADERS, "x-request-id": request_id}
        attempt = 0
        while True:
            try:
                response = await self.client.post(self.chat_url, data=body, headers=headers)
            except RETRY_ERRORS as exc:
                if attempt < self.settings.retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._transport_error(exc, request_id) from None
            except UPSTREAM_ERRORS as exc:
                raise self._transport_error(exc, request_id) from None
            self.ever_reached = True
            if response.status == 200:
                return response
            try:
                error_body = await read_capped(response, ERROR_BODY_BYTES)
            except UPSTREAM_ERRORS:
                error_body = b""
            finally:
                close_response(response)
            if response.status in RETRY_STATUSES and attempt < self.settings.retries:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status >= 500:
                log.warning(
                    "vLLM answered with an error",
                    extra={
                        "request_id": request_id,
                        "upstream_status": response.status,
                        "upstream_body": error_body[:2000].decode(errors="replace"),
                    },
                )
            raise upstream_http_error(response.status, error_body)

    async def _get(self, path: str, timeout_s: float) -> tuple[int, bytes]:
        """GET a small vLLM document: (status, at most ERROR_BODY_BYTES of its body)."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.client.get(self.base_url + path, timeout=timeout) as response:
            return response.status, await read_capped(response, ERROR_BODY_BYTES)

    async def list_models(self, request_id: str) -> dict[str, Any]:
        try:
            status, body = await self._get("/v1/models", self.settings.connect_timeout_s * 2)
        except UPSTREAM_ERRORS as exc:
            raise self._error(self._transport_error(exc, request_id)) from None
        if status != 200:
            raise self._error(upstream_http_error(status, body))
        try:
            data = json.loads(body)
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
            health, _ = await self._get("/health", timeout)
        except UPSTREAM_ERRORS as exc:
            return Probe(answered=False, error=repr(exc))
        if health != 200:
            return Probe(answered=True, health_status=health)
        try:
            status, body = await self._get("/v1/models", timeout)
            models = [m["id"] for m in json.loads(body).get("data", [])] if status == 200 else []
        except (*UPSTREAM_ERRORS, ValueError, KeyError, TypeError, AttributeError):
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
