"""Nothing acknowledged is lost, and nothing is applied twice, when the server stops or dies at random.

A Hypothesis state machine drives a real ``stockd serve`` process on the
embedded engine, then on the Redis engine, over HTTP: receives, reservations, confirmations and releases,
and between any two of them it stops the server gracefully, kills it with
SIGKILL while idle, or kills it while a reservation is in flight and then
retries that reservation with the same Idempotency-Key. A model in plain dicts
predicts every answer. After every step the server's balances and reservation
statuses are the model's and reconciliation finds nothing wrong: every
acknowledged change survived exactly once, and a request cut off by a crash
took effect entirely or not at all.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stockd.ids import new_id
from tests.conftest import empty_tables, forget_redis_keys
from tests.integration.conftest import StockdServer, free_port, redis_engine_arguments, run_coroutine

SKUS = ("A", "B")
WAREHOUSE = "ber"
MAX_RESTARTS = 3
"""Per example: each start of the server costs about a second, the suite's budget is minutes."""
REQUEST_TIMEOUT_SECONDS = 60.0  # generous: a loaded CI machine must not pass for a lost answer


ENDED_AS = {"confirm": "confirmed", "release": "released"}


class CrashingServer(RuleBasedStateMachine):
    def __init__(self, engine_arguments: Sequence[str] = ()) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="stockd-crashes-"))
        self.server = StockdServer(
            self.directory / "data", self.directory / "server.log", free_port(), args=engine_arguments
        )
        self.server.start()
        self.http = httpx.Client(base_url=self.server.base_url, timeout=REQUEST_TIMEOUT_SECONDS)
        self.call(
            "PUT",
            f"/v1/warehouses/{WAREHOUSE}",
            201,
            json={"name": "Berlin", "latitude": 52.5, "longitude": 13.4, "timezone": "Europe/Berlin"},
        )
        for sku in SKUS:
            self.call("PUT", f"/v1/products/{sku}", 201, json={"name": sku})
        self.on_hand = dict.fromkeys(SKUS, 0)
        self.reserved = dict.fromkeys(SKUS, 0)
        self.holds: dict[str, tuple[str, int, str]] = {}
        self.restarts = 0

    def call(self, method: str, path: str, expected: int, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expected, (
            f"{method} {path}: {response.status_code} {response.text}\n{self.server.log_tail()}"
        )
        body: dict[str, Any] = response.json()
        return body

    def pending(self) -> list[str]:
        return [rid for rid, (_, _, status) in self.holds.items() if status == "pending"]

    @staticmethod
    def reservation(sku: str, quantity: int) -> dict[str, Any]:
        return {
            "order_id": f"order-{new_id()}",
            "lines": [{"sku": sku, "quantity": quantity, "warehouse_id": WAREHOUSE}],
        }

    def expect_reservation_answer(self, response: httpx.Response, sku: str, quantity: int) -> None:
        """The model decides whether it must be held (201) or refused (409); either way the model moves with it."""
        if quantity > self.on_hand[sku] - self.reserved[sku]:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "out_of_stock"
            return
        assert response.status_code == 201, response.text
        self.reserved[sku] += quantity
        self.holds[response.json()["id"]] = (sku, quantity, "pending")

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 20))
    def receive(self, sku: str, quantity: int) -> None:
        self.call(
            "POST",
            "/v1/stock/receive",
            200,
            json={"sku": sku, "warehouse_id": WAREHOUSE, "quantity": quantity},
        )
        self.on_hand[sku] += quantity

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 8))
    def reserve(self, sku: str, quantity: int) -> None:
        response = self.http.post("/v1/reservations", json=self.reservation(sku, quantity))
        self.expect_reservation_answer(response, sku, quantity)

    @precondition(lambda self: self.pending())
    @rule(data=st.data(), ending=st.sampled_from(["confirm", "release"]))
    def end_a_hold(self, data: st.DataObject, ending: str) -> None:
        """Payment succeeded (the goods ship) or the order was cancelled (the stock is free again)."""
        reservation_id = data.draw(st.sampled_from(self.pending()))
        self.call("POST", f"/v1/reservations/{reservation_id}/{ending}", 200)
        sku, quantity, _ = self.holds[reservation_id]
        if ending == "confirm":
            self.on_hand[sku] -= quantity
        self.reserved[sku] -= quantity
        self.holds[reservation_id] = (sku, quantity, ENDED_AS[ending])

    def start_again(self) -> None:
        self.server.start()
        self.restarts += 1

    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule(kill=st.booleans())
    def stop_or_kill_then_start(self, kill: bool) -> None:
        """A graceful stop (SIGTERM), or SIGKILL while idle: no shutdown code runs."""
        if kill:
            self.server.kill9()
        else:
            self.server.stop()
        self.start_again()

    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule(
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 8),
        kill_after=st.sampled_from([0.0, 0.001, 0.003, 0.01, 0.03]),
    )
    def kill_mid_reservation_then_retry(self, sku: str, quantity: int, kill_after: float) -> None:
        """SIGKILL while a reservation is in flight; the client's retry with its key learns what happened."""
        body = self.reservation(sku, quantity)
        headers = {"Idempotency-Key": new_id()}
        first: list[httpx.Response] = []

        def send() -> None:
            try:
                with httpx.Client(base_url=self.server.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
                    first.append(client.post("/v1/reservations", json=body, headers=headers))
            except httpx.TransportError:
                pass  # cut off by the kill: the client cannot know whether it was held

        in_flight = threading.Thread(target=send)
        in_flight.start()
        time.sleep(kill_after)
        self.server.kill9()
        in_flight.join()
        self.start_again()

        retry = self.http.post("/v1/reservations", json=body, headers=headers)
        self.expect_reservation_answer(retry, sku, quantity)
        if first:  # the first attempt was answered before the kill: the retry is that same answer
            assert (first[0].status_code, first[0].json()) == (retry.status_code, retry.json())
        event(
            "killed mid-reservation: "
            + ("answered before the kill" if first else f"cut off, then {retry.status_code}")
        )

    @invariant()
    def the_server_shows_what_was_acknowledged(self) -> None:
        for sku in SKUS:
            stock = self.call("GET", f"/v1/stock/{sku}", 200)
            assert (stock["quantity_on_hand"], stock["quantity_reserved"]) == (
                self.on_hand[sku],
                self.reserved[sku],
            )
        for reservation_id, (_, _, status) in self.holds.items():
            assert self.call("GET", f"/v1/reservations/{reservation_id}", 200)["status"] == status
        reconciliation = self.call("GET", "/v1/reconciliation", 200)
        assert reconciliation["mismatches"] == [] and reconciliation["broken_links"] == [], reconciliation

    def teardown(self) -> None:
        self.http.close()
        self.server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def test_nothing_acknowledged_is_lost_when_the_embedded_server_stops_or_dies() -> None:
    run_state_machine_as_test(
        CrashingServer, settings=settings(max_examples=5, stateful_step_count=20, deadline=None)
    )


def test_nothing_acknowledged_is_lost_when_the_redis_engine_server_stops_or_dies(
    postgres_database: str,
) -> None:
    """The same on the Redis engine: a kill -9 takes the service and its persister down together."""

    def fresh_machine() -> CrashingServer:
        run_coroutine(empty_tables(postgres_database))
        prefix = f"stockd-test-crashes-{uuid.uuid4().hex[:8]}"
        prefixes.append(prefix)
        return CrashingServer(["--database", postgres_database, *redis_engine_arguments(prefix)])

    prefixes: list[str] = []
    try:
        run_state_machine_as_test(
            fresh_machine, settings=settings(max_examples=3, stateful_step_count=20, deadline=None)
        )
    finally:
        for prefix in prefixes:
            forget_redis_keys(prefix)
