"""Wiring: the one place that turns settings into a running service."""

from __future__ import annotations

import asyncio

from stockd.config import ConfigurationError, Settings
from stockd.domain.clock import Clock, SystemClock
from stockd.engine.sql.sqlite import SqliteEngine
from stockd.metrics import BATCH_SIZE
from stockd.service import StockService
from stockd.store.sqlite import SqliteDatabase, SqliteStore


def check_supported(settings: Settings) -> None:
    """Refuse, with a plain reason, settings this version cannot run."""
    if settings.redis is not None:
        raise ConfigurationError("the Redis engine (--redis) is not part of this version yet")
    if not settings.database_url.startswith("sqlite:"):
        raise ConfigurationError(
            f"this version runs on the embedded SQLite engine only (--database sqlite:///path), "
            f"not {settings.database_url.split(':', 1)[0]}"
        )
    settings.sqlite_path()


async def build_service(settings: Settings, clock: Clock | None = None) -> StockService:
    """Open the database (migrating it to the newest schema) and assemble engine, store and service."""
    check_supported(settings)
    clock = clock or SystemClock()
    # Opening runs the Alembic migrations, which block: keep them off the event loop.
    database = await asyncio.to_thread(SqliteDatabase, settings.sqlite_path())
    engine = SqliteEngine(database, clock, on_batch=BATCH_SIZE.observe)
    return StockService(engine, SqliteStore(database), clock)
