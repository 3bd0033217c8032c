"""A flash sale over real HTTP: never oversell, and every line is held or none is."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.integration.conftest import (
    StockdServer,
    assert_reconciled,
    ledger_balances,
    level,
    movements_of,
    seed,
)

WAREHOUSE = "ber"


async def test_five_thousand_buyers_for_a_thousand_units_get_exactly_a_thousand_reservations(
    engine_server: StockdServer,
) -> None:
    sku = "FLASH-1"
    async with engine_server.client() as http:
        await seed(http, sku, WAREHOUSE, quantity=1_000)
        await sell_a_thousand_units_to_five_thousand_buyers(engine_server, http, sku)


async def sell_a_thousand_units_to_five_thousand_buyers(
    server: StockdServer, http: httpx.AsyncClient, sku: str
) -> None:
    async with server.load_client() as load:
        responses = await asyncio.gather(
            *(
                load.post(
                    "/v1/reservations",
                    json={"order_id": f"flash-{n}", "lines": [{"sku": sku, "quantity": 1}]},
                )
                for n in range(5_000)
            )
        )

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1_000, 409: 4_000}, statuses
    rejected = [response for response in responses if response.status_code == 409]
    assert {response.headers["content-type"] for response in rejected} == {"application/problem+json"}
    assert Counter(response.json()["code"] for response in rejected) == {"out_of_stock": 4_000}
    for response in rejected:
        shortfalls = response.json()["shortfalls"]
        assert [(s["sku"], s["requested"], s["available"]) for s in shortfalls] == [(sku, 1, 0)], shortfalls

    held = [response.json() for response in responses if response.status_code == 201]
    reservation_ids = {reservation["id"] for reservation in held}
    assert len(reservation_ids) == 1_000
    for reservation in held:
        assert reservation["status"] == "pending"
        assert reservation["lines"] == [{"sku": sku, "warehouse_id": WAREHOUSE, "quantity": 1}]

    assert await level(http, sku, WAREHOUSE) == (1_000, 1_000, 0)
    await assert_reconciled(http)

    movements = await movements_of(http, sku)
    assert ledger_balances(movements) == {WAREHOUSE: (1_000, 1_000)}
    assert Counter(m["type"] for m in movements) == {"receive": 1, "reserve": 1_000}
    reserves = [m for m in movements if m["type"] == "reserve"]
    assert {m["reference_id"] for m in reserves} == reservation_ids
    assert {
        (m["reference_type"], m["quantity"], m["on_hand_delta"], m["reserved_delta"]) for m in reserves
    } == {("reservation", 1, 0, 1)}


async def test_two_buyers_racing_for_the_last_unit_of_a_multi_line_order_never_split_it(
    http: httpx.AsyncClient,
) -> None:
    for round_number in range(20):
        sku_a, sku_b = f"LAST-A-{round_number}", f"LAST-B-{round_number}"
        await seed(http, [sku_a, sku_b], WAREHOUSE, quantity=[1, 5])
        lines = [{"sku": sku_a, "quantity": 1}, {"sku": sku_b, "quantity": 2}]
        orders = [f"race-{round_number}-left", f"race-{round_number}-right"]

        responses = await asyncio.gather(
            *(http.post("/v1/reservations", json={"order_id": order, "lines": lines}) for order in orders)
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 409], (round_number, [r.text for r in responses])
        winner = next(r for r in responses if r.status_code == 201).json()
        loser = next(r for r in responses if r.status_code == 409)
        loser_order = orders[responses.index(loser)]

        assert sorted((line["sku"], line["quantity"]) for line in winner["lines"]) == [(sku_a, 1), (sku_b, 2)]
        problem = loser.json()
        assert problem["code"] == "out_of_stock", problem
        assert [(s["sku"], s["requested"], s["available"]) for s in problem["shortfalls"]] == [
            (sku_a, 1, 0)
        ], problem

        assert await level(http, sku_a, WAREHOUSE) == (1, 1, 0), round_number
        assert await level(http, sku_b, WAREHOUSE) == (5, 2, 3), round_number
        listed = await http.get("/v1/reservations", params={"order_id": loser_order})
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == [], round_number
        for sku in (sku_a, sku_b):
            reserves = [m for m in await movements_of(http, sku) if m["type"] == "reserve"]
            assert [m["reference_id"] for m in reserves] == [winner["id"]], (round_number, sku)

    await assert_reconciled(http)
