"""The database itself guards the ledger and the balances, whatever code talks to it.

Rows are made through the real server; then plain SQL — ``sqlite3`` on the
server's ``data_dir/stockd.db``, ``asyncpg`` on the PostgreSQL database, both
while the server runs — tries what stockd's code never does: change or delete
a movement, or make a stock level hold more than it has. The database must
refuse each statement, and the server must see the same rows afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from stockd.store.postgres import asyncpg_dsn
from tests.conftest import empty_tables
from tests.integration.conftest import (
    ServerFactory,
    StockdServer,
    assert_reconciled,
    ledger_balances,
    level,
    movements_of,
    run_coroutine,
    seed,
)

SKU = "GUARD-1"
EMPTY_SKU = "GUARD-2"  # a product that has never had stock
WAREHOUSE = "ber"
RECEIVED = 10
RESERVED = 3


class RawSql:
    """Plain SQL on stockd's database, outside stockd, one auto-committed statement at a time."""

    refused_movement_change: tuple[type[Exception], ...]
    refused_level: tuple[type[Exception], ...]

    async def execute(self, sql: str) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def execute_and_roll_back(self, sql: str) -> None:
        """Run a statement in a transaction that is then rolled back: it must be allowed."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class RawSqlite(RawSql):
    refused_movement_change = (sqlite3.IntegrityError,)
    refused_level = (sqlite3.IntegrityError,)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> None:
        self._connection.execute(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._connection.execute(sql).fetchall()]

    async def execute_and_roll_back(self, sql: str) -> None:
        self._connection.execute("BEGIN")
        try:
            self._connection.execute(sql)
        finally:
            self._connection.execute("ROLLBACK")

    async def close(self) -> None:
        self._connection.close()


class RawPostgres(RawSql):
    refused_movement_change = (asyncpg.exceptions.RaiseError,)
    refused_level = (asyncpg.exceptions.CheckViolationError,)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> None:
        await self._connection.execute(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._connection.fetch(sql)]

    async def execute_and_roll_back(self, sql: str) -> None:
        transaction = self._connection.transaction()
        await transaction.start()
        try:
            await self._connection.execute(sql)
        finally:
            await transaction.rollback()

    async def close(self) -> None:
        await self._connection.close()


@dataclass
class Guarded:
    """A server with one level of ``RECEIVED`` units, ``RESERVED`` of them held, and raw SQL on its database."""

    server: StockdServer
    sql: RawSql
    reservation_id: str

    async def server_sees(self) -> tuple[tuple[int, int, int], dict[str, tuple[int, int]]]:
        """(on hand, reserved, available) and the ledger's balances, as the server reports them."""
        async with self.server.client() as http:
            await assert_reconciled(http)
            reservation = await http.get(f"/v1/reservations/{self.reservation_id}")
            assert reservation.status_code == 200, reservation.text
            return await level(http, SKU, WAREHOUSE), ledger_balances(await movements_of(http, SKU))


async def make_rows(server: StockdServer) -> str:
    async with server.client() as http:
        await seed(http, [SKU, EMPTY_SKU], WAREHOUSE, quantity=[RECEIVED, 0])
        response = await http.post(
            "/v1/reservations",
            json={"order_id": "guarded", "lines": [{"sku": SKU, "quantity": RESERVED}]},
        )
        assert response.status_code == 201, response.text
        assert await level(http, SKU, WAREHOUSE) == (RECEIVED, RESERVED, RECEIVED - RESERVED)
    reservation_id: str = response.json()["id"]
    return reservation_id


@dataclass
class GuardedServer:
    server: StockdServer
    database: str | None
    reservation_id: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def guarded_server(request: pytest.FixtureRequest, module_server_factory: ServerFactory) -> GuardedServer:
    """A server per dialect with the rows to guard, shared by the tests (they change nothing)."""
    dialect: str = request.param
    database: str | None = None
    if dialect == "postgresql":
        database = request.getfixturevalue("postgres_database")
        run_coroutine(empty_tables(database))
    server = module_server_factory(database=database)
    return GuardedServer(server, database, run_coroutine(make_rows(server)))


@pytest.fixture
async def guarded(guarded_server: GuardedServer) -> AsyncIterator[Guarded]:
    """Raw SQL on the guarded server's database, while the server runs."""
    server = guarded_server.server
    sql: RawSql
    if guarded_server.database is not None:
        sql = RawPostgres(await asyncpg.connect(asyncpg_dsn(guarded_server.database)))
    else:
        # WAL: the server's writer is idle between requests, so this connection gets the write lock.
        sql = RawSqlite(sqlite3.connect(server.data_dir / "stockd.db", isolation_level=None, timeout=10.0))
    try:
        yield Guarded(server, sql, guarded_server.reservation_id)
    finally:
        await sql.close()


async def test_the_database_refuses_to_update_or_delete_a_movement(guarded: Guarded) -> None:
    sql = guarded.sql
    ledger = "SELECT * FROM movements ORDER BY id"
    before = await sql.fetch(ledger)
    assert len(before) == 2  # the receipt and the reservation

    for statement in (
        "UPDATE movements SET quantity = quantity + 1",
        "UPDATE movements SET reserved_delta = 0 WHERE type = 'reserve'",
        "UPDATE movements SET on_hand_delta = 1000 WHERE id = (SELECT MIN(id) FROM movements)",
        "DELETE FROM movements",
        "DELETE FROM movements WHERE type = 'reserve'",
    ):
        with pytest.raises(sql.refused_movement_change, match="append-only"):
            await sql.execute(statement)
        assert await sql.fetch(ledger) == before, statement

    # Appending is what the ledger is for: still allowed (rolled back, to keep it balanced).
    await sql.execute_and_roll_back(
        "INSERT INTO movements (sku, warehouse_id, type, quantity, on_hand_delta, reserved_delta, created_at) "
        f"VALUES ('{SKU}', '{WAREHOUSE}', 'receive', 1, 1, 0, 0)"
    )
    assert await sql.fetch(ledger) == before

    assert await guarded.server_sees() == (
        (RECEIVED, RESERVED, RECEIVED - RESERVED),
        {WAREHOUSE: (RECEIVED, RESERVED)},
    )


async def test_the_database_refuses_a_stock_level_with_more_reserved_than_on_hand_or_a_negative_quantity(
    guarded: Guarded,
) -> None:
    sql = guarded.sql
    levels = "SELECT sku, warehouse_id, quantity_on_hand, quantity_reserved FROM stock_levels ORDER BY sku"
    before = await sql.fetch(levels)
    assert before == [(SKU, WAREHOUSE, RECEIVED, RESERVED)]

    where = f"WHERE sku = '{SKU}' AND warehouse_id = '{WAREHOUSE}'"
    for statement in (
        f"UPDATE stock_levels SET quantity_reserved = quantity_on_hand + 1 {where}",
        f"UPDATE stock_levels SET quantity_reserved = quantity_reserved + {RECEIVED} {where}",
        f"UPDATE stock_levels SET quantity_on_hand = {RESERVED - 1} {where}",
        f"UPDATE stock_levels SET quantity_reserved = -1 {where}",
        f"UPDATE stock_levels SET quantity_on_hand = -1 {where}",
        f"UPDATE stock_levels SET quantity_on_hand = -1, quantity_reserved = 0 {where}",
        f"UPDATE stock_levels SET quantity_on_hand = -5, quantity_reserved = -5 {where}",
        "INSERT INTO stock_levels (sku, warehouse_id, quantity_on_hand, quantity_reserved, version) "
        f"VALUES ('{EMPTY_SKU}', '{WAREHOUSE}', 1, 2, 0)",
        "INSERT INTO stock_levels (sku, warehouse_id, quantity_on_hand, quantity_reserved, version) "
        f"VALUES ('{EMPTY_SKU}', '{WAREHOUSE}', -1, 0, 0)",
    ):
        with pytest.raises(sql.refused_level):
            await sql.execute(statement)
        assert await sql.fetch(levels) == before, statement

    # The edges themselves are allowed: everything reserved, or nothing on hand and nothing reserved.
    await sql.execute_and_roll_back(f"UPDATE stock_levels SET quantity_reserved = quantity_on_hand {where}")
    await sql.execute_and_roll_back(
        f"UPDATE stock_levels SET quantity_on_hand = 0, quantity_reserved = 0 {where}"
    )
    assert await sql.fetch(levels) == before

    assert await guarded.server_sees() == (
        (RECEIVED, RESERVED, RECEIVED - RESERVED),
        {WAREHOUSE: (RECEIVED, RESERVED)},
    )
