"""Replenishment alerts and webhooks, over HTTP, on every engine and strategy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from stockd.domain.clock import FakeClock
from stockd.domain.webhooks import verify
from tests.conftest import seed
from tests.contract.support import Client, assert_json, assert_problem, concurrently

DELIVERY_DEADLINE_SECONDS = 10.0


async def with_policy(client: Client, point: int = 5, quantity: int = 20, on_hand: int = 10) -> None:
    await seed(client, "A-1", "ber", on_hand)
    response = await client.put(
        "/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": point, "reorder_quantity": quantity}
    )
    assert_json(response, 200)


async def reserve(client: Client, quantity: int) -> str:
    response = await client.post(
        "/v1/reservations", json={"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": quantity}]}
    )
    return str(assert_json(response, 201)["id"])


async def alerts(client: Client, status: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    params = {"status": status} if status else {}
    return list(assert_json(await client.get("/v1/alerts", params=params), 200)["items"])


async def test_an_alert_opens_when_available_falls_below_the_reorder_point(client: Client) -> None:
    await with_policy(client, point=5, quantity=20, on_hand=10)
    assert await alerts(client) == []
    await reserve(client, 7)
    [alert] = await alerts(client, "open")
    assert (alert["sku"], alert["warehouse_id"], alert["status"]) == ("A-1", "ber", "open")
    assert (alert["quantity_available"], alert["reorder_point"]) == (3, 5)
    assert alert["suggested_quantity"] == 5 + 20 - 3
    assert alert["resolved_at"] is None


async def test_an_alert_resolves_when_available_is_back_at_the_reorder_point(client: Client) -> None:
    await with_policy(client, point=5, on_hand=10)
    reservation = await reserve(client, 7)
    assert_json(await client.post(f"/v1/reservations/{reservation}/release"), 200)
    assert await alerts(client, "open") == []
    [alert] = await alerts(client, "resolved")
    assert alert["quantity_available"] == 10 and alert["resolved_at"] is not None


async def test_a_level_has_at_most_one_open_alert_which_follows_the_level(client: Client) -> None:
    await with_policy(client, point=5, quantity=20, on_hand=10)
    await reserve(client, 6)
    await reserve(client, 2)
    [alert] = await alerts(client, "open")
    assert (alert["quantity_available"], alert["suggested_quantity"]) == (2, 23)


async def test_setting_a_policy_above_what_is_available_opens_an_alert_at_once(client: Client) -> None:
    await seed(client, "A-1", "ber", 3)
    await client.put("/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": 10, "reorder_quantity": 5})
    [alert] = await alerts(client, "open")
    assert alert["suggested_quantity"] == 12


async def test_receiving_stock_resolves_the_alert(client: Client) -> None:
    await with_policy(client, point=5, on_hand=10)
    await reserve(client, 8)
    await client.post("/v1/stock/receive", json={"sku": "A-1", "warehouse_id": "ber", "quantity": 3})
    assert await alerts(client, "open") == []


async def test_concurrent_reservations_that_together_cross_the_reorder_point_open_an_alert(
    client: Client,
) -> None:
    """Neither alone crosses it: the alert must come from the balance as written, not as each read it."""
    await with_policy(client, point=5, quantity=10, on_hand=10)

    def reserve_three(n: int) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        async def call(http: httpx.AsyncClient) -> httpx.Response:
            return await http.post(
                "/v1/reservations", json={"order_id": f"o-{n}", "lines": [{"sku": "A-1", "quantity": 3}]}
            )

        return call

    answers = await concurrently(client, [reserve_three(1), reserve_three(2)])
    assert [answer.status_code for answer in answers] == [201, 201]
    opened = await alerts(client, "open")
    assert [(alert["sku"], alert["quantity_available"]) for alert in opened] == [("A-1", 4)]


async def test_a_reorder_policy_asking_to_order_more_than_a_balance_holds_is_422_and_changes_nothing(
    client: Client,
) -> None:
    await with_policy(client, point=5, quantity=20)
    response = await client.put(
        "/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": 5, "reorder_quantity": 2**63 - 1}
    )
    assert_problem(response, 422, "validation_error")
    level = assert_json(await client.get("/v1/stock/A-1/ber"), 200)
    assert (level["reorder_point"], level["reorder_quantity"]) == (5, 20)


async def test_a_bad_alert_status_filter_is_422(client: Client) -> None:
    assert_problem(await client.get("/v1/alerts", params={"status": "closed"}), 422, "validation_error")


class Receiver:
    """A real local HTTP server that records what it is sent, answering with ``status``."""

    def __init__(self, statuses: list[int]) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        statuses_left = list(statuses)
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(statuses_left.pop(0) if len(statuses_left) > 1 else statuses_left[0])
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver([200])
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def flaky_receiver() -> Iterator[Receiver]:
    receiver = Receiver([500, 200])
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def wait_for(condition, deadline: float = DELIVERY_DEADLINE_SECONDS) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.1)


async def test_alerts_are_pushed_to_a_webhook_with_a_verifiable_signature(
    client: Client, receiver: Receiver
) -> None:
    created = assert_json(
        await client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["alert.opened", "alert.resolved"]}
        ),
        201,
    )
    secret = created["secret"]
    await with_policy(client, point=5, on_hand=10)
    reservation = await reserve(client, 7)
    await client.post(f"/v1/reservations/{reservation}/release")

    async def both_delivered() -> bool:
        log = assert_json(await client.get(f"/v1/webhooks/{created['id']}/deliveries"), 200)["items"]
        return len(log) == 2 and all(d["status"] == "delivered" for d in log)

    await wait_for(both_delivered)
    kinds = []
    for headers, body in receiver.received:
        assert verify(secret, headers["Stockd-Signature"], body)
        assert not verify("another secret", headers["Stockd-Signature"], body)
        kinds.append(headers["Stockd-Event"])
    # Due deliveries are sent concurrently, so they may arrive in either order.
    assert sorted(kinds) == ["alert.opened", "alert.resolved"]
    log = assert_json(await client.get(f"/v1/webhooks/{created['id']}/deliveries"), 200)["items"]
    assert [(d["event_type"], d["status"], d["attempts"]) for d in log] == [
        ("alert.opened", "delivered", 1),
        ("alert.resolved", "delivered", 1),
    ]
    assert "secret" not in assert_json(await client.get("/v1/webhooks"), 200)["items"][0]


async def test_a_failed_delivery_is_retried_and_logged(
    client: Client, flaky_receiver: Receiver, clock: FakeClock
) -> None:
    created = assert_json(
        await client.post("/v1/webhooks", json={"url": flaky_receiver.url, "events": ["alert.opened"]}), 201
    )
    await with_policy(client, point=5, on_hand=10)
    await reserve(client, 7)

    async def first_log_entry() -> dict:  # type: ignore[type-arg]
        log = assert_json(await client.get(f"/v1/webhooks/{created['id']}/deliveries"), 200)["items"]
        return log[0] if log else {}

    async def failed_once() -> bool:
        entry = await first_log_entry()
        return (
            entry.get("attempts") == 1 and entry["status"] == "pending" and entry["last_status_code"] == 500
        )

    async def delivered() -> bool:
        return (await first_log_entry()).get("status") == "delivered"

    await wait_for(failed_once)
    clock.advance(2)  # past the first retry's backoff of one second
    await wait_for(delivered)
    [entry] = assert_json(await client.get(f"/v1/webhooks/{created['id']}/deliveries"), 200)["items"]
    assert (entry["attempts"], entry["last_status_code"]) == (2, 200)
    assert len(flaky_receiver.received) == 2


async def test_a_url_the_client_cannot_send_to_fails_its_delivery_and_holds_back_no_other(
    client: Client, receiver: Receiver
) -> None:
    # Well formed by the pattern, but the host is no valid internationalized domain name.
    unusable = assert_json(
        await client.post("/v1/webhooks", json={"url": "https://xn--/hook", "events": ["alert.opened"]}), 201
    )
    usable = assert_json(
        await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["alert.opened"]}), 201
    )
    await with_policy(client, point=5, on_hand=10)
    await reserve(client, 7)

    async def log_of(webhook: dict) -> list[dict]:  # type: ignore[type-arg]
        return list(assert_json(await client.get(f"/v1/webhooks/{webhook['id']}/deliveries"), 200)["items"])

    async def both_attempted() -> bool:
        failed, delivered = await log_of(unusable), await log_of(usable)
        return (
            bool(failed)
            and failed[0]["attempts"] == 1
            and bool(delivered)
            and delivered[0]["status"] == "delivered"
        )

    await wait_for(both_attempted)
    [entry] = await log_of(unusable)
    assert entry["status"] == "pending" and entry["last_status_code"] is None, entry
    assert entry["last_error"], entry


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.test/x", "events": ["alert.opened"]},
        {"url": "http://127.0.0.1/x", "events": []},
        {"url": "http://127.0.0.1/x", "events": ["alert.exploded"]},
        {"url": "http://127.0.0.1/a\x01b", "events": ["alert.opened"]},
    ],
    ids=["not http", "no events", "unknown event", "control character in url"],
)
async def test_a_bad_webhook_is_422(client: Client, body: dict) -> None:  # type: ignore[type-arg]
    assert_problem(await client.post("/v1/webhooks", json=body), 422, "validation_error")


async def test_a_deleted_webhook_is_gone(client: Client, receiver: Receiver) -> None:
    created = assert_json(
        await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["alert.opened"]}), 201
    )
    assert (await client.delete(f"/v1/webhooks/{created['id']}")).status_code == 204
    assert_problem(await client.delete(f"/v1/webhooks/{created['id']}"), 404, "not_found")
    assert_problem(await client.get(f"/v1/webhooks/{created['id']}/deliveries"), 404, "not_found")
