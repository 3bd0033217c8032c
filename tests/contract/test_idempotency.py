"""Idempotency: a POST repeated with its Idempotency-Key is answered, not done, again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stockd.domain.access import ANONYMOUS
from stockd.domain.clock import FakeClock
from tests.conftest import seed
from tests.contract.support import (
    Client,
    assert_json,
    assert_problem,
    balances,
    collect,
    concurrently,
    movements,
    on_the_apps_loop,
    reserve,
    snapshot,
    stock,
)

RECEIVE: dict[str, Any] = {"sku": "A-1", "warehouse_id": "ber", "quantity": 5}
RESERVE: dict[str, Any] = {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 3}]}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_a_repeated_receive_returns_the_first_answer_byte_for_byte_and_receives_once(
    client: Client,
) -> None:
    await seed(client, quantity=10)
    first = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-1"))
    assert first.status_code == 200
    count = len(await movements(client))
    second = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-1"))
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert balances(await stock(client)) == (15, 0, 15)
    assert len(await movements(client)) == count


async def test_a_repeated_reservation_returns_the_first_answer_and_holds_once(client: Client) -> None:
    await seed(client, quantity=10)
    first = await client.post("/v1/reservations", json=RESERVE, headers=keyed("order-o-1"))
    assert first.status_code == 201
    count = len(await movements(client))
    for _ in range(3):
        again = await client.post("/v1/reservations", json=RESERVE, headers=keyed("order-o-1"))
        assert (again.status_code, again.content) == (201, first.content)
    (only,) = await collect(client, "/v1/reservations", order_id="o-1")
    assert only["id"] == first.json()["id"]
    assert balances(await stock(client)) == (10, 3, 7)
    assert len(await movements(client)) == count
    assert len(await movements(client, reference_id=only["id"])) == 1


async def test_a_repeated_adjustment_applies_once(client: Client) -> None:
    await seed(client, quantity=10)
    body = {"sku": "A-1", "warehouse_id": "ber", "delta": -4, "reason": "damaged"}
    first = await client.post("/v1/stock/adjust", json=body, headers=keyed("count-1"))
    second = await client.post("/v1/stock/adjust", json=body, headers=keyed("count-1"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == first.content
    assert balances(await stock(client)) == (6, 0, 6)


async def test_a_repeated_confirm_returns_the_first_answer(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = assert_json(await client.post("/v1/reservations", json=RESERVE), 201)
    path = f"/v1/reservations/{reservation['id']}/confirm"
    first = await client.post(path, headers=keyed("pay-1"))
    second = await client.post(path, headers=keyed("pay-1"))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == first.content
    assert balances(await stock(client)) == (7, 0, 7)


async def test_without_a_key_two_identical_receives_both_apply(client: Client) -> None:
    await seed(client, quantity=10)
    for _ in range(2):
        assert_json(await client.post("/v1/stock/receive", json=RECEIVE), 200)
    assert balances(await stock(client)) == (20, 0, 20)


async def test_two_different_keys_are_two_requests(client: Client) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("a")), 200)
    assert_json(await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("b")), 200)
    assert balances(await stock(client)) == (20, 0, 20)


async def test_the_same_key_with_a_different_body_is_422_idempotency_key_reused_and_changes_nothing(
    client: Client,
) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-1")), 200)
    before = await snapshot(client)
    response = await client.post("/v1/stock/receive", json={**RECEIVE, "quantity": 6}, headers=keyed("k-1"))
    assert_problem(response, 422, "idempotency_key_reused")
    assert await snapshot(client) == before


async def test_the_same_key_for_a_different_reservation_is_422_idempotency_key_reused(client: Client) -> None:
    await seed(client, quantity=10)
    assert (await reserve(client, RESERVE["lines"], idempotency_key="k-1")).status_code == 201
    before = await snapshot(client, order_ids=("o-1", "o-2"))
    response = await reserve(client, RESERVE["lines"], order_id="o-2", idempotency_key="k-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert await snapshot(client, order_ids=("o-1", "o-2")) == before


async def test_the_same_key_on_another_endpoint_is_422_idempotency_key_reused(client: Client) -> None:
    await seed(client, quantity=10)
    assert_json(await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-1")), 200)
    before = await snapshot(client)
    response = await client.post("/v1/reservations", json=RESERVE, headers=keyed("k-1"))
    assert_problem(response, 422, "idempotency_key_reused")
    assert await snapshot(client) == before


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["256-chars", "empty"])
async def test_a_key_outside_1_to_255_chars_is_422_and_changes_nothing(client: Client, key: str) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    response = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed(key))
    assert_problem(response, 422, "validation_error")
    assert await snapshot(client) == before


async def test_a_key_of_255_chars_is_accepted_and_honoured(client: Client) -> None:
    await seed(client, quantity=10)
    key = "k" * 255
    first = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed(key))
    second = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed(key))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == first.content
    assert balances(await stock(client)) == (15, 0, 15)


async def test_an_out_of_stock_answer_is_replayed_even_after_stock_arrives(client: Client) -> None:
    await seed(client, quantity=2)
    first = await reserve(client, RESERVE["lines"], idempotency_key="k-oos")
    assert_problem(first, 409, "out_of_stock")
    assert_json(await client.post("/v1/stock/receive", json=RECEIVE), 200)

    second = await reserve(client, RESERVE["lines"], idempotency_key="k-oos")
    assert_problem(second, 409, "out_of_stock")
    assert second.content == first.content
    assert await collect(client, "/v1/reservations", order_id="o-1") == []
    assert balances(await stock(client)) == (7, 0, 7)


async def test_a_not_found_answer_is_replayed_even_after_the_product_exists(client: Client) -> None:
    await seed(client, quantity=10)
    body = {"sku": "B-2", "warehouse_id": "ber", "quantity": 5}
    first = await client.post("/v1/stock/receive", json=body, headers=keyed("k-404"))
    assert_problem(first, 404, "not_found")
    assert_json(await client.put("/v1/products/B-2", json={"name": "b"}), 201)
    second = await client.post("/v1/stock/receive", json=body, headers=keyed("k-404"))
    assert (second.status_code, second.content) == (404, first.content)
    assert (await stock(client, "B-2"))["quantity_on_hand"] == 0


async def test_a_key_is_still_honoured_almost_24_hours_later(client: Client, clock: FakeClock) -> None:
    await seed(client, quantity=10)
    first = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-day"))
    clock.advance(24 * 3600 - 60)
    second = await client.post("/v1/stock/receive", json=RECEIVE, headers=keyed("k-day"))
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert balances(await stock(client)) == (15, 0, 15)


async def test_100_concurrent_requests_with_one_key_make_exactly_one_reservation(client: Client) -> None:
    await seed(client, quantity=1_000)

    async def call(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/v1/reservations", json=RESERVE, headers=keyed("flash-sale-1"))

    answers = await concurrently(client, [call] * 100)

    assert all(a.status_code < 500 for a in answers), [a.text for a in answers if a.status_code >= 500]
    created = [a for a in answers if a.status_code == 201]
    others = [a for a in answers if a.status_code != 201]
    assert created, "no request got the reservation"
    assert len({a.content for a in created}) == 1, "the 201 answers differ"
    for other in others:
        assert_problem(other, 409, "request_in_progress")

    (only,) = await collect(client, "/v1/reservations", order_id="o-1")
    assert only["id"] == created[0].json()["id"]
    assert balances(await stock(client)) == (1_000, 3, 997)
    assert len(await movements(client, reference_id=only["id"])) == 1

    # Once the first has finished, every repeat is the stored 201.
    replay = await client.post("/v1/reservations", json=RESERVE, headers=keyed("flash-sale-1"))
    assert (replay.status_code, replay.content) == (201, created[0].content)


async def test_100_concurrent_requests_with_distinct_keys_never_oversell(client: Client) -> None:
    await seed(client, quantity=50)

    def call_with(key: str) -> Any:
        async def call(http: httpx.AsyncClient) -> httpx.Response:
            body = {"order_id": key, "lines": [{"sku": "A-1", "quantity": 1}]}
            return await http.post("/v1/reservations", json=body, headers=keyed(key))

        return call

    answers = await concurrently(client, [call_with(f"buyer-{n}") for n in range(100)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 50 + [409] * 50
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "out_of_stock")
    assert balances(await stock(client)) == (50, 50, 0)
    report = assert_json(await client.get("/v1/reconciliation"), 200)
    assert report["mismatches"] == []


SUBSCRIBE: dict[str, Any] = {"url": "http://127.0.0.1:9/hook", "events": ["alert.opened"]}


async def test_a_key_claimed_by_a_process_that_died_before_answering_is_taken_over_after_five_minutes(
    client: Client, clock: FakeClock
) -> None:
    """Not a stock command: the key is claimed in the database before the answer is computed."""
    store = client.app.state.service.store
    assert_json(await client.post("/v1/webhooks", json=SUBSCRIBE, headers=keyed("probe")), 201)
    probe = await on_the_apps_loop(client, lambda: store.find_idempotency_record(ANONYMOUS, "probe"))
    assert probe is not None

    async def claim_and_die() -> bool:
        """Another process claimed "k-1" for this same request, then died before answering."""
        return bool(
            await store.claim_idempotency_key(ANONYMOUS, "k-1", probe.fingerprint, clock.now(), clock.now())
        )

    assert await on_the_apps_loop(client, claim_and_die)

    waiting = await client.post("/v1/webhooks", json=SUBSCRIBE, headers=keyed("k-1"))
    assert_problem(waiting, 409, "request_in_progress")
    clock.advance(6 * 60)
    taken_over = await client.post("/v1/webhooks", json=SUBSCRIBE, headers=keyed("k-1"))
    assert_json(taken_over, 201)
    repeat = await client.post("/v1/webhooks", json=SUBSCRIBE, headers=keyed("k-1"))
    assert repeat.content == taken_over.content


async def test_a_keyed_request_refused_before_it_had_an_answer_leaves_the_key_free(client: Client) -> None:
    refused = await client.post(
        "/v1/webhooks", json={**SUBSCRIBE, "events": ["no.such.event"]}, headers=keyed("k-1")
    )
    assert_problem(refused, 422, "validation_error")
    assert_json(await client.post("/v1/webhooks", json=SUBSCRIBE, headers=keyed("k-1")), 201)
