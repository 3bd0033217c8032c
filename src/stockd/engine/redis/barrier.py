"""Read-your-writes across Redis and PostgreSQL: wait until the ledger holds what was acknowledged.

Reads (stock, reservations, movements, alerts, reconciliation) are answered from
PostgreSQL, the ledger of record. A read first notes the newest entry in the
ledger stream — every change acknowledged so far, by any process — and waits
until the persister has committed it, so what it shows is never older than an
answer a client already has. The wait is one persister round (milliseconds);
a persister that cannot keep up turns reads into 503s rather than stale answers.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from stockd.domain.errors import Unavailable
from stockd.engine.redis.keys import Keys

StreamId = tuple[int, int]

WAIT_SECONDS = 10.0
POLL_SECONDS = 0.002


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def format_id(entry_id: StreamId) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


class LedgerBarrier:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._seen: StreamId = (0, 0)
        """The newest watermark this process has read; it only grows."""
        self._reading: asyncio.Task[StreamId] | None = None

    async def newest(self) -> StreamId | None:
        """The id of the newest entry ever appended, or None for an empty stream."""
        entries = await self._redis.xrevrange(self._keys.stream, count=1)
        return parse_id(entries[0][0]) if entries else None  # type: ignore[arg-type]

    async def persisted(self) -> StreamId:
        raw = await self._redis.get(self._keys.persisted)
        return (0, 0) if raw is None else parse_id(raw)

    async def _watermark(self) -> StreamId:
        """The persisted watermark; concurrent readers share one GET instead of each polling Redis."""
        if self._reading is None:
            self._reading = asyncio.create_task(self.persisted())
            self._reading.add_done_callback(self._read)
        return await asyncio.shield(self._reading)

    def _read(self, reading: asyncio.Task[StreamId]) -> None:
        self._reading = None
        if not reading.cancelled() and reading.exception() is None:
            self._seen = max(self._seen, reading.result())

    async def lag(self) -> int:
        """Entries acknowledged but not yet in PostgreSQL."""
        return await entries_after(self._redis, self._keys, await self.persisted())

    async def wait(self, seconds: float = WAIT_SECONDS) -> None:
        target = await self.newest()
        if target is None or target <= self._seen:
            return
        deadline = time.monotonic() + seconds
        while await self._watermark() < target:
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the ledger in PostgreSQL is more than {seconds:g} s behind Redis "
                    f"({await self.lag()} batches not yet written); retry shortly"
                )
            await asyncio.sleep(POLL_SECONDS)


async def entries_after(redis: aioredis.Redis, keys: Keys, persisted: StreamId) -> int:
    """How many stream entries are newer than ``persisted`` (the stream is trimmed only approximately,
    so its length says little)."""
    entries = await redis.xrange(keys.stream, min=f"({format_id(persisted)}", count=100_000)
    return len(entries or [])
