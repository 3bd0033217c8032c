"""Requests per second per caller, with the ``limits`` library's moving window, in memory.

The window lives in this process: with several processes each one counts on
its own, so the cap is per process.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from stockd.domain.errors import RateLimited


class RateLimiter:
    def __init__(self, requests_per_second: int) -> None:
        self._item = RateLimitItemPerSecond(requests_per_second)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, identity: str) -> None:
        """Count one request of ``identity``; ``RateLimited`` if it is one too many."""
        if await self._limiter.hit(self._item, identity):
            return
        stats = await self._limiter.get_window_stats(self._item, identity)
        retry_after_seconds = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"more than {self._item.amount} requests per second; retry in {retry_after_seconds} s",
            retry_after_seconds,
        )
