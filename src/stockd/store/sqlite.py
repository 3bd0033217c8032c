"""The embedded database: one SQLite file, WAL, ``synchronous=FULL``.

SQLite allows one writer at a time, so every write transaction — the engine's
batches and catalog changes alike — runs on one dedicated writer thread with its
own connection, one transaction after another, and nothing ever waits for the
file lock. Reads run on a small pool of reader threads; WAL lets them proceed
while a batch is being written.

The writer never checkpoints: a checkpoint copies the WAL into the database and
fsyncs both, which inside a commit would stall every caller of that batch. A
checkpointer thread does it in the background instead (PASSIVE, so it never
blocks the writer), keeping the WAL short.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from stockd.domain.errors import Unavailable
from stockd.store.migrate import HEAD_REVISION, upgrade_to_head
from stockd.store.sql import Row

T = TypeVar("T")

READER_THREADS = 2
CHECKPOINT_INTERVAL_SECONDS = 0.5
ROWS_PER_INSERT = 250
"""Rows per multi-row INSERT in ``insert_many``: one statement binds and steps 250 rows in one
go (one release of the GIL instead of 250), and one size keeps it one cached prepared statement
per table. Fewer where the SQLite library allows fewer parameters per statement (999 before 3.32)."""


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # Durable before acknowledgement: every commit is fsynced, WAL included.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    # A large page cache keeps a batch's index pages in memory instead of spilling them mid-transaction.
    connection.execute("PRAGMA cache_size=-65536")
    return connection


@contextmanager
def database_errors_as_unavailable() -> Iterator[None]:
    """A full disk, a lock timeout or an I/O error is the database's trouble, not the caller's:
    the request fails whole (nothing was committed) and may be retried."""
    try:
        yield
    except sqlite3.OperationalError as error:
        raise Unavailable(f"the database cannot be used right now ({error}); retry shortly") from error


def _revision_of(path: Path) -> str | None:
    """The schema revision of an existing file, without starting Alembic (it takes ~100 ms)."""
    if not path.exists():
        return None
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        connection.close()
    return None if row is None else str(row[0])


class SqliteSession:
    """The statements of one write transaction, each run on the writer thread."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._db.on_writer(lambda c: c.execute(sql, params).fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._db.on_writer(lambda c: c.execute(sql, params).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.on_writer(lambda c: c.executemany(sql, rows))

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Full chunks of ``ROWS_PER_INSERT`` rows as multi-row INSERTs, the rest row by row."""
        if not rows:
            return
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        one_row = f"({','.join('?' * len(columns))})"

        def work(connection: sqlite3.Connection) -> None:
            parameters = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            per_insert = min(ROWS_PER_INSERT, parameters // len(columns))
            chunk_insert = insert + ",".join([one_row] * per_insert)
            chunked = len(rows) - len(rows) % per_insert
            for start in range(0, chunked, per_insert):
                chunk = rows[start : start + per_insert]
                connection.execute(chunk_insert, [value for row in chunk for value in row])
            if chunked < len(rows):
                connection.executemany(insert + one_row, rows[chunked:])

        await self._db.on_writer(work)


class SqliteDatabase:
    """The file, its writer thread, its reader threads and its checkpointer."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if _revision_of(path) != HEAD_REVISION:
            upgrade_to_head(f"sqlite:///{path}")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="stockd-sqlite-writer")
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="stockd-sqlite-reader")
        self._write_connection = connect(path)
        self._write_turn = asyncio.Lock()
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_forever, name="stockd-sqlite-checkpointer", daemon=True
        )
        self._checkpointer.start()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteSession]:
        async with self._write_turn:
            await self.on_writer(_begin)
            try:
                yield SqliteSession(self)
            except BaseException:
                await self.on_writer(_roll_back)
                raise
            await self.on_writer(_commit)

    async def on_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._write_connection
        with database_errors_as_unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._writer, work, connection)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with database_errors_as_unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, sql, params)

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path)
            self._local.connection = connection
            with self._lock:
                self._reader_connections.append(connection)
        rows: list[Row] = connection.execute(sql, params).fetchall()
        return rows

    def _checkpoint_forever(self) -> None:
        connection = connect(self.path)
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL_SECONDS):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    async def close(self) -> None:
        self._closing.set()
        await asyncio.to_thread(self._checkpointer.join)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._write_connection.close()
        for connection in self._reader_connections:
            connection.close()


def _begin(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        # One was cut off before it ended (its caller cancelled while BEGIN ran, or its COMMIT
        # failed). Nothing of it was acknowledged, and the write turn is this transaction's now;
        # left open, it would fail every BEGIN after it.
        connection.execute("ROLLBACK")
    connection.execute("BEGIN IMMEDIATE")


def _commit(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("COMMIT")
    except sqlite3.Error:
        _roll_back(connection)
        raise


def _roll_back(connection: sqlite3.Connection) -> None:
    # Some errors (a full disk, for one) have rolled the transaction back already.
    if connection.in_transaction:
        connection.execute("ROLLBACK")
