"""Which engine a benchmark runs against, and a fresh data set on it.

``sqlite``
    A temporary file (deleted afterwards), or ``--database sqlite:///path``.
``postgres``
    ``--database postgresql://…`` if given (each run seeds products under a new
    prefix, so runs sharing a database never collide); otherwise a scratch
    database is created for each measurement on the server named by
    ``STOCKD_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
    and dropped when it ends, so every strategy starts from empty tables.
``redis``
    The Redis engine on ``--redis`` (default ``redis://127.0.0.1:6379/0``) under a
    fresh key prefix (removed afterwards), with its ledger in a scratch PostgreSQL
    database as above and its persister running in the same process (or, with
    ``--persister process``, as ``stockd worker persist`` in its own). Strategy
    ``batched`` is one script call per batch; ``lock`` stands for its unbatched
    baseline, one script call per reservation (labelled ``unbatched``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.exceptions import RedisError

from stockd.bootstrap import open_database
from stockd.config import Settings
from stockd.domain.clock import SystemClock
from stockd.domain.commands import Receive
from stockd.domain.model import MAX_QUANTITY, Product, Warehouse
from stockd.engine.base import Engine
from stockd.engine.batcher import DEFAULT_MAX_BATCH
from stockd.engine.redis.durability import persistence_of
from stockd.engine.redis.keys import Keys
from stockd.engine.redis.wiring import wire_redis_engine
from stockd.engine.sql.engine import SqlEngine, Strategy
from stockd.ids import new_id
from stockd.store.postgres import PostgresDatabase
from stockd.store.sql import Database
from stockd.store.sql_store import SqlStore
from stockd.workers.persister import Persister

WAREHOUSE = "bench"
DEFAULT_POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_SERVER_VARIABLE = "STOCKD_BENCH_POSTGRES"
UNLIMITED = MAX_QUANTITY
"""Stock per product for the throughput runs: more than any run can reserve."""


class PersisterPlacement(StrEnum):
    IN_PROCESS = "in-process"
    """As ``stockd serve`` runs it: the persister shares the engine's process (and its GIL)."""
    PROCESS = "process"
    """``stockd worker persist`` on its own: the engine's process only decides and commits."""


class EngineName(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    REDIS = "redis"


class BenchUsageError(Exception):
    """The options cannot work; the message says what to change (exit code 2)."""


DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
UNBATCHED = "unbatched"
"""The Redis engine's baseline: one script call per reservation (``--strategy lock`` on that engine)."""


REDIS_STRATEGIES = (Strategy.BATCHED, Strategy.LOCK)
"""What the Redis engine is measured with; optimistic and atomic are SQL strategies and skipped."""


def check_engines(engines: list[EngineName], database: str | None, redis: str | None) -> None:
    """Refuse, before anything runs, what this version cannot benchmark."""
    if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise BenchUsageError(f"--redis must be a redis:// URL, not {redis!r}")
    if database is None:
        return
    wanted = EngineName.POSTGRES if is_postgresql(database) else EngineName.SQLITE
    if wanted is EngineName.SQLITE and not database.startswith("sqlite:///"):
        raise BenchUsageError(f"--database must be sqlite:///path or postgresql://…, not {database!r}")
    if wanted not in engines:
        raise BenchUsageError(f"--database {database} is for --engine {wanted}, which is not being run")


def is_postgresql(url: str) -> bool:
    return Settings(database=url).is_postgresql


def database_for(engine: EngineName, database: str | None) -> str | None:
    """The user's ``--database`` if it belongs to this engine, else None (a fresh one is made)."""
    if database is None:
        return None
    return database if (engine is not EngineName.SQLITE) == is_postgresql(database) else None


@asynccontextmanager
async def database_url(engine: EngineName, given: str | None) -> AsyncIterator[str]:
    """A database URL to run on: the given one, or a fresh one removed afterwards."""
    if given is not None:
        yield given
    elif engine is EngineName.SQLITE:
        with tempfile.TemporaryDirectory(prefix="stockd-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'stockd.db'}"
    else:
        async with scratch_postgres_database() as url:
            yield url


@asynccontextmanager
async def scratch_postgres_database() -> AsyncIterator[str]:
    """``CREATE DATABASE stockd_bench_…`` on the benchmark's PostgreSQL server; dropped afterwards."""
    server = os.environ.get(POSTGRES_SERVER_VARIABLE, DEFAULT_POSTGRES_SERVER)
    name = f"stockd_bench_{new_id()[-12:]}"
    try:
        connection = await asyncpg.connect(server, timeout=10)
    except Exception as error:  # refused, unknown host, bad credentials, …: all the same to the user
        raise BenchUsageError(
            f"cannot reach PostgreSQL at {server} to create a scratch database ({error}); start it, set "
            f"{POSTGRES_SERVER_VARIABLE}, or pass --database postgresql://…"
        ) from error
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    parts = urlsplit(server)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await _drop_database(server, name)


async def _drop_database(server: str, name: str, attempts: int = 5) -> None:
    """Best effort, a few times: a busy server may refuse a connection for a moment (too many clients)."""
    for attempt in range(1, attempts + 1):
        try:
            connection = await asyncpg.connect(server, timeout=10)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()
            return
        except Exception as error:  # refused, too many clients, restarting: all worth another try
            if attempt == attempts:
                print(
                    f"stockd bench: could not drop the scratch database {name} ({error}); "
                    f'drop it by hand: dropdb --force "{name}"',
                    file=sys.stderr,
                )
                return
            await asyncio.sleep(1.0)


@dataclass(frozen=True, slots=True)
class Durability:
    """What the database promises about an acknowledged commit, read from the database itself."""

    durable: bool
    settings: str
    version: str


@dataclass(slots=True)
class BenchEngine:
    """An engine on a migrated database, with the batch sizes it reports."""

    name: EngineName
    strategy: Strategy
    engine: Engine
    store: SqlStore
    database: Database
    durability: Durability
    batch_sizes: list[int] = field(default_factory=list)
    label: str = ""
    """The strategy as reported: its name, or ``unbatched`` for the Redis engine's baseline."""

    async def settled(self) -> None:
        """Wait until the ledger store holds everything acknowledged (the Redis engine's persister)."""
        await self.engine.caught_up()


@asynccontextmanager
async def open_engine(
    name: EngineName,
    strategy: Strategy,
    database: str | None,
    redis: str | None = None,
    persister: PersisterPlacement = PersisterPlacement.IN_PROCESS,
) -> AsyncIterator[BenchEngine]:
    """The engine with ``strategy`` on a fresh (or the given) database, closed afterwards."""
    async with database_url(name, database) as url:
        opened = await open_database(Settings(database=url, strategy=strategy.value))
        try:
            if name is EngineName.REDIS:
                assert isinstance(opened, PostgresDatabase)
                async with _redis_engine(opened, url, strategy, redis or DEFAULT_REDIS, persister) as bench:
                    yield bench
                return
            batch_sizes: list[int] = []
            engine = SqlEngine(opened, SystemClock(), strategy=strategy, on_batch=batch_sizes.append)
            try:
                durability = await probe_durability(opened)
                yield BenchEngine(
                    name, strategy, engine, SqlStore(opened), opened, durability, batch_sizes, strategy.value
                )
            finally:
                await engine.close()
        finally:
            await opened.close()


@asynccontextmanager
async def _redis_engine(
    database: PostgresDatabase, url: str, strategy: Strategy, redis_url: str, placement: PersisterPlacement
) -> AsyncIterator[BenchEngine]:
    """The Redis engine under a fresh key prefix, its persister running; the keys are removed afterwards."""
    keys = Keys(f"stockd-bench-{new_id()[-12:]}")
    store = SqlStore(database)
    batch_sizes: list[int] = []
    wiring = wire_redis_engine(
        redis_url,
        keys,
        store,
        database,
        url,
        SystemClock(),
        max_batch=DEFAULT_MAX_BATCH if strategy is Strategy.BATCHED else 1,
        on_batch=batch_sizes.append,
    )
    redis = wiring.reads
    try:
        try:
            await redis.ping()
        except RedisError as error:
            raise BenchUsageError(
                f"cannot reach Redis at {redis_url} ({error}); start it or pass --redis"
            ) from error
        try:
            async with _persister_running(wiring.persister, placement, url, redis_url, keys):
                await wiring.persister.wait_ready(60)
                label = strategy.value if strategy is Strategy.BATCHED else UNBATCHED
                persistence = await persistence_of(redis)
                version = (await redis.info("server")).get("redis_version")
                durability = Durability(persistence.risk is None, persistence.settings, f"Redis {version}")
                yield BenchEngine(
                    EngineName.REDIS, strategy, wiring.engine, store, database, durability, batch_sizes, label
                )
        finally:
            async for key in redis.scan_iter(match=keys.pattern, count=1000):
                await redis.unlink(key)
    finally:
        await wiring.engine.close()


@asynccontextmanager
async def _persister_running(
    persister: Persister, placement: PersisterPlacement, database_url: str, redis_url: str, keys: Keys
) -> AsyncIterator[None]:
    """The engine's own persister, or ``stockd worker persist`` in a child process, until the block ends."""
    if placement is PersisterPlacement.IN_PROCESS:
        persister.start()
        try:
            yield
        finally:
            await persister.stop()
        return
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stockd", "worker", "persist",
        "--database", database_url, "--redis", redis_url, "--redis-prefix", keys.prefix,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        if worker.returncode is None:
            worker.terminate()  # what it had not committed is redelivered to the next persister
        await worker.wait()


async def probe_durability(database: Database) -> Durability:
    """Is every commit flushed to disk before it returns? Asked of the database, not assumed."""
    if database.dialect == "sqlite":
        ((synchronous,),) = await database.fetch("PRAGMA synchronous")
        ((journal,),) = await database.fetch("PRAGMA journal_mode")
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        # In WAL mode NORMAL may lose the last commits on power loss; FULL and EXTRA fsync every commit.
        return Durability(
            durable=int(synchronous) >= 2,
            settings=f"journal_mode={journal}, synchronous={names.get(int(synchronous), synchronous)}",
            version=f"SQLite {sqlite3.sqlite_version}",
        )
    ((fsync, synchronous_commit, version),) = await database.fetch(
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'), "
        "current_setting('server_version')"
    )
    return Durability(
        durable=fsync == "on" and synchronous_commit != "off",
        settings=f"fsync={fsync}, synchronous_commit={synchronous_commit}",
        version=f"PostgreSQL {str(version).split()[0]}",
    )


async def seed(bench: BenchEngine, count: int, quantity: int, prefix: str = "B") -> list[str]:
    """``count`` new products with ``quantity`` units each in the bench warehouse.

    Names carry a fresh prefix each run, so runs on one PostgreSQL database never collide.
    """
    store, engine = bench.store, bench.engine
    now = SystemClock().now()
    tag = new_id()[-8:]
    await store.put_warehouse(Warehouse(WAREHOUSE, "bench", 0.0, 0.0, "UTC", now, now))
    names = [f"{prefix}{tag}-{i}" for i in range(count)]
    for start in range(0, count, 500):
        chunk = names[start : start + 500]
        await asyncio.gather(*(store.put_product(Product(n, n, now, now)) for n in chunk))
        await asyncio.gather(*(engine.execute(Receive(n, WAREHOUSE, quantity)) for n in chunk))
    bench.batch_sizes.clear()
    return names
