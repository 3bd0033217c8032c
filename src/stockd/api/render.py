"""Domain values into response shapes, and errors into problem documents."""

from __future__ import annotations

from typing import Any

import msgspec

from stockd.api import schemas as s
from stockd.domain.access import ApiKey
from stockd.domain.book import Outcome
from stockd.domain.clock import rfc3339
from stockd.domain.errors import StockdError
from stockd.domain.model import Movement, Product, Reservation, StockLevel, Transfer, Warehouse
from stockd.domain.planner import Plan
from stockd.domain.replenishment import Alert
from stockd.domain.webhooks import Delivery, Webhook
from stockd.engine.base import StoredResponse
from stockd.service import StockSummary
from stockd.store.base import Reconciliation

PROBLEM_TYPE_BASE = "https://stockd.dev/problems/"
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

STATUS_OF_CODE = {
    "validation_error": 422,
    "not_found": 404,
    "out_of_stock": 409,
    "insufficient_stock": 409,
    "order_limit_exceeded": 409,
    "stale_quantity": 409,
    "invalid_state": 409,
    "reservation_expired": 409,
    "request_in_progress": 409,
    "idempotency_key_reused": 422,
    "payload_too_large": 413,
    "unauthorized": 401,
    "forbidden": 403,
    "method_not_allowed": 405,
    "rate_limited": 429,
    "unavailable": 503,
    "internal_error": 500,
}


timestamp = rfc3339


def product(p: Product) -> s.ProductOut:
    dimensions = p.dimensions_mm
    return s.ProductOut(
        sku=p.sku,
        name=p.name,
        description=p.description,
        weight_grams=p.weight_grams,
        dimensions_mm=None
        if dimensions is None
        else s.DimensionsMm(dimensions.length, dimensions.width, dimensions.height),
        created_at=timestamp(p.created_at),
        updated_at=timestamp(p.updated_at),
    )


def warehouse(w: Warehouse) -> s.WarehouseOut:
    return s.WarehouseOut(
        warehouse_id=w.warehouse_id,
        name=w.name,
        latitude=w.latitude,
        longitude=w.longitude,
        timezone=w.timezone,
        handling_hours=w.handling_hours,
        active=w.active,
        created_at=timestamp(w.created_at),
        updated_at=timestamp(w.updated_at),
    )


def level(lvl: StockLevel, in_transit: int | None = None) -> s.LevelOut:
    return s.LevelOut(
        warehouse_id=lvl.warehouse_id,
        quantity_on_hand=lvl.quantity_on_hand,
        quantity_reserved=lvl.quantity_reserved,
        quantity_available=lvl.quantity_available,
        reorder_point=lvl.reorder_point,
        reorder_quantity=lvl.reorder_quantity,
        quantity_in_transit=in_transit,
    )


def sku_level(lvl: StockLevel, in_transit: int | None = None) -> s.SkuLevelOut:
    return s.SkuLevelOut(sku=lvl.sku, **msgspec.structs.asdict(level(lvl, in_transit)))


def stock(summary: StockSummary) -> s.StockOut:
    return s.StockOut(
        sku=summary.sku,
        quantity_on_hand=summary.quantity_on_hand,
        quantity_reserved=summary.quantity_reserved,
        quantity_available=summary.quantity_available,
        quantity_in_transit=summary.quantity_in_transit,
        warehouses=[level(lvl, summary.in_transit.get(lvl.warehouse_id, 0)) for lvl in summary.levels],
    )


def reservation(r: Reservation) -> s.ReservationOut:
    return s.ReservationOut(
        id=r.id,
        order_id=r.order_id,
        status=r.status.value,
        created_at=timestamp(r.created_at),
        expires_at=timestamp(r.expires_at),
        lines=[s.LineOut(line.sku, line.warehouse_id, line.quantity) for line in r.lines],
    )


def transfer(t: Transfer) -> s.TransferOut:
    return s.TransferOut(
        id=t.id,
        sku=t.sku,
        from_warehouse_id=t.from_warehouse_id,
        to_warehouse_id=t.to_warehouse_id,
        quantity=t.quantity,
        status=t.status.value,
        created_at=timestamp(t.created_at),
        received_at=None if t.received_at is None else timestamp(t.received_at),
        reference_id=t.reference_id,
    )


def alert(a: Alert) -> s.AlertOut:
    return s.AlertOut(
        id=a.id,
        sku=a.sku,
        warehouse_id=a.warehouse_id,
        status=a.status.value,
        quantity_available=a.quantity_available,
        reorder_point=a.reorder_point,
        suggested_quantity=a.suggested_quantity,
        opened_at=timestamp(a.opened_at),
        resolved_at=None if a.resolved_at is None else timestamp(a.resolved_at),
    )


def webhook(w: Webhook, *, with_secret: bool = False) -> s.WebhookOut:
    return s.WebhookOut(
        id=w.id,
        url=w.url,
        events=list(w.events),
        created_at=timestamp(w.created_at),
        secret=w.secret if with_secret else None,
    )


def api_key(k: ApiKey, token: str | None = None) -> s.KeyOut:
    return s.KeyOut(
        id=k.id,
        name=k.name,
        scopes=list(k.scopes),
        warehouse_ids=None if k.warehouse_ids is None else list(k.warehouse_ids),
        created_at=timestamp(k.created_at),
        key=token,
    )


def delivery(d: Delivery) -> s.DeliveryOut:
    return s.DeliveryOut(
        id=str(d.id),
        event_type=d.event_type,
        status=d.status,  # type: ignore[arg-type]
        attempts=d.attempts,
        next_attempt_at=timestamp(d.next_attempt_at) if d.status == "pending" else None,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=timestamp(d.created_at),
        delivered_at=None if d.delivered_at is None else timestamp(d.delivered_at),
    )


def fulfillment_plan(p: Plan) -> s.PlanOut:
    return s.PlanOut(
        allocations=[
            s.AllocationOut(
                sku=a.sku,
                warehouse_id=a.warehouse_id,
                quantity=a.quantity,
                distance_km=None if a.distance_km is None else round(a.distance_km, 1),
                reason=a.reason,
                estimated_delivery_hours=None
                if a.estimated_delivery_hours is None
                else round(a.estimated_delivery_hours, 1),
            )
            for a in p.allocations
        ],
        warehouse_count=p.warehouse_count,
        shortfalls=[s.PlanShortfallOut(x.sku, x.requested, x.available) for x in p.shortfalls],
    )


def movement(m: Movement) -> s.MovementOut:
    return s.MovementOut(
        id=m.id or "",
        sku=m.sku,
        warehouse_id=m.warehouse_id,
        type=m.type.value,
        quantity=m.quantity,
        on_hand_delta=m.on_hand_delta,
        reserved_delta=m.reserved_delta,
        reference_type=m.reference_type,
        reference_id=m.reference_id,
        reason=m.reason,
        created_at=timestamp(m.created_at),
    )


def reconciliation(r: Reconciliation) -> s.ReconciliationOut:
    return s.ReconciliationOut(
        levels_checked=r.levels_checked,
        broken_links=[
            s.BrokenLinkOut(b.sku, b.warehouse_id, b.movement_id, b.detail) for b in r.broken_links
        ],
        mismatches=[
            s.MismatchOut(
                m.sku,
                m.warehouse_id,
                m.quantity_on_hand,
                m.ledger_on_hand,
                m.quantity_reserved,
                m.ledger_reserved,
            )
            for m in r.mismatches
        ],
        persister_lag=r.persister_lag,
        levels_moving=r.levels_moving,
    )


def problem(code: str, detail: str, title: str | None = None, **extensions: Any) -> s.Problem:
    return s.Problem(
        type=PROBLEM_TYPE_BASE + code.replace("_", "-"),
        title=title or code.replace("_", " ").capitalize(),
        status=STATUS_OF_CODE[code],
        detail=detail,
        code=code,
        **extensions,
    )


def problem_of(error: StockdError) -> s.Problem:
    extensions = error.extensions()
    shortfalls = extensions.get("shortfalls")
    return problem(
        error.code,
        error.detail,
        shortfalls=None if shortfalls is None else [s.ShortfallOut(**x) for x in shortfalls],
    )


def outcome_response(outcome: Outcome | StockdError, success_status: int) -> StoredResponse:
    """The status and body a command's result is answered with (and stored for repeats)."""
    if isinstance(outcome, StockdError):
        doc = problem_of(outcome)
        return StoredResponse(doc.status, s.encode(doc))
    body: s.ReservationOut | s.SkuLevelOut | s.TransferOut
    if isinstance(outcome, Reservation):
        body = reservation(outcome)
    elif isinstance(outcome, Transfer):
        body = transfer(outcome)
    else:
        body = sku_level(outcome)
    return StoredResponse(success_status, s.encode(body))
