"""The per-order cap holds when two processes take holds for one order at once.

Each process decides on what its own transaction reads; the order's holds sit
in other warehouses' levels than the one being reserved, so no level lock
covers them. The cap must hold all the same, with every strategy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stockd.bootstrap import build_service
from stockd.config import Settings
from stockd.domain.clock import FakeClock, SystemClock
from stockd.domain.commands import Receive, RequestedLine, Reserve
from stockd.domain.errors import OrderLimitExceeded
from stockd.domain.model import Product, Warehouse
from stockd.ids import new_id
from stockd.service import StockService
from tests.conftest import STRATEGIES, empty_tables

CAP = 5
ROUNDS = 10


@pytest.fixture(params=STRATEGIES)
async def two_processes(
    request: pytest.FixtureRequest, postgres_database: str
) -> AsyncIterator[list[StockService]]:
    await empty_tables(postgres_database)
    settings = Settings(database=postgres_database, strategy=request.param, max_units_per_order=CAP)
    clock = FakeClock(SystemClock().now())
    services = [await build_service(settings, clock), await build_service(settings, clock)]
    try:
        yield services
    finally:
        for service in services:
            await service.close()


async def test_one_order_never_holds_more_than_the_cap_across_two_processes(
    two_processes: list[StockService],
) -> None:
    first, second = two_processes
    now = first.clock.now()
    await first.put_product(Product("A-1", "capped", now, now))
    for warehouse_id in ("ber", "muc"):
        await first.put_warehouse(
            Warehouse(warehouse_id, warehouse_id, 52.5, 13.4, "Europe/Berlin", now, now)
        )
        await first.execute(Receive("A-1", warehouse_id, 100))

    for round_ in range(ROUNDS):
        order_id = f"order-{round_}"
        outcomes = await asyncio.gather(
            first.execute(Reserve(new_id(), order_id, (RequestedLine("A-1", CAP, "ber"),))),
            second.execute(Reserve(new_id(), order_id, (RequestedLine("A-1", CAP, "muc"),))),
            return_exceptions=True,
        )
        refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], OrderLimitExceeded), (round_, outcomes)
