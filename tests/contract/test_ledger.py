"""Ledger: every change is a movement, filterable and oldest first, and the balances reconcile."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from stockd.domain.clock import FakeClock
from tests.conftest import seed
from tests.contract.support import (
    Client,
    assert_json,
    assert_timestamp,
    eventually,
    movements,
    reserved,
    stock,
)

MOVEMENT_FIELDS = {
    "id",
    "sku",
    "warehouse_id",
    "type",
    "quantity",
    "on_hand_delta",
    "reserved_delta",
    "reference_type",
    "reference_id",
    "created_at",
}
TYPES = {"receive", "adjust", "reserve", "release", "expire", "ship", "transfer_out", "transfer_in"}


async def receive(client: Client, quantity: int, **extra: Any) -> None:
    body = {"sku": "A-1", "warehouse_id": "ber", "quantity": quantity, **extra}
    assert_json(await client.post("/v1/stock/receive", json=body), 200)


def summary(items: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    return [(m["type"], m["quantity"], m["on_hand_delta"], m["reserved_delta"]) for m in items]


async def mixed_workload(client: Client, clock: FakeClock) -> None:
    """Receive, adjust, reserve, confirm, release and expire across two skus and two warehouses."""
    await seed(client, sku="A-1", warehouse_id="ber", quantity=20)
    await seed(client, sku="A-1", warehouse_id="muc", quantity=5, latitude=48.14, longitude=11.58)
    await seed(client, sku="B-2", warehouse_id="ber", quantity=8)
    adjust = {"sku": "B-2", "warehouse_id": "ber", "delta": -2, "reason": "damaged"}
    assert_json(await client.post("/v1/stock/adjust", json=adjust), 200)
    shipped = await reserved(client, [{"sku": "A-1", "quantity": 3}, {"sku": "B-2", "quantity": 1}])
    assert_json(await client.post(f"/v1/reservations/{shipped['id']}/confirm"), 200)
    cancelled = await reserved(client, [{"sku": "A-1", "quantity": 2, "warehouse_id": "muc"}], order_id="o-2")
    assert_json(await client.post(f"/v1/reservations/{cancelled['id']}/release"), 200)
    await reserved(client, [{"sku": "B-2", "quantity": 4}], order_id="o-3", ttl_seconds=5)
    await reserved(client, [{"sku": "A-1", "quantity": 6}], order_id="o-4", ttl_seconds=3600)
    clock.advance(6)

    async def expired() -> bool:
        return (await stock(client, "B-2"))["quantity_reserved"] == 0

    assert await eventually(expired)


async def test_movements_have_every_field_of_the_contract(client: Client) -> None:
    await seed(client, quantity=10)
    (movement,) = await movements(client)
    assert set(movement) >= MOVEMENT_FIELDS
    assert isinstance(movement["id"], str)
    assert (movement["sku"], movement["warehouse_id"], movement["type"]) == ("A-1", "ber", "receive")
    assert (movement["quantity"], movement["on_hand_delta"], movement["reserved_delta"]) == (10, 10, 0)
    assert_timestamp(movement["created_at"])


async def test_movements_come_oldest_first_and_record_each_change(client: Client) -> None:
    await seed(client, quantity=10)
    adjust = {"sku": "A-1", "warehouse_id": "ber", "delta": -1, "reason": "lost"}
    assert_json(await client.post("/v1/stock/adjust", json=adjust), 200)
    first = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    assert_json(await client.post(f"/v1/reservations/{first['id']}/confirm"), 200)
    second = await reserved(client, [{"sku": "A-1", "quantity": 2}])
    assert_json(await client.post(f"/v1/reservations/{second['id']}/release"), 200)

    items = await movements(client)
    assert summary(items) == [
        ("receive", 10, 10, 0),
        ("adjust", 1, -1, 0),
        ("reserve", 3, 0, 3),
        ("ship", 3, -3, -3),
        ("reserve", 2, 0, 2),
        ("release", 2, 0, -2),
    ]
    assert len({m["id"] for m in items}) == len(items)
    times = [assert_timestamp(m["created_at"]) for m in items]
    assert times == sorted(times)
    assert all(m["type"] in TYPES and m["quantity"] > 0 for m in items)


async def test_movements_page_through_oldest_first_with_no_item_twice(client: Client) -> None:
    await seed(client, quantity=1)
    for quantity in range(2, 13):
        await receive(client, quantity)
    everything = await movements(client, limit=1000)
    paged = await movements(client, limit=4)
    assert [m["id"] for m in paged] == [m["id"] for m in everything]
    assert [m["quantity"] for m in paged] == list(range(1, 13))


async def test_movements_filter_by_sku(client: Client) -> None:
    await seed(client, sku="A-1", quantity=3)
    await seed(client, sku="B-2", quantity=4)
    items = await movements(client, sku="B-2")
    assert [(m["sku"], m["quantity"]) for m in items] == [("B-2", 4)]


async def test_movements_filter_by_warehouse(client: Client) -> None:
    await seed(client, warehouse_id="ber", quantity=3)
    await seed(client, warehouse_id="muc", quantity=4, latitude=48.14, longitude=11.58)
    items = await movements(client, warehouse_id="muc")
    assert [(m["warehouse_id"], m["quantity"]) for m in items] == [("muc", 4)]


async def test_movements_filter_by_sku_and_warehouse_together(client: Client) -> None:
    await seed(client, sku="A-1", warehouse_id="ber", quantity=1)
    await seed(client, sku="A-1", warehouse_id="muc", quantity=2, latitude=48.14, longitude=11.58)
    await seed(client, sku="B-2", warehouse_id="muc", quantity=3, latitude=48.14, longitude=11.58)
    items = await movements(client, sku="A-1", warehouse_id="muc")
    assert [(m["sku"], m["warehouse_id"], m["quantity"]) for m in items] == [("A-1", "muc", 2)]


async def test_movements_filter_by_reference_id(client: Client) -> None:
    await seed(client, quantity=0)
    await receive(client, 5, reference_id="PO-1", reference_type="purchase_order")
    await receive(client, 6, reference_id="PO-2", reference_type="purchase_order")
    (movement,) = await movements(client, reference_id="PO-2")
    assert (movement["quantity"], movement["reference_id"], movement["reference_type"]) == (
        6,
        "PO-2",
        "purchase_order",
    )


async def test_a_receive_without_reference_has_null_references(client: Client) -> None:
    await seed(client, quantity=5)
    (movement,) = await movements(client)
    assert movement["reference_id"] is None
    assert movement["reference_type"] is None


async def test_reservation_movements_carry_the_reservation_as_their_reference(client: Client) -> None:
    await seed(client, sku="A-1", quantity=10)
    await seed(client, sku="B-2", quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 3}])
    assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    other = await reserved(client, [{"sku": "A-1", "quantity": 1}], order_id="o-2")

    items = await movements(client, reference_id=reservation["id"])
    assert sorted((m["type"], m["sku"], m["quantity"]) for m in items) == [
        ("reserve", "A-1", 2),
        ("reserve", "B-2", 3),
        ("ship", "A-1", 2),
        ("ship", "B-2", 3),
    ]
    assert all(m["reference_type"] == "reservation" for m in items)
    assert all(m["reference_id"] == reservation["id"] for m in items)
    (other_movement,) = await movements(client, reference_id=other["id"])
    assert (other_movement["reference_type"], other_movement["reference_id"]) == ("reservation", other["id"])


async def test_a_filter_that_matches_nothing_is_one_empty_page(client: Client) -> None:
    await seed(client, quantity=5)
    page = assert_json(await client.get("/v1/movements", params={"reference_id": "nothing"}), 200)
    assert page == {"items": [], "next_cursor": None}


async def test_every_balance_is_the_sum_of_its_movements_after_a_mixed_workload(
    client: Client, clock: FakeClock
) -> None:
    await mixed_workload(client, clock)
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for m in await movements(client):
        sums[(m["sku"], m["warehouse_id"])][0] += m["on_hand_delta"]
        sums[(m["sku"], m["warehouse_id"])][1] += m["reserved_delta"]
    levels = {}
    for sku in ("A-1", "B-2"):
        for entry in (await stock(client, sku))["warehouses"]:
            levels[(sku, entry["warehouse_id"])] = [entry["quantity_on_hand"], entry["quantity_reserved"]]
    assert levels == dict(sums)
    assert levels[("A-1", "ber")] == [17, 6]
    assert levels[("A-1", "muc")] == [5, 0]
    assert levels[("B-2", "ber")] == [5, 0]


async def test_reconciliation_finds_no_mismatch_after_a_mixed_workload(
    client: Client, clock: FakeClock
) -> None:
    await mixed_workload(client, clock)
    report = assert_json(await client.get("/v1/reconciliation"), 200)
    assert report["mismatches"] == []
    assert report["broken_links"] == []
    assert report["levels_checked"] == 3


async def test_reconciliation_of_an_empty_service_checks_nothing_and_finds_nothing(client: Client) -> None:
    assert assert_json(await client.get("/v1/reconciliation"), 200) == {
        "levels_checked": 0,
        "mismatches": [],
        "broken_links": [],  # stockd's extension: hash chains (docs/api-extensions.md)
        "persister_lag": 0,  # stockd's extension: the Redis engine's ledger lag
        "levels_moving": 0,  # and the levels it could not compare while they moved
    }
