"""Reservations: hold all or nothing, confirm, release, expire; listing an order's reservations."""

from __future__ import annotations

from datetime import timedelta

from stockd.domain.clock import FakeClock
from tests.conftest import seed
from tests.contract.support import (
    Client,
    assert_json,
    assert_problem,
    assert_timestamp,
    balances,
    collect,
    eventually,
    level,
    movements,
    reserve,
    reserved,
    snapshot,
    stock,
)


async def test_a_reservation_goes_through_its_whole_lifecycle(client: Client) -> None:
    await seed(client, quantity=10)

    created = await reserve(client, [{"sku": "A-1", "quantity": 3}], order_id="o-1", ttl_seconds=600)
    reservation = assert_json(created, 201)
    assert isinstance(reservation["id"], str) and reservation["id"]
    assert reservation["order_id"] == "o-1"
    assert reservation["status"] == "pending"
    created_at = assert_timestamp(reservation["created_at"])
    assert assert_timestamp(reservation["expires_at"]) - created_at == timedelta(seconds=600)
    assert reservation["lines"] == [{"sku": "A-1", "warehouse_id": "ber", "quantity": 3}]
    assert balances(await stock(client)) == (10, 3, 7)

    fetched = assert_json(await client.get(f"/v1/reservations/{reservation['id']}"), 200)
    assert fetched == reservation

    confirmed = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    assert confirmed["status"] == "confirmed"
    assert confirmed["id"] == reservation["id"]
    assert confirmed["lines"] == reservation["lines"]
    # The goods shipped: both on hand and reserved fall by the line's quantity.
    assert balances(await stock(client)) == (7, 0, 7)
    assert assert_json(await client.get(f"/v1/reservations/{reservation['id']}"), 200)["status"] == (
        "confirmed"
    )


async def test_a_reservation_without_ttl_lasts_900_seconds(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 1}])
    lasts = assert_timestamp(reservation["expires_at"]) - assert_timestamp(reservation["created_at"])
    assert lasts == timedelta(seconds=900)


async def test_a_reservation_short_of_stock_is_409_out_of_stock_with_shortfalls_and_holds_nothing(
    client: Client,
) -> None:
    await seed(client, quantity=5)
    before = await snapshot(client)
    response = await reserve(client, [{"sku": "A-1", "quantity": 6, "warehouse_id": "ber"}])
    problem = assert_problem(response, 409, "out_of_stock")
    assert problem["shortfalls"] == [{"sku": "A-1", "warehouse_id": "ber", "requested": 6, "available": 5}]
    assert await snapshot(client) == before


async def test_a_line_without_a_warehouse_short_of_stock_has_a_null_warehouse_in_its_shortfall(
    client: Client,
) -> None:
    await seed(client, quantity=5)
    problem = assert_problem(await reserve(client, [{"sku": "A-1", "quantity": 6}]), 409, "out_of_stock")
    assert len(problem["shortfalls"]) == 1
    shortfall = problem["shortfalls"][0]
    assert shortfall["sku"] == "A-1"
    assert shortfall["warehouse_id"] is None
    assert (shortfall["requested"], shortfall["available"]) == (6, 5)


async def test_a_reservation_of_exactly_the_available_stock_succeeds(client: Client) -> None:
    await seed(client, quantity=5)
    await reserved(client, [{"sku": "A-1", "quantity": 5}])
    assert balances(await stock(client)) == (5, 5, 0)
    assert_problem(await reserve(client, [{"sku": "A-1", "quantity": 1}]), 409, "out_of_stock")


async def test_a_multi_line_reservation_holds_every_line(client: Client) -> None:
    await seed(client, sku="A-1", quantity=10)
    await seed(client, sku="B-2", quantity=4)
    reservation = await reserved(
        client, [{"sku": "A-1", "quantity": 2}, {"sku": "B-2", "quantity": 4, "warehouse_id": "ber"}]
    )
    assert sorted((line["sku"], line["quantity"]) for line in reservation["lines"]) == [
        ("A-1", 2),
        ("B-2", 4),
    ]
    assert balances(await stock(client, "A-1")) == (10, 2, 8)
    assert balances(await stock(client, "B-2")) == (4, 4, 0)


async def test_a_multi_line_reservation_with_one_short_line_holds_none_of_them(client: Client) -> None:
    await seed(client, sku="A-1", quantity=10)
    await seed(client, sku="B-2", quantity=1)
    before_a = await stock(client, "A-1")
    before = await snapshot(client, "B-2")
    response = await reserve(
        client,
        [
            {"sku": "A-1", "quantity": 2, "warehouse_id": "ber"},
            {"sku": "B-2", "quantity": 3, "warehouse_id": "ber"},
        ],
    )
    problem = assert_problem(response, 409, "out_of_stock")
    assert problem["shortfalls"] == [{"sku": "B-2", "warehouse_id": "ber", "requested": 3, "available": 1}]
    assert await stock(client, "A-1") == before_a
    assert await snapshot(client, "B-2") == before


async def test_several_lines_of_one_sku_are_held_together_and_never_oversell(client: Client) -> None:
    await seed(client, quantity=5)
    before = await snapshot(client)
    lines = [
        {"sku": "A-1", "quantity": 3, "warehouse_id": "ber"},
        {"sku": "A-1", "quantity": 3, "warehouse_id": "ber"},
    ]
    problem = assert_problem(await reserve(client, lines), 409, "out_of_stock")
    assert {s["sku"] for s in problem["shortfalls"]} == {"A-1"}
    assert await snapshot(client) == before

    lines = [{"sku": "A-1", "quantity": 2}, {"sku": "A-1", "quantity": 3}]
    reservation = await reserved(client, lines)
    assert sum(line["quantity"] for line in reservation["lines"]) == 5
    assert balances(await stock(client)) == (5, 5, 0)


async def test_a_line_without_a_warehouse_is_placed_where_the_stock_is(client: Client) -> None:
    await seed(client, warehouse_id="ber", quantity=1)
    await seed(client, warehouse_id="muc", quantity=8, latitude=48.14, longitude=11.58)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 5}])
    assert reservation["lines"] == [{"sku": "A-1", "warehouse_id": "muc", "quantity": 5}]
    assert balances(await level(client, warehouse_id="muc")) == (8, 5, 3)
    assert balances(await level(client, warehouse_id="ber")) == (1, 0, 1)


async def test_an_inactive_warehouse_is_never_chosen_for_a_new_reservation(client: Client) -> None:
    await seed(client, quantity=10)
    warehouse = assert_json(await client.get("/v1/warehouses/ber"), 200)
    body = {key: warehouse[key] for key in ("name", "latitude", "longitude", "timezone")}
    assert_json(await client.put("/v1/warehouses/ber", json={**body, "active": False}), 200)
    before = await snapshot(client)
    problem = assert_problem(await reserve(client, [{"sku": "A-1", "quantity": 1}]), 409, "out_of_stock")
    assert problem["shortfalls"][0]["sku"] == "A-1"
    assert await snapshot(client) == before


async def test_a_reservation_may_have_100_lines(client: Client) -> None:
    await seed(client, quantity=100)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 1}] * 100)
    assert sum(line["quantity"] for line in reservation["lines"]) == 100
    assert balances(await stock(client)) == (100, 100, 0)


async def test_reserving_an_unknown_sku_is_404_and_holds_nothing(client: Client) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    response = await reserve(client, [{"sku": "A-1", "quantity": 1}, {"sku": "NOPE-1", "quantity": 1}])
    assert_problem(response, 404, "not_found")
    assert await snapshot(client) == before


async def test_reserving_in_an_unknown_warehouse_is_404_and_holds_nothing(client: Client) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    response = await reserve(client, [{"sku": "A-1", "quantity": 1, "warehouse_id": "nowhere"}])
    assert_problem(response, 404, "not_found")
    assert await snapshot(client) == before


async def test_an_unknown_reservation_is_404_to_get_confirm_and_release(client: Client) -> None:
    assert_problem(await client.get("/v1/reservations/no-such-id"), 404, "not_found")
    assert_problem(await client.post("/v1/reservations/no-such-id/confirm"), 404, "not_found")
    assert_problem(await client.post("/v1/reservations/no-such-id/release"), 404, "not_found")


async def test_confirming_twice_returns_the_confirmed_reservation_and_ships_once(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    first = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    count = len(await movements(client))
    second = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    assert second["status"] == "confirmed"
    assert second == first
    assert balances(await stock(client)) == (7, 0, 7)
    assert len(await movements(client)) == count


async def test_confirming_a_released_reservation_is_409_invalid_state(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    assert_json(await client.post(f"/v1/reservations/{reservation['id']}/release"), 200)
    before = await snapshot(client)
    response = await client.post(f"/v1/reservations/{reservation['id']}/confirm")
    assert_problem(response, 409, "invalid_state")
    assert await snapshot(client) == before
    assert assert_json(await client.get(f"/v1/reservations/{reservation['id']}"), 200)["status"] == "released"


async def test_releasing_gives_the_held_stock_back(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    released = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/release"), 200)
    assert released["status"] == "released"
    assert released["id"] == reservation["id"]
    assert balances(await stock(client)) == (10, 0, 10)


async def test_releasing_a_confirmed_reservation_is_409_invalid_state(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    before = await snapshot(client)
    response = await client.post(f"/v1/reservations/{reservation['id']}/release")
    assert_problem(response, 409, "invalid_state")
    assert await snapshot(client) == before


async def test_releasing_twice_returns_the_released_reservation_and_gives_back_once(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}])
    first = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/release"), 200)
    count = len(await movements(client))
    second = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/release"), 200)
    assert second["status"] == "released"
    assert second == first
    assert balances(await stock(client)) == (10, 0, 10)
    assert len(await movements(client)) == count


async def test_a_reservation_confirmed_just_before_its_expiry_ships(client: Client, clock: FakeClock) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 3}], ttl_seconds=60)
    clock.advance(59)
    assert assert_json(await client.get(f"/v1/reservations/{reservation['id']}"), 200)["status"] == "pending"
    confirmed = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/confirm"), 200)
    assert confirmed["status"] == "confirmed"
    assert balances(await stock(client)) == (7, 0, 7)


async def test_a_lapsed_reservation_reads_expired_cannot_be_confirmed_and_its_stock_comes_back(
    client: Client, clock: FakeClock
) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 4}], ttl_seconds=60)
    rid = reservation["id"]
    assert balances(await stock(client)) == (10, 4, 6)

    clock.advance(61)
    # At once, whether or not the sweeper has run yet.
    assert assert_json(await client.get(f"/v1/reservations/{rid}"), 200)["status"] == "expired"
    assert_problem(await client.post(f"/v1/reservations/{rid}/confirm"), 409, "reservation_expired")

    async def stock_is_back() -> bool:
        return balances(await stock(client)) == (10, 0, 10)

    assert await eventually(stock_is_back), await stock(client)
    expires = [m for m in await movements(client, reference_id=rid) if m["type"] == "expire"]
    assert len(expires) == 1
    assert (expires[0]["quantity"], expires[0]["on_hand_delta"], expires[0]["reserved_delta"]) == (4, 0, -4)
    assert expires[0]["reference_type"] == "reservation"

    # Final: still expired, still not confirmable; releasing it returns it as it is.
    assert assert_json(await client.get(f"/v1/reservations/{rid}"), 200)["status"] == "expired"
    assert_problem(await client.post(f"/v1/reservations/{rid}/confirm"), 409, "reservation_expired")
    released = assert_json(await client.post(f"/v1/reservations/{rid}/release"), 200)
    assert released["status"] == "expired"
    assert balances(await stock(client)) == (10, 0, 10)
    assert len([m for m in await movements(client, reference_id=rid) if m["type"] == "expire"]) == 1


async def test_releasing_a_lapsed_reservation_returns_it_expired_and_gives_the_stock_back_once(
    client: Client, clock: FakeClock
) -> None:
    await seed(client, quantity=10)
    reservation = await reserved(client, [{"sku": "A-1", "quantity": 4}], ttl_seconds=30)
    clock.advance(31)
    released = assert_json(await client.post(f"/v1/reservations/{reservation['id']}/release"), 200)
    assert released["status"] == "expired"

    async def stock_is_back() -> bool:
        return balances(await stock(client)) == (10, 0, 10)

    assert await eventually(stock_is_back)
    given_back = [
        m for m in await movements(client, reference_id=reservation["id"]) if m["reserved_delta"] < 0
    ]
    assert sum(m["reserved_delta"] for m in given_back) == -4


async def test_a_lapsed_reservation_lists_as_expired(client: Client, clock: FakeClock) -> None:
    await seed(client, quantity=10)
    await reserved(client, [{"sku": "A-1", "quantity": 1}], ttl_seconds=10)
    clock.advance(11)
    (only,) = await collect(client, "/v1/reservations", order_id="o-1")
    assert only["status"] == "expired"


async def test_an_expired_reservations_stock_can_be_reserved_again(client: Client, clock: FakeClock) -> None:
    await seed(client, quantity=5)
    await reserved(client, [{"sku": "A-1", "quantity": 5}], ttl_seconds=10)
    assert_problem(
        await reserve(client, [{"sku": "A-1", "quantity": 5}], order_id="o-2"), 409, "out_of_stock"
    )
    clock.advance(11)

    async def available_again() -> bool:
        return (await stock(client))["quantity_available"] == 5

    assert await eventually(available_again)
    again = await reserved(client, [{"sku": "A-1", "quantity": 5}], order_id="o-2")
    assert again["status"] == "pending"


async def test_an_orders_reservations_page_through_with_no_item_twice_and_none_missing(
    client: Client,
) -> None:
    await seed(client, quantity=100)
    mine = [(await reserved(client, [{"sku": "A-1", "quantity": 1}], order_id="o-1"))["id"] for _ in range(7)]
    for _ in range(2):
        await reserved(client, [{"sku": "A-1", "quantity": 1}], order_id="o-2")

    first = assert_json(await client.get("/v1/reservations", params={"order_id": "o-1", "limit": 3}), 200)
    assert len(first["items"]) == 3
    assert first["next_cursor"] is not None

    listed = await collect(client, "/v1/reservations", limit=3, order_id="o-1")
    ids = [r["id"] for r in listed]
    assert len(ids) == len(set(ids)), "a reservation came twice"
    assert sorted(ids) == sorted(mine), "a reservation is missing or foreign"
    assert all(r["order_id"] == "o-1" for r in listed)
    assert len(await collect(client, "/v1/reservations", order_id="o-2")) == 2


async def test_an_order_without_reservations_lists_one_empty_page(client: Client) -> None:
    page = assert_json(await client.get("/v1/reservations", params={"order_id": "nobody"}), 200)
    assert page == {"items": [], "next_cursor": None}


async def test_listing_reservations_shows_each_as_get_does(client: Client) -> None:
    await seed(client, quantity=10)
    a = await reserved(client, [{"sku": "A-1", "quantity": 1}])
    b = await reserved(client, [{"sku": "A-1", "quantity": 2}])
    assert_json(await client.post(f"/v1/reservations/{b['id']}/confirm"), 200)
    listed = {r["id"]: r for r in await collect(client, "/v1/reservations", order_id="o-1")}
    for rid in (a["id"], b["id"]):
        assert listed[rid] == assert_json(await client.get(f"/v1/reservations/{rid}"), 200)
