"""Events: what changed, told to dashboards (Server-Sent Events) and subscribers (webhooks)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stockd.domain.clock import rfc3339
from stockd.domain.model import StockLevel
from stockd.domain.replenishment import Alert, AlertChange

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
STOCK_CHANGED = "stock.changed"
EVENT_TYPES = (ALERT_OPENED, ALERT_RESOLVED, STOCK_CHANGED)


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]


def alert_data(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "sku": alert.sku,
        "warehouse_id": alert.warehouse_id,
        "status": alert.status.value,
        "quantity_available": alert.quantity_available,
        "reorder_point": alert.reorder_point,
        "suggested_quantity": alert.suggested_quantity,
        "opened_at": rfc3339(alert.opened_at),
        "resolved_at": None if alert.resolved_at is None else rfc3339(alert.resolved_at),
    }


def events_of(
    levels: Iterable[StockLevel], alert_changes: Iterable[AlertChange], now: datetime
) -> list[Event]:
    """One ``stock.changed`` per level a batch changed, then its alerts that opened or resolved."""
    events = [
        Event(
            STOCK_CHANGED,
            {
                "sku": level.sku,
                "warehouse_id": level.warehouse_id,
                "quantity_on_hand": level.quantity_on_hand,
                "quantity_reserved": level.quantity_reserved,
                "quantity_available": level.quantity_available,
                "at": rfc3339(now),
            },
        )
        for level in levels
    ]
    for change in alert_changes:
        if change.kind == "opened":
            events.append(Event(ALERT_OPENED, alert_data(change.alert)))
        elif change.kind == "resolved":
            events.append(Event(ALERT_RESOLVED, alert_data(change.alert)))
    return events
