"""The flash sale, in process: many buyers, few units, one hot SKU; then prove nothing was oversold.

``buyers`` buyers each try once to reserve one unit of a product that has
``units`` in stock, at most ``concurrency`` at a time, through the engine the
service uses (no HTTP). A successful ``Reserve`` is what the API answers with
201; an ``OutOfStock`` refusal is its 409. Buyers name no warehouse, as a shop
front would not: the fulfillment planner places every line, as over HTTP.

Before the sale, as many concurrent reservations of another product warm the
engine up (at most 100), so the sell-out time is not the cold start's.

Afterwards the outcome is checked against the database, not against the
counters: the level's ``quantity_reserved`` must equal ``units`` (or
``buyers``, if fewer), exactly as many reservations must have been
acknowledged, and every balance must equal the sum of its movements
(``SqlStore.reconcile``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from stockd.bench.engines import UNLIMITED, BenchEngine, seed
from stockd.bench.stats import Batches, Latency, Tick, ticking
from stockd.domain.commands import RequestedLine, Reserve
from stockd.domain.errors import OutOfStock, StockdError
from stockd.ids import new_id

WARM_UP_REQUESTS = 100


@dataclass(frozen=True, slots=True)
class FlashSaleResult:
    engine: str
    strategy: str
    units: int
    buyers: int
    concurrency: int
    acknowledged: int
    """Reservations the engine answered with success (201 over HTTP)."""
    refused: int
    """``OutOfStock`` answers (409 over HTTP)."""
    errors: dict[str, int]
    """Any other answer, by error code; a healthy sale has none."""
    on_hand: int
    reserved: int
    """``quantity_reserved`` of the level, read back from the database after the sale."""
    ledger_mismatches: int
    levels_checked: int
    sell_out_seconds: float | None
    """From the first request to the acknowledgement of the last unit (None if it never sold out)."""
    seconds: float
    """From the first request to the last buyer's answer."""
    latency: Latency
    batches: Batches
    durable: bool
    durability: str
    engine_version: str

    @property
    def expected(self) -> int:
        return min(self.units, self.buyers)

    @property
    def oversold(self) -> int:
        """Units promised beyond the stock, by the database's count or by the acknowledgements."""
        return max(0, max(self.reserved, self.acknowledged) - self.units)

    @property
    def ok(self) -> bool:
        return (
            self.reserved == self.expected
            and self.acknowledged == self.reserved
            and self.oversold == 0
            and self.on_hand == self.units
            and self.ledger_mismatches == 0
        )

    @property
    def reservations_per_second(self) -> float:
        """Units sold per second while the stock lasted."""
        window = self.sell_out_seconds or self.seconds
        return self.acknowledged / window if window else 0.0

    @property
    def requests_per_second(self) -> float:
        """Buyers answered (sold or refused) per second, over the whole sale."""
        answered = self.acknowledged + self.refused + sum(self.errors.values())
        return answered / self.seconds if self.seconds else 0.0

    def problems(self) -> list[str]:
        """What is wrong with the outcome, in words (empty when ``ok``)."""
        found = []
        if self.reserved != self.expected:
            found.append(f"reserved {self.reserved} units, expected {self.expected}")
        if self.acknowledged != self.reserved:
            found.append(f"{self.acknowledged} reservations acknowledged but {self.reserved} units reserved")
        if self.oversold:
            found.append(f"oversold {self.oversold} units")
        if self.on_hand != self.units:
            found.append(f"on hand {self.on_hand}, expected {self.units}")
        if self.ledger_mismatches:
            found.append(f"{self.ledger_mismatches} levels disagree with their ledger")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "flash-sale",
            "engine": self.engine,
            "strategy": self.strategy,
            "reservations_per_second": round(self.reservations_per_second, 1),
            **self.latency.as_json(),
            "units": self.units,
            "buyers": self.buyers,
            "reserved": self.reserved,
            "oversold": self.oversold,
            "ok": self.ok,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "errors": self.errors,
            "on_hand": self.on_hand,
            "ledger_mismatches": self.ledger_mismatches,
            "levels_checked": self.levels_checked,
            "sell_out_seconds": None if self.sell_out_seconds is None else round(self.sell_out_seconds, 3),
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "concurrency": self.concurrency,
            "batches": self.batches.batches,
            "mean_batch": round(self.batches.mean_batch, 1),
            "max_batch": self.batches.max_batch,
            "durable": self.durable,
            "durability": self.durability,
            "engine_version": self.engine_version,
        }


async def run_sale(
    bench: BenchEngine,
    *,
    units: int,
    buyers: int,
    concurrency: int,
    tick: Tick | None = None,
) -> FlashSaleResult:
    """Sell ``units`` to ``buyers`` buyers, ``concurrency`` at a time; count and verify the outcome."""
    (sku,) = await seed(bench, 1, units, prefix="FLASH")
    engine = bench.engine
    await _warm_up(bench, min(concurrency, WARM_UP_REQUESTS))
    next_buyer = itertools.count()
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    sold_out_at: float | None = None

    async def buyer() -> None:
        nonlocal sold_out_at
        while (number := next(next_buyer)) < buyers:
            line = RequestedLine(sku, 1)
            started = time.perf_counter()
            try:
                await engine.execute(Reserve(new_id(), f"flash-{number}", (line,)))
            except OutOfStock:
                answers["refused"] += 1
            except StockdError as error:
                answers[error.code] += 1
            except Exception as error:  # a bug, but the sale goes on and the report names it
                answers[type(error).__name__] += 1
            else:
                answers["acknowledged"] += 1
                if answers["acknowledged"] == units:
                    sold_out_at = time.perf_counter()
            latencies.append(time.perf_counter() - started)

    def progress() -> tuple[float, str]:
        return len(latencies), f"{answers['acknowledged']:,}/{units:,} sold, {answers['refused']:,} refused"

    began = time.perf_counter()
    async with ticking(tick, progress):
        await asyncio.gather(*(buyer() for _ in range(min(concurrency, buyers))))
    elapsed = time.perf_counter() - began

    await bench.settled()  # the Redis engine: PostgreSQL has caught up, so the counters can be checked
    levels = await bench.store.levels_of_sku(sku)
    reconciliation = await bench.store.reconcile(await bench.engine.counters())
    acknowledged, refused = answers.pop("acknowledged", 0), answers.pop("refused", 0)
    return FlashSaleResult(
        engine=bench.name.value,
        strategy=bench.label,
        units=units,
        buyers=buyers,
        concurrency=concurrency,
        acknowledged=acknowledged,
        refused=refused,
        errors=dict(answers),
        on_hand=sum(level.quantity_on_hand for level in levels),
        reserved=sum(level.quantity_reserved for level in levels),
        ledger_mismatches=len(reconciliation.mismatches),
        levels_checked=reconciliation.levels_checked,
        sell_out_seconds=None if sold_out_at is None else sold_out_at - began,
        seconds=elapsed,
        latency=Latency.of(latencies),
        batches=Batches.of(bench.batch_sizes),
        durable=bench.durability.durable,
        durability=bench.durability.settings,
        engine_version=bench.durability.version,
    )


async def _warm_up(bench: BenchEngine, requests: int) -> None:
    """Concurrent reservations of another product first, so the sale does not time the cold start
    (connections opened, statements prepared, pages read) instead of selling."""
    (other,) = await seed(bench, 1, UNLIMITED, prefix="WARM")
    line = RequestedLine(other, 1)
    await asyncio.gather(
        *(bench.engine.execute(Reserve(new_id(), "warm-up", (line,))) for _ in range(requests)),
        return_exceptions=True,
    )
    bench.batch_sizes.clear()
