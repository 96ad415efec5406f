"""Admission control: a bound on concurrent upstream requests with a short queue, and per-key rates."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

from chat_api.errors import Rejected


class ConcurrencyLimiter:
    """At most `limit` holders; up to `queue_size` wait at most `queue_timeout_s`; the rest get 429.

    FIFO hand-off: a released slot goes straight to the oldest waiter, so late arrivals cannot
    overtake the queue.
    """

    def __init__(self, limit: int, queue_size: int, queue_timeout_s: float) -> None:
        self.limit = limit
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _reject(self) -> Rejected:
        return Rejected(
            f"too many concurrent requests: {self.limit} are running and {self.queue_size} waiting "
            "(CHAT_API_MAX_CONCURRENT_STREAMS / CHAT_API_QUEUE_SIZE); retry later",
            reason="concurrency",
            retry_after_s=max(1.0, self.queue_timeout_s),
        )

    async def acquire(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.queue_size or self.queue_timeout_s <= 0:
            raise self._reject()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout_s)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot arrived together with the deadline: keep it
            waiter.cancel()
            self._discard(waiter)
            raise self._reject() from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed a slot but will not use it
            else:
                waiter.cancel()
                self._discard(waiter)
            raise

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; `active` stays the same
                return
        self.active -= 1


class RateLimiter:
    """A token bucket per identity (API key name or client address); memory bounded by LRU."""

    def __init__(self, per_minute: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, identity: str, now: float | None = None) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.pop(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            self._buckets[identity] = (tokens, now)
            raise Rejected(
                f"rate limit exceeded: {self.rate * 60:g} requests per minute with bursts of "
                f"{self.burst:g} (CHAT_API_RATE_LIMIT_PER_MINUTE / CHAT_API_RATE_LIMIT_BURST); retry later",
                reason="rate_limit",
                retry_after_s=(1.0 - tokens) / self.rate,
            )
        self._buckets[identity] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
