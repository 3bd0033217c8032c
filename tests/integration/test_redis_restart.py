"""Redis killed under a running stockd and started again, with and without its append-only file.

Each test runs a Redis of its own (a ``redis-server`` child on a free port,
its files in the test's directory) so that it can kill it without touching the
machine's shared Redis.

- With ``appendonly yes`` and ``appendfsync always`` every reservation Redis
  acknowledged comes back with it: nothing is lost.
- Without persistence Redis comes back empty. stockd refuses to commit
  (503) until its persister has rebuilt the counters from PostgreSQL; what the
  persister had written survives, and the rebuilt counters equal the ledger.
- From an RDB snapshot older than the ledger, Redis comes back with counters
  that no longer hold what was sold since. stockd refuses to decide on them
  until they are rebuilt: nothing is sold twice.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import empty_tables
from tests.integration.conftest import (
    ServerFactory,
    StockdServer,
    assert_reconciled,
    free_port,
    level,
    run_coroutine,
    seed,
)

SKU = "RESTART-1"
WAREHOUSE = "ber"


class RedisProcess:
    def __init__(self, directory: Path, *, append_only: bool) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.append_only = append_only
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.append_only else ["--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", *persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url) as client:
                    if client.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def save(self) -> None:
        """An RDB snapshot, which the next start loads."""
        with redis.Redis.from_url(self.url) as client:
            client.save()

    def kill9(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture(params=[True, False], ids=["appendfsync-always", "no-persistence"])
def private_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path, append_only=bool(request.param))
    process.start()
    yield process
    process.kill9()


@pytest.fixture
def server_on_private_redis(
    private_redis: RedisProcess, server_factory: ServerFactory, postgres_database: str
) -> StockdServer:
    return serving(private_redis, server_factory, postgres_database)


@pytest.fixture
def snapshotted_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path, append_only=False)
    process.start()
    yield process
    process.kill9()


def serving(
    redis_process: RedisProcess, server_factory: ServerFactory, postgres_database: str
) -> StockdServer:
    run_coroutine(empty_tables(postgres_database))
    return server_factory(database=postgres_database, args=["--redis", redis_process.url])


async def reserve(http: httpx.AsyncClient, order_id: str) -> httpx.Response:
    return await http.post(
        "/v1/reservations",
        json={"order_id": order_id, "lines": [{"sku": SKU, "quantity": 1, "warehouse_id": WAREHOUSE}]},
    )


async def test_redis_killed_and_restarted_loses_nothing_with_aof_and_is_rebuilt_without(
    server_on_private_redis: StockdServer, private_redis: RedisProcess
) -> None:
    async with server_on_private_redis.client() as http:
        await seed(http, SKU, WAREHOUSE, quantity=10_000)
        persisted = [await reserve(http, f"before-{n}") for n in range(100)]
        assert {r.status_code for r in persisted} == {201}
        await assert_reconciled(http)  # the persister has written these to PostgreSQL
        # The last ones Redis acknowledges just before it dies.
        late = await asyncio.gather(*(reserve(http, f"late-{n}") for n in range(50)))
        assert {r.status_code for r in late} == {201}

        private_redis.kill9()
        assert (await reserve(http, "while-down")).status_code == 503  # a clear answer, not a hang
        private_redis.start()

        recovered = await first_success(http)
        assert recovered.status_code == 201, recovered.text
        for response in persisted:
            got = await http.get(f"/v1/reservations/{response.json()['id']}")
            assert got.status_code == 200 and got.json() == response.json()
        survivors = 0
        for response in late:
            got = await http.get(f"/v1/reservations/{response.json()['id']}")
            assert got.status_code in (200, 404)
            survivors += got.status_code == 200
        if private_redis.append_only:  # appendfsync always: nothing acknowledged is lost
            assert survivors == len(late), where_did_they_go(private_redis, late)
        await assert_reconciled(http)  # counters equal the ledger, rebuilt or not
        on_hand, reserved, _ = await level(http, SKU, WAREHOUSE)
        assert (on_hand, reserved) == (10_000, len(persisted) + survivors + 1)


async def test_redis_back_from_an_older_snapshot_sells_nothing_twice(
    snapshotted_redis: RedisProcess, server_factory: ServerFactory, postgres_database: str
) -> None:
    server = serving(snapshotted_redis, server_factory, postgres_database)
    async with server.client() as http:
        await seed(http, SKU, WAREHOUSE, quantity=10)
        for n in range(5):
            assert (await reserve(http, f"before-{n}")).status_code == 201
        snapshotted_redis.save()  # holds 5 of 10 reserved
        for n in range(5):
            assert (await reserve(http, f"after-{n}")).status_code == 201
        await assert_reconciled(http)  # all ten are in PostgreSQL

        snapshotted_redis.kill9()
        snapshotted_redis.start()  # from the snapshot: 5 reserved, and a ready marker

        response = await first_success(http)
        assert response.status_code == 409 and response.json()["code"] == "out_of_stock", response.text
        on_hand, reserved, _ = await level(http, SKU, WAREHOUSE)
        assert (on_hand, reserved) == (10, 10)
        await assert_reconciled(http)


async def first_success(http: httpx.AsyncClient) -> httpx.Response:
    """Reserve until stockd takes traffic again (503 while Redis is away or being rebuilt)."""
    deadline = time.monotonic() + 60
    while True:
        response = await reserve(http, "after-restart")
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


def where_did_they_go(private_redis: RedisProcess, acknowledged: list[httpx.Response]) -> str:
    """Which acknowledged reservations Redis still has, and its ledger stream, for the failure report."""
    with redis.Redis.from_url(private_redis.url) as client:
        in_redis = sum(bool(client.exists(f"stockd:reservation:{r.json()['id']}")) for r in acknowledged)
        stream = client.xinfo_stream("stockd:{ledger}:stream")
        persisted = client.get("stockd:{ledger}:persisted")
    return f"{in_redis} of {len(acknowledged)} in Redis; stream {stream}; persisted up to {persisted!r}"
