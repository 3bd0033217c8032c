"""kill -9 in the middle of a sale: whatever was acknowledged survives, and nothing is applied twice.

"Acknowledged" is every 201 the client received, including the few it reads
from its socket just after the kill: the server sent them, so it had promised
them. A request that got no answer (a transport error once the server was
dead) has an unknown outcome; it may have been applied or not, but only once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.conftest import (
    LoadClient,
    StockdServer,
    all_pages,
    assert_reconciled,
    ledger_balances,
    level,
    movements_of,
    seed,
)

SKUS = ["CRASH-P", "CRASH-Q"]
WAREHOUSES = ["ber", "muc"]
RECEIVED = 100_000  # of each sku in each warehouse: the sale never runs out
ROUNDS = 3
WORKERS = 64
ACKNOWLEDGED_BEFORE_KILL = 150  # per round


@dataclass
class Attempt:
    """One POST /v1/reservations, and what (if anything) came back."""

    order_id: str
    body: dict[str, Any]
    idempotency_key: str | None
    status: int | None = None  # None: no answer — it was in flight when the server died
    answer: dict[str, Any] | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status == 201

    def headers(self) -> dict[str, str]:
        return {} if self.idempotency_key is None else {"Idempotency-Key": self.idempotency_key}


class Sale:
    """Workers sending reservations as fast as they can until the server is killed under them."""

    def __init__(self, round_number: int) -> None:
        self.round_number = round_number
        self.attempts: list[Attempt] = []
        self.in_flight = 0
        self.acknowledged = 0
        self.enough = asyncio.Event()
        self.killed = False
        self._random = random.Random(round_number)
        self._numbers = itertools.count()

    def next_attempt(self) -> Attempt:
        n = next(self._numbers)
        order_id = f"crash-{self.round_number}-{n}"
        lines = []
        for sku in self._random.sample(SKUS, self._random.randint(1, len(SKUS))):
            line: dict[str, Any] = {"sku": sku, "quantity": self._random.randint(1, 3)}
            if self._random.random() < 0.5:
                line["warehouse_id"] = self._random.choice(WAREHOUSES)
            lines.append(line)
        key = f"key-{order_id}" if n % 2 == 0 else None
        attempt = Attempt(order_id, {"order_id": order_id, "lines": lines}, key)
        self.attempts.append(attempt)
        return attempt

    async def worker(self, load: LoadClient) -> None:
        while not self.killed:
            attempt = self.next_attempt()
            self.in_flight += 1
            try:
                response = await load.post("/v1/reservations", json=attempt.body, headers=attempt.headers())
            except httpx.TransportError:
                if not self.killed:
                    raise  # the server failed while it was supposed to be up
                return  # the kill cut this request off: its outcome is unknown
            finally:
                self.in_flight -= 1
            attempt.status = response.status_code
            attempt.answer = response.json()
            assert response.status_code == 201, (response.status_code, response.text)
            self.acknowledged += 1
            if self.acknowledged >= ACKNOWLEDGED_BEFORE_KILL:
                self.enough.set()


async def test_acknowledged_reservations_survive_repeated_kill_minus_nine_and_are_never_applied_twice(
    engine_server: StockdServer,
) -> None:
    """On the Redis engine the persister dies with the service: the restarted one finishes its work."""
    server = engine_server
    async with server.client() as http:
        for warehouse_id in WAREHOUSES:
            await seed(http, SKUS, warehouse_id, quantity=RECEIVED)

    everything: list[Attempt] = []
    for round_number in range(ROUNDS):
        sale = Sale(round_number)
        async with server.load_client() as load:
            workers = [asyncio.create_task(sale.worker(load)) for _ in range(WORKERS)]
            enough = asyncio.create_task(sale.enough.wait())
            try:
                await asyncio.wait([enough, *workers], timeout=120, return_when=asyncio.FIRST_COMPLETED)
                for task in workers:
                    if task.done():
                        task.result()  # a worker failed before the kill: show why
                assert enough.done(), f"only {sale.acknowledged} reservations were acknowledged in 120 s"
                cut_off = sale.in_flight
                sale.killed = True
                server.kill9()
                await asyncio.gather(*workers)
            finally:
                for task in [enough, *workers]:
                    task.cancel()
                await asyncio.gather(enough, *workers, return_exceptions=True)
        assert cut_off > 0, "the kill was supposed to interrupt requests in flight"
        everything.extend(sale.attempts)
        assert all(attempt.status in (None, 201) for attempt in everything)
        assert sum(attempt.status is None for attempt in sale.attempts) >= 1

        await asyncio.to_thread(server.restart)

        async with server.client() as http, server.load_client() as load:
            await assert_reconciled(http)
            await assert_every_acknowledged_reservation_exists(load, everything)
            await assert_replays_return_the_first_answer_and_change_nothing(http, load, everything)
            await assert_cut_off_requests_were_applied_at_most_once(load, sale.attempts)
            await assert_reserved_equals_the_pending_reservations(http, load, everything)
            await assert_reconciled(http)


async def assert_every_acknowledged_reservation_exists(load: LoadClient, attempts: list[Attempt]) -> None:
    acknowledged = [attempt for attempt in attempts if attempt.acknowledged]
    responses = await asyncio.gather(
        *(load.get(f"/v1/reservations/{attempt.answer['id']}") for attempt in acknowledged if attempt.answer)
    )
    for attempt, response in zip(acknowledged, responses, strict=True):
        assert response.status_code == 200, (attempt.order_id, response.text)
        assert response.json() == attempt.answer, attempt.order_id
        asked = sorted((line["sku"], line["quantity"]) for line in attempt.body["lines"])
        held = sorted((line["sku"], line["quantity"]) for line in response.json()["lines"])
        assert held == asked, attempt.order_id


async def assert_replays_return_the_first_answer_and_change_nothing(
    http: httpx.AsyncClient, load: LoadClient, attempts: list[Attempt]
) -> None:
    before = await ledger_snapshot(http)
    keyed = [attempt for attempt in attempts if attempt.acknowledged and attempt.idempotency_key]
    assert keyed
    replays = await asyncio.gather(
        *(load.post("/v1/reservations", json=attempt.body, headers=attempt.headers()) for attempt in keyed)
    )
    for attempt, replay in zip(keyed, replays, strict=True):
        assert replay.status_code == 201, (attempt.order_id, replay.text)
        assert replay.json() == attempt.answer, attempt.order_id
    assert await ledger_snapshot(http) == before

    listed = await asyncio.gather(
        *(load.get("/v1/reservations", params={"order_id": attempt.order_id}) for attempt in keyed)
    )
    for attempt, response in zip(keyed, listed, strict=True):
        assert response.status_code == 200, response.text
        assert [r["id"] for r in response.json()["items"]] == [attempt.answer and attempt.answer["id"]]


async def assert_cut_off_requests_were_applied_at_most_once(
    load: LoadClient, attempts: list[Attempt]
) -> None:
    """A request the kill cut off was applied wholly or not at all; its key, replayed, settles which."""
    cut_off = [attempt for attempt in attempts if attempt.status is None]
    keyed = [attempt for attempt in cut_off if attempt.idempotency_key]
    replays = await asyncio.gather(
        *(load.post("/v1/reservations", json=attempt.body, headers=attempt.headers()) for attempt in keyed)
    )
    for attempt, replay in zip(keyed, replays, strict=True):
        assert replay.status_code == 201, (attempt.order_id, replay.text)
        attempt.status, attempt.answer = 201, replay.json()

    listed = await asyncio.gather(
        *(load.get("/v1/reservations", params={"order_id": attempt.order_id}) for attempt in cut_off)
    )
    for attempt, response in zip(cut_off, listed, strict=True):
        assert response.status_code == 200, response.text
        ids = [r["id"] for r in response.json()["items"]]
        if attempt.idempotency_key:
            assert attempt.answer is not None
            assert ids == [attempt.answer["id"]], attempt.order_id
        else:
            assert len(ids) <= 1, attempt.order_id


async def assert_reserved_equals_the_pending_reservations(
    http: httpx.AsyncClient, load: LoadClient, attempts: list[Attempt]
) -> None:
    reserve_movements: dict[str, list[tuple[str, str, int]]] = {}
    for sku in SKUS:
        for movement in await movements_of(http, sku):
            assert movement["type"] == "reserve" or movement["type"] == "receive", movement
            if movement["type"] == "reserve":
                assert movement["reference_type"] == "reservation", movement
                assert (movement["on_hand_delta"], movement["reserved_delta"]) == (0, movement["quantity"])
                reserve_movements.setdefault(movement["reference_id"], []).append(
                    (sku, movement["warehouse_id"], movement["quantity"])
                )

    acknowledged_ids = {
        attempt.answer["id"] for attempt in attempts if attempt.acknowledged and attempt.answer
    }
    assert acknowledged_ids <= reserve_movements.keys()

    ids = sorted(reserve_movements)
    responses = await asyncio.gather(
        *(load.get(f"/v1/reservations/{reservation_id}") for reservation_id in ids)
    )
    pending: Counter[tuple[str, str]] = Counter()
    for reservation_id, response in zip(ids, responses, strict=True):
        assert response.status_code == 200, (reservation_id, response.text)
        reservation = response.json()
        assert reservation["status"] == "pending", reservation
        lines = sorted((line["sku"], line["warehouse_id"], line["quantity"]) for line in reservation["lines"])
        assert lines == sorted(reserve_movements[reservation_id]), reservation
        for sku, warehouse_id, quantity in lines:
            pending[sku, warehouse_id] += quantity

    for sku in SKUS:
        balances = ledger_balances(await movements_of(http, sku))
        for warehouse_id in WAREHOUSES:
            on_hand, reserved, available = await level(http, sku, warehouse_id)
            assert (on_hand, reserved) == (RECEIVED, pending[sku, warehouse_id]), (sku, warehouse_id)
            assert available == on_hand - reserved
            assert balances[warehouse_id] == (on_hand, reserved), (sku, warehouse_id)


async def ledger_snapshot(http: httpx.AsyncClient) -> dict[str, Any]:
    """Every level and every movement of the sale's skus: what a replay must not change."""
    snapshot: dict[str, Any] = {}
    for sku in SKUS:
        stock = await http.get(f"/v1/stock/{sku}")
        assert stock.status_code == 200, stock.text
        snapshot[f"stock {sku}"] = stock.json()
        snapshot[f"movements {sku}"] = await all_pages(http, "/v1/movements", sku=sku)
    return snapshot
