"""In-process reservation throughput: the engine and its batcher, no HTTP.

Every reservation is durable (committed, fsynced) before its caller is
answered. Callers reserve one unit of one of ``skus`` products, chosen
uniformly, against stock large enough never to run out.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stockd.domain.clock import SystemClock
from stockd.domain.commands import Receive, RequestedLine, Reserve
from stockd.domain.model import MAX_QUANTITY, Product, Warehouse
from stockd.engine.batcher import DEFAULT_MAX_BATCH
from stockd.engine.sql.engine import SqlEngine
from stockd.service import new_reservation_id
from stockd.store.sql_store import SqlStore
from stockd.store.sqlite import SqliteDatabase

WAREHOUSE = "bench"


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    engine: str
    strategy: str
    reservations: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    batches: int

    @property
    def reservations_per_second(self) -> float:
        return self.reservations / self.seconds


async def measure_sqlite(
    *, seconds: float, concurrency: int, skus: int, max_batch: int = DEFAULT_MAX_BATCH
) -> ThroughputResult:
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="stockd-bench-") as directory:
        database = await asyncio.to_thread(SqliteDatabase, Path(directory) / "bench.db")
        batch_sizes: list[int] = []
        engine = SqlEngine(database, clock, max_batch=max_batch, on_batch=batch_sizes.append)
        try:
            names = await _seed(database, engine, skus)
            batch_sizes.clear()
            latencies = await _run_callers(engine, names, seconds, concurrency)
        finally:
            await engine.close()
            await database.close()
    elapsed = latencies.pop()  # the last entry is the wall time of the run
    ordered = sorted(latencies)
    return ThroughputResult(
        engine="sqlite",
        strategy="batched" if max_batch > 1 else "one transaction each",
        reservations=len(ordered),
        seconds=elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[int(len(ordered) * 0.99)] * 1000,
        mean_batch=statistics.fmean(batch_sizes) if batch_sizes else 0.0,
        batches=len(batch_sizes),
    )


async def _seed(database: SqliteDatabase, engine: SqlEngine, skus: int) -> list[str]:
    store = SqlStore(database)
    now = SystemClock().now()
    await store.put_warehouse(Warehouse(WAREHOUSE, "bench", 0.0, 0.0, "UTC", now, now))
    names = [f"SKU-{i}" for i in range(skus)]
    for name in names:
        await store.put_product(Product(name, name, now, now))
    await asyncio.gather(*(engine.execute(Receive(name, WAREHOUSE, MAX_QUANTITY)) for name in names))
    return names


async def _run_callers(engine: SqlEngine, names: list[str], seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    choose = random.Random(7).choice

    async def caller() -> None:
        while (started := time.perf_counter()) < deadline:
            line = RequestedLine(choose(names), 1, WAREHOUSE)
            await engine.execute(Reserve(new_reservation_id(), "bench", (line,)))
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    latencies.append(time.perf_counter() - began)
    return latencies
