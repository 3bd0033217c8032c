"""Stored rows into domain values, for every SQL database: the column lists and their readers."""

from __future__ import annotations

import msgspec

from stockd.domain.access import ApiKey
from stockd.domain.model import (
    Movement,
    MovementType,
    Product,
    Reservation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
    Warehouse,
)
from stockd.domain.webhooks import Delivery, Webhook
from stockd.store.codec import decode_dimensions, decode_lines, from_millis, to_millis
from stockd.store.sql import Row

PRODUCT_COLUMNS = "sku, name, description, weight_grams, dimensions_mm, created_at, updated_at"
WAREHOUSE_COLUMNS = (
    "warehouse_id, name, latitude, longitude, timezone, handling_hours, active, created_at, updated_at"
)
LEVEL_COLUMNS = "sku, warehouse_id, quantity_on_hand, quantity_reserved, reorder_point, reorder_quantity"
RESERVATION_INSERT_COLUMNS = ("id", "order_id", "status", "created_at", "expires_at", "updated_at", "lines")
RESERVATION_COLUMNS = ", ".join(RESERVATION_INSERT_COLUMNS)
TRANSFER_INSERT_COLUMNS = (
    "id",
    "sku",
    "from_warehouse_id",
    "to_warehouse_id",
    "quantity",
    "status",
    "reference_id",
    "created_at",
    "received_at",
)
TRANSFER_COLUMNS = ", ".join(TRANSFER_INSERT_COLUMNS)
MOVEMENT_INSERT_COLUMNS = (
    "sku",
    "warehouse_id",
    "type",
    "quantity",
    "on_hand_delta",
    "reserved_delta",
    "reference_type",
    "reference_id",
    "reason",
    "created_at",
)
MOVEMENT_COLUMNS = "id, " + ", ".join(MOVEMENT_INSERT_COLUMNS)


def product_from_row(row: Row) -> Product:
    sku, name, description, weight_grams, dimensions, created_at, updated_at = row
    return Product(
        sku=sku,
        name=name,
        description=description,
        weight_grams=weight_grams,
        dimensions_mm=decode_dimensions(dimensions),
        created_at=from_millis(created_at),
        updated_at=from_millis(updated_at),
    )


def warehouse_from_row(row: Row) -> Warehouse:
    warehouse_id, name, latitude, longitude, timezone, handling_hours, active, created, updated = row
    return Warehouse(
        warehouse_id=warehouse_id,
        name=name,
        latitude=latitude,
        longitude=longitude,
        timezone=timezone,
        handling_hours=handling_hours,
        active=bool(active),
        created_at=from_millis(created),
        updated_at=from_millis(updated),
    )


def level_from_row(row: Row) -> StockLevel:
    return StockLevel(*row)


def reservation_from_row(row: Row) -> Reservation:
    reservation_id, order_id, status, created_at, expires_at, updated_at, lines = row
    return Reservation(
        id=reservation_id,
        order_id=order_id,
        status=ReservationStatus(status),
        created_at=from_millis(created_at),
        expires_at=from_millis(expires_at),
        updated_at=from_millis(updated_at) if updated_at is not None else None,
        lines=decode_lines(lines),
    )


def transfer_from_row(row: Row) -> Transfer:
    transfer_id, sku, source, destination, quantity, status, reference_id, created_at, received_at = row
    return Transfer(
        id=transfer_id,
        sku=sku,
        from_warehouse_id=source,
        to_warehouse_id=destination,
        quantity=quantity,
        status=TransferStatus(status),
        reference_id=reference_id,
        created_at=from_millis(created_at),
        received_at=None if received_at is None else from_millis(received_at),
    )


def transfer_to_row(transfer: Transfer) -> tuple[object, ...]:
    return (
        transfer.id,
        transfer.sku,
        transfer.from_warehouse_id,
        transfer.to_warehouse_id,
        transfer.quantity,
        transfer.status.value,
        transfer.reference_id,
        to_millis(transfer.created_at),
        None if transfer.received_at is None else to_millis(transfer.received_at),
    )


WEBHOOK_COLUMNS = "id, url, events, secret, created_at"
DELIVERY_COLUMNS = (
    "id, webhook_id, event_type, payload, status, attempts, next_attempt_at, last_status_code, last_error, "
    "created_at, delivered_at"
)


def webhook_from_row(row: Row) -> Webhook:
    webhook_id, url, events, secret, created_at = row
    return Webhook(webhook_id, url, tuple(msgspec.json.decode(events)), secret, from_millis(created_at))


def delivery_from_row(row: Row) -> Delivery:
    (delivery_id, webhook_id, event_type, payload, status, attempts, next_attempt_at, last_status_code,
     last_error, created_at, delivered_at) = row  # fmt: skip
    return Delivery(
        id=delivery_id,
        webhook_id=webhook_id,
        event_type=event_type,
        payload=payload,
        status=status,
        attempts=attempts,
        next_attempt_at=from_millis(next_attempt_at),
        last_status_code=last_status_code,
        last_error=last_error,
        created_at=from_millis(created_at),
        delivered_at=None if delivered_at is None else from_millis(delivered_at),
    )


def movement_from_row(row: Row) -> Movement:
    (movement_id, sku, warehouse_id, kind, quantity, on_hand_delta, reserved_delta,
     reference_type, reference_id, reason, created_at) = row  # fmt: skip
    return Movement(
        id=str(movement_id),
        sku=sku,
        warehouse_id=warehouse_id,
        type=MovementType(kind),
        quantity=quantity,
        on_hand_delta=on_hand_delta,
        reserved_delta=reserved_delta,
        reference_type=reference_type,
        reference_id=reference_id,
        reason=reason,
        created_at=from_millis(created_at),
    )


API_KEY_COLUMNS = "id, name, scopes, warehouse_ids, secret_sha256, created_at, revoked_at"


def api_key_from_row(row: Row) -> ApiKey:
    key_id, name, scopes, warehouse_ids, secret_sha256, created_at, revoked_at = row
    return ApiKey(
        id=key_id,
        name=name,
        scopes=tuple(msgspec.json.decode(scopes)),
        warehouse_ids=None if warehouse_ids is None else tuple(msgspec.json.decode(warehouse_ids)),
        secret_sha256=secret_sha256,
        created_at=from_millis(created_at),
        revoked_at=None if revoked_at is None else from_millis(revoked_at),
    )
