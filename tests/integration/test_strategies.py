"""The flash sale over real HTTP with every strategy: none of them ever oversells or answers 5xx.

Each strategy keeps concurrent reservations from deciding on the same balance
in its own way (see ``stockd.engine.sql.engine``): group commit, row locks,
version checks, conditional updates. Whatever the way, 5,000 buyers for 1,000
units end with exactly 1,000 reservations, 4,000 ``409 out_of_stock`` and a
ledger that adds up — on PostgreSQL with all four, and on SQLite with ``lock``.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import STRATEGIES, empty_tables
from tests.integration.conftest import ServerFactory, assert_sold_out, seed

WAREHOUSE = "ber"
UNITS = 1_000
BUYERS = 5_000

CASES = [("postgresql", strategy) for strategy in STRATEGIES] + [("sqlite", "lock")]


@pytest.mark.parametrize(("dialect", "strategy"), CASES, ids=[f"{d}-{s}" for d, s in CASES])
async def test_five_thousand_buyers_for_a_thousand_units_get_exactly_a_thousand_reservations_with_each_strategy(
    dialect: str, strategy: str, server_factory: ServerFactory, request: pytest.FixtureRequest
) -> None:
    if dialect == "postgresql":
        database: str = request.getfixturevalue("postgres_database")
        await empty_tables(database)
        server = await asyncio.to_thread(server_factory, database=database, strategy=strategy)
    else:
        server = await asyncio.to_thread(server_factory, strategy=strategy)
    sku = f"FLASH-{strategy}"

    async with server.client() as http:
        await seed(http, sku, WAREHOUSE, quantity=UNITS)
        async with server.load_client() as load:
            responses = await asyncio.gather(
                *(
                    load.post(
                        "/v1/reservations",
                        json={"order_id": f"flash-{strategy}-{n}", "lines": [{"sku": sku, "quantity": 1}]},
                    )
                    for n in range(BUYERS)
                )
            )
        await assert_sold_out(http, responses, sku, WAREHOUSE, UNITS)
