"""Where each line of a reservation is held.

Lines that name a warehouse are held there. A line without one takes the
active warehouse with the most available stock that can fill it whole (ties
go to the smallest ``warehouse_id``, so the choice is repeatable); the
distance- and split-aware planner of the warehouse-network issue replaces this
rule. Shortfalls are collected for every line before anything is decided, so a
refusal names all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from stockd.domain.commands import RequestedLine
from stockd.domain.errors import NotFound, OutOfStock, Shortfall
from stockd.domain.model import LevelKey, ReservationLine, StockLevel, Warehouse


def place_lines(
    lines: Sequence[RequestedLine],
    *,
    warehouses: Mapping[str, Warehouse],
    level: Callable[[LevelKey], StockLevel | None],
    levels_of_sku: Callable[[str], Iterable[StockLevel]],
) -> list[ReservationLine]:
    """Decide a warehouse for every line, or raise ``OutOfStock`` naming every shortfall."""
    demand: dict[LevelKey, int] = {}
    for line in lines:
        if line.warehouse_id is not None:
            if line.warehouse_id not in warehouses:
                raise NotFound(f"warehouse {line.warehouse_id!r} does not exist")
            key = (line.sku, line.warehouse_id)
            demand[key] = demand.get(key, 0) + line.quantity

    shortfalls: list[Shortfall] = []
    for (sku, warehouse_id), requested in demand.items():
        available = _sellable(level((sku, warehouse_id)), warehouses)
        if available < requested:
            shortfalls.append(Shortfall(sku, warehouse_id, requested, available))

    placed: list[ReservationLine] = []
    for line in lines:
        if line.warehouse_id is not None:
            placed.append(ReservationLine(line.sku, line.warehouse_id, line.quantity))
            continue
        chosen, best_available = _roomiest_level(line.sku, demand, warehouses, levels_of_sku)
        if chosen is None or best_available < line.quantity:
            shortfalls.append(Shortfall(line.sku, None, line.quantity, max(best_available, 0)))
            continue
        demand[chosen] = demand.get(chosen, 0) + line.quantity
        placed.append(ReservationLine(line.sku, chosen[1], line.quantity))

    if shortfalls:
        raise OutOfStock(shortfalls)
    return placed


def _sellable(level: StockLevel | None, warehouses: Mapping[str, Warehouse]) -> int:
    """Stock in an inactive warehouse is never held for new reservations."""
    if level is None or not warehouses[level.warehouse_id].active:
        return 0
    return level.quantity_available


def _roomiest_level(
    sku: str,
    demand: Mapping[LevelKey, int],
    warehouses: Mapping[str, Warehouse],
    levels_of_sku: Callable[[str], Iterable[StockLevel]],
) -> tuple[LevelKey | None, int]:
    best: LevelKey | None = None
    best_available = 0
    for candidate in sorted(levels_of_sku(sku), key=lambda lvl: lvl.warehouse_id):
        warehouse = warehouses.get(candidate.warehouse_id)
        if warehouse is None or not warehouse.active:
            continue
        available = candidate.quantity_available - demand.get(candidate.key, 0)
        if best is None or available > best_available:
            best, best_available = candidate.key, available
    return best, best_available
