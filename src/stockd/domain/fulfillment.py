"""Where each line of a reservation is held.

Lines that name a warehouse are held there. The lines that name none go to the
fulfillment planner (``planner.py``: fewest warehouses, then nearest, then most
stock), which sees what the named lines of the same reservation already take.
Shortfalls are collected for every line before anything is decided, so a
refusal names all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from stockd.domain.commands import RequestedLine
from stockd.domain.errors import NotFound, OutOfStock, Shortfall
from stockd.domain.model import LevelKey, Location, ReservationLine, StockLevel, Warehouse
from stockd.domain.planner import plan


def place_lines(
    lines: Sequence[RequestedLine],
    *,
    warehouses: Mapping[str, Warehouse],
    level: Callable[[LevelKey], StockLevel | None],
    ship_to: Location | None = None,
    deliver_within_hours: int | None = None,
) -> list[ReservationLine]:
    """Decide a warehouse for every line, or raise ``OutOfStock`` naming every shortfall."""
    # One pass over the lines: this runs for every reservation, most of them a single named line.
    demand: dict[LevelKey, int] = {}
    placed: list[ReservationLine] = []
    for line in lines:
        if line.warehouse_id is not None:
            if line.warehouse_id not in warehouses:
                raise NotFound(f"warehouse {line.warehouse_id!r} does not exist")
            key = (line.sku, line.warehouse_id)
            demand[key] = demand.get(key, 0) + line.quantity
            placed.append(ReservationLine(line.sku, line.warehouse_id, line.quantity))

    shortfalls: list[Shortfall] = []
    for key, requested in demand.items():
        available = _sellable(level(key), warehouses)
        if available < requested:
            shortfalls.append(Shortfall(key[0], key[1], requested, available))

    if len(placed) < len(lines):
        open_lines = [line for line in lines if line.warehouse_id is None]

        def still_available(sku: str, warehouse_id: str) -> int:
            # What the named lines of this reservation take is no longer there for the open ones.
            return _sellable(level((sku, warehouse_id)), warehouses) - demand.get((sku, warehouse_id), 0)

        result = plan(
            open_lines,
            warehouses=warehouses,
            available=still_available,
            ship_to=ship_to,
            deliver_within_hours=deliver_within_hours,
        )
        shortfalls += result.shortfalls
        placed += [ReservationLine(a.sku, a.warehouse_id, a.quantity) for a in result.allocations]

    if shortfalls:
        raise OutOfStock(shortfalls)
    return placed


def _sellable(level: StockLevel | None, warehouses: Mapping[str, Warehouse]) -> int:
    """Stock in an inactive warehouse is never held for new reservations."""
    if level is None or not warehouses[level.warehouse_id].active:
        return 0
    return level.quantity_available
