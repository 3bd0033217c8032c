"""Wiring: the one place that turns settings into a running service."""

from __future__ import annotations

import asyncio

from stockd.broadcast import Broadcast
from stockd.config import ConfigurationError, Settings, is_loopback_address
from stockd.domain.clock import Clock, SystemClock
from stockd.engine.sql.engine import SqlEngine, Strategy
from stockd.metrics import BATCH_SIZE
from stockd.service import StockService
from stockd.store.postgres import PostgresDatabase
from stockd.store.sql import Database
from stockd.store.sql_store import SqlStore
from stockd.store.sqlite import SqliteDatabase

MIN_ADMIN_KEY_LENGTH = 16


def check_supported(settings: Settings) -> None:
    """Refuse, with a plain reason, settings this version cannot run."""
    if settings.redis is not None:
        raise ConfigurationError("the Redis engine (--redis) is not part of this version yet")
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
    engine = SqlEngine(
        database,
        clock,
        strategy=Strategy(settings.strategy),
        on_batch=BATCH_SIZE.observe,
        on_events=broadcast.publish,
        max_units_per_order=settings.max_units_per_order,
    )
    return StockService(engine, SqlStore(database), clock, broadcast)
