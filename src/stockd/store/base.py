"""What the service reads and writes outside the engine: catalog, history, idempotency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from stockd.domain.model import Movement, Product, Reservation, StockLevel, Transfer, Warehouse
from stockd.engine.base import IdempotencyRecord
from stockd.store.pagination import Page


@dataclass(frozen=True, slots=True)
class MovementFilter:
    sku: str | None = None
    warehouse_id: str | None = None
    reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A level whose stored balances differ from the sums of its movements."""

    sku: str
    warehouse_id: str
    quantity_on_hand: int
    ledger_on_hand: int
    quantity_reserved: int
    ledger_reserved: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    levels_checked: int
    mismatches: list[Mismatch]


class Store(Protocol):
    # Catalog. ``put_*`` return the stored row and whether it was created.
    async def put_product(self, product: Product) -> tuple[Product, bool]: ...
    async def get_product(self, sku: str) -> Product | None: ...
    async def list_products(self, limit: int, cursor: str | None) -> Page[Product]: ...
    async def put_warehouse(self, warehouse: Warehouse) -> tuple[Warehouse, bool]: ...
    async def get_warehouse(self, warehouse_id: str) -> Warehouse | None: ...
    async def list_warehouses(self, limit: int, cursor: str | None) -> Page[Warehouse]: ...

    # Stock and reservations.
    async def levels_of_sku(self, sku: str) -> list[StockLevel]: ...
    async def in_transit_to(self, sku: str) -> dict[str, int]: ...
    async def get_transfer(self, transfer_id: str) -> Transfer | None: ...
    async def get_reservation(self, reservation_id: str) -> Reservation | None: ...
    async def list_reservations(self, order_id: str, limit: int, cursor: str | None) -> Page[Reservation]: ...
    async def lapsed_reservation_ids(self, now: datetime, limit: int) -> list[str]: ...

    # Ledger.
    async def list_movements(
        self, where: MovementFilter, limit: int, cursor: str | None
    ) -> Page[Movement]: ...
    async def reconcile(self) -> Reconciliation: ...

    # Idempotency keys.
    async def find_idempotency_record(self, principal: str, key: str) -> IdempotencyRecord | None: ...
    async def forget_idempotency_records(self, older_than: datetime) -> int: ...

    async def close(self) -> None: ...
