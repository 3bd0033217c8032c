"""Replenishment alerts: when a level's available stock falls below its reorder point.

An alert opens when ``quantity_available`` falls below ``reorder_point`` and
resolves when it is back at or above it; a level has at most one open alert.
While open, the alert follows the level, so ``suggested_quantity`` — what to
order to bring the level up to ``reorder_point + reorder_quantity`` — is always
current. ``review`` is pure: the engine calls it with the levels a batch
changed and their open alerts, in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from stockd.domain.model import MAX_BALANCE, LevelKey, StockLevel


class AlertStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    sku: str
    warehouse_id: str
    status: AlertStatus
    quantity_available: int
    reorder_point: int
    suggested_quantity: int
    opened_at: datetime
    resolved_at: datetime | None = None

    @property
    def key(self) -> LevelKey:
        return (self.sku, self.warehouse_id)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert after a batch, and what happened to it."""

    alert: Alert
    kind: str  # "opened", "updated" or "resolved"


def suggested_quantity(level: StockLevel) -> int:
    """What to order to bring the level up to its reorder point plus its reorder quantity."""
    target = (level.reorder_point or 0) + (level.reorder_quantity or 0)
    # Capped: a policy set before its sum was limited, or a negative balance, must not ask for more
    # than a balance can hold (the alert would not be storable, and the batch holding it would fail).
    return min(max(target - level.quantity_available, 0), MAX_BALANCE)


def is_short(level: StockLevel) -> bool:
    return level.reorder_point is not None and level.quantity_available < level.reorder_point


def review(
    levels: Iterable[StockLevel],
    open_alerts: Mapping[LevelKey, Alert],
    now: datetime,
    new_id: Callable[[], str],
) -> list[AlertChange]:
    """The alerts the current balances of ``levels`` call for."""
    changes: list[AlertChange] = []
    for level in levels:
        alert = open_alerts.get(level.key)
        if is_short(level):
            if alert is None:
                changes.append(AlertChange(_opened(level, now, new_id()), "opened"))
            elif (alert.quantity_available, alert.reorder_point) != (
                level.quantity_available,
                level.reorder_point,
            ):
                changes.append(AlertChange(_following(alert, level), "updated"))
        elif alert is not None:
            resolved = replace(_following(alert, level), status=AlertStatus.RESOLVED, resolved_at=now)
            changes.append(AlertChange(resolved, "resolved"))
    return changes


def _opened(level: StockLevel, now: datetime, alert_id: str) -> Alert:
    assert level.reorder_point is not None
    return Alert(
        id=alert_id,
        sku=level.sku,
        warehouse_id=level.warehouse_id,
        status=AlertStatus.OPEN,
        quantity_available=level.quantity_available,
        reorder_point=level.reorder_point,
        suggested_quantity=suggested_quantity(level),
        opened_at=now,
    )


def _following(alert: Alert, level: StockLevel) -> Alert:
    return replace(
        alert,
        quantity_available=level.quantity_available,
        reorder_point=level.reorder_point if level.reorder_point is not None else alert.reorder_point,
        suggested_quantity=suggested_quantity(level),
    )
