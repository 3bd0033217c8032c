"""Percentiles, batch-size summaries and the progress ticker the benchmarks share."""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

Tick = Callable[[float, str], None]
"""Progress: how much is done (in the unit of the bar's total) and a short status text."""

TICK_SECONDS = 0.2


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-request latency in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        return cls(
            p50_ms=percentile(ordered, 0.50) * 1000,
            p90_ms=percentile(ordered, 0.90) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        )

    def as_json(self) -> dict[str, float]:
        return {
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class Batches:
    """How many requests each engine transaction decided (1 each for the per-request strategies)."""

    batches: int
    mean_batch: float
    p50_batch: float
    max_batch: int

    @classmethod
    def of(cls, sizes: Sequence[int]) -> Batches:
        ordered = sorted(sizes)
        return cls(
            batches=len(ordered),
            mean_batch=statistics.fmean(ordered) if ordered else 0.0,
            p50_batch=percentile(ordered, 0.5),
            max_batch=ordered[-1] if ordered else 0,
        )


@asynccontextmanager
async def ticking(tick: Tick | None, read: Callable[[], tuple[float, str]]) -> AsyncIterator[None]:
    """Call ``tick(*read())`` every TICK_SECONDS while the block runs, and once at its end."""
    if tick is None:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            tick(*read())

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        tick(*read())
