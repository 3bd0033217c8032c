"""The embedded store: one SQLite file, WAL, ``synchronous=FULL``.

SQLite allows one writer at a time, so every write — the engine's batches and
catalog changes alike — runs on one dedicated writer thread with its own
connection, and nothing ever waits for the file lock. Reads run on a small pool
of reader threads; WAL lets them proceed while a batch is being written.

The writer never checkpoints: a checkpoint copies the WAL into the database
and fsyncs both, which inside a commit would stall every caller of that batch.
A checkpointer thread does it in the background instead (PASSIVE, so it never
blocks the writer), keeping the WAL short.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from stockd.domain.errors import Unavailable
from stockd.domain.model import (
    Movement,
    MovementType,
    Product,
    Reservation,
    ReservationStatus,
    StockLevel,
    Warehouse,
)
from stockd.engine.base import IdempotencyRecord, StoredResponse
from stockd.store.base import Mismatch, MovementFilter, Reconciliation
from stockd.store.codec import (
    decode_dimensions,
    decode_lines,
    encode_dimensions,
    from_millis,
    to_millis,
)
from stockd.store.migrate import upgrade_to_head
from stockd.store.pagination import Page, decode_cursor, make_page

T = TypeVar("T")

READER_THREADS = 2
CHECKPOINT_INTERVAL_SECONDS = 0.5


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # Durable before acknowledgement: every commit is fsynced, WAL included.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    # A large page cache keeps a batch's index pages in memory instead of spilling them mid-transaction.
    connection.execute("PRAGMA cache_size=-65536")
    return connection


@contextmanager
def database_errors_as_unavailable() -> Iterator[None]:
    """A full disk, a lock timeout or an I/O error is the database's trouble, not the caller's:
    the request fails whole (nothing was committed) and may be retried."""
    try:
        yield
    except sqlite3.OperationalError as error:
        raise Unavailable(f"the database cannot be used right now ({error}); retry shortly") from error


class SqliteDatabase:
    """The file, its writer thread and its reader threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        upgrade_to_head(f"sqlite:///{path}")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="stockd-sqlite-writer")
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="stockd-sqlite-reader")
        self._write_connection = connect(path)
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_forever, name="stockd-sqlite-checkpointer", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_forever(self) -> None:
        connection = connect(self.path)
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL_SECONDS):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the writer thread inside one transaction."""
        with database_errors_as_unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._transaction, work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._write_connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with database_errors_as_unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, work)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path)
            self._local.connection = connection
            with self._lock:
                self._reader_connections.append(connection)
        # One snapshot for everything ``work`` reads.
        connection.execute("BEGIN")
        try:
            return work(connection)
        finally:
            connection.execute("COMMIT")

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._write_connection.close()
        for connection in self._reader_connections:
            connection.close()


# -- rows -------------------------------------------------------------------

PRODUCT_COLUMNS = "sku, name, description, weight_grams, dimensions_mm, created_at, updated_at"
WAREHOUSE_COLUMNS = (
    "warehouse_id, name, latitude, longitude, timezone, handling_hours, active, created_at, updated_at"
)
LEVEL_COLUMNS = "sku, warehouse_id, quantity_on_hand, quantity_reserved, reorder_point, reorder_quantity"
RESERVATION_COLUMNS = "id, order_id, status, created_at, expires_at, updated_at, lines"
MOVEMENT_COLUMNS = (
    "id, sku, warehouse_id, type, quantity, on_hand_delta, reserved_delta, "
    "reference_type, reference_id, reason, created_at"
)


def product_from_row(row: Any) -> Product:
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


def warehouse_from_row(row: Any) -> Warehouse:
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


def level_from_row(row: Any) -> StockLevel:
    return StockLevel(*row)


def reservation_from_row(row: Any) -> Reservation:
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


def movement_from_row(row: Any) -> Movement:
    (
        movement_id,
        sku,
        warehouse_id,
        kind,
        quantity,
        on_hand_delta,
        reserved_delta,
        reference_type,
        reference_id,
        reason,
        created_at,
    ) = row
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


def placeholders(count: int) -> str:
    return ",".join("?" * count)


# -- the store ----------------------------------------------------------------


class SqliteStore:
    """Catalog, history and idempotency reads and writes on the embedded database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def put_product(self, product: Product) -> tuple[Product, bool]:
        def upsert(connection: sqlite3.Connection) -> tuple[Product, bool]:
            existing = connection.execute(
                "SELECT created_at FROM products WHERE sku = ?", (product.sku,)
            ).fetchone()
            created_at = to_millis(product.created_at) if existing is None else existing[0]
            connection.execute(
                f"INSERT OR REPLACE INTO products ({PRODUCT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (
                    product.sku,
                    product.name,
                    product.description,
                    product.weight_grams,
                    encode_dimensions(product.dimensions_mm),
                    created_at,
                    to_millis(product.updated_at),
                ),
            )
            row = connection.execute(
                f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?", (product.sku,)
            ).fetchone()
            return product_from_row(row), existing is None

        return await self._db.write(upsert)

    async def get_product(self, sku: str) -> Product | None:
        row = await self._db.read(
            lambda c: c.execute(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?", (sku,)).fetchone()
        )
        return None if row is None else product_from_row(row)

    async def list_products(self, limit: int, cursor: str | None) -> Page[Product]:
        after = decode_cursor(cursor, (str,))
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku > ? ORDER BY sku LIMIT ?",
                ("" if after is None else after[0], limit + 1),
            ).fetchall()
        )
        return make_page([product_from_row(r) for r in rows], limit, lambda p: (p.sku,))

    async def put_warehouse(self, warehouse: Warehouse) -> tuple[Warehouse, bool]:
        def upsert(connection: sqlite3.Connection) -> tuple[Warehouse, bool]:
            existing = connection.execute(
                "SELECT created_at FROM warehouses WHERE warehouse_id = ?",
                (warehouse.warehouse_id,),
            ).fetchone()
            created_at = to_millis(warehouse.created_at) if existing is None else existing[0]
            connection.execute(
                f"INSERT OR REPLACE INTO warehouses ({WAREHOUSE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    warehouse.warehouse_id,
                    warehouse.name,
                    warehouse.latitude,
                    warehouse.longitude,
                    warehouse.timezone,
                    warehouse.handling_hours,
                    warehouse.active,
                    created_at,
                    to_millis(warehouse.updated_at),
                ),
            )
            row = connection.execute(
                f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id = ?",
                (warehouse.warehouse_id,),
            ).fetchone()
            return warehouse_from_row(row), existing is None

        return await self._db.write(upsert)

    async def get_warehouse(self, warehouse_id: str) -> Warehouse | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id = ?",
                (warehouse_id,),
            ).fetchone()
        )
        return None if row is None else warehouse_from_row(row)

    async def list_warehouses(self, limit: int, cursor: str | None) -> Page[Warehouse]:
        after = decode_cursor(cursor, (str,))
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id > ? "
                "ORDER BY warehouse_id LIMIT ?",
                ("" if after is None else after[0], limit + 1),
            ).fetchall()
        )
        return make_page([warehouse_from_row(r) for r in rows], limit, lambda w: (w.warehouse_id,))

    async def levels_of_sku(self, sku: str) -> list[StockLevel]:
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE sku = ? ORDER BY warehouse_id",
                (sku,),
            ).fetchall()
        )
        return [level_from_row(r) for r in rows]

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        row = await self._db.read(
            lambda c: c.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?", (reservation_id,)
            ).fetchone()
        )
        return None if row is None else reservation_from_row(row)

    async def list_reservations(self, order_id: str, limit: int, cursor: str | None) -> Page[Reservation]:
        after = decode_cursor(cursor, (int, str)) or (-1, "")
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = ? "
                "AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
                (order_id, after[0], after[1], limit + 1),
            ).fetchall()
        )
        return make_page(
            [reservation_from_row(r) for r in rows],
            limit,
            lambda r: (to_millis(r.created_at), r.id),
        )

    async def lapsed_reservation_ids(self, now: datetime, limit: int) -> list[str]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT id FROM reservations WHERE status = 'pending' AND expires_at <= ? "
                "ORDER BY expires_at LIMIT ?",
                (to_millis(now), limit),
            ).fetchall()
        )
        return [reservation_id for (reservation_id,) in rows]

    async def list_movements(self, where: MovementFilter, limit: int, cursor: str | None) -> Page[Movement]:
        after = decode_cursor(cursor, (int,))
        conditions, parameters = ["id > ?"], [0 if after is None else after[0]]
        for column in ("sku", "warehouse_id", "reference_id"):
            value = getattr(where, column)
            if value is not None:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        rows = await self._db.read(
            lambda c: c.execute(
                f"SELECT {MOVEMENT_COLUMNS} FROM movements WHERE {' AND '.join(conditions)} "
                "ORDER BY id LIMIT ?",
                (*parameters, limit + 1),
            ).fetchall()
        )
        return make_page([movement_from_row(r) for r in rows], limit, lambda m: (int(m.id or 0),))

    async def reconcile(self) -> Reconciliation:
        def compare(connection: sqlite3.Connection) -> Reconciliation:
            rows = connection.execute(RECONCILIATION_QUERY).fetchall()
            mismatches = [
                Mismatch(sku, wh, on_hand, ledger_on_hand, reserved, ledger_reserved)
                for sku, wh, on_hand, reserved, ledger_on_hand, ledger_reserved in rows
                if (on_hand, reserved) != (ledger_on_hand, ledger_reserved)
            ]
            return Reconciliation(levels_checked=len(rows), mismatches=mismatches)

        return await self._db.read(compare)

    async def find_idempotency_record(self, principal: str, key: str) -> IdempotencyRecord | None:
        row = await self._db.read(
            lambda c: c.execute(
                "SELECT fingerprint, status_code, body, created_at FROM idempotency_keys "
                "WHERE principal = ? AND key = ?",
                (principal, key),
            ).fetchone()
        )
        if row is None:
            return None
        fingerprint, status_code, body, created_at = row
        return IdempotencyRecord(
            principal,
            key,
            fingerprint,
            StoredResponse(status_code, bytes(body)),
            from_millis(created_at),
        )

    async def forget_idempotency_records(self, older_than: datetime) -> int:
        return await self._db.write(
            lambda c: (
                c.execute(
                    "DELETE FROM idempotency_keys WHERE created_at < ?", (to_millis(older_than),)
                ).rowcount
            )
        )

    async def close(self) -> None:
        self._db.close()


# Levels with the sums of their movements; a level with no movements sums to zero.
RECONCILIATION_QUERY = """
SELECT l.sku, l.warehouse_id, l.quantity_on_hand, l.quantity_reserved,
       COALESCE(m.on_hand, 0), COALESCE(m.reserved, 0)
FROM stock_levels AS l
LEFT JOIN (
    SELECT sku, warehouse_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
    FROM movements GROUP BY sku, warehouse_id
) AS m ON m.sku = l.sku AND m.warehouse_id = l.warehouse_id
ORDER BY l.sku, l.warehouse_id
"""
