"""The Redis engine against the real Redis and PostgreSQL of this machine, in-process.

What the contract suite cannot show: the persister writes each stream entry
into PostgreSQL exactly once whatever is redelivered, a consumer that died is
taken over in order, Redis that lost its data is rebuilt from the ledger (with
what the stream still held), and a confirm racing an expiry from two processes
ends in exactly one final state.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from stockd.api.app import create_app
from stockd.bootstrap import build_service
from stockd.config import Settings
from stockd.domain.clock import FakeClock, SystemClock
from stockd.domain.commands import Confirm, Expire, Receive, Release, RequestedLine, Reserve
from stockd.domain.errors import ReservationExpired
from stockd.domain.model import Product, ReservationStatus, Warehouse
from stockd.engine.redis.barrier import LedgerBarrier
from stockd.engine.redis.keys import PERSISTER_GROUP, Keys
from stockd.ids import new_id
from stockd.service import StockService
from stockd.store.base import MovementFilter
from stockd.workers.persister import LEADER_CONSUMER, Persister
from tests.conftest import REDIS_URL, empty_tables, forget_redis_keys
from tests.integration.redis_proxy import ReplyDroppingProxy

SKU = "HOT-1"
WAREHOUSE = "ber"


@pytest.fixture
async def settings(postgres_database: str, redis_prefix: str) -> Settings:
    await empty_tables(postgres_database)
    return Settings(database=postgres_database, redis=REDIS_URL, redis_prefix=redis_prefix)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(SystemClock().now())


@pytest.fixture
async def service(settings: Settings, clock: FakeClock) -> AsyncIterator[StockService]:
    """The service with its persister running, as the HTTP app runs it."""
    service = await started(settings, clock)
    yield service
    await service.close()


@dataclass
class Stream:
    """The service's ledger stream, stocked, with the service's own persister stopped: from here on
    entries stay in the stream until a persister of the test's takes them."""

    redis: aioredis.Redis
    keys: Keys
    service: StockService
    database_url: str

    def persister(self) -> Persister:
        return Persister(self.redis, self.keys, self.service.store.database, self.database_url)  # type: ignore[arg-type]


@pytest.fixture
async def stream(service: StockService, settings: Settings) -> AsyncIterator[Stream]:
    await stocked(service)
    await service.engine.caught_up()
    assert service.persister is not None
    await service.persister.stop()
    client = aioredis.Redis.from_url(REDIS_URL)
    yield Stream(client, Keys(settings.redis_prefix), service, settings.database_url)
    await client.aclose()


async def started(settings: Settings, clock: FakeClock) -> StockService:
    service = await build_service(settings, clock)
    assert service.persister is not None
    service.persister.start()
    await service.persister.wait_ready(30)
    return service


async def stocked(service: StockService, quantity: int = 1_000) -> None:
    now = service.clock.now()
    await service.put_product(Product(SKU, "hot", now, now))
    await service.put_warehouse(Warehouse(WAREHOUSE, "Berlin", 52.5, 13.4, "Europe/Berlin", now, now))
    await service.execute(Receive(SKU, WAREHOUSE, quantity))


async def reserve(service: StockService, order: str, quantity: int = 1, ttl_seconds: int = 900) -> str:
    reservation_id = new_id()
    await service.execute(
        Reserve(reservation_id, order, (RequestedLine(SKU, quantity, WAREHOUSE),), ttl_seconds=ttl_seconds)
    )
    return reservation_id


async def ledger_view(service: StockService) -> tuple[object, ...]:
    """What PostgreSQL holds: movements, levels and reservation statuses."""
    await service.engine.caught_up()
    movements = (await service.list_movements(MovementFilter(sku=SKU), 1000, None)).items
    levels = await service.store.levels_of_sku(SKU)
    statuses = await service.store.database.fetch("SELECT id, status FROM reservations ORDER BY id")
    return (
        [(m.id, m.type, m.quantity, m.reference_id) for m in movements],
        levels,
        [tuple(row) for row in statuses],
    )


async def reserved_in_ledger_order(service: StockService) -> list[str | None]:
    """The reservations the ledger's reserve movements name, in the order they were written."""
    movements = (await service.list_movements(MovementFilter(sku=SKU), 1000, None)).items
    return [m.reference_id for m in movements if m.type.value == "reserve"]


async def assert_counters_equal_the_ledger(service: StockService) -> None:
    reconciliation = await service.reconcile()
    assert reconciliation.persister_lag == 0
    assert reconciliation.mismatches == []
    assert reconciliation.broken_links == []
    assert reconciliation.levels_checked >= 1


async def test_redelivered_entries_and_a_second_consumer_taking_over_change_nothing(stream: Stream) -> None:
    service, redis, keys = stream.service, stream.redis, stream.keys
    reservations = [await reserve(service, f"o-{n}") for n in range(30)]
    for reservation_id in reservations[:10]:
        await service.execute(Confirm(reservation_id))
    for reservation_id in reservations[10:15]:
        await service.execute(Release(reservation_id))
    everything = await redis.xrange(keys.stream)
    # A consumer read the newest entries and died before acknowledging them.
    await redis.xreadgroup(PERSISTER_GROUP, "died-mid-batch", {keys.stream: ">"}, count=len(everything))

    second = stream.persister()
    second.start()
    await service.engine.caught_up()
    await second.stop()
    persisted = await ledger_view(service)
    assert Counter(m[1].value for m in persisted[0]) == {
        "receive": 1,
        "reserve": 30,
        "ship": 10,
        "release": 5,
    }
    await assert_counters_equal_the_ledger(service)

    async with second.leading():
        await second.write(everything)  # replayed from the start, out of their first order too
        await second.write(list(reversed(everything)))
    await redis.xgroup_setid(keys.stream, PERSISTER_GROUP, id="0")  # the group itself replays from 0
    async with second.leading():
        await second.persist_available()
    assert await ledger_view(service) == persisted
    await assert_counters_equal_the_ledger(service)


async def test_a_leader_whose_lock_connection_is_gone_writes_nothing_more(stream: Stream) -> None:
    """Its lock went with the connection and a successor leads: were it still to write through
    another connection, the two would write the ledger at once, out of order."""
    service = stream.service
    for n in range(5):
        await reserve(service, f"o-{n}")
    entries = await stream.redis.xrange(stream.keys.stream)
    database = service.store.database
    deposed, successor = stream.persister(), stream.persister()
    written_before = await database.fetch("SELECT count(*) FROM ledger_entries")  # type: ignore[attr-defined]
    async with deposed.leading():
        await end_the_leaders_lock_connection(service)
        async with successor.leading():
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await deposed.write(entries)
            assert await database.fetch("SELECT count(*) FROM ledger_entries") == written_before  # type: ignore[attr-defined]
            await successor.write(entries)
    await assert_counters_equal_the_ledger(service)


async def test_what_a_deposed_leader_took_from_the_stream_is_written_by_its_successor_first(
    stream: Stream,
) -> None:
    """A leader that lost its lock finds out only at its next write: before that it may still take
    new entries from the stream. Its successor writes them, and before anything newer."""
    service = stream.service
    deposed, successor = stream.persister(), stream.persister()
    async with deposed.leading():
        await deposed.take_over()
        await end_the_leaders_lock_connection(service)
        async with successor.leading():
            await successor.take_over()
            older = await reserve(service, "older")
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await deposed.persist_available(block_milliseconds=1000)  # takes it, cannot write it
            newer = await reserve(service, "newer")
            while await successor.persist_available(block_milliseconds=100):
                pass
    assert await reserved_in_ledger_order(service) == [older, newer]
    await assert_counters_equal_the_ledger(service)


async def test_a_pending_entry_gone_from_the_stream_is_reported_and_does_not_stop_the_writes_after_it(
    stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    service, redis, keys = stream.service, stream.redis, stream.keys
    lost, kept = await reserve(service, "lost"), await reserve(service, "kept")
    persister = stream.persister()
    delivered = await redis.xreadgroup(PERSISTER_GROUP, LEADER_CONSUMER, {keys.stream: ">"})
    first_id = delivered[0][1][0][0]  # type: ignore[index]
    await redis.xdel(keys.stream, first_id)  # what only a bug could do
    async with persister.leading():
        while await persister.persist_available():
            pass
    assert "trimmed before they were written" in caplog.text
    assert (await redis.xpending(keys.stream, PERSISTER_GROUP))["pending"] == 0
    statuses = dict(await service.store.database.fetch("SELECT id, status FROM reservations"))  # type: ignore[attr-defined]
    assert lost not in statuses and statuses[kept] == "pending"


async def test_reconciliation_under_load_reports_no_mismatch_where_there_is_none(
    service: StockService,
) -> None:
    """Commits land between reading the ledger and reading Redis: the levels they moved are compared
    only where both name the same newest movement, never reported as mismatches."""
    await stocked(service, quantity=100_000)
    selling = True

    async def sell() -> None:
        n = 0
        while selling:
            await asyncio.gather(*(reserve(service, f"load-{n}-{i}") for i in range(20)))
            n += 1

    seller = asyncio.create_task(sell())
    try:
        reconciliations = [await service.reconcile() for _ in range(10)]
    finally:
        selling = False
        await seller
    assert [r.mismatches for r in reconciliations] == [[]] * 10
    assert all(r.levels_checked == 1 for r in reconciliations)
    quiet = await service.reconcile()
    assert (quiet.mismatches, quiet.levels_moving, quiet.persister_lag) == ([], 0, 0)


async def end_the_leaders_lock_connection(service: StockService) -> None:
    """What a PostgreSQL restart or a network fault does to the connection holding the leader's lock."""
    await service.store.database.fetch(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


async def test_a_read_whose_reply_was_lost_does_not_get_the_ledger_written_out_of_order(
    settings: Settings, clock: FakeClock
) -> None:
    """Redis handed the persister an entry, and the reply never arrived (Redis killed mid-reply):
    the entry is pending for the persister, and a newer one is committed before it reads again.

    Asking again for new entries would get only the newer one, write it first, move the watermark
    past the older one and let reads miss it, then write the older one's levels over the newer.
    """
    async with ReplyDroppingProxy(REDIS_URL).running() as proxy:
        service = await started(replace(settings, redis=proxy.url), clock)
        try:
            await stocked(service)
            await service.engine.caught_up()
            newer: list[str] = []

            async def commit_a_newer_entry() -> None:
                newer.append(await reserve(service, "newer"))

            proxy.drop_next_reply_to(b"XREADGROUP", b"\r\n>\r\n", then=commit_a_newer_entry)
            older = await reserve(service, "older")
            await asyncio.wait_for(proxy.dropped.wait(), 10)

            await service.engine.caught_up()
            assert await reserved_in_ledger_order(service) == [older, *newer]
            for reservation_id in (older, *newer):
                assert (await service.get_reservation(reservation_id)).status is ReservationStatus.PENDING
            await assert_counters_equal_the_ledger(service)
        finally:
            await service.close()


WATERMARK_LEFT_BEHIND = {
    "a successor takes over from a leader killed right after acknowledging": "successor",
    "the leader leads again after its call to move the watermark failed": "same leader",
    "Redis restarted with every entry, without the watermark's last move": "redis restarted",
}


@pytest.mark.parametrize("how", WATERMARK_LEFT_BEHIND.values(), ids=WATERMARK_LEFT_BEHIND.keys())
async def test_a_watermark_left_behind_the_ledger_is_moved_up_when_a_leader_leads_again(
    service: StockService, settings: Settings, how: str
) -> None:
    """Entries committed and acknowledged, the watermark in Redis not moved past them. A reader in a
    process that just started (nothing seen yet), with no new commit coming, waits for the leader
    alone, not for a 10 s timeout and a 503."""
    await stocked(service)
    for n in range(3):
        await reserve(service, f"o-{n}")
    await service.engine.caught_up()
    assert service.persister is not None
    redis = aioredis.Redis.from_url(REDIS_URL)
    keys = Keys(settings.redis_prefix)
    successor = Persister(redis, keys, service.store.database, settings.database_url)  # type: ignore[arg-type]
    try:
        if how == "redis restarted":  # the running leader checks the restarted Redis and keeps its counters
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.persisted, "0-1")
                pipe.set(keys.ready, "the-run-before-the-restart")
                await pipe.execute()
            await service.persister.wait_ready(10)
        else:
            await service.persister.stop()
            await redis.set(keys.persisted, "0-1")
            (successor if how == "successor" else service.persister).start()
        await LedgerBarrier(redis, keys).wait(seconds=5)
        await assert_counters_equal_the_ledger(service)
    finally:
        await successor.stop()
        await redis.aclose()


async def test_redis_that_lost_everything_is_rebuilt_from_the_ledger_before_it_takes_traffic(
    settings: Settings, clock: FakeClock
) -> None:
    service = await started(settings, clock)
    await stocked(service)
    held = [await reserve(service, f"o-{n}", quantity=2) for n in range(20)]
    await service.execute(Confirm(held[0]))
    await service.execute(Release(held[1]))
    before = await service.stock_of(SKU)
    ledger_before = await ledger_view(service)
    await service.close()

    forget_redis_keys(settings.redis_prefix)  # what FLUSHALL does to stockd's keys while it is stopped

    service = await started(settings, clock)
    try:
        assert await service.stock_of(SKU) == before
        await assert_counters_equal_the_ledger(service)
        assert await ledger_view(service) == ledger_before
        # The rebuilt counters take traffic, and what they decide reaches the ledger (new stream ids
        # are above every id PostgreSQL has seen, so none is mistaken for a redelivery).
        await service.execute(Confirm(held[2]))
        late = await reserve(service, "after-the-rebuild", quantity=3)
        summary = await service.stock_of(SKU)
        assert (summary.quantity_on_hand, summary.quantity_reserved) == (1_000 - 4, 2 * 17 + 3)
        assert (await service.get_reservation(late)).status is ReservationStatus.PENDING
        await assert_counters_equal_the_ledger(service)
    finally:
        await service.close()


async def test_counters_lost_with_entries_still_in_the_stream_are_rebuilt_with_those_entries(
    settings: Settings, clock: FakeClock
) -> None:
    service = await started(settings, clock)
    await stocked(service)
    assert service.persister is not None
    await service.persister.stop()
    for n in range(25):
        await reserve(service, f"o-{n}")  # acknowledged; only the stream knows them yet
    await service.close()

    keys = Keys(settings.redis_prefix)
    await asyncio.to_thread(_forget_counters, keys)

    service = await started(settings, clock)
    try:
        summary = await service.stock_of(SKU)
        assert (summary.quantity_on_hand, summary.quantity_reserved) == (1_000, 25)
        await assert_counters_equal_the_ledger(service)
    finally:
        await service.close()


def _forget_counters(keys: Keys) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.delete(keys.ready, keys.level(SKU, WAREHOUSE))


async def test_confirm_racing_expiry_from_two_processes_ends_in_exactly_one_final_state(
    settings: Settings, clock: FakeClock
) -> None:
    """1,000 holds reach their expiry while one process confirms them and another expires them."""
    payments = await started(settings, clock)
    await stocked(payments, quantity=1_000)
    held = [await reserve(payments, f"o-{n}", ttl_seconds=60) for n in range(1_000)]
    # The sweeping process's clock has reached the expiry; the paying one's is a millisecond short.
    expiry = clock.now() + timedelta(seconds=60)
    clock.advance((expiry - clock.now() - timedelta(milliseconds=1)).total_seconds())
    sweeper_clock = FakeClock(expiry)
    sweeper = await build_service(settings, sweeper_clock)
    try:
        # Payments work from the oldest hold, the sweeper from the newest, a batch at a time:
        # they meet, and race, in the middle.
        confirmations, expiries = await asyncio.gather(
            in_batches(payments, [Confirm(r) for r in held]),
            in_batches(sweeper, [Expire(r) for r in reversed(held)]),
        )
    finally:
        await sweeper.close()
    refused = [c for c in confirmations if isinstance(c, BaseException)]
    assert all(isinstance(error, ReservationExpired) for error in refused), refused
    assert not any(isinstance(e, BaseException) for e in expiries), expiries

    await payments.engine.caught_up()
    statuses = Counter(
        status for (status,) in await payments.store.database.fetch("SELECT status FROM reservations")
    )
    assert sum(statuses.values()) == 1_000
    assert set(statuses) <= {"confirmed", "expired"}
    assert statuses["expired"] == len(refused)
    assert statuses["confirmed"] >= 100 and statuses["expired"] >= 100, statuses  # both sides won some
    finished = await payments.store.database.fetch(
        "SELECT reference_id, count(*) FROM movements WHERE type IN ('ship', 'expire') GROUP BY reference_id"
    )
    assert len(finished) == 1_000 and {count for _, count in finished} == {1}  # each hold ended exactly once
    summary = await payments.stock_of(SKU)
    assert summary.quantity_reserved == 0
    assert summary.quantity_on_hand == 1_000 - statuses["confirmed"]
    await assert_counters_equal_the_ledger(payments)
    await payments.close()


async def in_batches(service: StockService, commands: list[Confirm] | list[Expire]) -> list[object]:
    results: list[object] = []
    for start in range(0, len(commands), 50):
        batch = commands[start : start + 50]
        results += await asyncio.gather(*(service.execute(c) for c in batch), return_exceptions=True)
    return results


async def test_the_rate_limit_holds_across_processes_sharing_the_redis_engine(
    settings: Settings, clock: FakeClock
) -> None:
    """Two services on one Redis: a key's requests count once, whichever process answers them."""
    admin_key = "an-admin-key-of-the-operator-0123456789"
    limited = replace(settings, rate_limit=5, admin_key=admin_key)
    async with (
        AsyncTestClient(create_app(limited, clock)) as first,
        AsyncTestClient(create_app(limited, clock)) as second,
    ):
        admin = {"Authorization": f"Bearer {admin_key}"}
        answered = 0
        for n in range(50):
            response = await (first, second)[n % 2].get("/v1/products", headers=admin)
            if response.status_code == 429:
                break
            assert response.status_code == 200, response.text
            answered += 1
    assert response.json()["code"] == "rate_limited"
    # Counted per process, each would let five through before refusing: ten at least.
    assert answered < 10, answered
