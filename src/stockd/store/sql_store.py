"""Catalog, history and idempotency reads and writes, on any SQL database of stockd."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from itertools import groupby

from stockd.domain.access import ApiKey
from stockd.domain.chain import BrokenLink, ChainedMovement, verify_level
from stockd.domain.model import LevelKey, Movement, Product, Reservation, StockLevel, Transfer, Warehouse
from stockd.domain.replenishment import Alert
from stockd.domain.webhooks import Delivery, Webhook
from stockd.engine.base import IN_PROGRESS, Counters, IdempotencyRecord, StoredResponse
from stockd.engine.sql.alerts import ALERT_COLUMNS, alert_from_row
from stockd.store.base import Mismatch, MovementFilter, Reconciliation
from stockd.store.codec import encode_dimensions, encode_json, from_millis, to_millis
from stockd.store.pagination import Page, decode_cursor, make_page
from stockd.store.rows import (
    API_KEY_COLUMNS,
    DELIVERY_COLUMNS,
    LEVEL_COLUMNS,
    MOVEMENT_COLUMNS,
    PRODUCT_COLUMNS,
    RESERVATION_COLUMNS,
    TRANSFER_COLUMNS,
    WAREHOUSE_COLUMNS,
    WEBHOOK_COLUMNS,
    api_key_from_row,
    delivery_from_row,
    level_from_row,
    movement_from_row,
    product_from_row,
    reservation_from_row,
    transfer_from_row,
    warehouse_from_row,
    webhook_from_row,
)
from stockd.store.sql import Database, member_of

# Levels with the sums of their movements; a level with no movements sums to zero.
RECONCILIATION_QUERY = """
SELECT l.sku, l.warehouse_id, l.quantity_on_hand, l.quantity_reserved, l.last_hash,
       CAST(COALESCE(m.on_hand, 0) AS BIGINT), CAST(COALESCE(m.reserved, 0) AS BIGINT)
FROM stock_levels AS l
LEFT JOIN (
    SELECT sku, warehouse_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
    FROM movements GROUP BY sku, warehouse_id
) AS m ON m.sku = l.sku AND m.warehouse_id = l.warehouse_id
ORDER BY l.sku, l.warehouse_id
"""


class SqlStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def put_product(self, product: Product) -> tuple[Product, bool]:
        values = (
            product.sku,
            product.name,
            product.description,
            product.weight_grams,
            encode_dimensions(product.dimensions_mm),
            to_millis(product.created_at),
            to_millis(product.updated_at),
        )
        row, created = await self._upsert(
            f"INSERT INTO products ({PRODUCT_COLUMNS}) VALUES (?,?,?,?,?,?,?) "
            f"ON CONFLICT (sku) DO NOTHING RETURNING {PRODUCT_COLUMNS}",
            "UPDATE products SET name = ?, description = ?, weight_grams = ?, dimensions_mm = ?, "
            f"updated_at = ? WHERE sku = ? RETURNING {PRODUCT_COLUMNS}",
            values,
            (*values[1:5], values[6], values[0]),
        )
        return product_from_row(row), created

    async def put_warehouse(self, warehouse: Warehouse) -> tuple[Warehouse, bool]:
        values = (
            warehouse.warehouse_id,
            warehouse.name,
            warehouse.latitude,
            warehouse.longitude,
            warehouse.timezone,
            warehouse.handling_hours,
            warehouse.active,
            to_millis(warehouse.created_at),
            to_millis(warehouse.updated_at),
        )
        row, created = await self._upsert(
            f"INSERT INTO warehouses ({WAREHOUSE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
            f"ON CONFLICT (warehouse_id) DO NOTHING RETURNING {WAREHOUSE_COLUMNS}",
            "UPDATE warehouses SET name = ?, latitude = ?, longitude = ?, timezone = ?, handling_hours = ?, "
            f"active = ?, updated_at = ? WHERE warehouse_id = ? RETURNING {WAREHOUSE_COLUMNS}",
            values,
            (*values[1:7], values[8], values[0]),
        )
        return warehouse_from_row(row), created

    async def _upsert(
        self, insert: str, update: str, insert_values: tuple[object, ...], update_values: tuple[object, ...]
    ) -> tuple[tuple[object, ...], bool]:
        """Create the row, or replace it keeping its ``created_at``; says which happened."""
        async with self.database.transaction() as session:
            inserted = await session.fetch(insert, insert_values)
            if inserted:
                return tuple(inserted[0]), True
            updated = await session.fetch(update, update_values)
            return tuple(updated[0]), False

    async def get_product(self, sku: str) -> Product | None:
        rows = await self.database.fetch(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?", (sku,))
        return product_from_row(rows[0]) if rows else None

    async def known_skus(self, skus: Collection[str]) -> set[str]:
        """Which of these SKUs are products."""
        if not skus:
            return set()
        condition, params = member_of(self.database.dialect, "sku", sorted(skus))
        return {
            row[0] for row in await self.database.fetch(f"SELECT sku FROM products WHERE {condition}", params)
        }

    async def list_products(self, limit: int, cursor: str | None) -> Page[Product]:
        after = decode_cursor(cursor, (str,))
        rows = await self.database.fetch(
            f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku > ? ORDER BY sku LIMIT ?",
            ("" if after is None else after[0], limit + 1),
        )
        return make_page([product_from_row(r) for r in rows], limit, lambda p: (p.sku,))

    async def get_warehouse(self, warehouse_id: str) -> Warehouse | None:
        rows = await self.database.fetch(
            f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id = ?", (warehouse_id,)
        )
        return warehouse_from_row(rows[0]) if rows else None

    async def warehouses_by_id(self, warehouse_ids: Collection[str]) -> list[Warehouse]:
        if not warehouse_ids:
            return []
        condition, params = member_of(self.database.dialect, "warehouse_id", sorted(warehouse_ids))
        rows = await self.database.fetch(
            f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE {condition}", params
        )
        return [warehouse_from_row(r) for r in rows]

    async def list_warehouses(self, limit: int, cursor: str | None) -> Page[Warehouse]:
        after = decode_cursor(cursor, (str,))
        rows = await self.database.fetch(
            f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE warehouse_id > ? ORDER BY warehouse_id LIMIT ?",
            ("" if after is None else after[0], limit + 1),
        )
        return make_page([warehouse_from_row(r) for r in rows], limit, lambda w: (w.warehouse_id,))

    async def levels_of_sku(self, sku: str) -> list[StockLevel]:
        rows = await self.database.fetch(
            f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE sku = ? ORDER BY warehouse_id", (sku,)
        )
        return [level_from_row(r) for r in rows]

    async def in_transit_to(self, sku: str) -> dict[str, int]:
        """Units of ``sku`` on their way, by destination warehouse."""
        rows = await self.database.fetch(
            "SELECT to_warehouse_id, CAST(SUM(quantity) AS BIGINT) FROM transfers "
            "WHERE sku = ? AND status = 'in_transit' GROUP BY to_warehouse_id",
            (sku,),
        )
        return {warehouse_id: int(quantity) for warehouse_id, quantity in rows}

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        rows = await self.database.fetch(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (transfer_id,)
        )
        return transfer_from_row(rows[0]) if rows else None

    async def list_alerts(self, status: str | None, limit: int, cursor: str | None) -> Page[Alert]:
        opened_after, id_after = decode_cursor(cursor, (int, str)) or (-1, "")
        condition, params = ("status = ? AND ", [status]) if status else ("", [])
        rows = await self.database.fetch(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {condition}"
            "(opened_at > ? OR (opened_at = ? AND id > ?)) ORDER BY opened_at, id LIMIT ?",
            (*params, opened_after, opened_after, id_after, limit + 1),
        )
        return make_page([alert_from_row(r) for r in rows], limit, lambda a: (to_millis(a.opened_at), a.id))

    async def put_webhook(self, webhook: Webhook) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                "INSERT INTO webhooks (id, url, events, secret, active, created_at) VALUES (?,?,?,?,?,?)",
                (webhook.id, webhook.url, encode_json(list(webhook.events)), webhook.secret, True,
                 to_millis(webhook.created_at)),
            )  # fmt: skip

    async def get_webhook(self, webhook_id: str) -> Webhook | None:
        rows = await self.database.fetch(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND active = ?", (webhook_id, True)
        )
        return webhook_from_row(rows[0]) if rows else None

    async def list_webhooks(self, limit: int, cursor: str | None) -> Page[Webhook]:
        after = decode_cursor(cursor, (str,))
        rows = await self.database.fetch(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active = ? AND id > ? ORDER BY id LIMIT ?",
            (True, "" if after is None else after[0], limit + 1),
        )
        return make_page([webhook_from_row(r) for r in rows], limit, lambda w: (w.id,))

    async def deactivate_webhook(self, webhook_id: str) -> bool:
        async with self.database.transaction() as session:
            changed = await session.execute(
                "UPDATE webhooks SET active = ? WHERE id = ? AND active = ?", (False, webhook_id, True)
            )
            await session.execute(
                "UPDATE webhook_deliveries SET status = 'cancelled' WHERE webhook_id = ? AND status = 'pending'",
                (webhook_id,),
            )
        return changed == 1

    async def list_deliveries(self, webhook_id: str, limit: int, cursor: str | None) -> Page[Delivery]:
        after = decode_cursor(cursor, (int,))
        rows = await self.database.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? AND id > ? ORDER BY id LIMIT ?",
            (webhook_id, 0 if after is None else after[0], limit + 1),
        )
        return make_page([delivery_from_row(r) for r in rows], limit, lambda d: (d.id,))

    async def due_deliveries(self, now: datetime, limit: int) -> list[tuple[Delivery, Webhook]]:
        rows = await self.database.fetch(
            f"SELECT {', '.join('d.' + c.strip() for c in DELIVERY_COLUMNS.split(','))}, "
            f"{', '.join('w.' + c.strip() for c in WEBHOOK_COLUMNS.split(','))} "
            "FROM webhook_deliveries AS d JOIN webhooks AS w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (to_millis(now), limit),
        )
        width = len(DELIVERY_COLUMNS.split(","))
        return [(delivery_from_row(r[:width]), webhook_from_row(r[width:])) for r in rows]

    async def record_attempt(self, delivery: Delivery) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
                "last_status_code = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (delivery.status, delivery.attempts, to_millis(delivery.next_attempt_at),
                 delivery.last_status_code, delivery.last_error,
                 None if delivery.delivered_at is None else to_millis(delivery.delivered_at), delivery.id),
            )  # fmt: skip

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        rows = await self.database.fetch(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?", (reservation_id,)
        )
        return reservation_from_row(rows[0]) if rows else None

    async def list_reservations(self, order_id: str, limit: int, cursor: str | None) -> Page[Reservation]:
        created_after, id_after = decode_cursor(cursor, (int, str)) or (-1, "")
        rows = await self.database.fetch(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = ? "
            "AND (created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?",
            (order_id, created_after, created_after, id_after, limit + 1),
        )
        return make_page(
            [reservation_from_row(r) for r in rows], limit, lambda r: (to_millis(r.created_at), r.id)
        )

    async def lapsed_reservation_ids(self, now: datetime, limit: int) -> list[str]:
        rows = await self.database.fetch(
            "SELECT id FROM reservations WHERE status = 'pending' AND expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
            (to_millis(now), limit),
        )
        return [row[0] for row in rows]

    async def list_movements(self, where: MovementFilter, limit: int, cursor: str | None) -> Page[Movement]:
        after = decode_cursor(cursor, (int,))
        conditions, parameters = ["id > ?"], [0 if after is None else after[0]]
        for column in ("sku", "warehouse_id", "reference_id"):
            value = getattr(where, column)
            if value is not None:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        if where.warehouse_ids is not None:
            if not where.warehouse_ids:
                return Page([], None)
            condition, values = member_of(self.database.dialect, "warehouse_id", sorted(where.warehouse_ids))
            conditions.append(condition)
            parameters.extend(values)
        rows = await self.database.fetch(
            f"SELECT {MOVEMENT_COLUMNS} FROM movements WHERE {' AND '.join(conditions)} ORDER BY id LIMIT ?",
            (*parameters, limit + 1),
        )
        return make_page([movement_from_row(r) for r in rows], limit, lambda m: (int(m.id or 0),))

    async def reconcile(self, authority: Mapping[LevelKey, Counters] | None = None) -> Reconciliation:
        """Every level's balances against the sums of its movements.

        ``authority`` holds the balances of an engine that keeps them elsewhere (Redis), read
        after this ledger had caught up with it: those are checked against the ledger too where
        both name the same newest movement. Where they do not, or one side lacks the level, Redis
        has moved on meanwhile (or the two are apart): the level is counted as moving, not compared.
        """
        rows = await self.database.fetch(RECONCILIATION_QUERY)
        mismatches = []
        moving = 0
        ledger: dict[LevelKey, tuple[int, int]] = {}
        for sku, warehouse_id, on_hand, reserved, head, ledger_on_hand, ledger_reserved in rows:
            ledger[(sku, warehouse_id)] = (ledger_on_hand, ledger_reserved)
            balances = [(on_hand, reserved)]
            if authority is not None:
                # A level Redis lacks may have been created after its counters were read: moving too.
                counted_on_hand, counted_reserved, counted_head = authority.get(
                    (sku, warehouse_id), (0, 0, None)
                )
                if counted_head == head:
                    balances.append((counted_on_hand, counted_reserved))
                else:
                    moving += 1
            for on_hand_seen, reserved_seen in balances:
                if (on_hand_seen, reserved_seen) != (ledger_on_hand, ledger_reserved):
                    mismatches.append(
                        Mismatch(
                            sku, warehouse_id, on_hand_seen, ledger_on_hand, reserved_seen, ledger_reserved
                        )
                    )
        # A level only Redis has may have been created after the ledger caught up: moving as well.
        moving += sum(1 for key in authority or {} if key not in ledger)
        return Reconciliation(
            levels_checked=len(rows),
            mismatches=mismatches,
            broken_links=await self.verify_chains(),
            levels_moving=moving,
        )

    async def verify_chains(self) -> list[BrokenLink]:
        """Recompute every level's movement hash chain; the first broken link of each level that fails.

        Reads the whole ledger, a level at a time in id order: a full scan, like reconciliation's sums.
        """
        heads = {
            (sku, warehouse_id): head
            for sku, warehouse_id, head in await self.database.fetch(
                "SELECT sku, warehouse_id, last_hash FROM stock_levels"
            )
        }
        rows = await self.database.fetch(
            "SELECT id, sku, warehouse_id, type, quantity, on_hand_delta, reserved_delta, reference_type, "
            "reference_id, reason, created_at, hash FROM movements ORDER BY sku, warehouse_id, id"
        )
        broken = []
        for (sku, warehouse_id), level_rows in groupby(rows, key=lambda row: (row[1], row[2])):
            movements = (ChainedMovement(str(row[0]), *row[1:]) for row in level_rows)
            link = verify_level(movements, heads.get((sku, warehouse_id)))
            if link is not None:
                broken.append(link)
        return broken

    async def find_idempotency_record(self, principal: str, key: str) -> IdempotencyRecord | None:
        rows = await self.database.fetch(
            "SELECT fingerprint, status_code, body, created_at FROM idempotency_keys "
            "WHERE principal = ? AND key = ?",
            (principal, key),
        )
        if not rows:
            return None
        fingerprint, status_code, body, created_at = rows[0]
        return IdempotencyRecord(
            principal, key, fingerprint, StoredResponse(status_code, bytes(body)), from_millis(created_at)
        )

    async def claim_idempotency_key(
        self, principal: str, key: str, fingerprint: str, now: datetime, abandoned_before: datetime
    ) -> bool:
        """Mark the key taken by a request now running, unless another has it; True if this one does.

        A claim older than ``abandoned_before`` belonged to a process that died before answering;
        it is taken over (what that process did, if anything, is not undone).
        """
        async with self.database.transaction() as session:
            await session.execute(
                "DELETE FROM idempotency_keys WHERE principal = ? AND key = ? AND status_code = ? "
                "AND created_at < ?",
                (principal, key, IN_PROGRESS, to_millis(abandoned_before)),
            )
            return (
                await session.execute(
                    "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, body, created_at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (principal, key, fingerprint, IN_PROGRESS, b"", to_millis(now)),
                )
                == 1
            )

    async def complete_idempotency_record(self, record: IdempotencyRecord) -> None:
        """Store the answer of the request that claimed the key at ``record.created_at``.

        Only that claim: one taken over since (its request ran past the abandoned age) is another
        request's now, and keeps whatever that request stores."""
        async with self.database.transaction() as session:
            await session.execute(
                "UPDATE idempotency_keys SET status_code = ?, body = ? "
                "WHERE principal = ? AND key = ? AND status_code = ? AND created_at = ?",
                (record.response.status_code, record.response.body, record.principal, record.key,
                 IN_PROGRESS, to_millis(record.created_at)),
            )  # fmt: skip

    async def release_idempotency_key(self, principal: str, key: str, claimed_at: datetime) -> None:
        """Give up the claim made at ``claimed_at`` (its request failed without an answer to keep),
        so a retry runs again."""
        async with self.database.transaction() as session:
            await session.execute(
                "DELETE FROM idempotency_keys WHERE principal = ? AND key = ? AND status_code = ? "
                "AND created_at = ?",
                (principal, key, IN_PROGRESS, to_millis(claimed_at)),
            )

    async def forget_idempotency_records(self, older_than: datetime) -> int:
        async with self.database.transaction() as session:
            return await session.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?", (to_millis(older_than),)
            )

    async def put_api_key(self, key: ApiKey) -> None:
        warehouse_ids = None if key.warehouse_ids is None else encode_json(list(key.warehouse_ids))
        async with self.database.transaction() as session:
            await session.execute(
                f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (key.id, key.name, encode_json(list(key.scopes)), warehouse_ids, key.secret_sha256,
                 to_millis(key.created_at), None),
            )  # fmt: skip

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""
        rows = await self.database.fetch(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return api_key_from_row(rows[0]) if rows else None

    async def list_api_keys(self, limit: int, cursor: str | None) -> Page[ApiKey]:
        """Keys not revoked, by id."""
        after = decode_cursor(cursor, (str,))
        rows = await self.database.fetch(
            f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL AND id > ? ORDER BY id LIMIT ?",
            ("" if after is None else after[0], limit + 1),
        )
        return make_page([api_key_from_row(r) for r in rows], limit, lambda k: (k.id,))

    async def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        async with self.database.transaction() as session:
            changed = await session.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_millis(now), key_id),
            )
        return changed == 1

    async def any_api_key(self) -> bool:
        """Has any key ever been created? (A revoked key counts: see KeyRing.)"""
        return bool(await self.database.fetch("SELECT 1 FROM api_keys LIMIT 1"))

    async def close(self) -> None:
        await self.database.close()
