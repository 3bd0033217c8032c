"""Stock: receiving goods, adjustments with compare-and-set, reading levels, reorder policies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import seed
from tests.contract.support import (
    Client,
    assert_json,
    assert_problem,
    balances,
    level,
    movements,
    reserved,
    snapshot,
    stock,
)


def adjustment(delta: int, reason: str = "count_correction", **extra: Any) -> dict[str, Any]:
    return {"sku": "A-1", "warehouse_id": "ber", "delta": delta, "reason": reason, **extra}


async def test_receiving_goods_returns_the_level_after_the_change(client: Client) -> None:
    await seed(client, quantity=0)
    body = assert_json(
        await client.post("/v1/stock/receive", json={"sku": "A-1", "warehouse_id": "ber", "quantity": 7}),
        200,
    )
    assert body == {
        "sku": "A-1",
        "warehouse_id": "ber",
        "quantity_on_hand": 7,
        "quantity_reserved": 0,
        "quantity_available": 7,
        "reorder_point": None,
        "reorder_quantity": None,
    }


async def test_receiving_twice_adds_up(client: Client) -> None:
    await seed(client, quantity=7)
    body = assert_json(
        await client.post("/v1/stock/receive", json={"sku": "A-1", "warehouse_id": "ber", "quantity": 5}),
        200,
    )
    assert balances(body) == (12, 0, 12)
    assert balances(await stock(client)) == (12, 0, 12)


async def test_receiving_the_largest_quantity_is_accepted(client: Client) -> None:
    await seed(client, quantity=0)
    body = assert_json(
        await client.post(
            "/v1/stock/receive", json={"sku": "A-1", "warehouse_id": "ber", "quantity": 1_000_000_000}
        ),
        200,
    )
    assert balances(body) == (1_000_000_000, 0, 1_000_000_000)


@pytest.mark.parametrize(
    ("sku", "warehouse_id"),
    [("NOPE-1", "ber"), ("A-1", "nowhere")],
    ids=["unknown-sku", "unknown-warehouse"],
)
async def test_receiving_for_an_unknown_sku_or_warehouse_is_404_and_changes_nothing(
    client: Client, sku: str, warehouse_id: str
) -> None:
    await seed(client, quantity=3)
    before = await snapshot(client)
    response = await client.post(
        "/v1/stock/receive", json={"sku": sku, "warehouse_id": warehouse_id, "quantity": 5}
    )
    assert_problem(response, 404, "not_found")
    assert await snapshot(client) == before


async def test_stock_of_a_sku_sums_its_warehouses_and_lists_each(client: Client) -> None:
    await seed(client, warehouse_id="ber", quantity=10)
    await seed(client, warehouse_id="muc", quantity=5, latitude=48.14, longitude=11.58)
    await reserved(client, [{"sku": "A-1", "quantity": 3, "warehouse_id": "ber"}])
    body = await stock(client)
    assert body["sku"] == "A-1"
    assert balances(body) == (15, 3, 12)
    by_warehouse = {entry["warehouse_id"]: entry for entry in body["warehouses"]}
    assert set(by_warehouse) == {"ber", "muc"}
    assert by_warehouse["ber"] == {
        "warehouse_id": "ber",
        "quantity_on_hand": 10,
        "quantity_reserved": 3,
        "quantity_available": 7,
        "reorder_point": None,
        "reorder_quantity": None,
        "quantity_in_transit": 0,  # stockd's extension (docs/api-extensions.md)
    }
    assert balances(by_warehouse["muc"]) == (5, 0, 5)


async def test_a_known_sku_with_no_stock_has_zeros_and_an_empty_list(client: Client) -> None:
    assert_json(await client.put("/v1/products/A-1", json={"name": "Anvil"}), 201)
    assert await stock(client) == {
        "sku": "A-1",
        "quantity_on_hand": 0,
        "quantity_reserved": 0,
        "quantity_available": 0,
        "quantity_in_transit": 0,  # stockd's extension (docs/api-extensions.md)
        "warehouses": [],
    }


async def test_stock_of_an_unknown_sku_is_404(client: Client) -> None:
    assert_problem(await client.get("/v1/stock/NOPE-1"), 404, "not_found")


async def test_one_level_is_the_entry_of_the_list_with_sku_added(client: Client) -> None:
    await seed(client, quantity=10)
    await reserved(client, [{"sku": "A-1", "quantity": 4}])
    entry = (await stock(client))["warehouses"][0]
    assert await level(client) == {"sku": "A-1", **entry}


@pytest.mark.parametrize(
    "path", ["/v1/stock/NOPE-1/ber", "/v1/stock/A-1/nowhere"], ids=["unknown-sku", "unknown-warehouse"]
)
async def test_one_level_of_an_unknown_sku_or_warehouse_is_404(client: Client, path: str) -> None:
    await seed(client, quantity=1)
    assert_problem(await client.get(path), 404, "not_found")


async def test_a_positive_adjustment_adds_stock(client: Client) -> None:
    await seed(client, quantity=10)
    body = assert_json(await client.post("/v1/stock/adjust", json=adjustment(3, "found")), 200)
    assert (body["sku"], body["warehouse_id"]) == ("A-1", "ber")
    assert balances(body) == (13, 0, 13)
    assert balances(await level(client)) == (13, 0, 13)


async def test_a_negative_adjustment_removes_stock(client: Client) -> None:
    await seed(client, quantity=10)
    body = assert_json(await client.post("/v1/stock/adjust", json=adjustment(-4, "damaged")), 200)
    assert balances(body) == (6, 0, 6)


async def test_an_adjustment_with_the_current_expected_on_hand_applies(client: Client) -> None:
    await seed(client, quantity=10)
    body = assert_json(
        await client.post("/v1/stock/adjust", json=adjustment(-2, "lost", expected_on_hand=10)), 200
    )
    assert balances(body) == (8, 0, 8)


async def test_an_adjustment_with_a_stale_expected_on_hand_is_409_stale_quantity_and_changes_nothing(
    client: Client,
) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/adjust", json=adjustment(-1, "lost", expected_on_hand=10)), 200)
    before = await snapshot(client)
    # A second counter read 10 before the first adjustment landed.
    response = await client.post("/v1/stock/adjust", json=adjustment(-1, "lost", expected_on_hand=10))
    assert_problem(response, 409, "stale_quantity")
    assert await snapshot(client) == before
    assert balances(await level(client)) == (9, 0, 9)


async def test_a_negative_adjustment_beyond_available_is_409_insufficient_stock_and_changes_nothing(
    client: Client,
) -> None:
    await seed(client, quantity=10)
    await reserved(client, [{"sku": "A-1", "quantity": 4}])
    before = await snapshot(client)
    # 10 on hand, but only 6 available: removing 7 would eat into held stock.
    assert_problem(await client.post("/v1/stock/adjust", json=adjustment(-7)), 409, "insufficient_stock")
    assert await snapshot(client) == before
    body = assert_json(await client.post("/v1/stock/adjust", json=adjustment(-6)), 200)
    assert balances(body) == (4, 4, 0)


async def test_a_negative_adjustment_of_a_level_without_stock_is_409_insufficient_stock(
    client: Client,
) -> None:
    await seed(client, quantity=0)
    assert_problem(await client.post("/v1/stock/adjust", json=adjustment(-1)), 409, "insufficient_stock")


@pytest.mark.parametrize(
    ("sku", "warehouse_id"),
    [("NOPE-1", "ber"), ("A-1", "nowhere")],
    ids=["unknown-sku", "unknown-warehouse"],
)
async def test_adjusting_an_unknown_sku_or_warehouse_is_404_and_changes_nothing(
    client: Client, sku: str, warehouse_id: str
) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    body = {"sku": sku, "warehouse_id": warehouse_id, "delta": 1, "reason": "found"}
    assert_problem(await client.post("/v1/stock/adjust", json=body), 404, "not_found")
    assert await snapshot(client) == before


async def test_a_zero_adjustment_is_a_422(client: Client) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    assert_problem(await client.post("/v1/stock/adjust", json=adjustment(0)), 422, "validation_error")
    assert await snapshot(client) == before


@pytest.mark.parametrize("reason", ["damaged", "lost", "found", "count_correction"])
async def test_every_adjustment_reason_is_accepted(client: Client, reason: str) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/adjust", json=adjustment(1, reason)), 200)


async def test_an_adjustment_is_a_movement_in_the_ledger(client: Client) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/adjust", json=adjustment(-3, "damaged")), 200)
    last = (await movements(client, sku="A-1"))[-1]
    assert (last["type"], last["quantity"], last["on_hand_delta"], last["reserved_delta"]) == (
        "adjust",
        3,
        -3,
        0,
    )


async def test_a_reorder_policy_is_set_and_shown_on_the_level(client: Client) -> None:
    await seed(client, quantity=10)
    body = assert_json(
        await client.put(
            "/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": 5, "reorder_quantity": 20}
        ),
        200,
    )
    assert body["sku"] == "A-1" and body["warehouse_id"] == "ber"
    assert (body["reorder_point"], body["reorder_quantity"]) == (5, 20)
    assert balances(body) == (10, 0, 10)
    # A GET adds what is in transit (stockd's extension); a command's answer leaves it out.
    assert await level(client) == {**body, "quantity_in_transit": 0}
    entry = (await stock(client))["warehouses"][0]
    assert (entry["reorder_point"], entry["reorder_quantity"]) == (5, 20)


async def test_a_reorder_policy_can_be_replaced(client: Client) -> None:
    await seed(client, quantity=10)
    path = "/v1/stock/A-1/ber/reorder-policy"
    assert_json(await client.put(path, json={"reorder_point": 5, "reorder_quantity": 20}), 200)
    body = assert_json(await client.put(path, json={"reorder_point": 0, "reorder_quantity": 1}), 200)
    assert (body["reorder_point"], body["reorder_quantity"]) == (0, 1)


async def test_a_reorder_policy_changes_no_balance_and_writes_no_movement(client: Client) -> None:
    await seed(client, quantity=10)
    count = len(await movements(client))
    assert_json(
        await client.put(
            "/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": 2, "reorder_quantity": 3}
        ),
        200,
    )
    assert len(await movements(client)) == count
    assert balances(await level(client)) == (10, 0, 10)


@pytest.mark.parametrize(
    "path",
    ["/v1/stock/NOPE-1/ber/reorder-policy", "/v1/stock/A-1/nowhere/reorder-policy"],
    ids=["unknown-sku", "unknown-warehouse"],
)
async def test_a_reorder_policy_for_an_unknown_sku_or_warehouse_is_404(client: Client, path: str) -> None:
    await seed(client, quantity=10)
    response = await client.put(path, json={"reorder_point": 1, "reorder_quantity": 1})
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"reorder_point": -1, "reorder_quantity": 1},
        {"reorder_point": 1, "reorder_quantity": 0},
        {"reorder_point": 1.5, "reorder_quantity": 1},
        {"reorder_point": 1},
    ],
    ids=["negative-point", "zero-quantity", "float-point", "missing-quantity"],
)
async def test_an_invalid_reorder_policy_is_a_422_and_changes_nothing(
    client: Client, body: dict[str, Any]
) -> None:
    await seed(client, quantity=10)
    before = await level(client)
    response = await client.put("/v1/stock/A-1/ber/reorder-policy", json=body)
    assert_problem(response, 422, "validation_error")
    assert await level(client) == before
