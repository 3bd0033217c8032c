"""In-process reservation throughput: the engine and its strategy, no HTTP.

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

from stockd.bootstrap import open_database
from stockd.config import Settings
from stockd.domain.clock import SystemClock
from stockd.domain.commands import Receive, RequestedLine, Reserve
from stockd.domain.model import MAX_QUANTITY, Product, Warehouse
from stockd.engine.sql.engine import SqlEngine, Strategy
from stockd.service import new_reservation_id
from stockd.store.sql import Database
from stockd.store.sql_store import SqlStore

WAREHOUSE = "bench"


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    engine: str
    strategy: str
    skus: int
    concurrency: int
    reservations: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_batch: float

    @property
    def reservations_per_second(self) -> float:
        return self.reservations / self.seconds


async def measure(
    *,
    strategy: Strategy,
    database_url: str | None,
    seconds: float,
    concurrency: int,
    skus: int,
) -> ThroughputResult:
    """Run ``concurrency`` callers for ``seconds`` against a fresh data set; report what they got."""
    with tempfile.TemporaryDirectory(prefix="stockd-bench-") as directory:
        settings = Settings(data_dir=Path(directory), database=database_url, strategy=strategy.value)
        database = await open_database(settings)
        batch_sizes: list[int] = []
        engine = SqlEngine(database, SystemClock(), strategy=strategy, on_batch=batch_sizes.append)
        try:
            names = await _seed(database, engine, skus)
            batch_sizes.clear()
            latencies, elapsed = await _run_callers(engine, names, seconds, concurrency)
        finally:
            await engine.close()
            await database.close()
    ordered = sorted(latencies)
    return ThroughputResult(
        engine=database.dialect,
        strategy=strategy.value,
        skus=skus,
        concurrency=concurrency,
        reservations=len(ordered),
        seconds=elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[int(len(ordered) * 0.99)] * 1000,
        mean_batch=statistics.fmean(batch_sizes) if batch_sizes else 0.0,
    )


async def _seed(database: Database, engine: SqlEngine, skus: int) -> list[str]:
    """Fresh products (a new prefix each run, so runs on one PostgreSQL database never collide)."""
    store = SqlStore(database)
    now = SystemClock().now()
    prefix = new_reservation_id()[-8:]
    await store.put_warehouse(Warehouse(WAREHOUSE, "bench", 0.0, 0.0, "UTC", now, now))
    names = [f"B{prefix}-{i}" for i in range(skus)]
    for start in range(0, skus, 500):
        await asyncio.gather(
            *(store.put_product(Product(n, n, now, now)) for n in names[start : start + 500])
        )
        await asyncio.gather(
            *(engine.execute(Receive(n, WAREHOUSE, MAX_QUANTITY)) for n in names[start : start + 500])
        )
    return names


async def _run_callers(
    engine: SqlEngine, names: list[str], seconds: float, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    choose = random.Random(7).choice
    began = time.perf_counter()
    deadline = began + seconds

    async def caller() -> None:
        while (started := time.perf_counter()) < deadline:
            line = RequestedLine(choose(names), 1, WAREHOUSE)
            await engine.execute(Reserve(new_reservation_id(), "bench", (line,)))
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began
