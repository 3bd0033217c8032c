"""Requests per second per caller, with the ``limits`` library's moving window.

In memory by default: each process counts on its own. With the Redis engine
the window lives in that Redis (under the service's key prefix), so the cap
holds across every process serving the same data.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from stockd.domain.errors import RateLimited


class RateLimiter:
    def __init__(
        self,
        requests_per_second: int,
        storage: Storage | None = None,
        pool: aioredis.ConnectionPool | None = None,
    ) -> None:
        self._item = RateLimitItemPerSecond(requests_per_second)
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self._pool = pool

    @classmethod
    def shared_through(cls, requests_per_second: int, redis_url: str, prefix: str) -> RateLimiter:
        """One window for every process that uses this Redis and key prefix."""
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=16, timeout=10)
        storage = RedisStorage(
            redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1),
            implementation="redispy",
            key_prefix=f"{prefix}:ratelimit",
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis-py, as limits documents
        )
        return cls(requests_per_second, storage, pool)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

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
