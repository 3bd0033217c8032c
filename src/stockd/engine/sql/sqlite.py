"""The SQL engine on the embedded SQLite database, with the group-commit batcher.

A batch runs on the store's writer thread in one ``BEGIN IMMEDIATE`` transaction:
load everything the batch can touch, decide every command in order in a
``StockBook``, write the changed levels, reservations, movements and
idempotency records, commit (fsync), and only then answer the callers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import TypeVar

from stockd.domain.book import Needs, Outcome, StockBook, needs_of
from stockd.domain.clock import Clock
from stockd.domain.commands import Command
from stockd.engine.base import (
    Decision,
    IdempotencyClaim,
    IdempotencyRecord,
    Submission,
    decide_batch,
)
from stockd.engine.batcher import DEFAULT_MAX_BATCH, Batcher
from stockd.store.codec import encode_lines, to_millis
from stockd.store.sqlite import (
    LEVEL_COLUMNS,
    RESERVATION_COLUMNS,
    WAREHOUSE_COLUMNS,
    SqliteDatabase,
    level_from_row,
    placeholders,
    reservation_from_row,
    warehouse_from_row,
)

T = TypeVar("T")

# SQLite limits the number of ? in one statement; stay well below it.
CHUNK = 500


class SqliteEngine:
    def __init__(
        self,
        database: SqliteDatabase,
        clock: Clock,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._batcher: Batcher[Submission, Outcome] = Batcher(
            self._write_batch, max_batch=max_batch, on_batch=on_batch
        )

    async def execute(self, command: Command, claim: IdempotencyClaim | None = None) -> Outcome:
        return await self._batcher.submit(Submission(command, claim))

    async def close(self) -> None:
        await self._batcher.close()

    async def _write_batch(self, submissions: Sequence[Submission]) -> list[Decision]:
        return await self._db.write(lambda connection: self._apply(connection, submissions))

    def _apply(self, connection: sqlite3.Connection, submissions: Sequence[Submission]) -> list[Decision]:
        now = self._clock.now()
        book = load_book(connection, needs_of(s.command for s in submissions))
        decisions, records = decide_batch(book, submissions, now)
        write_book(connection, book, records, now)
        return decisions


def load_book(connection: sqlite3.Connection, needs: Needs) -> StockBook:
    """Everything a batch can touch, read inside the batch's write transaction."""
    reservations = [
        reservation_from_row(row)
        for chunk in chunks(needs.reservation_ids)
        for row in connection.execute(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id IN ({placeholders(len(chunk))})",
            chunk,
        )
    ]
    needs.add_reservation_lines(reservations)
    levels = {
        level.key: level
        for chunk in chunks(needs.skus_in_any_warehouse)
        for level in map(
            level_from_row,
            connection.execute(
                f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE sku IN ({placeholders(len(chunk))})",
                chunk,
            ),
        )
    }
    missing = [key for key in needs.level_keys if key not in levels]
    for chunk in chunks(missing):
        condition = " OR ".join(["(sku = ? AND warehouse_id = ?)"] * len(chunk))
        flat = [part for key in chunk for part in key]
        for row in connection.execute(f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE {condition}", flat):
            level = level_from_row(row)
            levels[level.key] = level
    warehouse_ids = needs.warehouse_ids | {warehouse_id for _, warehouse_id in levels}
    warehouses = {
        warehouse.warehouse_id: warehouse
        for chunk in chunks(warehouse_ids)
        for warehouse in map(
            warehouse_from_row,
            connection.execute(
                f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses "
                f"WHERE warehouse_id IN ({placeholders(len(chunk))})",
                chunk,
            ),
        )
    }
    known_skus = [
        sku
        for chunk in chunks(needs.skus)
        for (sku,) in connection.execute(
            f"SELECT sku FROM products WHERE sku IN ({placeholders(len(chunk))})", chunk
        )
    ]
    return StockBook(
        known_skus=known_skus,
        warehouses=warehouses,
        levels=levels.values(),
        reservations=reservations,
    )


def write_book(
    connection: sqlite3.Connection,
    book: StockBook,
    records: Sequence[IdempotencyRecord],
    now: datetime,
) -> None:
    """Write what a batch changed. One statement per table, however large the batch."""
    connection.executemany(
        f"INSERT INTO stock_levels ({LEVEL_COLUMNS}) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT (sku, warehouse_id) DO UPDATE SET "
        "quantity_on_hand = excluded.quantity_on_hand, "
        "quantity_reserved = excluded.quantity_reserved, "
        "reorder_point = excluded.reorder_point, reorder_quantity = excluded.reorder_quantity",
        [
            (
                lvl.sku,
                lvl.warehouse_id,
                lvl.quantity_on_hand,
                lvl.quantity_reserved,
                lvl.reorder_point,
                lvl.reorder_quantity,
            )
            for lvl in book.changed_levels.values()
        ],
    )
    connection.executemany(
        f"INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
        [
            (
                r.id,
                r.order_id,
                r.status.value,
                to_millis(r.created_at),
                to_millis(r.expires_at),
                None if r.updated_at is None else to_millis(r.updated_at),
                encode_lines(r.lines),
            )
            for r in book.created_reservations.values()
        ],
    )
    connection.executemany(
        "UPDATE reservations SET status = ?, updated_at = ? WHERE id = ?",
        [(r.status.value, to_millis(now), r.id) for r in book.updated_reservations.values()],
    )
    at = to_millis(now)
    connection.executemany(
        "INSERT INTO movements (sku, warehouse_id, type, quantity, on_hand_delta, reserved_delta, "
        "reference_type, reference_id, reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (
                m.sku,
                m.warehouse_id,
                m.type.value,
                m.quantity,
                m.on_hand_delta,
                m.reserved_delta,
                m.reference_type,
                m.reference_id,
                m.reason,
                at,
            )
            for m in book.movements
        ],
    )
    connection.executemany(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, body, created_at) "
        "VALUES (?,?,?,?,?,?)",
        [(r.principal, r.key, r.fingerprint, r.response.status_code, r.response.body, at) for r in records],
    )


def chunks(values: Collection[T]) -> list[list[T]]:
    """Split values into groups small enough for one statement's parameters."""
    items = list(values)
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]
