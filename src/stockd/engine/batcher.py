"""Group commit: concurrent callers queue while one batch is being written.

No timer: when the engine is idle a request is written alone at once; under
load, everything that arrives while a batch is in flight forms the next batch.
Each caller is answered only after the batch holding its request is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from stockd.domain.errors import StockdError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH = 1000


class Batcher(Generic[T, R]):
    """Feeds queued items to ``write_batch`` in order and hands each caller its own result.

    ``write_batch`` returns one result per item, in order; a ``StockdError``
    result is raised to that item's caller alone. If ``write_batch`` itself
    raises, nothing of the batch took effect. A ``StockdError`` then (the
    engine cannot write: 503) goes to every caller in it. Anything else is
    unexpected and may come from one item alone, so each item is written again
    by itself: only the one that causes it fails.
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[T]], Awaitable[Sequence[R | StockdError]]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._on_batch = on_batch
        # Items and their callers' futures in two parallel lists rather than one list of pairs:
        # a pair per request is one more object to build and to collect.
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._writer: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; await the returned future for its result.

        A plain function returning the future, not a coroutine: awaiting it directly saves
        every caller a coroutine and a frame to resume.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._items:
                items, futures = self._items[: self._max_batch], self._futures[: self._max_batch]
                del self._items[: self._max_batch], self._futures[: self._max_batch]
                await self._write(items, futures)
        finally:
            self._writer = None

    async def _write(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(items))
        try:
            results = await self._write_batch(items)
        except Exception as failure:
            if isinstance(failure, StockdError) or len(items) == 1:
                _fail(futures, failure)
            else:
                for item, future in zip(items, futures, strict=True):
                    await self._write([item], [future])
            return
        except BaseException as failure:
            _fail(futures, failure)
            raise
        for future, result in zip(futures, results, strict=True):
            if future.done():  # the caller went away; its result is durable all the same
                continue
            if isinstance(result, StockdError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Wait for every queued item to be written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)


def _fail(futures: Sequence[asyncio.Future[R]], failure: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(failure)
