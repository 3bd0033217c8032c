"""The per-order cap on units held of one SKU (``--max-units-per-order``), on every engine."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from stockd.api.app import create_app
from stockd.config import Settings
from stockd.domain.clock import FakeClock
from tests.conftest import seed
from tests.contract.support import Client, assert_json, assert_problem

CAP = 3


@pytest.fixture
async def capped(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    capped_settings = dataclasses.replace(settings, max_units_per_order=CAP)
    async with AsyncTestClient(create_app(capped_settings, clock)) as client:
        yield client


async def hold(client: Client, order_id: str, quantity: int, sku: str = "A-1"):  # type: ignore[no-untyped-def]
    return await client.post(
        "/v1/reservations", json={"order_id": order_id, "lines": [{"sku": sku, "quantity": quantity}]}
    )


async def test_one_order_cannot_hold_more_than_the_cap_of_a_sku(capped: Client) -> None:
    await seed(capped, quantity=100)
    assert_json(await hold(capped, "bot", 2), 201)
    assert_problem(await hold(capped, "bot", 2), 409, "order_limit_exceeded")
    assert_json(await hold(capped, "bot", 1), 201)
    assert_problem(await hold(capped, "bot", 1), 409, "order_limit_exceeded")
    assert_json(await hold(capped, "someone-else", 3), 201)
    stock = assert_json(await capped.get("/v1/stock/A-1"), 200)
    assert stock["quantity_reserved"] == 6


async def test_lines_of_one_sku_in_one_request_count_together(capped: Client) -> None:
    await seed(capped, quantity=100)
    body = {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 2}, {"sku": "A-1", "quantity": 2}]}
    assert_problem(await capped.post("/v1/reservations", json=body), 409, "order_limit_exceeded")
    assert assert_json(await capped.get("/v1/stock/A-1"), 200)["quantity_reserved"] == 0


async def test_released_and_confirmed_units_no_longer_count(capped: Client) -> None:
    await seed(capped, quantity=100)
    first = assert_json(await hold(capped, "o-1", 3), 201)
    assert_json(await capped.post(f"/v1/reservations/{first['id']}/release"), 200)
    second = assert_json(await hold(capped, "o-1", 3), 201)
    assert_json(await capped.post(f"/v1/reservations/{second['id']}/confirm"), 200)
    assert_json(await hold(capped, "o-1", 3), 201)


async def test_without_a_cap_an_order_may_hold_any_amount(client: Client) -> None:
    await seed(client, quantity=100)
    assert_json(await hold(client, "o-1", 50), 201)
    assert_json(await hold(client, "o-1", 50), 201)
