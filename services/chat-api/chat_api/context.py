"""What one request carries through chat-api (request id, identity, outcome) and the app's parts."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chat_api.auth import ApiKeys
from chat_api.config import Settings
from chat_api.limits import ConcurrencyLimiter, RateLimiter
from chat_api.metrics import Metrics
from chat_api.upstream import Upstream

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id_from(value: str | bytes | None) -> str:
    """The caller's X-Request-ID when it is sane (it reaches vLLM and the logs), else a fresh one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    identity: str = ""
    # Set by handlers; the access log prints what is set.
    log: dict[str, Any] = field(default_factory=dict)
    raw_send: Any = None  # the server's own `send`, for body chunks that need no header rewriting


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    upstream: Upstream
    limiter: ConcurrencyLimiter
    rate: RateLimiter
    keys: ApiKeys
    draining: bool = False
