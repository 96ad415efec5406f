"""The stream guard: first-token, idle and total timeouts, and disconnects, cancel the serving task."""

from __future__ import annotations

import asyncio

import pytest
from chat_api.guard import StreamGuard

pytestmark = pytest.mark.unit


async def _serve(guard_args, feed_every: float | None, watch=None) -> tuple[str | None, float]:
    loop = asyncio.get_running_loop()
    guard = StreamGuard(*guard_args, watch=watch)
    started = loop.time()
    try:
        while True:
            await asyncio.sleep(feed_every if feed_every is not None else 10)
            guard.last = loop.time()
    except asyncio.CancelledError:
        reason = guard.absorb()
        if reason is None:
            raise
        return reason, loop.time() - started
    finally:
        guard.close()


async def test_no_first_token_trips_first_token():
    reason, took = await _serve((0.05, 1.0, 5.0), None)
    assert reason == "first_token" and took < 0.5


async def test_a_gap_after_the_first_chunk_trips_idle_in_time():
    loop = asyncio.get_running_loop()
    guard = StreamGuard(5.0, 0.05, 5.0)
    started = loop.time()
    try:
        guard.last = loop.time()  # one chunk, then silence
        await asyncio.sleep(2)
        pytest.fail("not cancelled")
    except asyncio.CancelledError:
        assert guard.absorb() == "idle"
    finally:
        guard.close()
    assert loop.time() - started < 0.5


async def test_steady_chunks_run_until_the_total_timeout():
    reason, took = await _serve((1.0, 0.2, 0.3), 0.01)
    assert reason == "total" and 0.25 < took < 1.0


async def test_a_watcher_trip_is_reported_as_its_reason():
    async def watch(guard):
        await asyncio.sleep(0.02)
        guard.trip("disconnect")

    reason, _ = await _serve((5.0, 5.0, 5.0), 0.005, watch=watch)
    assert reason == "disconnect"


async def test_a_foreign_cancellation_is_not_absorbed():
    async def serve():
        await _serve((5.0, 5.0, 5.0), 0.01)

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_trip_after_the_last_await_does_not_abort_the_cleanup():
    closed = []

    async def aclose():
        await asyncio.sleep(0)
        closed.append(True)

    guard = StreamGuard(5.0, 5.0, 5.0)
    guard.trip("disconnect")  # lands while the task is not awaiting: the cancel is still pending
    await guard.close_then(aclose)
    assert closed == [True]
    assert guard.reason == "disconnect"
