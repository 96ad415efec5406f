"""Admission control: bounded concurrency with a short FIFO queue, per-key token buckets."""

from __future__ import annotations

import asyncio

import pytest
from chat_api.errors import Rejected
from chat_api.limits import ConcurrencyLimiter, RateLimiter

pytestmark = pytest.mark.unit


async def test_requests_beyond_the_limit_and_queue_are_rejected_with_retry_after():
    limiter = ConcurrencyLimiter(limit=1, queue_size=1, queue_timeout_s=5)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.queued == 1
    with pytest.raises(Rejected) as err:
        await limiter.acquire()
    assert err.value.status == 429 and err.value.reason == "concurrency"
    assert int(err.value.headers["Retry-After"]) >= 1
    limiter.release()
    await asyncio.wait_for(waiter, 1)
    assert limiter.active == 1 and limiter.queued == 0
    limiter.release()
    assert limiter.active == 0


async def test_a_queued_request_gives_up_after_the_queue_timeout():
    limiter = ConcurrencyLimiter(limit=1, queue_size=4, queue_timeout_s=0.05)
    await limiter.acquire()
    with pytest.raises(Rejected):
        await limiter.acquire()
    assert limiter.queued == 0
    limiter.release()
    assert limiter.active == 0


async def test_a_cancelled_waiter_does_not_leak_its_slot():
    limiter = ConcurrencyLimiter(limit=1, queue_size=4, queue_timeout_s=5)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.active == 0 and limiter.queued == 0


async def test_slots_go_to_waiters_in_arrival_order():
    limiter = ConcurrencyLimiter(limit=1, queue_size=4, queue_timeout_s=5)
    await limiter.acquire()
    order = []

    async def take(name):
        await limiter.acquire()
        order.append(name)

    tasks = [asyncio.create_task(take(n)) for n in "abc"]
    await asyncio.sleep(0)
    for _ in "abc":
        limiter.release()
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]


def test_rate_limit_allows_a_burst_then_refuses_with_the_wait_until_the_next_token():
    rate = RateLimiter(per_minute=60, burst=2)
    rate.check("k", now=0.0)
    rate.check("k", now=0.0)
    with pytest.raises(Rejected) as err:
        rate.check("k", now=0.0)
    assert err.value.reason == "rate_limit" and err.value.headers["Retry-After"] == "1"
    assert "60 requests per minute" in err.value.message
    rate.check("k", now=1.0)  # one token back after a second


def test_rate_limits_are_per_identity_and_off_at_zero():
    rate = RateLimiter(per_minute=60, burst=1)
    rate.check("a", now=0.0)
    rate.check("b", now=0.0)
    off = RateLimiter(per_minute=0, burst=1)
    for _ in range(100):
        off.check("a")


def test_rate_limiter_memory_is_bounded():
    rate = RateLimiter(per_minute=60, burst=1, max_keys=10)
    for i in range(100):
        rate.check(f"k{i}", now=0.0)
    assert len(rate._buckets) == 10


async def test_without_a_store_token_budgets_count_per_process_and_name_their_setting():
    from chat_api.config import Settings
    from chat_api.quotas import Quotas

    quotas = Quotas(Settings(token_budget_per_day=100, rate_limit_per_minute=60, rate_limit_burst=5))
    assert not quotas.shared and quotas.local_rate is not None  # the in-process bucket, with burst
    charged = await quotas.admit_tokens("p", 10)
    await quotas.settle_tokens("p", charged, 95)  # vLLM's usage: 95 tokens in all
    with pytest.raises(Rejected) as err:
        await quotas.admit_tokens("p", 10)
    assert err.value.reason == "token_budget" and err.value.code == "token_budget_exceeded"
    assert "100 tokens per day per person (CHAT_API_TOKEN_BUDGET_PER_DAY); 5 left" in err.value.message
    assert int(err.value.headers["Retry-After"]) > 3600
    await quotas.admit_tokens("q", 10)  # another principal has their own budget


def test_the_prompt_estimate_counts_characters_and_messages():
    from chat_api.quotas import estimate_prompt_tokens

    assert estimate_prompt_tokens([{"role": "user", "content": "x" * 400}]) == 104
    assert estimate_prompt_tokens([{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]) == 5
