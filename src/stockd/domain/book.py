"""The state machine: decides commands, one after another, against a working set.

An engine loads into a ``StockBook`` everything a batch of commands can touch
(see ``needs_of``), decides the commands in order, then writes what the book
collected — changed levels, new and changed reservations, movements — in one
atomic step. Each command is checked completely before it changes anything, so
a refused command leaves no trace, and later commands in the batch see the
balances the earlier ones left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ClassVar

from stockd.domain.commands import (
    Adjust,
    Command,
    Confirm,
    Expire,
    Receive,
    Release,
    Reserve,
    SetReorderPolicy,
    TransferIn,
    TransferOut,
)
from stockd.domain.errors import (
    InsufficientStock,
    InvalidRequest,
    InvalidState,
    NotFound,
    OrderLimitExceeded,
    ReservationExpired,
    StaleQuantity,
)
from stockd.domain.fulfillment import place_lines
from stockd.domain.model import (
    MAX_BALANCE,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_TTL_SECONDS,
    LevelKey,
    Movement,
    MovementType,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
    Warehouse,
)

Outcome = Reservation | StockLevel | Transfer
"""What a successful command returns: the reservation, level or transfer after the change."""

RESERVATION = "reservation"
TRANSFER = "transfer"


@dataclass(slots=True)
class Needs:
    """What must be loaded before a batch of commands can be decided."""

    skus: set[str] = field(default_factory=set)
    warehouse_ids: set[str] = field(default_factory=set)
    level_keys: set[LevelKey] = field(default_factory=set)
    skus_in_any_warehouse: set[str] = field(default_factory=set)
    reservation_ids: set[str] = field(default_factory=set)
    transfer_ids: set[str] = field(default_factory=set)
    order_ids: set[str] = field(default_factory=set)

    def add_transfer_levels(self, transfers: Iterable[Transfer]) -> None:
        """Receiving a transfer touches its destination level."""
        for transfer in transfers:
            self.skus.add(transfer.sku)
            self.warehouse_ids.add(transfer.to_warehouse_id)
            self.level_keys.add((transfer.sku, transfer.to_warehouse_id))

    def add_reservation_lines(self, reservations: Iterable[Reservation]) -> None:
        """Confirm, release and expire touch the levels their reservation holds stock in."""
        for reservation in reservations:
            for line in reservation.lines:
                self.level_keys.add((line.sku, line.warehouse_id))


def units_held(holds: Iterable[tuple[str, Iterable[ReservationLine]]]) -> dict[tuple[str, str], int]:
    """Units per (order_id, sku) in the given pending holds: the ``held_by_order`` a per-order cap needs."""
    held: dict[tuple[str, str], int] = {}
    for order_id, lines in holds:
        for line in lines:
            held[(order_id, line.sku)] = held.get((order_id, line.sku), 0) + line.quantity
    return held


def needs_of(commands: Iterable[Command]) -> Needs:
    needs = Needs()
    for command in commands:
        match command:
            case Reserve(lines=lines):
                needs.order_ids.add(command.order_id)
                for line in lines:
                    needs.skus.add(line.sku)
                    if line.warehouse_id is None:
                        needs.skus_in_any_warehouse.add(line.sku)
                    else:
                        needs.warehouse_ids.add(line.warehouse_id)
                        needs.level_keys.add((line.sku, line.warehouse_id))
            case Confirm() | Release() | Expire():
                needs.reservation_ids.add(command.reservation_id)
            case TransferOut():
                needs.skus.add(command.sku)
                needs.warehouse_ids.update((command.from_warehouse_id, command.to_warehouse_id))
                needs.level_keys.add((command.sku, command.from_warehouse_id))
            case TransferIn():
                needs.transfer_ids.add(command.transfer_id)
            case Receive() | Adjust() | SetReorderPolicy():
                needs.skus.add(command.sku)
                needs.warehouse_ids.add(command.warehouse_id)
                needs.level_keys.add((command.sku, command.warehouse_id))
    return needs


class StockBook:
    """The working set of one batch, and the rules that change it."""

    def __init__(
        self,
        *,
        known_skus: Iterable[str],
        warehouses: Mapping[str, Warehouse],
        levels: Iterable[StockLevel],
        reservations: Iterable[Reservation] = (),
        transfers: Iterable[Transfer] = (),
        max_units_per_order: int | None = None,
        held_by_order: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """``held_by_order`` is what each (order_id, sku) holds in pending reservations,
        needed only when ``max_units_per_order`` caps it."""
        self._known_skus = set(known_skus)
        self._warehouses = dict(warehouses)
        self._levels: dict[LevelKey, StockLevel] = {}
        for level in levels:
            self._add_level(level)
        self._reservations = {r.id: r for r in reservations}
        self._transfers = {t.id: t for t in transfers}
        self._max_units_per_order = max_units_per_order
        self._held_by_order = dict(held_by_order or {})
        self._expiries: dict[tuple[datetime, int], datetime] = {}

        self.movements: list[Movement] = []
        self.changed_levels: dict[LevelKey, StockLevel] = {}
        self.created_reservations: dict[str, Reservation] = {}
        self.updated_reservations: dict[str, Reservation] = {}
        self.created_transfers: dict[str, Transfer] = {}
        self.updated_transfers: dict[str, Transfer] = {}

    def decide(self, command: Command, now: datetime) -> Outcome:
        """Apply one command, or raise the ``StockdError`` that explains why not."""
        # A lookup by type rather than a chain of isinstance checks: this runs once per request.
        return self._rules[type(command)](self, command, now)

    # -- reservations ---------------------------------------------------------

    def _reserve(self, command: Reserve, now: datetime) -> Reservation:
        if not 1 <= command.ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidRequest(f"ttl_seconds must be 1 to {MAX_TTL_SECONDS}")
        if not 1 <= len(command.lines) <= MAX_LINES:
            raise InvalidRequest(f"a reservation has 1 to {MAX_LINES} lines")
        for requested in command.lines:
            _check_quantity(requested.quantity)
            if requested.sku not in self._known_skus:
                raise NotFound(f"product {requested.sku!r} does not exist")
        if self._max_units_per_order is not None:
            self._check_order_limit(command, self._max_units_per_order)
        placed = place_lines(
            command.lines,
            warehouses=self._warehouses,
            level=self._levels.get,
            ship_to=command.ship_to,
            deliver_within_hours=command.deliver_within_hours,
        )
        # After this point the reservation must succeed. (Positional arguments: this runs per request.)
        reservation = Reservation(
            command.reservation_id,
            command.order_id,
            ReservationStatus.PENDING,
            now,
            self._expiry(now, command.ttl_seconds),
            tuple(placed),
        )
        reference = (RESERVATION, reservation.id)
        for line in placed:
            level = self._levels[(line.sku, line.warehouse_id)]
            self._move(level, MovementType.RESERVE, line.quantity, 0, line.quantity, reference, now)
        self._reservations[reservation.id] = reservation
        self.created_reservations[reservation.id] = reservation
        if self._max_units_per_order is not None:
            for line in placed:
                key = (command.order_id, line.sku)
                self._held_by_order[key] = self._held_by_order.get(key, 0) + line.quantity
        return reservation

    def _expiry(self, now: datetime, ttl_seconds: int) -> datetime:
        """``now + ttl``, computed once per distinct ttl: a batch's reservations mostly share both."""
        key = (now, ttl_seconds)
        expires_at = self._expiries.get(key)
        if expires_at is None:
            expires_at = self._expiries[key] = now + timedelta(seconds=ttl_seconds)
        return expires_at

    def _check_order_limit(self, command: Reserve, cap: int) -> None:
        """A bot must not hold a whole launch: one order holds at most so many units of a SKU."""
        asked: dict[str, int] = {}
        for line in command.lines:
            asked[line.sku] = asked.get(line.sku, 0) + line.quantity
        for sku, quantity in asked.items():
            held = self._held_by_order.get((command.order_id, sku), 0)
            if held + quantity > cap:
                raise OrderLimitExceeded(
                    f"order {command.order_id!r} may hold at most {cap} units of {sku!r}; "
                    f"it holds {held} and asks for {quantity} more"
                )

    def _confirm(self, command: Confirm, now: datetime) -> Reservation:
        reservation = self._reservation(command.reservation_id)
        if reservation.status is ReservationStatus.CONFIRMED:
            return reservation
        if reservation.has_lapsed(now) or reservation.status is ReservationStatus.EXPIRED:
            raise ReservationExpired(
                f"reservation {reservation.id} expired at {reservation.expires_at.isoformat()}"
            )
        if reservation.status is not ReservationStatus.PENDING:
            raise InvalidState(
                f"reservation {reservation.id} is {reservation.status}; only a pending one can be confirmed"
            )
        return self._finish(reservation, ReservationStatus.CONFIRMED, MovementType.SHIP, now)

    def _release(self, command: Release, now: datetime) -> Reservation:
        reservation = self._reservation(command.reservation_id)
        if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            return reservation
        if reservation.status is ReservationStatus.CONFIRMED:
            raise InvalidState(f"reservation {reservation.id} is confirmed; the goods have shipped")
        if reservation.has_lapsed(now):
            # The hold is already over: record it as the expiry it is, and give the stock back now.
            return self._finish(reservation, ReservationStatus.EXPIRED, MovementType.EXPIRE, now)
        return self._finish(reservation, ReservationStatus.RELEASED, MovementType.RELEASE, now)

    def _expire(self, command: Expire, now: datetime) -> Reservation:
        """The sweeper's command: a no-op unless the hold is pending and has lapsed."""
        reservation = self._reservation(command.reservation_id)
        if not reservation.has_lapsed(now):
            return reservation
        return self._finish(reservation, ReservationStatus.EXPIRED, MovementType.EXPIRE, now)

    def _finish(
        self,
        reservation: Reservation,
        status: ReservationStatus,
        movement_type: MovementType,
        now: datetime,
    ) -> Reservation:
        """Move a pending reservation to a final status and undo or ship its hold."""
        ships = movement_type is MovementType.SHIP
        reference = (RESERVATION, reservation.id)
        for line in reservation.lines:
            level = self._levels[(line.sku, line.warehouse_id)]
            on_hand_delta = -line.quantity if ships else 0
            self._move(level, movement_type, line.quantity, on_hand_delta, -line.quantity, reference, now)
        finished = reservation.moved_to(status, now)
        self._reservations[finished.id] = finished
        if finished.id in self.created_reservations:
            self.created_reservations[finished.id] = finished
        else:
            self.updated_reservations[finished.id] = finished
        return finished

    def _reservation(self, reservation_id: str) -> Reservation:
        reservation = self._reservations.get(reservation_id)
        if reservation is None:
            raise NotFound(f"reservation {reservation_id!r} does not exist")
        return reservation

    # -- stock ----------------------------------------------------------------

    def _receive(self, command: Receive, now: datetime) -> StockLevel:
        _check_quantity(command.quantity)
        level = self._level_for_update(command.sku, command.warehouse_id)
        if level.quantity_on_hand > MAX_BALANCE - command.quantity:
            raise InvalidRequest("receiving this quantity would overflow the balance")
        self._move(
            level,
            MovementType.RECEIVE,
            command.quantity,
            command.quantity,
            0,
            (command.reference_type, command.reference_id),
            now,
        )
        return level.snapshot()

    def _adjust(self, command: Adjust, now: datetime) -> StockLevel:
        if command.delta == 0:
            raise InvalidRequest("delta must not be zero")
        _check_quantity(abs(command.delta))
        level = self._level_for_update(command.sku, command.warehouse_id)
        if command.expected_on_hand is not None and command.expected_on_hand != level.quantity_on_hand:
            raise StaleQuantity(
                f"quantity_on_hand is {level.quantity_on_hand}, not the expected {command.expected_on_hand}"
            )
        if -command.delta > level.quantity_available:
            raise InsufficientStock(
                f"cannot remove {-command.delta}: only {level.quantity_available} available"
            )
        if level.quantity_on_hand > MAX_BALANCE - command.delta:
            raise InvalidRequest("this adjustment would overflow the balance")
        self._move(
            level,
            MovementType.ADJUST,
            abs(command.delta),
            command.delta,
            0,
            ("adjustment" if command.reference_id else None, command.reference_id),
            now,
            command.reason.value,
        )
        return level.snapshot()

    # -- transfers ----------------------------------------------------------------

    def _transfer_out(self, command: TransferOut, now: datetime) -> Transfer:
        _check_quantity(command.quantity)
        if command.from_warehouse_id == command.to_warehouse_id:
            raise InvalidRequest("a transfer needs two different warehouses")
        if command.to_warehouse_id not in self._warehouses:
            raise NotFound(f"warehouse {command.to_warehouse_id!r} does not exist")
        source = self._level_for_update(command.sku, command.from_warehouse_id)
        if command.quantity > source.quantity_available:
            raise InsufficientStock(
                f"cannot send {command.quantity}: only {source.quantity_available} available "
                f"in {command.from_warehouse_id}"
            )
        transfer = Transfer(
            id=command.transfer_id,
            sku=command.sku,
            from_warehouse_id=command.from_warehouse_id,
            to_warehouse_id=command.to_warehouse_id,
            quantity=command.quantity,
            status=TransferStatus.IN_TRANSIT,
            created_at=now,
            reference_id=command.reference_id,
        )
        self._move(
            source,
            MovementType.TRANSFER_OUT,
            command.quantity,
            -command.quantity,
            0,
            (TRANSFER, transfer.id),
            now,
        )
        self._transfers[transfer.id] = transfer
        self.created_transfers[transfer.id] = transfer
        return transfer

    def _transfer_in(self, command: TransferIn, now: datetime) -> Transfer:
        transfer = self._transfers.get(command.transfer_id)
        if transfer is None:
            raise NotFound(f"transfer {command.transfer_id!r} does not exist")
        if transfer.status is TransferStatus.RECEIVED:
            return transfer
        destination = self._level_for_update(transfer.sku, transfer.to_warehouse_id)
        if destination.quantity_on_hand > MAX_BALANCE - transfer.quantity:
            raise InvalidRequest("receiving this transfer would overflow the balance")
        self._move(
            destination,
            MovementType.TRANSFER_IN,
            transfer.quantity,
            transfer.quantity,
            0,
            (TRANSFER, transfer.id),
            now,
        )
        received = replace(transfer, status=TransferStatus.RECEIVED, received_at=now)
        self._transfers[received.id] = received
        if received.id in self.created_transfers:
            self.created_transfers[received.id] = received
        else:
            self.updated_transfers[received.id] = received
        return received

    def _set_reorder_policy(self, command: SetReorderPolicy, now: datetime) -> StockLevel:
        if command.reorder_point < 0 or command.reorder_quantity < 1:
            raise InvalidRequest("reorder_point must be at least 0 and reorder_quantity at least 1")
        if command.reorder_point + command.reorder_quantity > MAX_BALANCE:
            # An alert suggests ordering up to their sum: it must be a balance the ledger can hold.
            raise InvalidRequest(f"reorder_point + reorder_quantity must be at most {MAX_BALANCE}")
        level = self._level_for_update(command.sku, command.warehouse_id)
        level.reorder_point = command.reorder_point
        level.reorder_quantity = command.reorder_quantity
        self._record_change(level)
        return level.snapshot()

    _rules: ClassVar[dict[type, Callable[..., Outcome]]] = {
        Reserve: _reserve,
        Confirm: _confirm,
        Release: _release,
        Expire: _expire,
        Receive: _receive,
        Adjust: _adjust,
        SetReorderPolicy: _set_reorder_policy,
        TransferOut: _transfer_out,
        TransferIn: _transfer_in,
    }

    def _level_for_update(self, sku: str, warehouse_id: str) -> StockLevel:
        """The level to change; a new one joins the working set only once a change is recorded."""
        if sku not in self._known_skus:
            raise NotFound(f"product {sku!r} does not exist")
        if warehouse_id not in self._warehouses:
            raise NotFound(f"warehouse {warehouse_id!r} does not exist")
        return self._levels.get((sku, warehouse_id)) or StockLevel(sku, warehouse_id)

    def _add_level(self, level: StockLevel) -> None:
        self._levels[level.key] = level

    def _move(
        self,
        level: StockLevel,
        movement_type: MovementType,
        quantity: int,
        on_hand_delta: int,
        reserved_delta: int,
        reference: tuple[str | None, str | None],
        now: datetime,
        reason: str | None = None,
    ) -> None:
        """Change a balance and record the movement that explains it, together.

        Called with positional arguments only, and building the movement from them: this runs
        for every reserved line, where keyword arguments alone cost a measurable share.
        """
        level.quantity_on_hand += on_hand_delta
        level.quantity_reserved += reserved_delta
        level.check_invariants()
        reference_type, reference_id = reference
        self.movements.append(
            Movement(
                level.sku, level.warehouse_id, movement_type, quantity, on_hand_delta, reserved_delta,
                reference_type, reference_id, now, reason,
            )
        )  # fmt: skip
        self._record_change(level)

    def _record_change(self, level: StockLevel) -> None:
        key = level.key
        if key not in self._levels:
            self._add_level(level)
        self.changed_levels[key] = level


def _check_quantity(quantity: int) -> None:
    """The API's schemas enforce this too; the domain does not rely on its callers."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"a quantity must be 1 to {MAX_QUANTITY:,}, not {quantity}")
