"""Bounded retries with exponential backoff and full jitter, for network operations only."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] so parallel nodes spread out."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


def retry(
    operation: Callable[[], T],
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `operation` up to policy.attempts times; re-raise the last error when all fail."""
    if policy.attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {policy.attempts}")
    for attempt in range(policy.attempts):
        try:
            return operation()
        except retry_on as error:
            if attempt == policy.attempts - 1:
                raise
            wait = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt + 1, error, wait)
            sleep(wait)
    raise AssertionError("unreachable")
