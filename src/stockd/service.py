"""The application layer: what the HTTP API, the CLI and the workers call.

It validates what the domain cannot (catalog existence for reads, idempotency),
hands stock-changing commands to the engine, and reads history from the store.
Nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from stockd.broadcast import Broadcast
from stockd.domain.book import Outcome
from stockd.domain.chain import BrokenLink
from stockd.domain.clock import Clock
from stockd.domain.commands import Command, Expire, RequestedLine
from stockd.domain.errors import (
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    RequestInProgress,
    Unavailable,
)
from stockd.domain.events import EVENT_TYPES
from stockd.domain.model import (
    Location,
    Movement,
    Product,
    Reservation,
    StockLevel,
    Transfer,
    Warehouse,
)
from stockd.domain.planner import Plan, plan
from stockd.domain.replenishment import Alert
from stockd.domain.webhooks import Delivery, Webhook
from stockd.engine.base import Engine, IdempotencyClaim, IdempotencyRecord, StoredResponse
from stockd.ids import new_id
from stockd.store.base import MovementFilter, Reconciliation
from stockd.store.pagination import Page
from stockd.store.sql_store import SqlStore
from stockd.workers.persister import Persister

IDEMPOTENCY_KEY_RETENTION = timedelta(hours=25)
"""API.md promises at least 24 hours; the extra hour absorbs clock and sweep delays."""
RECONCILIATION_ATTEMPTS = 5
"""How often reconciliation is made again while levels move on under it (Redis engine)."""
ABANDONED_CLAIM_AGE = timedelta(minutes=5)
"""A key claimed this long ago with no answer stored: its process died before answering; it may be taken over."""


new_reservation_id = new_id
new_transfer_id = new_id


@dataclass(frozen=True, slots=True)
class StockSummary:
    """A SKU's levels, and what is on its way to each warehouse."""

    sku: str
    levels: list[StockLevel]
    in_transit: dict[str, int]

    def within(self, warehouse_ids: Collection[str] | None) -> StockSummary:
        """Only the levels of these warehouses (a warehouse-limited key's view); None: all."""
        if warehouse_ids is None:
            return self
        return StockSummary(
            self.sku,
            [level for level in self.levels if level.warehouse_id in warehouse_ids],
            {w: quantity for w, quantity in self.in_transit.items() if w in warehouse_ids},
        )

    @property
    def quantity_in_transit(self) -> int:
        return sum(self.in_transit.values())

    @property
    def quantity_on_hand(self) -> int:
        return sum(level.quantity_on_hand for level in self.levels)

    @property
    def quantity_reserved(self) -> int:
        return sum(level.quantity_reserved for level in self.levels)

    @property
    def quantity_available(self) -> int:
        return self.quantity_on_hand - self.quantity_reserved


class StockService:
    def __init__(
        self,
        engine: Engine,
        store: SqlStore,
        clock: Clock,
        broadcast: Broadcast | None = None,
        *,
        persister: Persister | None = None,
    ) -> None:
        self.engine = engine
        self.persister = persister
        """The Redis engine's persister, run with the service (None on the SQL engines)."""
        self.store = store
        self.clock = clock
        self.broadcast = broadcast or Broadcast()
        self._in_flight: set[tuple[str, str]] = set()

    # -- commands ---------------------------------------------------------------

    async def execute(
        self, command: Command, claim: IdempotencyClaim | None = None
    ) -> Outcome | StoredResponse:
        """Apply a command once. With a claim, a repeat returns the first answer instead.

        The engine stores the answer in the same transaction as the command's effects.
        """
        if claim is None:
            return await self.engine.execute(command)
        async with self._claimed(claim) as stored:
            return stored or await self.engine.execute(command, claim)

    async def remember(
        self, claim: IdempotencyClaim, answer: Callable[[], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        """Idempotency for a POST that is not a stock command (a plan, a subscription): the key is
        claimed in the database first, so of two processes given the same key only one computes the
        answer; the other is told the request is in progress, and repeats get the answer once stored."""
        async with self._claimed(claim) as stored:
            if stored is not None:
                return stored
            now = self.clock.now()
            if not await self.store.claim_idempotency_key(
                claim.principal, claim.key, claim.fingerprint, now, now - ABANDONED_CLAIM_AGE
            ):
                raise RequestInProgress(f"a request with Idempotency-Key {claim.key!r} is still running")
            try:
                response = await answer()
            except BaseException:
                # No answer to keep (a refusal, an error, the caller gone): a retry runs it again.
                await asyncio.shield(self.store.release_idempotency_key(claim.principal, claim.key, now))
                raise
            await self.store.complete_idempotency_record(
                IdempotencyRecord(claim.principal, claim.key, claim.fingerprint, response, now)
            )
            return response

    @asynccontextmanager
    async def _claimed(self, claim: IdempotencyClaim) -> AsyncIterator[StoredResponse | None]:
        """Hold the key in flight; yield the stored first answer, if there is one."""
        # Mark the key in flight *before* looking for a stored answer: the first
        # request leaves the set only after its answer is durable, so a repeat
        # either sees it running or finds what it stored, never neither.
        identity = (claim.principal, claim.key)
        if identity in self._in_flight:
            raise RequestInProgress(f"a request with Idempotency-Key {claim.key!r} is still running")
        self._in_flight.add(identity)
        try:
            stored = await self.store.find_idempotency_record(claim.principal, claim.key)
            if stored is not None and stored.fingerprint != claim.fingerprint:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {claim.key!r} was already used for a different request"
                )
            if stored is not None and stored.response.in_progress:
                if stored.created_at > self.clock.now() - ABANDONED_CLAIM_AGE:
                    raise RequestInProgress(f"a request with Idempotency-Key {claim.key!r} is still running")
                stored = None  # claimed by a process that died before answering: to be taken over
            yield None if stored is None else stored.response
        finally:
            self._in_flight.discard(identity)

    async def expire_lapsed(self, limit: int) -> int:
        """Give back the stock of up to ``limit`` lapsed reservations; returns how many."""
        lapsed = await self.store.lapsed_reservation_ids(self.clock.now(), limit)
        # Submitted together, they are decided and written as one batch.
        await asyncio.gather(*(self.engine.execute(Expire(reservation_id)) for reservation_id in lapsed))
        return len(lapsed)

    async def forget_old_idempotency_keys(self) -> int:
        return await self.store.forget_idempotency_records(self.clock.now() - IDEMPOTENCY_KEY_RETENTION)

    # -- catalog ------------------------------------------------------------------

    async def put_product(self, product: Product) -> tuple[Product, bool]:
        return await self.store.put_product(product)

    async def get_product(self, sku: str) -> Product:
        product = await self.store.get_product(sku)
        if product is None:
            raise NotFound(f"product {sku!r} does not exist")
        return product

    async def list_products(self, limit: int, cursor: str | None) -> Page[Product]:
        return await self.store.list_products(limit, cursor)

    async def put_warehouse(self, warehouse: Warehouse) -> tuple[Warehouse, bool]:
        return await self.store.put_warehouse(warehouse)

    async def get_warehouse(self, warehouse_id: str) -> Warehouse:
        warehouse = await self.store.get_warehouse(warehouse_id)
        if warehouse is None:
            raise NotFound(f"warehouse {warehouse_id!r} does not exist")
        return warehouse

    async def list_warehouses(self, limit: int, cursor: str | None) -> Page[Warehouse]:
        return await self.store.list_warehouses(limit, cursor)

    # -- stock ----------------------------------------------------------------------

    async def stock_of(self, sku: str) -> StockSummary:
        await self.get_product(sku)
        await self.engine.caught_up()
        levels, in_transit = await asyncio.gather(
            self.store.levels_of_sku(sku), self.store.in_transit_to(sku)
        )
        # A warehouse with stock on its way but none yet on hand is listed too.
        held = {level.warehouse_id for level in levels}
        levels += [StockLevel(sku, warehouse_id) for warehouse_id in sorted(in_transit.keys() - held)]
        return StockSummary(sku, levels, in_transit)

    async def level_of(self, sku: str, warehouse_id: str) -> tuple[StockLevel, int]:
        """One level and the units on their way to it."""
        summary = await self.stock_of(sku)
        for level in summary.levels:
            if level.warehouse_id == warehouse_id:
                return level, summary.in_transit.get(warehouse_id, 0)
        await self.get_warehouse(warehouse_id)
        raise NotFound(f"no stock of {sku!r} has ever been in warehouse {warehouse_id!r}")

    async def get_transfer(self, transfer_id: str) -> Transfer:
        await self.engine.caught_up()
        transfer = await self.store.get_transfer(transfer_id)
        if transfer is None:
            raise NotFound(f"transfer {transfer_id!r} does not exist")
        return transfer

    # -- reservations -------------------------------------------------------------------

    async def get_reservation(self, reservation_id: str) -> Reservation:
        await self.engine.caught_up()
        reservation = await self.store.get_reservation(reservation_id)
        if reservation is None:
            raise NotFound(f"reservation {reservation_id!r} does not exist")
        return self.as_seen_now(reservation)

    async def list_reservations(self, order_id: str, limit: int, cursor: str | None) -> Page[Reservation]:
        await self.engine.caught_up()
        page = await self.store.list_reservations(order_id, limit, cursor)
        return Page([self.as_seen_now(r) for r in page.items], page.next_cursor)

    def as_seen_now(self, reservation: Reservation) -> Reservation:
        """A lapsed hold reads as expired even before the sweeper has given its stock back."""
        status = reservation.status_at(self.clock.now())
        return reservation if status is reservation.status else replace(reservation, status=status)

    # -- replenishment ------------------------------------------------------------------

    async def plan(
        self,
        lines: Sequence[RequestedLine],
        ship_to: Location | None,
        deliver_within_hours: int | None,
        within: Collection[str] | None = None,
    ) -> Plan:
        """Where these lines would ship from now, from the ``within`` warehouses only if given. Changes nothing."""
        skus = list(dict.fromkeys(line.sku for line in lines))
        await self.engine.caught_up()
        for sku in skus:
            await self.get_product(sku)
        levels = [
            level
            for per_sku in await asyncio.gather(*map(self.store.levels_of_sku, skus))
            for level in per_sku
            if within is None or level.warehouse_id in within
        ]
        warehouses = await self.store.warehouses_by_id({level.warehouse_id for level in levels})
        return plan(
            lines,
            warehouses={w.warehouse_id: w for w in warehouses},
            available={level.key: level.quantity_available for level in levels},
            ship_to=ship_to,
            deliver_within_hours=deliver_within_hours,
        )

    async def list_alerts(self, status: str | None, limit: int, cursor: str | None) -> Page[Alert]:
        await self.engine.caught_up()
        return await self.store.list_alerts(status, limit, cursor)

    async def create_webhook(self, url: str, events: Sequence[str]) -> Webhook:
        """A new subscription; its secret is shown only in this answer."""
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise InvalidRequest(f"unknown event types {unknown}; choose from {list(EVENT_TYPES)}")
        webhook = Webhook(
            new_id(), url, tuple(dict.fromkeys(events)), secrets.token_hex(32), self.clock.now()
        )
        await self.store.put_webhook(webhook)
        return webhook

    async def list_webhooks(self, limit: int, cursor: str | None) -> Page[Webhook]:
        return await self.store.list_webhooks(limit, cursor)

    async def delete_webhook(self, webhook_id: str) -> None:
        if not await self.store.deactivate_webhook(webhook_id):
            raise NotFound(f"webhook {webhook_id!r} does not exist")

    async def list_deliveries(self, webhook_id: str, limit: int, cursor: str | None) -> Page[Delivery]:
        if await self.store.get_webhook(webhook_id) is None:
            raise NotFound(f"webhook {webhook_id!r} does not exist")
        await self.engine.caught_up()
        return await self.store.list_deliveries(webhook_id, limit, cursor)

    # -- ledger -------------------------------------------------------------------------

    async def list_movements(self, where: MovementFilter, limit: int, cursor: str | None) -> Page[Movement]:
        await self.engine.caught_up()
        return await self.store.list_movements(where, limit, cursor)

    async def reconcile(self) -> Reconciliation:
        """Balances against the ledger, once the ledger has caught up; if it cannot, how far behind it is.

        Under load, Redis moves on while PostgreSQL is read; the levels it moved meanwhile are
        not compared, and the whole check is made again (a few times) until none did.
        """
        for _ in range(RECONCILIATION_ATTEMPTS):
            try:
                await self.engine.caught_up()
            except Unavailable:
                return Reconciliation(levels_checked=0, mismatches=[], persister_lag=await self.engine.lag())
            result = await self.store.reconcile(await self.engine.counters())
            if not result.levels_moving:
                break
        return result

    async def verify_chains(self) -> list[BrokenLink]:
        await self.engine.caught_up()
        return await self.store.verify_chains()

    async def close(self) -> None:
        if self.persister is not None:
            await self.persister.stop()
        await self.engine.close()
        await self.store.close()
