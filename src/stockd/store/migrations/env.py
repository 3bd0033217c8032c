"""Alembic environment: runs the migrations online against ``sqlalchemy.url``.

SQLite goes through the standard library's driver; PostgreSQL through asyncpg
(``postgresql+asyncpg://``), the same driver the service uses, on an async engine.
"""

import asyncio

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

URL = context.config.get_main_option("sqlalchemy.url") or ""


# Several servers starting at once on one PostgreSQL database migrate one at a time.
MIGRATION_LOCK_ID = 7_020_011


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def run_async_migrations() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(URL, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if "+asyncpg" in URL:
    asyncio.run(run_async_migrations())
else:
    engine = create_engine(URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_migrations(connection)
    engine.dispose()
