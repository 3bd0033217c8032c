"""Nothing acknowledged is lost across restarts: the embedded service stopped and started at random.

A Hypothesis state machine drives the real service (engine, SQLite file,
store) through receives, reservations, confirmations and releases, and stops
and starts it again on the same data directory between any two of them. A
model in plain dicts predicts every answer. After every step the service's
balances and reservation statuses are the model's and reconciliation finds
nothing wrong — so every acknowledged change survived each restart exactly
once. (``kill -9`` of a real server is in tests/integration/test_crash_recovery.py.)
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from stockd.bootstrap import build_service
from stockd.config import Settings
from stockd.domain.clock import FakeClock
from stockd.domain.commands import Confirm, Receive, Release, RequestedLine, Reserve
from stockd.domain.errors import OutOfStock
from stockd.domain.model import Product, ReservationStatus, Warehouse
from stockd.ids import new_id
from stockd.service import StockService

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SKUS = ("A", "B")
WAREHOUSE = "ber"


class RestartingService(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="stockd-restarts-"))
        self.clock = FakeClock(T0)
        self.service = self.start()
        self.run(
            self.service.put_warehouse(Warehouse(WAREHOUSE, "Berlin", 52.5, 13.4, "Europe/Berlin", T0, T0))
        )
        for sku in SKUS:
            self.run(self.service.put_product(Product(sku, sku, T0, T0)))
        self.on_hand = dict.fromkeys(SKUS, 0)
        self.reserved = dict.fromkeys(SKUS, 0)
        self.holds: dict[str, tuple[str, int, ReservationStatus]] = {}
        self.restarts = 0

    def run(self, work):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(work)

    def start(self) -> StockService:
        return self.run(build_service(Settings(data_dir=self.directory), self.clock))  # type: ignore[no-any-return]

    def pending(self) -> list[str]:
        return [rid for rid, (_, _, status) in self.holds.items() if status is ReservationStatus.PENDING]

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 20))
    def receive(self, sku: str, quantity: int) -> None:
        self.run(self.service.execute(Receive(sku, WAREHOUSE, quantity)))
        self.on_hand[sku] += quantity

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 8))
    def reserve(self, sku: str, quantity: int) -> None:
        reservation_id = new_id()
        command = Reserve(
            reservation_id, f"order-{reservation_id}", (RequestedLine(sku, quantity, WAREHOUSE),)
        )
        if quantity > self.on_hand[sku] - self.reserved[sku]:
            try:
                self.run(self.service.execute(command))
            except OutOfStock:
                return
            raise AssertionError("a reservation beyond the available stock was accepted")
        self.run(self.service.execute(command))
        self.reserved[sku] += quantity
        self.holds[reservation_id] = (sku, quantity, ReservationStatus.PENDING)

    @precondition(lambda self: self.pending())
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        reservation_id = data.draw(st.sampled_from(self.pending()))
        self.run(self.service.execute(Confirm(reservation_id)))
        sku, quantity, _ = self.holds[reservation_id]
        self.on_hand[sku] -= quantity
        self.reserved[sku] -= quantity
        self.holds[reservation_id] = (sku, quantity, ReservationStatus.CONFIRMED)

    @precondition(lambda self: self.pending())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        reservation_id = data.draw(st.sampled_from(self.pending()))
        self.run(self.service.execute(Release(reservation_id)))
        sku, quantity, _ = self.holds[reservation_id]
        self.reserved[sku] -= quantity
        self.holds[reservation_id] = (sku, quantity, ReservationStatus.RELEASED)

    @rule()
    def restart(self) -> None:
        self.run(self.service.close())
        self.service = self.start()
        self.restarts += 1

    @invariant()
    def the_service_shows_what_was_acknowledged(self) -> None:
        for sku in SKUS:
            summary = self.run(self.service.stock_of(sku))
            assert (summary.quantity_on_hand, summary.quantity_reserved) == (
                self.on_hand[sku],
                self.reserved[sku],
            )
        for reservation_id, (_, _, status) in self.holds.items():
            assert self.run(self.service.get_reservation(reservation_id)).status is status
        reconciliation = self.run(self.service.reconcile())
        assert reconciliation.mismatches == [] and reconciliation.broken_links == []

    def teardown(self) -> None:
        self.run(self.service.close())
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


RestartingService.TestCase.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
TestNothingAcknowledgedIsLostAcrossRestarts = RestartingService.TestCase
