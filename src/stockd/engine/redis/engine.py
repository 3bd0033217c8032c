"""The Redis engine: the domain decides each batch, one Lua call commits it and appends it to a stream.

A batch (the group-commit batcher's, as on the SQL engine) is decided by the same
``StockBook`` every engine uses, against values read from Redis. The commit
script then checks that every key the batch changes still holds the bytes it
was decided on, writes the new values and appends the whole batch — movements,
levels, reservations, answers to idempotent requests — to the ledger stream, in
one atomic call. Nothing is acknowledged before that call returns, and the
stream entry exists exactly when the counters moved.

Within one process batches never overlap, so the guards hold; a second process
deciding on the same keys at the same moment loses the guard and decides again
on fresh values (with jittered retries, like the SQL engine's conflicts).

PostgreSQL is read here only for the catalog (which SKUs and warehouses exist)
and for records Redis no longer keeps (finished reservations and transfers,
once their retention in Redis has passed); everything else reaches it through
the persister (``workers/persister.py``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from stockd.domain.book import Needs, Outcome, StockBook, needs_of, units_held
from stockd.domain.chain import chain
from stockd.domain.clock import Clock
from stockd.domain.commands import Command
from stockd.domain.errors import Unavailable
from stockd.domain.model import LevelKey, Reservation, ReservationStatus, StockLevel, Transfer, TransferStatus
from stockd.engine.base import (
    Counters,
    Decision,
    IdempotencyClaim,
    IdempotencyRecord,
    StoredResponse,
    Submission,
    WriteConflict,
    decide_batch,
)
from stockd.engine.batcher import DEFAULT_MAX_BATCH, Batcher
from stockd.engine.redis.barrier import LedgerBarrier
from stockd.engine.redis.keys import Keys
from stockd.engine.redis.readiness import IS_READY_SCRIPT, READY_LUA
from stockd.engine.redis.records import (
    AnswerRecord,
    Entry,
    LevelRecord,
    MovementRecord,
    ReservationRecord,
    TransferRecord,
    decode_answer,
    decode_level,
    decode_reservation,
    decode_transfer,
    encode,
)
from stockd.store.codec import to_millis
from stockd.store.sql_store import SqlStore

T = TypeVar("T")

COMMIT_SCRIPT = READY_LUA + files("stockd.engine.redis").joinpath("commit.lua").read_text()

RETRY_BUDGET_SECONDS = 20.0
"""How long a batch that keeps losing to another process is decided again before callers get a 503."""

FINISHED_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long Redis keeps a finished reservation or a received transfer; PostgreSQL keeps them for good."""

ANSWER_RETENTION_MS = 25 * 3600 * 1000
"""Idempotent answers: API.md promises 24 hours (PostgreSQL keeps them as long as on the SQL engine)."""

NOT_READY = (
    "Redis' counters are being checked against the ledger (a new, flushed or restarted Redis); retry shortly"
)

REDIS_TIMEOUT_SECONDS = 10.0
"""No Redis command of stockd's takes this long; one that does means Redis is not there (a 503)."""

READ_ATTEMPTS = 3

REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
REDIS_NOT_TAKING_WRITES = (ReadOnlyError, OutOfMemoryError)
"""A replica (failover in progress) or a Redis out of memory: the engine cannot commit right now."""


class RedisEngine:
    def __init__(
        self,
        redis: aioredis.Redis,
        store: SqlStore,
        clock: Clock,
        keys: Keys,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
        max_units_per_order: int | None = None,
        reads: aioredis.Redis | None = None,
    ) -> None:
        self._redis = redis
        self._store = store
        self._clock = clock
        self._keys = keys
        self._max_units_per_order = max_units_per_order
        self._commit = redis.register_script(COMMIT_SCRIPT)
        self._is_ready = redis.register_script(IS_READY_SCRIPT)
        # Products are never deleted: once known, a SKU needs no more lookups.
        self._known_skus: set[str] = set()
        # Reads that may be repeated go through their own client, which retries a dropped connection.
        self._reads = reads or redis
        self.barrier = LedgerBarrier(self._reads, keys)
        self._batcher: Batcher[Submission, Outcome | StoredResponse] = Batcher(
            self._decide_batch, max_batch=max_batch, on_batch=on_batch
        )

    async def execute(
        self, command: Command, claim: IdempotencyClaim | None = None
    ) -> Outcome | StoredResponse:
        return await self._batcher.submit(Submission(command, claim))

    async def caught_up(self) -> None:
        """Return once PostgreSQL holds every change acknowledged before this call."""
        with redis_as_unavailable():
            await self.barrier.wait()

    async def counters(self) -> dict[LevelKey, Counters]:
        with redis_as_unavailable():
            found = [key async for key in self._reads.scan_iter(match=self._keys.level("*", "*"), count=1000)]
            counters = {}
            for start in range(0, len(found), 1000):
                for raw in await self._reads.mget(found[start : start + 1000]):
                    if isinstance(raw, bytes):
                        record = decode_level(raw)
                        counters[(record.sku, record.warehouse_id)] = (
                            record.quantity_on_hand,
                            record.quantity_reserved,
                            record.last_hash,
                        )
            return counters

    async def lag(self) -> int:
        with redis_as_unavailable():
            return await self.barrier.lag()

    async def close(self) -> None:
        await self._batcher.close()
        await self._redis.aclose()
        if self._reads is not self._redis:
            await self._reads.aclose()

    async def _decide_batch(self, submissions: Sequence[Submission]) -> list[Decision]:
        retrying = AsyncRetrying(
            stop=stop_after_delay(RETRY_BUDGET_SECONDS),
            wait=wait_random_exponential(multiplier=0.001, max=0.1),
            retry=retry_if_exception_type(WriteConflict),
            reraise=True,
        )
        try:
            with redis_as_unavailable():
                async for attempt in retrying:
                    with attempt:
                        return await self._attempt(submissions)
        except WriteConflict as error:
            raise Unavailable(
                f"gave up after {RETRY_BUDGET_SECONDS:g} s of losing to concurrent writers; retry"
            ) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(self, submissions: Sequence[Submission]) -> list[Decision]:
        now = self._clock.now()
        state = await self._load_retrying(submissions, now)
        decisions, answers = decide_batch(state.book, submissions, now, state.answers)
        commit = _commit_of(state, answers, now, self._keys)
        if commit.is_empty:
            return decisions
        result = await self._commit(keys=commit.keys, args=commit.args)
        if result[0] == -1:
            raise Unavailable(NOT_READY)
        if result[0] == 0:
            raise WriteConflict(commit.keys[int(result[1]) - 1])
        return decisions

    async def _load_retrying(self, submissions: Sequence[Submission], now: datetime) -> State:
        """Reading is safe to repeat: a pooled connection Redis dropped (it restarted) is retried.

        The commit call itself is never repeated by stockd or redis-py: a call whose reply
        was lost may have run, and running a receive twice would count the goods twice.
        Its caller gets a 503 and retries with its Idempotency-Key.
        """
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return await self._load(submissions, now)
            except REDIS_UNREACHABLE:
                if attempt == READ_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _load(self, submissions: Sequence[Submission], now: datetime) -> State:
        """Everything the batch can touch, as one consistent snapshot, plus the catalog from PostgreSQL.

        A first round trip finds out which levels the batch touches (those of the
        reservations it confirms, of the warehouses the planner may choose from);
        a reservation with warehouses chosen by the client needs none. The second
        reads every value the batch is decided on inside MULTI/EXEC, so no other
        process's commit can fall between two of them.
        """
        needs = needs_of(s.command for s in submissions)
        reads = await self._discover(needs, submissions)
        snapshot, known, warehouses = await asyncio.gather(
            self._snapshot(reads),
            self._known(needs.skus),
            self._store.warehouses_by_id(reads.warehouse_ids),
        )
        replies = iter(snapshot)
        if not next(replies):
            # Refusals too are decided on counters: none may come from a Redis that lost them.
            raise Unavailable(NOT_READY)
        state = State()
        self._take_records(state, reads, replies)
        levels = self._take_levels(state, reads, next(replies) if reads.levels else [])
        held_by_order = None
        if self._max_units_per_order is not None:
            held_by_order = units_held(
                (r.order_id, r.lines)
                for r in self._pending_holds(next(replies) if reads.order_reservation_ids else [], now)
            )
            state.order_sizes = {order_id: len(members) for order_id, members in reads.order_members.items()}
        state.book = StockBook(
            known_skus=known,
            warehouses={w.warehouse_id: w for w in warehouses},
            levels=levels,
            reservations=state.reservations,
            transfers=state.transfers,
            max_units_per_order=self._max_units_per_order,
            held_by_order=held_by_order,
        )
        return state

    async def _discover(self, needs: Needs, submissions: Sequence[Submission]) -> Reads:
        """The first round trip: the levels a batch touches, the members of capped orders, and
        finished records kept only in PostgreSQL (they never change again, so they need no snapshot)."""
        keys = self._keys
        reads = Reads(
            reservation_ids=sorted(needs.reservation_ids),
            transfer_ids=sorted(needs.transfer_ids),
            claims=sorted({(s.claim.principal, s.claim.key) for s in submissions if s.claim is not None}),
        )
        planned = sorted(needs.skus_in_any_warehouse)
        capped_orders = sorted(needs.order_ids) if self._max_units_per_order is not None else []
        level_keys = set(needs.level_keys)
        if reads.reservation_ids or reads.transfer_ids or planned or capped_orders:
            pipe = self._redis.pipeline(transaction=False)
            for reservation_id in reads.reservation_ids:
                pipe.get(keys.reservation(reservation_id))
            for transfer_id in reads.transfer_ids:
                pipe.get(keys.transfer(transfer_id))
            for sku in planned:
                pipe.smembers(keys.warehouses_of(sku))
            for order_id in capped_orders:
                pipe.smembers(keys.order(order_id))
            replies = iter(await pipe.execute())
            reservations = [_or_none(decode_reservation, next(replies)) for _ in reads.reservation_ids]
            transfers = [_or_none(decode_transfer, next(replies)) for _ in reads.transfer_ids]
            for sku in planned:
                level_keys.update((sku, warehouse_id.decode()) for warehouse_id in next(replies))
            reads.order_members = {
                order_id: [m.decode() for m in next(replies)] for order_id in capped_orders
            }
            await self._find_lines(reads, needs, reservations, transfers)
        reads.levels = sorted(level_keys | needs.level_keys)
        reads.order_reservation_ids = sorted({r for members in reads.order_members.values() for r in members})
        reads.warehouse_ids = needs.warehouse_ids | {warehouse_id for _, warehouse_id in reads.levels}
        return reads

    async def _find_lines(
        self,
        reads: Reads,
        needs: Needs,
        reservations: list[ReservationRecord | None],
        transfers: list[TransferRecord | None],
    ) -> None:
        """The levels the batch's reservations and transfers touch, from Redis or, once finished and
        gone from it, from PostgreSQL."""
        for reservation_id, found in zip(reads.reservation_ids, reservations, strict=True):
            reservation = found.reservation() if found else await self._store.get_reservation(reservation_id)
            if reservation is not None:
                needs.add_reservation_lines([reservation])
                if found is None:
                    reads.retired.append(reservation)
        for transfer_id, found_transfer in zip(reads.transfer_ids, transfers, strict=True):
            transfer = (
                found_transfer.transfer() if found_transfer else await self._store.get_transfer(transfer_id)
            )
            if transfer is not None:
                needs.add_transfer_levels([transfer])
                if found_transfer is None:
                    reads.retired.append(transfer)
        reads.discovered = {r.id for r in reservations if r} | {t.id for t in transfers if t}

    async def _snapshot(self, reads: Reads) -> list[Any]:
        """The second round trip: every value the batch is decided on, in one MULTI/EXEC."""
        keys = self._keys
        pipe = self._redis.pipeline(transaction=True)
        await self._is_ready(keys=[keys.ready], client=pipe)  # queued in the MULTI, not run yet
        for reservation_id in reads.reservation_ids:
            pipe.get(keys.reservation(reservation_id))
        for transfer_id in reads.transfer_ids:
            pipe.get(keys.transfer(transfer_id))
        for principal, idempotency_key in reads.claims:
            pipe.get(keys.idempotency(principal, idempotency_key))
        if reads.levels:
            pipe.mget([keys.level(*key) for key in reads.levels])
        if reads.order_reservation_ids:
            pipe.mget([keys.reservation(r) for r in reads.order_reservation_ids])
        return list(await pipe.execute())

    def _take_records(self, state: State, reads: Reads, replies: Iterator[Any]) -> None:
        """Reservations, transfers and stored answers from the snapshot, each key's bytes kept as its guard."""
        keys = self._keys
        for reservation_id in reads.reservation_ids:
            state.raw[keys.reservation(reservation_id)] = raw = next(replies)
            if raw is not None:
                state.reservations.append(decode_reservation(raw).reservation())
        for transfer_id in reads.transfer_ids:
            state.raw[keys.transfer(transfer_id)] = raw = next(replies)
            if raw is not None:
                state.transfers.append(decode_transfer(raw).transfer())
        if any(r.id not in reads.discovered for r in state.reservations) or any(
            t.id not in reads.discovered for t in state.transfers
        ):
            # Created by another process between the two reads: their levels were not looked for.
            raise WriteConflict("a reservation or transfer appeared while the batch was being read")
        state.reservations += [r for r in reads.retired if isinstance(r, Reservation)]
        state.transfers += [t for t in reads.retired if isinstance(t, Transfer)]
        for identity in reads.claims:
            raw = next(replies)
            if raw is not None:
                state.answers[identity] = decode_answer(raw).record()

    def _take_levels(self, state: State, reads: Reads, raws: list[bytes | None]) -> list[StockLevel]:
        levels = []
        for level_key, raw in zip(reads.levels, raws, strict=True):
            state.raw[self._keys.level(*level_key)] = raw
            if raw is not None:
                record = decode_level(raw)
                levels.append(record.level())
                state.heads[level_key] = record.last_hash
        return levels

    @staticmethod
    def _pending_holds(raws: list[bytes | None], now: datetime) -> Iterator[Reservation]:
        """The capped orders' holds that still count against the cap."""
        for raw in raws:
            if raw is not None:
                reservation = decode_reservation(raw).reservation()
                if reservation.status is ReservationStatus.PENDING and not reservation.has_lapsed(now):
                    yield reservation

    async def _known(self, skus: set[str]) -> set[str]:
        unknown = skus - self._known_skus
        if unknown:
            self._known_skus |= await self._store.known_skus(unknown)
        return skus & self._known_skus


def _or_none(decode: Callable[[bytes], T], raw: bytes | None) -> T | None:
    return None if raw is None else decode(raw)


@dataclass(slots=True)
class Reads:
    """The keys a batch's snapshot reads, as its first round trip found them."""

    reservation_ids: list[str]
    transfer_ids: list[str]
    claims: list[tuple[str, str]]
    """(principal, Idempotency-Key) of the batch's requests that carry one."""
    levels: list[LevelKey] = field(default_factory=list)
    order_members: dict[str, list[str]] = field(default_factory=dict)
    """The reservation ids of each capped order."""
    order_reservation_ids: list[str] = field(default_factory=list)
    retired: list[Reservation | Transfer] = field(default_factory=list)
    """Finished records Redis no longer keeps, read from PostgreSQL."""
    discovered: set[str] = field(default_factory=set)
    """The ids of the reservations and transfers the first round trip found in Redis."""
    warehouse_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class State:
    """A batch's working set, and the stored bytes each key held when read (the commit's guards)."""

    book: StockBook = field(init=False)
    raw: dict[str, bytes | None] = field(default_factory=dict)
    heads: dict[LevelKey, str | None] = field(default_factory=dict)
    reservations: list[Reservation] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    answers: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    order_sizes: dict[str, int] = field(default_factory=dict)


class Commit:
    """The arguments of one commit script call: keys, packed guards and writes, the stream entry."""

    def __init__(self, keys: Keys) -> None:
        self.keys = [keys.ready, keys.stream]
        self._index: dict[str, int] = {}
        self._guards = bytearray()
        self._writes = bytearray()
        self.payload = b""

    def _key(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)  # Lua counts from 1
        return index

    def unchanged(self, key: str, raw: bytes | None) -> None:
        self._guards += _operation(b"s", self._key(key), raw or b"")

    def size_unchanged(self, key: str, size: int) -> None:
        self._guards += _operation(b"n", self._key(key), str(size).encode())

    def set(self, key: str, value: bytes, ttl_ms: int = 0) -> None:
        self._writes += _operation(b"S", self._key(key), value, ttl_ms)

    def add(self, key: str, member: str) -> None:
        self._writes += _operation(b"A", self._key(key), member.encode())

    @property
    def is_empty(self) -> bool:
        return not self._writes

    @property
    def args(self) -> list[bytes]:
        return [self.payload, bytes(self._guards), bytes(self._writes)]


_HEADER = struct.Struct(">cII")
_TTL = struct.Struct(">I")


def _operation(kind: bytes, key_index: int, value: bytes, ttl_ms: int = 0) -> bytes:
    return _HEADER.pack(kind, key_index, len(value)) + value + _TTL.pack(ttl_ms)


def _commit_of(state: State, answers: Sequence[IdempotencyRecord], now: datetime, keys: Keys) -> Commit:
    """Guards and writes for everything the book changed, and the entry that records it."""
    commit = Commit(keys)
    at = to_millis(now)
    movements = state.book.movements
    hashes = chain(movements, state.heads, at)  # first: it moves each level's head to its newest hash
    levels = _commit_levels(commit, state, keys)
    reservations = _commit_reservations(commit, state, keys)
    transfers = _commit_transfers(commit, state, keys)
    stored_answers = _commit_answers(commit, answers, keys)
    commit.payload = encode(
        Entry(
            at=at,
            levels=levels,
            movements=[
                MovementRecord(
                    m.sku,
                    m.warehouse_id,
                    m.type.value,
                    m.quantity,
                    m.on_hand_delta,
                    m.reserved_delta,
                    m.reference_type,
                    m.reference_id,
                    m.reason,
                    head,
                )
                for m, head in zip(movements, hashes, strict=True)
            ],
            reservations=reservations,
            transfers=transfers,
            answers=stored_answers,
        )
    )
    return commit


def _commit_levels(commit: Commit, state: State, keys: Keys) -> list[LevelRecord]:
    levels = []
    for level in state.book.changed_levels.values():
        key = keys.level(*level.key)
        record = LevelRecord.of(level, state.heads.get(level.key))  # the head after this batch
        levels.append(record)
        raw = state.raw.get(key)
        commit.unchanged(key, raw)
        commit.set(key, encode(record))
        if raw is None:
            commit.add(keys.warehouses_of(level.sku), level.warehouse_id)
    return levels


def _commit_reservations(commit: Commit, state: State, keys: Keys) -> list[ReservationRecord]:
    reservations = []
    for reservation in state.book.created_reservations.values():
        key = keys.reservation(reservation.id)
        # A fresh id is never taken; the guard keeps a commit call that ever ran twice from
        # applying its batch twice.
        commit.unchanged(key, None)
        created = ReservationRecord.of(reservation)
        reservations.append(created)
        commit.set(key, encode(created), _retention(reservation.status is ReservationStatus.PENDING))
        # Kept whether or not a cap is set, so that setting one later counts every hold.
        order = keys.order(reservation.order_id)
        if reservation.order_id in state.order_sizes:
            # The cap was checked against these members: no other process may add one meanwhile.
            commit.size_unchanged(order, state.order_sizes.pop(reservation.order_id))
        commit.add(order, reservation.id)
    for reservation in state.book.updated_reservations.values():
        key = keys.reservation(reservation.id)
        commit.unchanged(key, state.raw.get(key))
        finished = ReservationRecord.of(reservation)
        reservations.append(finished)
        commit.set(key, encode(finished), _retention(False))
    return reservations


def _commit_transfers(commit: Commit, state: State, keys: Keys) -> list[TransferRecord]:
    transfers = []
    for transfer in [*state.book.created_transfers.values(), *state.book.updated_transfers.values()]:
        key = keys.transfer(transfer.id)
        commit.unchanged(key, state.raw.get(key))
        record = TransferRecord.of(transfer)
        transfers.append(record)
        commit.set(key, encode(record), _retention(transfer.status is TransferStatus.IN_TRANSIT))
    return transfers


def _commit_answers(commit: Commit, answers: Sequence[IdempotencyRecord], keys: Keys) -> list[AnswerRecord]:
    stored = []
    for answer in answers:
        key = keys.idempotency(answer.principal, answer.key)
        commit.unchanged(key, None)
        record = AnswerRecord.of(answer)
        stored.append(record)
        commit.set(key, encode(record), ANSWER_RETENTION_MS)
    return stored


def _retention(open_ended: bool) -> int:
    """Pending reservations and transfers in transit stay in Redis; finished ones for a while."""
    return 0 if open_ended else FINISHED_RETENTION_MS


@contextmanager
def redis_as_unavailable() -> Iterator[None]:
    """A Redis that cannot be reached, or cannot take writes, makes the request fail with 503, never
    hang or 500 (and never looks like one bad request, which the batcher would retry one by one)."""
    try:
        yield
    except REDIS_UNREACHABLE as error:
        raise Unavailable(f"Redis cannot be reached right now ({error!r}); retry shortly") from error
    except REDIS_NOT_TAKING_WRITES as error:
        raise Unavailable(f"Redis cannot take writes right now ({error}); retry shortly") from error
