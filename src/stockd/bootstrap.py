"""Wiring: the one place that turns settings into a running service."""

from __future__ import annotations

import asyncio
import re

from stockd.broadcast import Broadcast
from stockd.config import ConfigurationError, Settings, is_loopback_address
from stockd.domain.clock import Clock, SystemClock
from stockd.engine.redis.durability import warn_unless_durable
from stockd.engine.redis.keys import Keys
from stockd.engine.redis.wiring import wire_redis_engine
from stockd.engine.sql.engine import SqlEngine, Strategy
from stockd.metrics import BATCH_SIZE
from stockd.service import StockService
from stockd.store.postgres import PostgresDatabase
from stockd.store.sql import Database
from stockd.store.sql_store import SqlStore
from stockd.store.sqlite import SqliteDatabase

MIN_ADMIN_KEY_LENGTH = 16
REDIS_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_supported(settings: Settings) -> None:
    """Refuse, with a plain reason, settings this version cannot run."""
    if settings.redis is not None:
        if not settings.is_postgresql:
            raise ConfigurationError(
                "the Redis engine keeps its ledger in PostgreSQL: give --database postgresql://… with --redis"
            )
        if settings.strategy != Strategy.BATCHED:
            raise ConfigurationError(
                "the Redis engine always decides in batches; --strategy is for SQL engines"
            )
        if not settings.redis.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"not a redis:// URL: {settings.redis!r}")
        if not REDIS_PREFIX.fullmatch(settings.redis_prefix):
            # A prefix holding ':' (or a glob character) could name another deployment's keys as
            # well as its own: "stockd" would take in "stockd:eu", and rebuilding would delete them.
            raise ConfigurationError(
                f"the Redis key prefix must be 1-64 letters, digits, '.', '_' or '-': {settings.redis_prefix!r}"
            )
    if settings.strategy not in set(Strategy):
        raise ConfigurationError(
            f"unknown strategy {settings.strategy!r}; choose one of {', '.join(Strategy)}"
        )
    if not settings.is_postgresql:
        settings.sqlite_path()
    if settings.admin_key is not None and len(settings.admin_key) < MIN_ADMIN_KEY_LENGTH:
        raise ConfigurationError(f"the admin key must be at least {MIN_ADMIN_KEY_LENGTH} characters")
    if settings.rate_limit is not None and settings.rate_limit < 1:
        raise ConfigurationError("the rate limit must be at least 1 request per second")


def check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond the loopback interface while nothing would keep strangers out."""
    if settings.admin_key is None and not is_loopback_address(settings.host):
        raise ConfigurationError(
            f"refusing to listen on {settings.host!r} without an admin key: "
            "set STOCKD_ADMIN_KEY (or --admin-key), or listen on 127.0.0.1"
        )


async def open_database(settings: Settings) -> Database:
    """Open the database the settings name, migrating it to the newest schema first."""
    if settings.is_postgresql:
        return await PostgresDatabase.open(settings.database_url)
    # Opening runs the Alembic migrations, which block: keep them off the event loop.
    return await asyncio.to_thread(SqliteDatabase, settings.sqlite_path())


async def build_service(settings: Settings, clock: Clock | None = None) -> StockService:
    """Open the database and assemble engine, store and service."""
    check_supported(settings)
    clock = clock or SystemClock()
    database = await open_database(settings)
    broadcast = Broadcast()
    if settings.redis is not None:
        assert isinstance(database, PostgresDatabase)  # check_supported made sure
        return await _redis_service(settings, database, clock, broadcast)
    engine = SqlEngine(
        database,
        clock,
        strategy=Strategy(settings.strategy),
        on_batch=BATCH_SIZE.observe,
        on_events=broadcast.publish,
        max_units_per_order=settings.max_units_per_order,
    )
    return StockService(engine, SqlStore(database), clock, broadcast)


async def _redis_service(
    settings: Settings, database: PostgresDatabase, clock: Clock, broadcast: Broadcast
) -> StockService:
    """Redis decides, the persister (started with the service) carries every change to PostgreSQL."""
    assert settings.redis is not None
    store = SqlStore(database)
    wiring = wire_redis_engine(
        settings.redis,
        Keys(settings.redis_prefix),
        store,
        database,
        settings.database_url,
        clock,
        on_batch=BATCH_SIZE.observe,
        on_events=broadcast.publish,
        max_units_per_order=settings.max_units_per_order,
    )
    await warn_unless_durable(wiring.reads)
    return StockService(wiring.engine, store, clock, broadcast, persister=wiring.persister)
