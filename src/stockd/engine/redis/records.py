"""How the Redis engine stores values and stream entries: msgpack arrays, compact and fast.

A stored value is also its own version: the commit script writes a key only if
it still holds exactly the bytes the batch was decided on.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from stockd.domain.model import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    Transfer,
)
from stockd.engine.base import IdempotencyRecord, StoredResponse
from stockd.store.codec import from_millis, to_millis
from stockd.store.rows import transfer_from_row, transfer_to_row


class LevelRecord(msgspec.Struct, array_like=True):
    sku: str
    warehouse_id: str
    quantity_on_hand: int
    quantity_reserved: int
    reorder_point: int | None
    reorder_quantity: int | None
    last_hash: str | None
    """The hash of the level's newest movement: the next one chains to it."""

    def level(self) -> StockLevel:
        return StockLevel(
            self.sku,
            self.warehouse_id,
            self.quantity_on_hand,
            self.quantity_reserved,
            self.reorder_point,
            self.reorder_quantity,
        )

    @classmethod
    def of(cls, level: StockLevel, last_hash: str | None) -> LevelRecord:
        return cls(
            level.sku,
            level.warehouse_id,
            level.quantity_on_hand,
            level.quantity_reserved,
            level.reorder_point,
            level.reorder_quantity,
            last_hash,
        )


class MovementRecord(msgspec.Struct, array_like=True):
    sku: str
    warehouse_id: str
    type: str
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    reference_type: str | None
    reference_id: str | None
    reason: str | None
    hash: str


class ReservationRecord(msgspec.Struct, array_like=True):
    id: str
    order_id: str
    status: str
    created_at: int
    expires_at: int
    updated_at: int | None
    lines: list[tuple[str, str, int]]

    def reservation(self) -> Reservation:
        return Reservation(
            id=self.id,
            order_id=self.order_id,
            status=ReservationStatus(self.status),
            created_at=from_millis(self.created_at),
            expires_at=from_millis(self.expires_at),
            lines=tuple(ReservationLine(*line) for line in self.lines),
            updated_at=None if self.updated_at is None else from_millis(self.updated_at),
        )

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationRecord:
        return cls(
            reservation.id,
            reservation.order_id,
            reservation.status.value,
            to_millis(reservation.created_at),
            to_millis(reservation.expires_at),
            None if reservation.updated_at is None else to_millis(reservation.updated_at),
            [(line.sku, line.warehouse_id, line.quantity) for line in reservation.lines],
        )


class TransferRecord(msgspec.Struct, array_like=True):
    id: str
    sku: str
    from_warehouse_id: str
    to_warehouse_id: str
    quantity: int
    status: str
    reference_id: str | None
    created_at: int
    received_at: int | None

    # Same fields, same order as the transfers table: the row helpers convert both.
    def transfer(self) -> Transfer:
        return transfer_from_row(msgspec.structs.astuple(self))

    @classmethod
    def of(cls, transfer: Transfer) -> TransferRecord:
        return cls(*transfer_to_row(transfer))  # type: ignore[arg-type]


class AnswerRecord(msgspec.Struct, array_like=True):
    """The stored first answer of an idempotent request."""

    principal: str
    key: str
    fingerprint: str
    status_code: int
    body: bytes
    created_at: int

    def record(self) -> IdempotencyRecord:
        return IdempotencyRecord(
            self.principal,
            self.key,
            self.fingerprint,
            StoredResponse(self.status_code, self.body),
            from_millis(self.created_at),
        )

    @classmethod
    def of(cls, record: IdempotencyRecord) -> AnswerRecord:
        return cls(
            record.principal,
            record.key,
            record.fingerprint,
            record.response.status_code,
            record.response.body,
            to_millis(record.created_at),
        )


class Entry(msgspec.Struct, array_like=True):
    """One committed batch, as the stream carries it to PostgreSQL: everything needed to write it there."""

    at: int
    """When the batch was decided (milliseconds): the movements' created_at."""
    levels: list[LevelRecord]
    movements: list[MovementRecord]
    reservations: list[ReservationRecord]
    transfers: list[TransferRecord]
    answers: list[AnswerRecord]

    @property
    def decided_at(self) -> datetime:
        return from_millis(self.at)


encode = msgspec.msgpack.Encoder().encode
decode_level = msgspec.msgpack.Decoder(LevelRecord).decode
decode_reservation = msgspec.msgpack.Decoder(ReservationRecord).decode
decode_transfer = msgspec.msgpack.Decoder(TransferRecord).decode
decode_answer = msgspec.msgpack.Decoder(AnswerRecord).decode
decode_entry = msgspec.msgpack.Decoder(Entry).decode
