"""Transfers between warehouses, over HTTP, on every engine and strategy."""

from __future__ import annotations

import pytest

from tests.conftest import seed
from tests.contract.support import Client, assert_json, assert_problem


async def two_warehouses(client: Client, quantity: int = 10) -> None:
    await seed(client, "A-1", "ber", quantity)
    await seed(client, "A-1", "muc", 0, latitude=48.14, longitude=11.58)


async def send(client: Client, quantity: int = 4, **extra: object) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/v1/transfers",
        json={
            "sku": "A-1",
            "from_warehouse_id": "ber",
            "to_warehouse_id": "muc",
            "quantity": quantity,
            **extra,
        },
    )
    return assert_json(response, 201)  # type: ignore[no-any-return]


async def test_a_transfer_takes_stock_out_of_the_source_at_once_and_shows_it_in_transit(
    client: Client,
) -> None:
    await two_warehouses(client)
    transfer = await send(client, 4, reference_id="po-7")
    assert transfer["status"] == "in_transit"
    assert transfer["received_at"] is None
    assert (transfer["sku"], transfer["from_warehouse_id"], transfer["to_warehouse_id"]) == (
        "A-1",
        "ber",
        "muc",
    )
    stock = assert_json(await client.get("/v1/stock/A-1"), 200)
    assert (stock["quantity_on_hand"], stock["quantity_in_transit"]) == (6, 4)
    by_warehouse = {w["warehouse_id"]: w for w in stock["warehouses"]}
    assert by_warehouse["ber"]["quantity_on_hand"] == 6
    assert (by_warehouse["muc"]["quantity_on_hand"], by_warehouse["muc"]["quantity_in_transit"]) == (0, 4)
    assert assert_json(await client.get(f"/v1/transfers/{transfer['id']}"), 200) == transfer


async def test_receiving_a_transfer_puts_its_stock_into_the_destination_once(client: Client) -> None:
    await two_warehouses(client)
    transfer = await send(client, 4)
    received = assert_json(await client.post(f"/v1/transfers/{transfer['id']}/receive"), 200)
    again = assert_json(await client.post(f"/v1/transfers/{transfer['id']}/receive"), 200)
    assert received["status"] == "received" and received["received_at"] is not None
    assert again == received
    destination = assert_json(await client.get("/v1/stock/A-1/muc"), 200)
    assert (destination["quantity_on_hand"], destination["quantity_in_transit"]) == (4, 0)
    assert assert_json(await client.get("/v1/stock/A-1"), 200)["quantity_on_hand"] == 10


async def test_both_movements_of_a_transfer_reference_it(client: Client) -> None:
    await two_warehouses(client)
    transfer = await send(client, 3)
    await client.post(f"/v1/transfers/{transfer['id']}/receive")
    page = assert_json(await client.get("/v1/movements", params={"reference_id": transfer["id"]}), 200)
    moves = [(m["type"], m["warehouse_id"], m["on_hand_delta"], m["reference_type"]) for m in page["items"]]
    assert moves == [("transfer_out", "ber", -3, "transfer"), ("transfer_in", "muc", 3, "transfer")]
    assert assert_json(await client.get("/v1/reconciliation"), 200)["mismatches"] == []


async def test_a_transfer_larger_than_what_is_available_is_refused_and_changes_nothing(
    client: Client,
) -> None:
    await two_warehouses(client, quantity=5)
    reserve = await client.post(
        "/v1/reservations",
        json={"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 2, "warehouse_id": "ber"}]},
    )
    assert reserve.status_code == 201
    response = await client.post(
        "/v1/transfers",
        json={"sku": "A-1", "from_warehouse_id": "ber", "to_warehouse_id": "muc", "quantity": 4},
    )
    assert_problem(response, 409, "insufficient_stock")
    stock = assert_json(await client.get("/v1/stock/A-1"), 200)
    assert (stock["quantity_on_hand"], stock["quantity_reserved"], stock["quantity_in_transit"]) == (5, 2, 0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"to_warehouse_id": "ber"}, 422, "validation_error"),
        ({"to_warehouse_id": "nowhere"}, 404, "not_found"),
        ({"from_warehouse_id": "nowhere"}, 404, "not_found"),
        ({"sku": "NO-SUCH"}, 404, "not_found"),
        ({"quantity": 0}, 422, "validation_error"),
        ({"quantity": 2.0}, 422, "validation_error"),
    ],
    ids=["same warehouse", "unknown destination", "unknown source", "unknown sku", "zero", "float"],
)
async def test_a_bad_transfer_is_a_problem_document(
    client: Client, body: dict, status: int, code: str
) -> None:  # type: ignore[type-arg]
    await two_warehouses(client)
    request = {"sku": "A-1", "from_warehouse_id": "ber", "to_warehouse_id": "muc", "quantity": 1, **body}
    assert_problem(await client.post("/v1/transfers", json=request), status, code)
    assert assert_json(await client.get("/v1/stock/A-1"), 200)["quantity_on_hand"] == 10


async def test_an_unknown_transfer_is_404(client: Client) -> None:
    assert_problem(await client.get("/v1/transfers/nope"), 404, "not_found")
    assert_problem(await client.post("/v1/transfers/nope/receive"), 404, "not_found")


async def test_a_repeated_transfer_with_one_idempotency_key_moves_stock_once(client: Client) -> None:
    await two_warehouses(client)
    body = {"sku": "A-1", "from_warehouse_id": "ber", "to_warehouse_id": "muc", "quantity": 2}
    first = await client.post("/v1/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    second = await client.post("/v1/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert assert_json(await client.get("/v1/stock/A-1"), 200)["quantity_in_transit"] == 2
