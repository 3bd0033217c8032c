"""Wiring: the one place that turns settings into a running service."""

from __future__ import annotations

import asyncio

from stockd.broadcast import Broadcast
from stockd.config import ConfigurationError, Settings
from stockd.domain.clock import Clock, SystemClock
from stockd.engine.sql.engine import SqlEngine, Strategy
from stockd.metrics import BATCH_SIZE
from stockd.service import StockService
from stockd.store.postgres import PostgresDatabase
from stockd.store.sql import Database
from stockd.store.sql_store import SqlStore
from stockd.store.sqlite import SqliteDatabase


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
    )
    return StockService(engine, SqlStore(database), clock, broadcast)
