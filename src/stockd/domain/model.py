"""The inventory model: products, warehouses, stock levels, reservations, movements.

Plain Python with no I/O. Times are timezone-aware UTC datetimes passed in by
the caller (see ``clock.py``); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from stockd.domain.errors import InvalidRequest

MAX_QUANTITY = 1_000_000_000
"""The largest quantity one command may move (API.md, Conventions)."""

MAX_LINES = 100
"""The most lines one reservation may have."""

MAX_TTL_SECONDS = 86_400
"""The longest hold a reservation may ask for: one day."""

MAX_BALANCE = 2**63 - 1
"""Balances are signed 64-bit integers; no command may push one past this."""

LevelKey = tuple[str, str]
"""A stock level is identified by (sku, warehouse_id)."""


class MovementType(StrEnum):
    RECEIVE = "receive"
    ADJUST = "adjust"
    RESERVE = "reserve"
    RELEASE = "release"
    EXPIRE = "expire"
    SHIP = "ship"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"


class ReservationStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"


class TransferStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"


class AdjustReason(StrEnum):
    DAMAGED = "damaged"
    LOST = "lost"
    FOUND = "found"
    COUNT_CORRECTION = "count_correction"


@dataclass(frozen=True, slots=True)
class Location:
    """A point on the Earth in degrees (WGS84)."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        # Written as "not inside" so that NaN is refused as well.
        if not (-90.0 <= self.latitude <= 90.0 and -180.0 <= self.longitude <= 180.0):
            raise InvalidRequest("latitude must be -90 to 90 and longitude -180 to 180")


@dataclass(frozen=True, slots=True)
class Dimensions:
    length: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    weight_grams: int | None = None
    dimensions_mm: Dimensions | None = None


@dataclass(frozen=True, slots=True)
class Warehouse:
    warehouse_id: str
    name: str
    latitude: float
    longitude: float
    timezone: str
    created_at: datetime
    updated_at: datetime
    handling_hours: int = 24
    active: bool = True


@dataclass(slots=True)
class StockLevel:
    """The running balance of one SKU in one warehouse.

    Mutable on purpose: a batch of a thousand reservations for one hot SKU
    updates the same level a thousand times, and copying it each time would
    cost more than deciding the reservation.
    """

    sku: str
    warehouse_id: str
    quantity_on_hand: int = 0
    quantity_reserved: int = 0
    reorder_point: int | None = None
    reorder_quantity: int | None = None

    @property
    def key(self) -> LevelKey:
        return (self.sku, self.warehouse_id)

    @property
    def quantity_available(self) -> int:
        return self.quantity_on_hand - self.quantity_reserved

    def snapshot(self) -> StockLevel:
        """A copy that later changes in the same batch will not touch."""
        return replace(self)

    def check_invariants(self) -> None:
        # Only a bug in this package could break these; callers' mistakes are
        # turned away before any balance changes.
        assert 0 <= self.quantity_reserved <= self.quantity_on_hand, self


@dataclass(slots=True)
class ReservationLine:
    sku: str
    warehouse_id: str
    quantity: int


@dataclass(slots=True)
class Reservation:
    """A hold on stock for one order. Treated as a value: transitions return a new one.

    (Not frozen only because frozen dataclasses cost several times more to
    build, and the hot path builds one per request.)
    """

    id: str
    order_id: str
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime
    lines: tuple[ReservationLine, ...]
    updated_at: datetime | None = None

    def has_lapsed(self, now: datetime) -> bool:
        """A pending hold is over once its ``expires_at`` is reached."""
        return self.status is ReservationStatus.PENDING and self.expires_at <= now

    def status_at(self, now: datetime) -> ReservationStatus:
        """The status a reader should see: a lapsed hold is expired even before the sweep."""
        return ReservationStatus.EXPIRED if self.has_lapsed(now) else self.status

    def moved_to(self, status: ReservationStatus, now: datetime) -> Reservation:
        return replace(self, status=status, updated_at=now)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Stock on its way from one warehouse to another: out of the source at once, in on receipt."""

    id: str
    sku: str
    from_warehouse_id: str
    to_warehouse_id: str
    quantity: int
    status: TransferStatus
    created_at: datetime
    received_at: datetime | None = None
    reference_id: str | None = None


@dataclass(slots=True)
class Movement:
    """One append-only ledger row. ``quantity`` is positive; the deltas carry the sign.

    Not frozen only because frozen dataclasses are several times slower to build,
    and the hot path builds one per reserved line; nothing mutates a movement.
    """

    sku: str
    warehouse_id: str
    type: MovementType
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    reference_type: str | None
    reference_id: str | None
    created_at: datetime
    reason: str | None = None
    id: str | None = field(default=None, compare=False)
