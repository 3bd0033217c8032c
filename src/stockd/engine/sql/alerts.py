"""Alerts and webhook deliveries, reviewed and written inside the batch's transaction.

Writing them with the stock changes that cause them means an alert can never be
missing for a committed change (nor exist for a rolled-back one), and every
webhook delivery is recorded before anyone is told the change happened: the
dispatcher then delivers at least once, however often the service restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from stockd.domain.events import ALERT_OPENED, ALERT_RESOLVED, Event
from stockd.domain.model import LevelKey, StockLevel
from stockd.domain.replenishment import Alert, AlertChange, AlertStatus, review
from stockd.engine.base import WriteConflict
from stockd.store.codec import from_millis, to_millis
from stockd.store.sql import Dialect, Row, Session, for_update, pairs_in

ALERT_COLUMNS = "id, sku, warehouse_id, status, quantity_available, reorder_point, suggested_quantity, opened_at, resolved_at"
DELIVERY_COLUMNS = (
    "webhook_id",
    "event_type",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_encode = msgspec.json.Encoder().encode


def alert_from_row(row: Row) -> Alert:
    alert_id, sku, warehouse_id, status, available, point, suggested, opened_at, resolved_at = row
    return Alert(
        id=alert_id,
        sku=sku,
        warehouse_id=warehouse_id,
        status=AlertStatus(status),
        quantity_available=available,
        reorder_point=point,
        suggested_quantity=suggested,
        opened_at=from_millis(opened_at),
        resolved_at=None if resolved_at is None else from_millis(resolved_at),
    )


async def review_alerts(
    session: Session,
    dialect: Dialect,
    levels: Sequence[StockLevel],
    now: datetime,
    new_id: Callable[[], str],
    *,
    lock: bool,
) -> list[AlertChange]:
    """The alert changes the batch's levels call for. Costs nothing for levels without a policy."""
    watched = sorted((level for level in levels if level.reorder_point is not None), key=lambda lvl: lvl.key)
    if not watched:
        return []
    condition, params = pairs_in(dialect, ("sku", "warehouse_id"), [level.key for level in watched])
    rows = await session.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'open' AND ({condition})"
        f"{for_update(dialect) if lock else ''}",
        params,
    )
    open_alerts: dict[LevelKey, Alert] = {}
    for row in rows:
        alert = alert_from_row(row)
        open_alerts[alert.key] = alert
    return review(watched, open_alerts, now, new_id)


async def write_alerts(
    session: Session, changes: Sequence[AlertChange], events: Sequence[Event], now: datetime
) -> None:
    opened = [c.alert for c in changes if c.kind == "opened"]
    await session.insert_many(
        "alerts",
        [column.strip() for column in ALERT_COLUMNS.split(",")],
        [
            (a.id, a.sku, a.warehouse_id, a.status.value, a.quantity_available, a.reorder_point,
             a.suggested_quantity, to_millis(a.opened_at), None)
            for a in opened
        ],
    )  # fmt: skip
    for change in changes:
        if change.kind == "opened":
            continue
        a = change.alert
        # Only an alert still open may change: another writer resolving it first makes this a conflict.
        changed_rows = await session.execute(
            "UPDATE alerts SET status = ?, quantity_available = ?, reorder_point = ?, suggested_quantity = ?, "
            "resolved_at = ? WHERE id = ? AND status = 'open'",
            (a.status.value, a.quantity_available, a.reorder_point, a.suggested_quantity,
             None if a.resolved_at is None else to_millis(a.resolved_at), a.id),
        )  # fmt: skip
        if changed_rows != 1:
            raise WriteConflict(a.id)
    await _record_deliveries(session, [e for e in events if e.type in (ALERT_OPENED, ALERT_RESOLVED)], now)


async def _record_deliveries(session: Session, events: Sequence[Event], now: datetime) -> None:
    """One pending delivery per event and subscribed, active webhook."""
    if not events:
        return
    webhooks = await session.fetch("SELECT id, events FROM webhooks WHERE active = ?", (True,))
    at = to_millis(now)
    rows = [
        (
            webhook_id,
            event.type,
            _encode({"type": event.type, "data": event.data}).decode(),
            "pending",
            0,
            at,
            at,
        )
        for webhook_id, subscribed in webhooks
        for event in events
        if event.type in msgspec.json.decode(subscribed)
    ]
    await session.insert_many("webhook_deliveries", DELIVERY_COLUMNS, rows)
