"""Per-principal limits: requests per minute and per day, tokens per minute and per day.

Keyed by `Principal.id`, so a person's session and all their keys share one set of limits.
With a store (CHAT_API_REDIS_URL) the counters live in Redis and hold across every replica;
the counting is the `limits` library's (its Redis storage runs each check as one Lua script):
- requests per minute: sliding-window counter (no double burst at a window edge);
- requests per day, tokens per minute and per day: fixed windows that start with the first
  count in them and last 60 s / 24 h.
Without a store, requests per minute fall back to the in-process token bucket
(`limits.RateLimiter`, with CHAT_API_RATE_LIMIT_BURST) and the rest to the library's memory
storage: each replica then counts on its own (fine for `make up`, one process).

Tokens are counted twice: at admission an estimate of the prompt (its characters / 4,
`estimate_prompt_tokens`) is charged, and a request is refused when that would overrun a budget;
when the answer ends the rest is charged: vLLM's usage (prompt + completion tokens, from the
final stream chunk or the JSON answer) minus the estimate. An answer cut short without usage
(client gone, timeout) is charged one token per content chunk received, the way vLLM streams.
The overrun of one answer is allowed; the next request is refused until the window ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from chat_api.config import Settings
from chat_api.errors import InvalidRequest, Rejected
from chat_api.limits import RateLimiter
from chat_api.store import StoreUnavailable, client_options

log = logging.getLogger("chat_api.quotas")
CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A cheap upper-ish estimate of the prompt: characters / 4 plus a few per message (roles
    and the chat template); vLLM's usage corrects it when the answer ends."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    return math.ceil(chars / CHARS_PER_TOKEN) + 4 * len(messages)


def wait_text(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{math.ceil(s / 60)} min"
    return f"{math.ceil(s / 3600)} h"


@dataclass(frozen=True)
class Limit:
    item: RateLimitItem
    setting: str
    what: str  # "requests" | "tokens"
    per: str  # "minute" | "day"

    def message(self, retry_after: float, extra: str = "") -> str:
        return (
            f"{'request limit' if self.what == 'requests' else 'token budget'} reached: "
            f"{self.item.amount} {self.what} per {self.per} per person ({self.setting}){extra}; "
            f"retry in {wait_text(retry_after)}"
        )


class Quotas:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.shared = settings.store_enabled
        storage: Storage
        if settings.redis_url is not None:
            url = settings.redis_url.get_secret_value()
            storage = RedisStorage(
                "async+" + url,
                implementation="redispy",
                wrap_exceptions=True,
                **client_options(settings),
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.sliding = SlidingWindowCounterRateLimiter(storage)
        self.fixed = FixedWindowRateLimiter(storage)
        # Without a store the per-minute request rate is the in-process token bucket (with burst).
        self.local_rate = (
            None if self.shared else RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        )
        s = settings
        self.request_minute = (
            Limit(
                RateLimitItemPerMinute(max(1, int(s.rate_limit_per_minute)), namespace="llp-req"),
                "CHAT_API_RATE_LIMIT_PER_MINUTE",
                "requests",
                "minute",
            )
            if s.rate_limit_per_minute > 0
            else None
        )
        self.request_day = (
            Limit(
                RateLimitItemPerDay(s.rate_limit_per_day, namespace="llp-req"),
                "CHAT_API_RATE_LIMIT_PER_DAY",
                "requests",
                "day",
            )
            if s.rate_limit_per_day
            else None
        )
        self.token_limits = [
            Limit(item, f"CHAT_API_TOKEN_BUDGET_PER_{per.upper()}", "tokens", per)
            for amount, item_cls, per in (
                (s.token_budget_per_minute, RateLimitItemPerMinute, "minute"),
                (s.token_budget_per_day, RateLimitItemPerDay, "day"),
            )
            if amount
            for item in (item_cls(amount, namespace="llp-tok"),)
        ]

    @property
    def budgets_enabled(self) -> bool:
        return bool(self.token_limits)

    async def _retry_after(self, limiter: Any, limit: Limit, principal_id: str) -> float:
        stats = await limiter.get_window_stats(limit.item, principal_id)
        return max(1.0, stats.reset_time - self.clock())

    async def check_request(self, principal_id: str) -> None:
        """Count one request; Rejected (429) when over the per-minute or per-day request limit."""
        try:
            if self.local_rate is not None:
                self.local_rate.check(principal_id)
            elif self.request_minute is not None:
                if not await self.sliding.hit(self.request_minute.item, principal_id):
                    wait = await self._retry_after(self.sliding, self.request_minute, principal_id)
                    raise Rejected(self.request_minute.message(wait), reason="rate_limit", retry_after_s=wait)
            if self.request_day is not None and not await self.fixed.hit(self.request_day.item, principal_id):
                wait = await self._retry_after(self.fixed, self.request_day, principal_id)
                raise Rejected(self.request_day.message(wait), reason="rate_limit", retry_after_s=wait)
        except (StorageError, RedisError):
            raise StoreUnavailable() from None

    async def admit_tokens(self, principal_id: str, estimate: int) -> int:
        """Charge the prompt estimate; Rejected when a budget has less than that left. Returns
        what was charged, for `settle`."""
        if not self.token_limits:
            return 0
        estimate = max(1, estimate)
        try:
            for limit in self.token_limits:
                if estimate > limit.item.amount:
                    raise InvalidRequest(
                        f"this prompt alone (about {estimate} tokens) is over the token budget of "
                        f"{limit.item.amount} tokens per {limit.per} ({limit.setting}); shorten it",
                        code="prompt_over_token_budget",
                    )
                # test, then charge: two replicas may both pass the test by one estimate; the
                # window's count stays exact and the next request sees the overrun.
                if not await self.fixed.test(limit.item, principal_id, cost=estimate):
                    stats = await self.fixed.get_window_stats(limit.item, principal_id)
                    wait = max(1.0, stats.reset_time - self.clock())
                    left = f"; {stats.remaining} left, this prompt needs about {estimate}"
                    raise Rejected(limit.message(wait, left), reason="token_budget", retry_after_s=wait)
            for limit in self.token_limits:
                await self.fixed.hit(limit.item, principal_id, cost=estimate)
        except (StorageError, RedisError):
            raise StoreUnavailable() from None
        return estimate

    async def settle_tokens(self, principal_id: str, charged: int, used: int) -> None:
        """Charge what the answer used beyond the admission estimate (never refunded below it)."""
        extra = used - charged
        if not self.token_limits or extra <= 0:
            return
        try:
            for limit in self.token_limits:
                await self.fixed.hit(limit.item, principal_id, cost=extra)
        except (StorageError, RedisError):
            log.warning("could not charge %d tokens to the budget: the store does not answer", extra)
