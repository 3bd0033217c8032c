"""In-process reservation throughput: the engine and its strategy, no HTTP.

Every reservation is durable (committed, fsynced) before its caller is
answered: the engine answers only after its transaction commits, and
``Durability`` records what the database itself says about its commits.
Callers reserve one unit of one of ``skus`` products, chosen uniformly,
against stock large enough never to run out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from stockd.bench.engines import UNLIMITED, WAREHOUSE, BenchEngine, seed
from stockd.bench.stats import Batches, Latency, Tick, ticking
from stockd.domain.commands import RequestedLine, Reserve
from stockd.domain.errors import StockdError
from stockd.ids import new_id

LAG_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    engine: str
    strategy: str
    skus: int
    concurrency: int
    reservations: int
    """Reservations acknowledged (durable); only these count towards the rate and the latencies."""
    errors: dict[str, int]
    """Requests refused by error code (with unlimited stock, only ``unavailable`` can happen)."""
    seconds: float
    latency: Latency
    batches: Batches
    durable: bool
    durability: str
    engine_version: str
    ledger_lag: list[int]
    """Batches acknowledged but not yet in the ledger store, sampled twice a second (Redis engine;
    always 0 on the SQL engines): bounded and not growing means the persister keeps up."""

    @property
    def reservations_per_second(self) -> float:
        return self.reservations / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "throughput",
            "engine": self.engine,
            "strategy": self.strategy,
            "reservations_per_second": round(self.reservations_per_second, 1),
            **self.latency.as_json(),
            "reservations": self.reservations,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "skus": self.skus,
            "concurrency": self.concurrency,
            "batches": self.batches.batches,
            "persister_lag_max": max(self.ledger_lag, default=0),
            "persister_lag_end": self.ledger_lag[-1] if self.ledger_lag else 0,
            "mean_batch": round(self.batches.mean_batch, 1),
            "p50_batch": self.batches.p50_batch,
            "max_batch": self.batches.max_batch,
            "durable": self.durable,
            "durability": self.durability,
            "engine_version": self.engine_version,
        }


async def measure(
    bench: BenchEngine,
    *,
    seconds: float,
    concurrency: int,
    skus: int,
    tick: Tick | None = None,
) -> ThroughputResult:
    """Run ``concurrency`` callers for ``seconds`` against fresh products; report what they got."""
    names = await seed(bench, skus, UNLIMITED)
    latencies: list[float] = []
    choose = random.Random(7).choice
    engine = bench.engine

    errors: Counter[str] = Counter()

    async def caller(deadline: float) -> None:
        while (started := time.perf_counter()) < deadline:
            line = RequestedLine(choose(names), 1, WAREHOUSE)
            try:
                await engine.execute(Reserve(new_id(), "bench", (line,)))
            except StockdError as error:  # e.g. optimistic retries giving up: counted, not fatal
                errors[error.code] += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()

    def progress() -> tuple[float, str]:
        elapsed = time.perf_counter() - began
        rate = len(latencies) / elapsed if elapsed else 0.0
        return min(elapsed, seconds), f"{len(latencies):,} reserved, {rate:,.0f}/s"

    ledger_lag: list[int] = []

    async def sample_lag(deadline: float) -> None:
        while time.perf_counter() < deadline:
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            ledger_lag.append(await engine.lag())

    async with ticking(tick, progress):
        await asyncio.gather(
            sample_lag(began + seconds), *(caller(began + seconds) for _ in range(concurrency))
        )
    elapsed = time.perf_counter() - began
    return ThroughputResult(
        engine=bench.name.value,
        strategy=bench.label,
        skus=skus,
        concurrency=concurrency,
        reservations=len(latencies),
        errors=dict(errors),
        seconds=elapsed,
        latency=Latency.of(latencies),
        batches=Batches.of(bench.batch_sizes),
        durable=bench.durability.durable,
        durability=bench.durability.settings,
        engine_version=bench.durability.version,
        ledger_lag=ledger_lag,
    )
