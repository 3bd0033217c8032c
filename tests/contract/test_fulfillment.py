"""Fulfillment planning over HTTP, and reservations placed by the planner, on every engine."""

from __future__ import annotations

import pytest

from tests.conftest import seed
from tests.contract.support import Client, assert_json, assert_problem

BERLIN = {"latitude": 52.52, "longitude": 13.405}
HAMBURG = (53.551, 9.994)
MUNICH = (48.137, 11.575)
POTSDAM = {"latitude": 52.39, "longitude": 13.06}


async def network(client: Client, hamburg: int, munich: int, sku: str = "A-1") -> None:
    await seed(client, sku, "hamburg", hamburg, latitude=HAMBURG[0], longitude=HAMBURG[1])
    await seed(client, sku, "munich", munich, latitude=MUNICH[0], longitude=MUNICH[1])


async def test_the_plan_picks_the_nearest_warehouse_that_can_fill_the_order(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    plan = assert_json(
        await client.post(
            "/v1/fulfillment/plan", json={"lines": [{"sku": "A-1", "quantity": 3}], "ship_to": BERLIN}
        ),
        200,
    )
    [allocation] = plan["allocations"]
    assert (allocation["warehouse_id"], allocation["quantity"]) == ("hamburg", 3)
    assert 250 < allocation["distance_km"] < 260
    assert "nearest" in allocation["reason"]
    assert plan["warehouse_count"] == 1 and plan["shortfalls"] == []


async def test_the_plan_splits_only_when_no_warehouse_can_fill_a_line(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    plan = assert_json(
        await client.post(
            "/v1/fulfillment/plan", json={"lines": [{"sku": "A-1", "quantity": 15}], "ship_to": BERLIN}
        ),
        200,
    )
    assert sorted((a["warehouse_id"], a["quantity"]) for a in plan["allocations"]) == [
        ("hamburg", 10),
        ("munich", 5),
    ]
    assert plan["warehouse_count"] == 2
    assert any(a["reason"].startswith("split") for a in plan["allocations"])


async def test_the_plan_reports_a_shortfall_and_changes_nothing(client: Client) -> None:
    await network(client, hamburg=2, munich=3)
    plan = assert_json(
        await client.post("/v1/fulfillment/plan", json={"lines": [{"sku": "A-1", "quantity": 9}]}), 200
    )
    assert plan["allocations"] == []
    assert plan["shortfalls"] == [{"sku": "A-1", "requested": 9, "available": 5}]
    assert assert_json(await client.get("/v1/stock/A-1"), 200)["quantity_reserved"] == 0


async def test_a_delivery_deadline_excludes_warehouses_too_far_away(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    body = {"lines": [{"sku": "A-1", "quantity": 1}], "ship_to": BERLIN, "deliver_within_hours": 33}
    plan = assert_json(await client.post("/v1/fulfillment/plan", json=body), 200)
    # Handling 24 h + 4 h + distance at 60 km/h: Hamburg (~255 km) makes 33 h, Munich (~505 km) does not.
    assert [a["warehouse_id"] for a in plan["allocations"]] == ["hamburg"]
    assert plan["allocations"][0]["estimated_delivery_hours"] <= 33


async def test_a_reservation_without_warehouses_is_held_where_the_plan_says(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    body = {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 12}], "ship_to": BERLIN}
    reservation = assert_json(await client.post("/v1/reservations", json=body), 201)
    assert sorted((line["warehouse_id"], line["quantity"]) for line in reservation["lines"]) == [
        ("hamburg", 10),
        ("munich", 2),
    ]
    stock = assert_json(await client.get("/v1/stock/A-1"), 200)
    assert (stock["quantity_reserved"], stock["quantity_available"]) == (12, 8)


async def test_a_reservation_goes_to_the_warehouse_nearest_its_destination(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    south = {"latitude": 48.0, "longitude": 11.5}
    body = {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 1}], "ship_to": south}
    reservation = assert_json(await client.post("/v1/reservations", json=body), 201)
    assert reservation["lines"] == [{"sku": "A-1", "warehouse_id": "munich", "quantity": 1}]


@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"sku": "A-1", "quantity": 0}]},
        {"lines": [{"sku": "A-1", "quantity": 1}], "ship_to": {"latitude": 91, "longitude": 0}},
        {"lines": [{"sku": "A-1", "quantity": 1}], "deliver_within_hours": 0},
    ],
    ids=["no lines", "zero quantity", "latitude out of range", "no time at all"],
)
async def test_a_bad_plan_request_is_422(client: Client, body: dict) -> None:  # type: ignore[type-arg]
    await network(client, hamburg=1, munich=1)
    assert_problem(await client.post("/v1/fulfillment/plan", json=body), 422, "validation_error")


async def test_planning_an_unknown_sku_is_404(client: Client) -> None:
    assert_problem(
        await client.post("/v1/fulfillment/plan", json={"lines": [{"sku": "NOPE", "quantity": 1}]}),
        404,
        "not_found",
    )


async def test_a_repeated_plan_with_one_key_answers_the_first_plan(client: Client) -> None:
    await network(client, hamburg=10, munich=10)
    body = {"lines": [{"sku": "A-1", "quantity": 3}], "ship_to": BERLIN}
    first = await client.post("/v1/fulfillment/plan", json=body, headers={"Idempotency-Key": "p-1"})
    await client.post(
        "/v1/stock/adjust", json={"sku": "A-1", "warehouse_id": "hamburg", "delta": -10, "reason": "lost"}
    )
    second = await client.post("/v1/fulfillment/plan", json=body, headers={"Idempotency-Key": "p-1"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
