"""PostgreSQL through an asyncpg connection pool: the ledger of record for teams beyond one file.

Statements are written with ``?`` placeholders like everywhere in stockd and
numbered ``$1, $2, …`` here (once per distinct statement). A database that
cannot be reached — down, restarting, out of connections — makes the request
fail whole with ``Unavailable`` (503) instead of hanging: acquiring a
connection and running a statement are both bounded in time. The pool opens
fresh connections by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import lru_cache
from typing import Any, Literal

import asyncpg

from stockd.config import ConfigurationError
from stockd.domain.errors import Unavailable
from stockd.store.migrate import HEAD_REVISION, upgrade_to_head
from stockd.store.sql import Row

ACQUIRE_TIMEOUT_SECONDS = 30.0
"""Waiting for a free connection is queueing, not failure: a flash sale may keep all of them busy.
A database that is down fails at once instead (connecting is refused)."""
STATEMENT_TIMEOUT_SECONDS = 30.0
POOL_SIZE = 20

# Failures that say "the database is not there right now", not "this request is wrong".
UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # A connection cut off mid-operation (the server went away) is left in a state
    # asyncpg reports as this; it is the same outage seen from another angle.
    asyncpg.exceptions.InternalClientError,
)
NOT_TAKING_WRITES = (
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby (failover in progress)
    asyncpg.exceptions.InsufficientResourcesError,  # disk full, out of memory, too many connections
)
"""The database is there but cannot take this write now: a 503, not one bad request (a 500, which
the batcher would retry request by request)."""

_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (no statement of stockd has a literal ``?``)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes ``postgresql://``; SQLAlchemy-style ``postgresql+asyncpg://`` is accepted too."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


@contextmanager
def unreachable_as_unavailable() -> Iterator[None]:
    try:
        yield
    except UNREACHABLE as error:
        raise Unavailable(f"PostgreSQL cannot be reached right now ({error!r}); retry shortly") from error
    except NOT_TAKING_WRITES as error:
        raise Unavailable(f"PostgreSQL cannot take writes right now ({error}); retry shortly") from error


class PostgresSession:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with unreachable_as_unavailable():
            return list(await self._connection.fetch(numbered(sql), *params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with unreachable_as_unavailable():
            status: str = await self._connection.execute(numbered(sql), *params)
        # "UPDATE 3", "INSERT 0 1", "DELETE 0": the last word is the row count.
        return int(status.rsplit(" ", 1)[-1]) if status[-1].isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with unreachable_as_unavailable():
                await self._connection.executemany(numbered(sql), rows)

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with unreachable_as_unavailable():
                await self._connection.copy_records_to_table(table, records=rows, columns=list(columns))


class PostgresDatabase:
    dialect: Literal["postgresql"] = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresDatabase:
        """Migrate the schema to the newest revision, then open the pool."""
        dsn = asyncpg_dsn(url)
        with unreachable_as_unavailable():
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                command_timeout=STATEMENT_TIMEOUT_SECONDS,
            )
        database = cls(pool)
        revision = await database._revision()
        if revision != HEAD_REVISION:
            await database._refuse_unless_may_migrate(revision)
            await asyncio.to_thread(upgrade_to_head, dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
        return database

    async def _refuse_unless_may_migrate(self, revision: str | None) -> None:
        """Say what to do when a service role (migration 0007), which may not change the schema, meets an old one."""
        rows = await self.fetch("SELECT current_user, has_schema_privilege(current_schema(), 'CREATE')")
        user, may_change_schema = rows[0]
        if not may_change_schema:
            await self.close()
            raise ConfigurationError(
                f"the database schema is at revision {revision or '(none)'} and this stockd needs "
                f"{HEAD_REVISION}, but role {user} may not change the schema: run "
                "`stockd migrate --database postgresql://…` as the database's owner first"
            )

    async def _revision(self) -> str | None:
        """The schema's revision, without starting Alembic (it takes ~100 ms)."""
        try:
            rows = await self.fetch("SELECT version_num FROM alembic_version")
        except asyncpg.exceptions.UndefinedTableError:
            return None
        return str(rows[0][0]) if rows else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        with unreachable_as_unavailable():
            connection = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
        try:
            # asyncpg's own transaction block: it knows how to roll back from any state
            # the connection can be left in, including a query that failed half-way.
            with unreachable_as_unavailable():
                async with connection.transaction():
                    yield PostgresSession(connection)
        finally:
            await self._release(connection)

    async def _release(self, connection: asyncpg.Connection) -> None:
        """Give the connection back; one the server dropped is closed by asyncpg, not an error of ours."""
        with suppress(*UNREACHABLE):
            await self._pool.release(connection)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with unreachable_as_unavailable():
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as connection:
                return list(await connection.fetch(numbered(sql), *params))

    async def close(self) -> None:
        await self._pool.close()
