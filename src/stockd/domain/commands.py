"""Commands: every change to stock is one of these, applied atomically by an engine.

Commands are plain values. Identifiers the server makes (a new reservation's
id) are chosen by whoever builds the command, so deciding a command is a pure
function of the command, the current state and ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockd.domain.model import AdjustReason, Location


@dataclass(frozen=True, slots=True)
class Receive:
    sku: str
    warehouse_id: str
    quantity: int
    reference_id: str | None = None
    reference_type: str | None = None


@dataclass(frozen=True, slots=True)
class Adjust:
    sku: str
    warehouse_id: str
    delta: int
    reason: AdjustReason
    expected_on_hand: int | None = None
    reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class RequestedLine:
    """A line as the client asked for it; ``warehouse_id=None`` lets stockd choose."""

    sku: str
    quantity: int
    warehouse_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reserve:
    reservation_id: str
    order_id: str
    lines: tuple[RequestedLine, ...]
    ttl_seconds: int = 900
    ship_to: Location | None = None
    deliver_within_hours: int | None = None


@dataclass(frozen=True, slots=True)
class Confirm:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Release:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Expire:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class TransferOut:
    """Send stock from one warehouse to another: it leaves the source now."""

    transfer_id: str
    sku: str
    from_warehouse_id: str
    to_warehouse_id: str
    quantity: int
    reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransferIn:
    """The transfer arrived: its stock enters the destination."""

    transfer_id: str


@dataclass(frozen=True, slots=True)
class SetReorderPolicy:
    sku: str
    warehouse_id: str
    reorder_point: int
    reorder_quantity: int


Command = (
    Receive | Adjust | Reserve | Confirm | Release | Expire | TransferOut | TransferIn | SetReorderPolicy
)
ReservationCommand = Confirm | Release | Expire
