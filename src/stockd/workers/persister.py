"""The persister: writes the Redis engine's ledger stream into PostgreSQL, exactly once, in order.

One persister leads at a time: whoever holds a PostgreSQL advisory lock on a
connection of its own. A leader that dies (even by ``kill -9``) loses the lock
the moment PostgreSQL sees its connection close, and the next one takes over.
The leader:

1. checks Redis' counters against the ledger before anyone decides on them (``readiness.py``):
   a new, flushed or restarted Redis is marked ready if its stream holds every entry PostgreSQL
   has, else rebuilt from PostgreSQL, after first writing whatever the stream still holds;
2. claims what consumers of older versions (one name per process) left pending
   (XAUTOCLAIM) and writes it before any new entry, so the ledger is written in commit order;
3. takes new entries (XREADGROUP >) into the pending list of the one consumer every leader
   reads as, ``leader``, and writes from that list, oldest first (XREADGROUP 0), a batch in
   one transaction —
   movements, levels, reservations, transfers, idempotent answers, alerts and
   webhook deliveries — together with their ids in ``ledger_entries``. An id
   already there means the entry was written before (a redelivery) and is
   skipped, so replays and duplicate deliveries change nothing;
4. only after the commit: acknowledges the entries (XACK), advances the
   watermark reads wait for, and trims the stream below it.

It runs inside the service by default, and alone as ``stockd worker persist``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from stockd.domain.events import Event, events_of
from stockd.domain.model import LevelKey
from stockd.engine.base import IN_PROGRESS
from stockd.engine.redis.barrier import StreamId, entries_after, format_id, parse_id
from stockd.engine.redis.engine import ANSWER_RETENTION_MS
from stockd.engine.redis.keys import PERSISTER_GROUP, Keys
from stockd.engine.redis.readiness import IS_READY_SCRIPT, run_id
from stockd.engine.redis.records import (
    AnswerRecord,
    Entry,
    LevelRecord,
    ReservationRecord,
    TransferRecord,
    decode_entry,
    encode,
)
from stockd.engine.sql.alerts import review_alerts, write_alerts
from stockd.ids import new_id
from stockd.metrics import PERSISTED_ENTRIES, PERSISTER_LAG, WORKER_FAILURES
from stockd.store.codec import decode_lines, encode_json
from stockd.store.postgres import STATEMENT_TIMEOUT_SECONDS, PostgresDatabase, PostgresSession, asyncpg_dsn
from stockd.store.rows import MOVEMENT_INSERT_COLUMNS
from stockd.store.sql import Session

log = logging.getLogger("stockd.persister")

LEADER_LOCK = 0x5354_4F43_4B44  # "STOCKD": the advisory lock only the leading persister holds
BATCH_ENTRIES = 200
BLOCK_MILLISECONDS = 100
RETRY_SECONDS = 1.0
REBUILD_PIPELINE = 1000
PENDING = "0"
"""XREADGROUP from 0: entries delivered to this consumer and not yet acknowledged."""
NEW = ">"
"""XREADGROUP from >: entries never delivered to anyone, which it moves into this consumer's pending list."""
ADVANCE_WATERMARK_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ms, seq = string.match(current, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  local new_ms, new_seq = tonumber(ARGV[1]), tonumber(ARGV[2])
  if new_ms < ms or (new_ms == ms and new_seq <= seq) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '-' .. ARGV[2])
return 1
"""
LEADER_CONSUMER = "leader"
"""The consumer every leader reads as. A deposed leader that has not yet noticed (it finds out at its
next write, which its lost lock connection refuses) may still move new entries into a pending list:
it is the list its successor writes from, so nothing it took is stranded."""


class Persister:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        database: PostgresDatabase,
        database_url: str,
        *,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._database = database
        self._dsn = asyncpg_dsn(database_url)
        self._on_events = on_events
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        """This persister, in logs."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._watermark: StreamId = (0, 0)
        self._connection: asyncpg.Connection | None = None
        """The connection holding the leader's lock, while leading."""
        self._advance = redis.register_script(ADVANCE_WATERMARK_SCRIPT)
        self._is_ready = redis.register_script(IS_READY_SCRIPT)

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="stockd-persister")

    async def stop(self) -> None:
        self._stopping = True
        task = self._task
        # Cancelled again until it ends: a library that turns the CancelledError into an error of its
        # own (a Redis or PostgreSQL call cut off mid-way) must not keep the persister running.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("the persister stopped with an error", exc_info=task.exception())

    async def run(self) -> None:
        """Lead when no one else does; keep trying through outages of Redis or PostgreSQL."""
        while not self._stopping:
            try:
                await self._lead_when_possible()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping:
                    return
                WORKER_FAILURES.labels("persister").inc()
                log.exception("the persister failed; retrying in %.0f s", RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)

    async def _lead_when_possible(self) -> None:
        async with self.leading():
            await self._lead()

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[None]:
        """Wait to become the leader; lead until the block ends."""
        connection = await asyncpg.connect(self._dsn, command_timeout=STATEMENT_TIMEOUT_SECONDS)
        try:
            # Another persister leads; poll, ready to follow it the moment it is gone.
            while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):  # noqa: ASYNC110
                await asyncio.sleep(RETRY_SECONDS / 2)
            log.info("persister %s leads", self.name)
            # Every write goes through the connection that holds the lock: should it
            # break, the lock is gone and so is any chance of writing after a successor.
            self._connection = connection
            yield
        finally:
            self._connection = None
            # terminate(), not close(): a close() awaits the server, and a connection cancelled in
            # the middle of a query may never hear back (a stopped service hung here). Dropping the
            # socket gives up the lock all the same.
            connection.terminate()

    async def _lead(self) -> None:
        await self.take_over()
        while not self._stopping:
            if not await self._ready():
                # Flushed or restarted while running: checked before anyone commits again.
                await self.ensure_counters()
            await self.persist_available(block_milliseconds=BLOCK_MILLISECONDS)

    async def wait_ready(self, seconds: float) -> None:
        """Return once Redis' counters may be decided on (checked or rebuilt by whichever persister leads)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not await self._ready():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Redis counters were not ready within {seconds:g} s")
            await asyncio.sleep(0.05)

    # -- the stream ------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._keys.stream, PERSISTER_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def take_over(self) -> None:
        """A new leader's first steps: claim what older consumers left, make sure Redis has counters,
        and move the watermark up to what PostgreSQL already holds."""
        # Entries other consumers left pending are the oldest: claimed first, so the ledger stays in order.
        await self._claim_abandoned()
        await self.ensure_counters()
        await self._restore_watermark()

    async def _restore_watermark(self) -> None:
        """A leader killed, or whose Redis call failed, after committing entries but before moving
        the watermark left it behind PostgreSQL; every read would wait for entries already written
        until the next commit came."""
        await self._advance_watermark(await _persisted_watermark(self._database))

    async def _advance_watermark(self, entry_id: StreamId) -> None:
        """Move the watermark reads wait for up to ``entry_id``, never back: a deposed leader's late
        move must not undo its successor's."""
        await self._advance(keys=[self._keys.persisted], args=list(entry_id))
        self._watermark = max(self._watermark, entry_id)

    async def _claim_abandoned(self) -> None:
        """Move what other consumers (older versions named one per process) left pending to the
        leader's list. They stay in the group: one may be a deposed leader still running."""
        await self._ensure_group()
        start: Any = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                self._keys.stream,
                PERSISTER_GROUP,
                LEADER_CONSUMER,
                min_idle_time=0,
                start_id=start,
                count=1000,
            )
            # Redis 7 also names the claimed entries gone from the stream.
            _report_lost(reply[2] if len(reply) > 2 else [])
            start = reply[0]
            if parse_id(start) == (0, 0):
                break

    async def persist_available(self, *, block_milliseconds: int | None = None) -> int:
        """Write the oldest entries pending for this consumer, taking new ones first when none are;
        returns how many entries.

        Only the pending list is written, oldest first, never the entries a read of new ones
        returned: if Redis carried out such a read and its reply was lost (Redis killed mid-reply,
        and the client asked again), older entries are pending that the second reply does not
        hold, and writing it first would put the ledger out of order.
        """
        entries = await self._read(PENDING)
        if not entries and await self._read(NEW, block_milliseconds):
            entries = await self._read(PENDING)
        if entries:
            await self.write(entries)
        return len(entries)

    async def _read(self, position: str, block_milliseconds: int | None = None) -> Any:
        reply = await self._redis.xreadgroup(
            PERSISTER_GROUP,
            LEADER_CONSUMER,
            {self._keys.stream: position},
            count=BATCH_ENTRIES,
            block=block_milliseconds,
        )
        return reply[0][1] if reply else []  # type: ignore[index]

    async def drain(self) -> None:
        """Write everything the stream holds now."""
        await self._ensure_group()
        while await self.persist_available():
            pass

    async def write(self, raw_entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Write stream entries (as XREADGROUP or XRANGE return them); those written before are skipped."""
        # A pending entry trimmed from the stream comes back without its fields: gone for good. Said
        # loudly and acknowledged; left pending, it would stop every write after it.
        _report_lost([entry_id for entry_id, fields in raw_entries if not fields])
        ids = [parse_id(entry_id) for entry_id, _ in raw_entries]
        entries = {
            entry_id: decode_entry(fields[b"e"])
            for entry_id, (_, fields) in zip(ids, raw_entries, strict=True)
            if fields
        }
        async with self._leader_transaction() as session:
            fresh = await _claim_entry_ids(session, list(entries))
            events = await write_entries(session, [entry for i, entry in entries.items() if i in fresh])
        await self._redis.xack(self._keys.stream, PERSISTER_GROUP, *[entry_id for entry_id, _ in raw_entries])
        newest = max(ids)
        if newest > self._watermark:
            await self._advance_watermark(newest)
        # Everything below the newest committed entry is in PostgreSQL now.
        await self._redis.xtrim(self._keys.stream, minid=format_id(newest))
        PERSISTED_ENTRIES.inc(len(fresh))
        PERSISTER_LAG.set(await entries_after(self._redis, self._keys, self._watermark))
        if self._on_events is not None and events:
            self._on_events(events)

    @contextlib.asynccontextmanager
    async def _leader_transaction(self) -> AsyncIterator[Session]:
        if self._connection is None:
            raise RuntimeError("only the leading persister writes the ledger")
        async with self._connection.transaction():
            yield PostgresSession(self._connection)

    # -- rebuilding Redis from the ledger ----------------------------------------------------

    async def ensure_counters(self) -> None:
        """Make sure the engine decides only on counters as new as the ledger; it refuses to commit until then.

        Counters a restarted Redis brought back are kept if its stream holds every entry PostgreSQL
        has; counters older than that (or none: a new or flushed Redis) are rebuilt from PostgreSQL.
        """
        if await self._ready():
            return
        if await self._redis.exists(self._keys.ready) and not await self._behind_the_ledger():
            await self._redis.set(self._keys.ready, await run_id(self._redis))
            # What it lost may be the watermark's last move (everysec, a quiet system): readers wait on it.
            await self._restore_watermark()
            log.info("Redis restarted with every entry of the ledger: its counters are kept")
            return
        log.warning(
            "Redis holds no stockd counters, or older ones than the ledger: rebuilding them from PostgreSQL"
        )
        if await self._redis.exists(self._keys.stream):
            await self.drain()  # entries Redis still has come first
        await self._ensure_group()
        # Read through the lock's connection: a leader deposed without knowing it fails here instead
        # of writing a copy of the ledger over counters its successor rebuilt and has taken commits on.
        async with self._leader_transaction() as session:
            written = await rebuild(self._redis, self._keys, session)
            self._watermark = await _persisted_watermark(session)
        log.warning("Redis rebuilt from PostgreSQL: %d keys", written)

    async def _ready(self) -> bool:
        return bool(await self._is_ready(keys=[self._keys.ready]))

    async def _behind_the_ledger(self) -> bool:
        """Whether PostgreSQL holds an entry newer than any this Redis has made: then Redis lost writes
        it had acknowledged, and its counters are older than the ledger."""
        newest_made: StreamId = (0, 0)
        if await self._redis.exists(self._keys.stream):
            newest_made = parse_id((await self._redis.xinfo_stream(self._keys.stream))["last-generated-id"])
        return newest_made < await _persisted_watermark(self._database)


def _report_lost(entry_ids: Sequence[bytes]) -> None:
    if entry_ids:
        # Trimmed while pending: only a bug could do that, and the entries are beyond recovery.
        log.error("stream entries were trimmed before they were written to PostgreSQL: %s", entry_ids)


async def _claim_entry_ids(session: Session, ids: Sequence[StreamId]) -> set[StreamId]:
    """Record the entries as written; returns those not recorded before (the rest are redeliveries)."""
    rows = await session.fetch(
        "INSERT INTO ledger_entries (stream_ms, stream_seq, persisted_at) "
        "SELECT ms, seq, ? FROM unnest(?::bigint[], ?::bigint[]) AS e(ms, seq) "
        "ON CONFLICT DO NOTHING RETURNING stream_ms, stream_seq",
        (_wall_clock_millis(), [ms for ms, _ in ids], [seq for _, seq in ids]),
    )
    return {(int(ms), int(seq)) for ms, seq in rows}


async def write_entries(session: Session, entries: Sequence[Entry]) -> list[Event]:
    """Write entries, in commit order, into the ledger and its projections; returns the events to announce."""
    if not entries:
        return []
    levels: dict[LevelKey, LevelRecord] = {}
    reservations: dict[str, ReservationRecord] = {}
    transfers: dict[str, TransferRecord] = {}
    movements = []
    answers: list[AnswerRecord] = []
    for entry in entries:
        levels.update(((r.sku, r.warehouse_id), r) for r in entry.levels)
        reservations.update((r.id, r) for r in entry.reservations)
        transfers.update((t.id, t) for t in entry.transfers)
        answers += entry.answers
        movements += [
            (m.sku, m.warehouse_id, m.type, m.quantity, m.on_hand_delta, m.reserved_delta,
             m.reference_type, m.reference_id, m.reason, entry.at, m.hash)
            for m in entry.movements
        ]  # fmt: skip
    await _upsert_levels(session, list(levels.values()))
    await session.insert_many("movements", (*MOVEMENT_INSERT_COLUMNS, "hash"), movements)
    await _upsert_reservations(session, list(reservations.values()))
    await _upsert_transfers(session, list(transfers.values()))
    await session.execute(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status_code, body, created_at) "
        "SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::int[], ?::bytea[], ?::bigint[]) "
        "ON CONFLICT DO NOTHING",
        _columns(
            [(a.principal, a.key, a.fingerprint, a.status_code, a.body, a.created_at) for a in answers], 6
        ),
    )
    # Alerts entry by entry: a level that dipped below its reorder point and came back
    # within one persister batch still opens and resolves its alert, as on the SQL engines.
    events: list[Event] = []
    for entry in entries:
        now = entry.decided_at
        changed = [record.level() for record in entry.levels]
        alert_changes = await review_alerts(session, "postgresql", changed, now, new_id, lock=True)
        entry_events = events_of(changed, alert_changes, now)
        await write_alerts(session, alert_changes, entry_events, now)
        events += entry_events
    return events


async def _upsert_levels(session: Session, levels: Sequence[LevelRecord]) -> None:
    await session.execute(
        "INSERT INTO stock_levels (sku, warehouse_id, quantity_on_hand, quantity_reserved, reorder_point, "
        "reorder_quantity, last_hash, version) "
        "SELECT *, 0 FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[]) "
        "ON CONFLICT (sku, warehouse_id) DO UPDATE SET quantity_on_hand = excluded.quantity_on_hand, "
        "quantity_reserved = excluded.quantity_reserved, reorder_point = excluded.reorder_point, "
        "reorder_quantity = excluded.reorder_quantity, last_hash = excluded.last_hash, "
        "version = stock_levels.version + 1",
        _columns(
            [(r.sku, r.warehouse_id, r.quantity_on_hand, r.quantity_reserved, r.reorder_point,
              r.reorder_quantity, r.last_hash) for r in levels],
            7,
        ),
    )  # fmt: skip


async def _upsert_reservations(session: Session, reservations: Sequence[ReservationRecord]) -> None:
    # A reservation changes only from pending to one final status, so the newest record always wins.
    await session.execute(
        "INSERT INTO reservations (id, order_id, status, created_at, expires_at, updated_at, lines) "
        "SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[]) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        _columns(
            [(r.id, r.order_id, r.status, r.created_at, r.expires_at, r.updated_at, encode_json(r.lines))
             for r in reservations],
            7,
        ),
    )  # fmt: skip


async def _upsert_transfers(session: Session, transfers: Sequence[TransferRecord]) -> None:
    await session.execute(
        "INSERT INTO transfers (id, sku, from_warehouse_id, to_warehouse_id, quantity, status, reference_id, "
        "created_at, received_at) "
        "SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], "
        "?::bigint[], ?::bigint[]) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, received_at = excluded.received_at",
        _columns(
            [(t.id, t.sku, t.from_warehouse_id, t.to_warehouse_id, t.quantity, t.status, t.reference_id,
              t.created_at, t.received_at) for t in transfers],
            9,
        ),
    )  # fmt: skip


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one array per column, for ``unnest``."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _wall_clock_millis() -> int:
    """Bookkeeping time, not ledger time (the ledger's times come from the engine's clock, in the entries)."""
    return time.time_ns() // 1_000_000


async def _persisted_watermark(database: PostgresDatabase | Session) -> StreamId:
    rows = await database.fetch(
        "SELECT stream_ms, stream_seq FROM ledger_entries ORDER BY stream_ms DESC, stream_seq DESC LIMIT 1"
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


async def rebuild(redis: aioredis.Redis, keys: Keys, database: Session) -> int:
    """Load what the engine decides on from PostgreSQL into Redis; the ready marker goes last.

    Levels, pending reservations (with their orders' indexes), transfers in transit
    and idempotent answers younger than their retention. Finished records are read
    from PostgreSQL by the engine when asked for.
    """
    levels = await database.fetch(
        "SELECT sku, warehouse_id, quantity_on_hand, quantity_reserved, reorder_point, reorder_quantity, "
        "last_hash FROM stock_levels"
    )
    reservations = await database.fetch(
        "SELECT id, order_id, status, created_at, expires_at, updated_at, lines FROM reservations "
        "WHERE status = 'pending'"
    )
    transfers = await database.fetch(
        "SELECT id, sku, from_warehouse_id, to_warehouse_id, quantity, status, reference_id, created_at, "
        "received_at FROM transfers WHERE status = 'in_transit'"
    )
    now_ms = _wall_clock_millis()
    answers = await database.fetch(
        "SELECT principal, key, fingerprint, status_code, body, created_at FROM idempotency_keys "
        "WHERE created_at > ? AND status_code <> ?",  # answers, not claims of requests still running
        (now_ms - ANSWER_RETENTION_MS, IN_PROGRESS),
    )
    commands: list[tuple[str, ...] | tuple[Any, ...]] = []
    for row in levels:
        record = LevelRecord(*row)
        commands.append(("SET", keys.level(record.sku, record.warehouse_id), encode(record)))
        commands.append(("SADD", keys.warehouses_of(record.sku), record.warehouse_id))
    for row in reservations:
        lines = [(line.sku, line.warehouse_id, line.quantity) for line in decode_lines(row[6])]
        reservation_id, order_id, status, created_at, expires_at, updated_at, _ = row
        reservation = ReservationRecord(
            reservation_id, order_id, status, created_at, expires_at, updated_at, lines
        )
        commands.append(("SET", keys.reservation(reservation.id), encode(reservation)))
        commands.append(("SADD", keys.order(reservation.order_id), reservation.id))
    for row in transfers:
        transfer = TransferRecord(*row)
        commands.append(("SET", keys.transfer(transfer.id), encode(transfer)))
    for principal, key, fingerprint, status_code, body, created_at in answers:
        record_bytes = encode(AnswerRecord(principal, key, fingerprint, status_code, bytes(body), created_at))
        remaining = created_at + ANSWER_RETENTION_MS - now_ms
        commands.append(("SET", keys.idempotency(principal, key), record_bytes, "PX", remaining))
    await _forget_counters(redis, keys)
    for start in range(0, len(commands), REBUILD_PIPELINE):
        pipe = redis.pipeline(transaction=False)
        for command in commands[start : start + REBUILD_PIPELINE]:
            pipe.execute_command(*command)
        await pipe.execute()
    watermark = await _persisted_watermark(database)
    await _stream_ids_after(redis, keys, watermark)
    await redis.set(keys.persisted, format_id(watermark))
    await redis.set(keys.ready, await run_id(redis))
    return len(commands)


async def _forget_counters(redis: aioredis.Redis, keys: Keys) -> None:
    """Everything the engine decides on, gone, before the rebuild writes it again: an older Redis may hold
    reservations pending there that the ledger has since confirmed. The stream stays (it has been written)."""
    stale = [
        key async for key in redis.scan_iter(match=keys.pattern, count=1000) if key != keys.stream.encode()
    ]
    for start in range(0, len(stale), REBUILD_PIPELINE):
        await redis.unlink(*stale[start : start + REBUILD_PIPELINE])


async def _stream_ids_after(redis: aioredis.Redis, keys: Keys, watermark: StreamId) -> None:
    """New entries must get ids above every id PostgreSQL has recorded, or they would look like redeliveries."""
    info = await redis.xinfo_stream(keys.stream)
    if parse_id(info["last-generated-id"]) < watermark:
        await redis.execute_command("XSETID", keys.stream, format_id(watermark))  # type: ignore[no-untyped-call]
