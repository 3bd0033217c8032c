"""Fixtures shared by every test: a fake clock, and the service behind a real ASGI client.

``engine`` is parametrized over every engine and strategy stockd ships, so the
contract suite runs unchanged on each of them. PostgreSQL tests use the real
server of this machine (``STOCKD_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/postgres``): each test run creates a
database of its own and drops it at the end; each test starts from empty tables.
Redis engine tests use the machine's Redis (``STOCKD_TEST_REDIS``) under a key
prefix of their own. A server that cannot be reached fails those tests loudly;
it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis
from litestar.testing import AsyncTestClient

from stockd.api.app import create_app
from stockd.config import SQLITE_FILE, Settings
from stockd.domain.clock import FakeClock, SystemClock
from stockd.store.migrate import upgrade_to_head
from stockd.store.postgres import asyncpg_dsn

STRATEGIES = ["batched", "lock", "optimistic", "atomic"]
ENGINES = [
    *(f"{dialect}-{strategy}" for dialect in ("sqlite", "postgresql") for strategy in STRATEGIES),
    "redis-batched",
]
DEFAULT_ENGINES = ["sqlite-batched", "postgresql-batched"]
"""For tests of the HTTP edge alone, where the strategy cannot matter: one engine per database."""

ADMIN_URL = os.environ.get("STOCKD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("STOCKD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test run's own, created on first use and dropped at the end."""
    name = f"stockd_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    administer(f'CREATE DATABASE "{name}"')
    yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def administer(statement: str) -> None:
    """Run one statement as the administrator, from sync code that may sit inside a running loop."""

    async def run() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


async def empty_tables(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        if tables:
            await connection.execute(f"TRUNCATE {', '.join(t['tablename'] for t in tables)} RESTART IDENTITY")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest schema; each test starts from a copy (migrating takes ~0.1 s)."""
    path = tmp_path_factory.mktemp("template") / SQLITE_FILE
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture
async def settings(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    dialect, strategy = engine.split("-")
    if dialect == "sqlite":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        shutil.copy(request.getfixturevalue("migrated_sqlite"), data_dir / SQLITE_FILE)
        return Settings(data_dir=data_dir, strategy=strategy)
    url: str = request.getfixturevalue("postgres_database")
    await empty_tables(url)
    if dialect == "redis":
        return Settings(database=url, redis=REDIS_URL, redis_prefix=request.getfixturevalue("redis_prefix"))
    return Settings(database=url, strategy=strategy)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """Keys of this test alone in the machine's Redis, removed afterwards."""
    prefix = f"stockd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield prefix
    forget_redis_keys(prefix)


def forget_redis_keys(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])


@pytest.fixture
def clock() -> FakeClock:
    # Start from the real time so the API's timestamps look like today's.
    return FakeClock(SystemClock().now())


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The whole service in-process, on a fresh database, with a clock the test moves."""
    async with AsyncTestClient(create_app(settings, clock)) as test_client:
        yield test_client


async def seed(
    client: AsyncTestClient,  # type: ignore[type-arg]
    sku: str = "A-1",
    warehouse_id: str = "ber",
    quantity: int = 10,
    *,
    latitude: float = 52.52,
    longitude: float = 13.40,
) -> None:
    """A product, a warehouse, and ``quantity`` units of it there."""
    response = await client.put(f"/v1/products/{sku}", json={"name": f"product {sku}"})
    assert response.status_code in (200, 201), response.text
    response = await client.put(
        f"/v1/warehouses/{warehouse_id}",
        json={
            "name": warehouse_id,
            "latitude": latitude,
            "longitude": longitude,
            "timezone": "Europe/Berlin",
        },
    )
    assert response.status_code in (200, 201), response.text
    if quantity:
        response = await client.post(
            "/v1/stock/receive", json={"sku": sku, "warehouse_id": warehouse_id, "quantity": quantity}
        )
        assert response.status_code == 200, response.text
