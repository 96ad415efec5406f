"""Stops the task serving a request when its client leaves or a streaming timeout passes.

Timeouts that fit streaming: time to first token (from arrival to the first upstream body
bytes), idle gap between chunks, and total. They cost nothing per chunk: the hot loop only
stores the time of the last chunk in `last`, and one timer per stream wakes up at the nearest
deadline and re-arms itself lazily.

A trip cancels the serving task (like `asyncio.timeout`); the handler catches CancelledError,
asks `absorb()` whether it was ours (then the task is un-cancelled and the reason returned),
closes the upstream response (which makes vLLM abort the request) and reports the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

TIMEOUT_REASONS = ("first_token", "idle", "total")


class StreamGuard:
    __slots__ = (
        "_first_deadline",
        "_handle",
        "_loop",
        "_task",
        "_total_deadline",
        "_watcher",
        "absorbed",
        "closed",
        "idle_s",
        "last",
        "reason",
        "started",
    )

    def __init__(
        self,
        first_token_s: float,
        idle_s: float,
        total_s: float,
        watch: Callable[[StreamGuard], Awaitable[None]] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "StreamGuard needs a running task"
        self._task = task
        self.started = self._loop.time()
        self._first_deadline = self.started + first_token_s
        self._total_deadline = self.started + total_s
        self.idle_s = idle_s
        # Set by the reader at each upstream chunk (loop.time()); None until the first one.
        self.last: float | None = None
        self.reason: str | None = None
        self.closed = False
        self.absorbed = False
        self._handle = self._loop.call_at(
            min(self._first_deadline, self.started + idle_s, self._total_deadline), self._on_timer
        )
        # The watcher notices the client leaving (or a Stop frame) while the task waits on vLLM.
        self._watcher = self._loop.create_task(watch(self)) if watch is not None else None

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = self._loop.time()
        if now >= self._total_deadline:
            self.trip("total")
            return
        if self.last is None:
            if now >= self._first_deadline:
                self.trip("first_token")
                return
            # Wake up again within one idle period, so an idle gap right after the first chunk
            # is caught in time, not only at the first-token deadline.
            due = min(self._first_deadline, now + self.idle_s)
        else:
            due = self.last + self.idle_s
            if now >= due:
                self.trip("idle")
                return
        self._handle = self._loop.call_at(min(due, self._total_deadline), self._on_timer)

    def trip(self, reason: str) -> None:
        """Cancel the serving task for `reason` (disconnect, stop, first_token, idle, total)."""
        if self.closed or self.reason is not None:
            return
        self.reason = reason
        self._task.cancel()

    def absorb(self) -> str | None:
        """In an `except CancelledError`: our reason (cancellation consumed) or None (re-raise it)."""
        if self.reason is None:
            return None
        if not self.absorbed:
            self.absorbed = True
            self._task.uncancel()
        return self.reason

    async def close_then(self, aclose: Callable[[], Awaitable[None]]) -> None:
        """Close the guard, then await `aclose()` even if our own trip's cancellation is still
        pending (a trip that landed after the last await of the stream would otherwise abort
        the cleanup and leak the concurrency slot)."""
        self.close()
        try:
            await aclose()
        except asyncio.CancelledError:
            if self.reason is None or self.absorbed:
                raise  # not ours, or ours was already consumed: a real cancellation
            self.absorb()
            await aclose()

    def close(self) -> None:
        self.closed = True
        self._handle.cancel()
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


def http_disconnect(
    receive: Callable[[], Awaitable[dict[str, Any]]],
) -> Callable[[StreamGuard], Awaitable[None]]:
    """A watcher for an HTTP request whose body was already read: trips on `http.disconnect`."""

    async def watch(guard: StreamGuard) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                guard.trip("disconnect")
                return

    return watch
