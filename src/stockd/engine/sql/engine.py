"""The SQL engine: the same decisions on SQLite and PostgreSQL, with four ways to keep them safe.

Every strategy loads what a command can touch, lets the domain's ``StockBook``
decide, and writes the result in one transaction. They differ in how they stop
two transactions from deciding on the same balance:

``batched`` (default)
    The group-commit batcher queues concurrent requests; one transaction decides a
    whole batch in order, taking row locks (sorted by (sku, warehouse_id)) for the
    batch. A hot SKU costs one row update per batch, not per request.
``lock``
    One transaction per request: ``SELECT … FOR UPDATE`` the levels, sorted; check;
    update; insert the movements; commit.
``optimistic``
    One transaction per request without locks; each level is written only if its
    ``version`` is still the one read, else the request is retried (jittered backoff;
    after a few lost races, with row locks, so a hot row cannot starve anyone).
``atomic``
    One transaction per request; each level changes by a conditional
    ``UPDATE … SET quantity_reserved = quantity_reserved + ? WHERE
    quantity_on_hand − quantity_reserved >= …``; a miss is retried against fresh balances.
    Commands whose decision needs an exact balance (receive, adjust with
    ``expected_on_hand``, reorder policies) take the ``lock`` path.

Deadlocks and serialization failures are retried by every strategy; they never
reach the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from stockd.domain.book import Outcome, StockBook, needs_of, units_held
from stockd.domain.chain import chain
from stockd.domain.clock import Clock
from stockd.domain.commands import Adjust, Command, Receive, SetReorderPolicy
from stockd.domain.errors import StockdError, Unavailable
from stockd.domain.events import Event, events_of
from stockd.domain.model import LevelKey
from stockd.engine.base import (
    Decision,
    IdempotencyClaim,
    IdempotencyRecord,
    StoredResponse,
    Submission,
    WriteConflict,
    decide_batch,
)
from stockd.engine.batcher import DEFAULT_MAX_BATCH, Batcher
from stockd.engine.sql.alerts import review_alerts, write_alerts
from stockd.ids import new_id
from stockd.store.codec import MillisOf, decode_lines, encode_lines, from_millis, to_millis
from stockd.store.rows import (
    LEVEL_COLUMNS,
    MOVEMENT_INSERT_COLUMNS,
    RESERVATION_COLUMNS,
    RESERVATION_INSERT_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_INSERT_COLUMNS,
    WAREHOUSE_COLUMNS,
    level_from_row,
    reservation_from_row,
    transfer_from_row,
    transfer_to_row,
    warehouse_from_row,
)
from stockd.store.sql import Database, Dialect, Session, chunks, for_update, member_of, pairs_in

log = logging.getLogger("stockd.engine")

RETRY_BUDGET_SECONDS = 20.0
"""How long a transaction that keeps losing races is retried before the caller gets a 503.

Each retry waits a random 0–2^n ms, at most 100 ms (full jitter), so contenders
spread out instead of colliding again. Bounded by time rather than by count: on
a hot row the optimistic strategy can lose many rounds in a row, and a caller
deserves an answer from the data, not from a retry counter."""

SQLITE_MAX_PARAMETERS = 900


ESCALATE_AFTER_CONFLICTS = 5
"""A request that lost this many optimistic or atomic races retries with row locks instead.

On a hot row, optimistic writers can lose round after round to each other
(a thundering herd: one winner per round); queueing on the row lock
guarantees progress. Uncontended requests never get here."""


class Strategy(StrEnum):
    BATCHED = "batched"
    LOCK = "lock"
    OPTIMISTIC = "optimistic"
    ATOMIC = "atomic"


# Failures that mean "try the same transaction again", whatever the strategy.
RETRYABLE = (
    WriteConflict,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.UniqueViolationError,  # two transactions created the same new level at once
)


class SqlEngine:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        strategy: Strategy = Strategy.BATCHED,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
        on_events: Callable[[list[Event]], None] | None = None,
        max_units_per_order: int | None = None,
    ) -> None:
        self._db = database
        self._max_units_per_order = max_units_per_order
        self._on_events = on_events
        self._clock = clock
        self.strategy = strategy
        self._on_batch = on_batch
        self._batcher: Batcher[Submission, Outcome | StoredResponse] = Batcher(
            self._decide_batch, max_batch=max_batch, on_batch=on_batch
        )

    async def execute(
        self, command: Command, claim: IdempotencyClaim | None = None
    ) -> Outcome | StoredResponse:
        submission = Submission(command, claim)
        if self.strategy is Strategy.BATCHED:
            return await self._batcher.submit(submission)
        if self._on_batch is not None:
            self._on_batch(1)
        # Shielded: a caller that goes away (a client disconnecting) must not cut a
        # transaction off half-way; it finishes, and a retry with the same
        # Idempotency-Key finds its answer.
        work = asyncio.ensure_future(self._with_retries([submission], self._mode_for(command)))
        work.add_done_callback(_observe)
        decision = (await asyncio.shield(work))[0]
        if isinstance(decision, StockdError):
            raise decision
        return decision

    async def caught_up(self) -> None:
        """The store reads the very rows this engine writes: nothing to wait for."""

    async def counters(self) -> None:
        return None

    async def lag(self) -> int:
        return 0

    async def close(self) -> None:
        await self._batcher.close()

    async def _decide_batch(self, submissions: Sequence[Submission]) -> list[Decision]:
        return await self._with_retries(submissions, Strategy.LOCK)

    def _mode_for(self, command: Command) -> Strategy:
        if self.strategy is Strategy.ATOMIC and isinstance(command, Receive | Adjust | SetReorderPolicy):
            return Strategy.LOCK
        return self.strategy

    async def _with_retries(self, submissions: Sequence[Submission], mode: Strategy) -> list[Decision]:
        retrying = AsyncRetrying(
            stop=stop_after_delay(RETRY_BUDGET_SECONDS),
            wait=wait_random_exponential(multiplier=0.001, max=0.1),
            retry=retry_if_exception_type(RETRYABLE),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    escalate = attempt.retry_state.attempt_number > ESCALATE_AFTER_CONFLICTS
                    return await self._transaction(submissions, Strategy.LOCK if escalate else mode)
        except RETRYABLE as error:
            raise Unavailable(
                f"gave up after {RETRY_BUDGET_SECONDS:g} s of losing to concurrent writers; retry"
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _transaction(self, submissions: Sequence[Submission], mode: Strategy) -> list[Decision]:
        dialect = self._db.dialect
        async with self._db.transaction() as session:
            now = self._clock.now()
            lock = mode is Strategy.LOCK
            loaded = await load(
                session,
                dialect,
                submissions,
                lock=lock,
                max_units_per_order=self._max_units_per_order,
                now=now,
            )
            decisions, records = decide_batch(loaded.book, submissions, now, loaded.stored)
            await write(session, loaded, records, now, mode)
            changed = list(loaded.book.changed_levels.values())
            alert_changes = await review_alerts(session, dialect, changed, now, new_id, lock=lock)
            events = events_of(changed, alert_changes, now)
            await write_alerts(session, alert_changes, events, now)
        self._announce(events)
        return decisions

    def _announce(self, events: list[Event]) -> None:
        """Tell live listeners, only once the changes are durable. A failure here must not look like
        a failed batch: the batcher would write its commands again."""
        if self._on_events is None or not events:
            return
        try:
            self._on_events(events)
        except Exception:
            log.exception("live listeners were not told of %d events", len(events))


def _observe(task: asyncio.Future[Any]) -> None:
    """Retrieve a shielded transaction's failure even when its caller left, so it is not reported as lost."""
    if not task.cancelled():
        task.exception()


class Loaded:
    """A book and what the rows looked like when read (for the conditional writes)."""

    __slots__ = ("book", "heads", "levels_as_read", "statuses_as_read", "stored")

    def __init__(
        self,
        book: StockBook,
        levels_as_read: dict[LevelKey, tuple[int, int, int]],
        statuses_as_read: dict[str, str],
        stored: dict[tuple[str, str], IdempotencyRecord],
        heads: dict[LevelKey, str | None],
    ) -> None:
        self.book = book
        # The newest movement hash of each level; the atomic strategy refreshes it under the row lock.
        self.heads = heads
        self.levels_as_read = levels_as_read
        self.statuses_as_read = statuses_as_read
        self.stored = stored


async def load(
    session: Session,
    dialect: Dialect,
    submissions: Sequence[Submission],
    *,
    lock: bool,
    max_units_per_order: int | None = None,
    now: datetime | None = None,
) -> Loaded:
    """Everything a batch can touch, read inside its transaction (locked, sorted, when ``lock``)."""
    needs = needs_of(s.command for s in submissions)
    locking = for_update(dialect) if lock else ""
    size = SQLITE_MAX_PARAMETERS if dialect == "sqlite" else 1_000_000

    reservations = []
    for ids in chunks(sorted(needs.reservation_ids), size):
        condition, params = member_of(dialect, "id", ids)
        rows = await session.fetch(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE {condition} ORDER BY id{locking}", params
        )
        reservations += [reservation_from_row(row) for row in rows]
    needs.add_reservation_lines(reservations)

    transfers = []
    for ids in chunks(sorted(needs.transfer_ids), size):
        condition, params = member_of(dialect, "id", ids)
        rows = await session.fetch(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE {condition} ORDER BY id{locking}", params
        )
        transfers += [transfer_from_row(row) for row in rows]
    needs.add_transfer_levels(transfers)

    level_rows: dict[LevelKey, tuple[object, ...]] = {}
    for skus in chunks(sorted(needs.skus_in_any_warehouse), size):
        condition, params = member_of(dialect, "sku", skus)
        for row in await session.fetch(
            f"SELECT {LEVEL_COLUMNS}, version, last_hash FROM stock_levels WHERE {condition} "
            f"ORDER BY sku, warehouse_id{locking}",
            params,
        ):
            level_rows[(row[0], row[1])] = tuple(row)
    missing = sorted(key for key in needs.level_keys if key not in level_rows)
    for keys in chunks(missing, size // 2):
        condition, params = pairs_in(dialect, ("sku", "warehouse_id"), keys)
        for row in await session.fetch(
            f"SELECT {LEVEL_COLUMNS}, version, last_hash FROM stock_levels WHERE {condition} "
            f"ORDER BY sku, warehouse_id{locking}",
            params,
        ):
            level_rows[(row[0], row[1])] = tuple(row)

    warehouse_ids = sorted(needs.warehouse_ids | {warehouse_id for _, warehouse_id in level_rows})
    warehouses = {}
    for ids in chunks(warehouse_ids, size):
        condition, params = member_of(dialect, "warehouse_id", ids)
        for row in await session.fetch(
            f"SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE {condition}", params
        ):
            warehouse = warehouse_from_row(row)
            warehouses[warehouse.warehouse_id] = warehouse
    known_skus: list[str] = []
    for skus in chunks(sorted(needs.skus), size):
        condition, params = member_of(dialect, "sku", skus)
        known_skus += [
            row[0] for row in await session.fetch(f"SELECT sku FROM products WHERE {condition}", params)
        ]

    book = StockBook(
        known_skus=known_skus,
        warehouses=warehouses,
        levels=[level_from_row(row[:6]) for row in level_rows.values()],
        reservations=reservations,
        transfers=transfers,
        max_units_per_order=max_units_per_order,
        held_by_order=None
        if max_units_per_order is None or now is None
        else await held_by_orders(session, dialect, sorted(needs.order_ids), now),
    )
    levels_as_read = {key: (int(row[2]), int(row[3]), int(row[6])) for key, row in level_rows.items()}  # type: ignore[call-overload]
    heads_as_read = {key: row[7] for key, row in level_rows.items()}
    stored = await load_idempotency_records(session, dialect, submissions)
    statuses_as_read = {r.id: r.status.value for r in reservations} | {
        t.id: t.status.value for t in transfers
    }
    return Loaded(book, levels_as_read, statuses_as_read, stored, heads_as_read)  # type: ignore[arg-type]


async def held_by_orders(
    session: Session, dialect: Dialect, order_ids: Sequence[str], now: datetime
) -> dict[tuple[str, str], int]:
    """Units each (order, sku) holds in reservations still pending, for the per-order cap.

    Read in the batch's transaction. The level rows' locks do not cover an order: its
    lines may sit in other warehouses, and the optimistic and atomic strategies take
    no lock when reading. On PostgreSQL a transaction-scoped advisory lock per order
    (sorted, so transactions of one strategy never deadlock on them; a request escalated
    to row locks can, and the deadlock is retried) makes a second transaction holding
    for the same order wait for the first to commit and then count its hold. SQLite has
    a single writer.
    """
    if dialect == "postgresql" and order_ids:
        await session.fetch(
            "SELECT pg_advisory_xact_lock(hashtextextended('order' || chr(30) || o, 0)) "  # not a key's lock
            "FROM unnest(?::text[]) WITH ORDINALITY AS capped(o, n) ORDER BY n",
            (list(order_ids),),
        )
    rows = []
    for ids in chunks(order_ids, SQLITE_MAX_PARAMETERS):
        condition, params = member_of(dialect, "order_id", ids)
        rows += await session.fetch(
            f"SELECT order_id, lines FROM reservations WHERE status = 'pending' AND expires_at > ? AND {condition}",
            [to_millis(now), *params],
        )
    return units_held((order_id, decode_lines(lines)) for order_id, lines in rows)


async def load_idempotency_records(
    session: Session, dialect: Dialect, submissions: Sequence[Submission]
) -> dict[tuple[str, str], IdempotencyRecord]:
    """The stored answers of keys this batch claims, read under a per-key lock.

    Another process may be running a request with the same key right now; on
    PostgreSQL a transaction-scoped advisory lock per key (taken in sorted order,
    so batches never deadlock on them) makes the second wait for the first to
    commit, after which it finds the stored answer. SQLite has a single writer.
    """
    identities = sorted({(s.claim.principal, s.claim.key) for s in submissions if s.claim is not None})
    if not identities:
        return {}
    principals = [principal for principal, _ in identities]
    keys = [key for _, key in identities]
    if dialect == "postgresql":
        await session.fetch(
            "SELECT pg_advisory_xact_lock(hashtextextended(p || chr(31) || k, 0)) "
            "FROM unnest(?::text[], ?::text[]) WITH ORDINALITY AS claimed(p, k, n) ORDER BY n",
            (principals, keys),
        )
    found: dict[tuple[str, str], IdempotencyRecord] = {}
    for batch in chunks(identities, SQLITE_MAX_PARAMETERS // 2):
        condition, params = pairs_in(dialect, ("principal", "key"), batch)
        for principal, key, fingerprint, status_code, body, created_at in await session.fetch(
            "SELECT principal, key, fingerprint, status_code, body, created_at FROM idempotency_keys "
            f"WHERE {condition}",
            params,
        ):
            found[(principal, key)] = IdempotencyRecord(
                principal, key, fingerprint, StoredResponse(status_code, bytes(body)), from_millis(created_at)
            )
    return found


async def write(
    session: Session,
    loaded: Loaded,
    records: Sequence[IdempotencyRecord],
    now: datetime,
    mode: Strategy,
) -> None:
    """Write what the book changed. One statement per table and kind of change, however large the batch."""
    book = loaded.book
    at = to_millis(now)
    await _write_levels(session, loaded, mode)
    millis = MillisOf()
    await session.insert_many(
        "reservations",
        RESERVATION_INSERT_COLUMNS,
        [
            (
                r.id,
                r.order_id,
                r.status.value,
                millis[r.created_at],
                millis[r.expires_at],
                None,
                encode_lines(r.lines),
            )
            for r in book.created_reservations.values()
        ],
    )
    await _write_statuses(session, loaded, at, conditional=mode is not Strategy.LOCK)
    await session.insert_many(
        "transfers", TRANSFER_INSERT_COLUMNS, [transfer_to_row(t) for t in book.created_transfers.values()]
    )
    await _write_transfer_receipts(session, loaded, conditional=mode is not Strategy.LOCK)
    await _write_movements(session, loaded, at)
    await session.insert_many(
        "idempotency_keys",
        ("principal", "key", "fingerprint", "status_code", "body", "created_at"),
        [(r.principal, r.key, r.fingerprint, r.response.status_code, r.response.body, at) for r in records],
    )


async def _write_movements(session: Session, loaded: Loaded, at: int) -> None:
    """Insert the batch's movements, each chained to the one before it on its level."""
    movements = loaded.book.movements
    hashes = chain(movements, loaded.heads, at)
    rows = [
        (m.sku, m.warehouse_id, m.type.value, m.quantity, m.on_hand_delta, m.reserved_delta,
         m.reference_type, m.reference_id, m.reason, at, head)
        for m, head in zip(movements, hashes, strict=True)
    ]  # fmt: skip
    await session.insert_many("movements", (*MOVEMENT_INSERT_COLUMNS, "hash"), rows)
    moved = {(m.sku, m.warehouse_id) for m in movements}
    await session.executemany(
        "UPDATE stock_levels SET last_hash = ? WHERE sku = ? AND warehouse_id = ?",
        [(loaded.heads[key], *key) for key in sorted(moved)],
    )


async def _write_levels(session: Session, loaded: Loaded, mode: Strategy) -> None:
    changed = sorted(loaded.book.changed_levels.values(), key=lambda level: level.key)
    fresh = [level for level in changed if level.key not in loaded.levels_as_read]
    existing = [level for level in changed if level.key in loaded.levels_as_read]
    if fresh:
        # A level seen by no one before: a concurrent creator makes this a UniqueViolation, retried.
        await session.executemany(
            f"INSERT INTO stock_levels ({LEVEL_COLUMNS}, version) VALUES (?,?,?,?,?,?,0)",
            [
                (
                    lvl.sku,
                    lvl.warehouse_id,
                    lvl.quantity_on_hand,
                    lvl.quantity_reserved,
                    lvl.reorder_point,
                    lvl.reorder_quantity,
                )
                for lvl in fresh
            ],
        )
    for level in existing if mode is not Strategy.LOCK else ():
        on_hand_read, reserved_read, version_read = loaded.levels_as_read[level.key]
        if mode is Strategy.OPTIMISTIC:
            changed_rows = await session.execute(
                "UPDATE stock_levels SET quantity_on_hand = ?, quantity_reserved = ?, reorder_point = ?, "
                "reorder_quantity = ?, version = version + 1 WHERE sku = ? AND warehouse_id = ? AND version = ?",
                (
                    level.quantity_on_hand,
                    level.quantity_reserved,
                    level.reorder_point,
                    level.reorder_quantity,
                    level.sku,
                    level.warehouse_id,
                    version_read,
                ),
            )
        else:
            on_hand_delta = level.quantity_on_hand - on_hand_read
            reserved_delta = level.quantity_reserved - reserved_read
            # The row is locked from here to commit, so the head and the balances it returns are the
            # ones to chain on and to review alerts and tell listeners with (others may have moved it
            # since it was read).
            returned = await session.fetch(
                "UPDATE stock_levels SET quantity_on_hand = quantity_on_hand + ?, "
                "quantity_reserved = quantity_reserved + ?, version = version + 1 "
                "WHERE sku = ? AND warehouse_id = ? "
                "AND quantity_on_hand + ? - (quantity_reserved + ?) >= 0 AND quantity_reserved + ? >= 0 "
                "RETURNING last_hash, quantity_on_hand, quantity_reserved",
                (
                    on_hand_delta,
                    reserved_delta,
                    level.sku,
                    level.warehouse_id,
                    on_hand_delta,
                    reserved_delta,
                    reserved_delta,
                ),
            )
            changed_rows = len(returned)
            if returned:
                loaded.heads[level.key], level.quantity_on_hand, level.quantity_reserved = returned[0]
        if changed_rows != 1:
            raise WriteConflict(level.key)
    if mode is Strategy.LOCK and existing:
        await session.executemany(
            "UPDATE stock_levels SET quantity_on_hand = ?, quantity_reserved = ?, reorder_point = ?, "
            "reorder_quantity = ?, version = version + 1 WHERE sku = ? AND warehouse_id = ?",
            [
                (
                    lvl.quantity_on_hand,
                    lvl.quantity_reserved,
                    lvl.reorder_point,
                    lvl.reorder_quantity,
                    lvl.sku,
                    lvl.warehouse_id,
                )
                for lvl in existing
            ],
        )


async def _write_transfer_receipts(session: Session, loaded: Loaded, *, conditional: bool) -> None:
    # Without row locks, a transfer is received only if no one else received it first.
    guard = " AND status = 'in_transit'" if conditional else ""
    for transfer in loaded.book.updated_transfers.values():
        changed_rows = await session.execute(
            f"UPDATE transfers SET status = ?, received_at = ? WHERE id = ?{guard}",
            (transfer.status.value, to_millis(transfer.received_at or transfer.created_at), transfer.id),
        )
        if changed_rows != 1:
            raise WriteConflict(transfer.id)


async def _write_statuses(session: Session, loaded: Loaded, at: int, *, conditional: bool) -> None:
    updated = loaded.book.updated_reservations.values()
    if not conditional:
        await session.executemany(
            "UPDATE reservations SET status = ?, updated_at = ? WHERE id = ?",
            [(r.status.value, at, r.id) for r in updated],
        )
        return
    # Without row locks, a reservation finishes only if no one else finished it first.
    for reservation in updated:
        changed_rows = await session.execute(
            "UPDATE reservations SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            (reservation.status.value, at, reservation.id, loaded.statuses_as_read[reservation.id]),
        )
        if changed_rows != 1:
            raise WriteConflict(reservation.id)
