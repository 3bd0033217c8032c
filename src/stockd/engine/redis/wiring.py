"""Connecting the Redis engine: its two Redis clients, the engine and its persister, built in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stockd.domain.clock import Clock
from stockd.domain.events import Event
from stockd.engine.batcher import DEFAULT_MAX_BATCH
from stockd.engine.redis.engine import REDIS_TIMEOUT_SECONDS, RedisEngine
from stockd.engine.redis.keys import Keys
from stockd.store.postgres import PostgresDatabase
from stockd.store.sql_store import SqlStore
from stockd.workers.persister import Persister

REDIS_CONNECTIONS = 64
"""Batches are one call each; reads and the persister need a few more. Beyond this, requests queue."""


@dataclass(frozen=True, slots=True)
class RedisWiring:
    engine: RedisEngine
    persister: Persister
    reads: aioredis.Redis
    """The client whose calls may be repeated (reads, the persister)."""


def connect(redis_url: str, *, retrying: bool) -> aioredis.Redis:
    """A client on a blocking pool: a burst of requests queues for a connection instead of failing.

    ``retrying``: a connection Redis dropped (a restart) is retried rather than turned into a 503.
    Only for calls that may safely run twice: never the commit script.
    """
    retry: dict[str, Any] = (
        {"retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
         "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
        if retrying
        else {}
    )  # fmt: skip
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        **retry,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def wire_redis_engine(
    redis_url: str,
    keys: Keys,
    store: SqlStore,
    database: PostgresDatabase,
    database_url: str,
    clock: Clock,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_batch: Callable[[int], None] | None = None,
    on_events: Callable[[list[Event]], None] | None = None,
    max_units_per_order: int | None = None,
) -> RedisWiring:
    """The engine (closing it closes both clients) and its persister (not started)."""
    reads = connect(redis_url, retrying=True)
    engine = RedisEngine(
        connect(redis_url, retrying=False),
        store,
        clock,
        keys,
        max_batch=max_batch,
        on_batch=on_batch,
        max_units_per_order=max_units_per_order,
        reads=reads,
    )
    persister = Persister(reads, keys, database, database_url, on_events=on_events)
    return RedisWiring(engine, persister, reads)
