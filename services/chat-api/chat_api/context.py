"""What one request carries through chat-api (request id, identity, outcome) and the app's parts."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from chat_api.auth import ApiKeys
from chat_api.config import Settings
from chat_api.contract import Contract
from chat_api.history.store import Store
from chat_api.identity import Principal
from chat_api.limits import ConcurrencyLimiter, RateLimiter
from chat_api.metrics import Metrics
from chat_api.quotas import Quotas
from chat_api.signin import SignIn
from chat_api.store import PersonKeys
from chat_api.upstream import Upstream

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    """chat-api's own id for a request: in the response header, the logs and vLLM's request id.
    Never the client's: vLLM keys its requests by id, and a chosen id could collide with another's."""
    return uuid.uuid4().hex


def client_request_id(value: bytes | None) -> str | None:
    """The caller's X-Request-ID when it is sane: logged next to ours, for correlation only."""
    text = value.decode("latin-1") if value else ""
    return text if _REQUEST_ID.fullmatch(text) else None


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    identity: str = ""
    principal: Principal | None = None
    # Tokens charged to the principal's budgets at admission (settled when the answer ends).
    charged_tokens: int = 0
    # Set by handlers; the access log prints what is set.
    log: dict[str, Any] = field(default_factory=dict)


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    upstream: Upstream
    limiter: ConcurrencyLimiter
    quotas: Quotas
    keys: ApiKeys
    # Per-person API keys in the shared store; None without CHAT_API_REDIS_URL.
    person_keys: PersonKeys | None
    store: Redis | None  # the shared store's client (keys, usage); None without one
    contract: Contract
    signin: SignIn | None = None  # OpenID Connect sign-in; None: off
    draining: bool = False
    # Conversations of signed-in people; opened (and migrated) by the lifespan.
    history: Store | None = None
    # Their own per-person bucket: saving a conversation never uses up what chatting may send.
    history_rate: RateLimiter | None = None
