"""The group-commit batcher: each caller gets its own result, and one bad request fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from stockd.domain.errors import InvalidRequest, StockdError, Unavailable
from stockd.engine.batcher import Batcher


class Engine:
    """Doubles what it is given; refuses odd numbers; an unexpected error on 13; unavailable when told."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.unavailable = False

    async def write_batch(self, items: Sequence[int]) -> list[int | StockdError]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.unavailable:
            raise Unavailable("the database cannot be reached")
        if 13 in items:
            raise OverflowError("int too large to store")  # nothing of the batch took effect
        return [InvalidRequest(f"{n} is odd") if n % 2 else 2 * n for n in items]


async def test_concurrent_callers_share_a_batch_and_each_gets_its_own_result() -> None:
    engine = Engine()
    batcher = Batcher(engine.write_batch)

    results = await asyncio.gather(*(batcher.submit(n) for n in (2, 3, 4)), return_exceptions=True)

    assert results[0] == 4 and results[2] == 8
    assert isinstance(results[1], InvalidRequest)
    assert engine.batches == [[2, 3, 4]]


async def test_an_unexpected_failure_of_one_request_fails_that_request_alone() -> None:
    engine = Engine()
    batcher = Batcher(engine.write_batch)

    results = await asyncio.gather(*(batcher.submit(n) for n in (2, 13, 4)), return_exceptions=True)

    assert results[0] == 4 and results[2] == 8
    assert isinstance(results[1], OverflowError)
    assert engine.batches == [[2, 13, 4], [2], [13], [4]]  # the batch failed whole, then each alone


async def test_an_engine_that_cannot_write_fails_the_whole_batch_at_once() -> None:
    engine = Engine()
    engine.unavailable = True
    batcher = Batcher(engine.write_batch)

    results = await asyncio.gather(*(batcher.submit(n) for n in (2, 4)), return_exceptions=True)

    assert all(isinstance(r, Unavailable) for r in results)
    assert engine.batches == [[2, 4]]  # not tried again one by one: it is the engine, not a request


async def test_close_waits_for_everything_queued_in_batches_of_at_most_max_batch() -> None:
    engine = Engine()
    batcher = Batcher(engine.write_batch, max_batch=3)
    futures = [batcher.submit(2 * n) for n in range(7)]

    await batcher.close()

    assert [f.result() for f in futures] == [4 * n for n in range(7)]
    assert engine.batches == [[0, 2, 4], [6, 8, 10], [12]]
