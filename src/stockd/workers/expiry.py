"""The expiry sweeper: gives back the stock of lapsed reservations, in bounded batches.

Correctness never waits for it — confirm and release check expiry themselves —
so it only has to reclaim stock promptly: a lapsed hold is expired within
``interval_seconds`` plus one batch, well inside API.md's two seconds. It also
forgets idempotency keys once they are past their retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from stockd.metrics import EXPIRED_RESERVATIONS, WORKER_FAILURES
from stockd.service import StockService

log = logging.getLogger("stockd.expiry")

SWEEP_INTERVAL_SECONDS = 0.5
SWEEP_BATCH = 500
FORGET_KEYS_EVERY_SECONDS = 600.0


class ExpirySweeper:
    def __init__(
        self,
        service: StockService,
        *,
        interval_seconds: float = SWEEP_INTERVAL_SECONDS,
        batch: int = SWEEP_BATCH,
    ) -> None:
        self._service = service
        self._interval_seconds = interval_seconds
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._keys_forgotten_at = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stockd-expiry-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep_once(self) -> int:
        """Expire up to one batch of lapsed reservations; returns how many."""
        expired = await self._service.expire_lapsed(self._batch)
        EXPIRED_RESERVATIONS.inc(expired)
        if time.monotonic() - self._keys_forgotten_at > FORGET_KEYS_EVERY_SECONDS:
            await self._service.forget_old_idempotency_keys()
            self._keys_forgotten_at = time.monotonic()
        return expired

    async def _run(self) -> None:
        while True:
            try:
                expired = await self.sweep_once()
            except Exception:
                # The database may be briefly unreachable; the next round retries.
                WORKER_FAILURES.labels("expiry").inc()
                log.exception("expiry sweep failed; retrying")
                expired = 0
            if expired < self._batch:  # a full batch means more are waiting: go again at once
                await asyncio.sleep(self._interval_seconds)
