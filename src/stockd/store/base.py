"""The answers of the store's reads that are not domain values."""

from __future__ import annotations

from dataclasses import dataclass, field

from stockd.domain.chain import BrokenLink


@dataclass(frozen=True, slots=True)
class MovementFilter:
    sku: str | None = None
    warehouse_id: str | None = None
    reference_id: str | None = None
    warehouse_ids: frozenset[str] | None = None
    """Only movements in one of these warehouses (a warehouse-limited key's view); None: all."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A level whose stored balances differ from the sums of its movements."""

    sku: str
    warehouse_id: str
    quantity_on_hand: int
    ledger_on_hand: int
    quantity_reserved: int
    ledger_reserved: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    levels_checked: int
    mismatches: list[Mismatch]
    broken_links: list[BrokenLink] = field(default_factory=list)
    """The first broken link of each level whose movement hash chain does not verify."""
    persister_lag: int = 0
    """Redis engine: batches Redis acknowledged that PostgreSQL does not hold yet. When not 0,
    the ledger was not compared (it is behind, not wrong)."""
    levels_moving: int = 0
    """Redis engine: levels whose counters had moved on from what PostgreSQL held when both were
    read (commits landing meanwhile), through every attempt; not compared. 0 on a quiet system."""
