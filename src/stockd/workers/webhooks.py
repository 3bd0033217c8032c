"""The webhook dispatcher: sends the deliveries the engine recorded, retrying with backoff.

Deliveries are rows written in the same transaction as the change they tell
of, so none is lost to a crash; the dispatcher sends each at least once (a
receiver should deduplicate on the alert's ``id`` and ``status``). A
receiver's answer in 2xx is success; anything else, a timeout or a refused
connection is retried on the delivery's schedule (see ``domain/webhooks.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from stockd.domain.clock import Clock
from stockd.domain.webhooks import SIGNATURE_HEADER, Delivery, Webhook, signature
from stockd.metrics import WEBHOOK_ATTEMPTS, WORKER_FAILURES
from stockd.store.sql_store import SqlStore

log = logging.getLogger("stockd.webhooks")

POLL_INTERVAL_SECONDS = 0.5
BATCH = 100
TIMEOUT_SECONDS = 5.0


class WebhookDispatcher:
    def __init__(
        self, store: SqlStore, clock: Clock, *, poll_interval_seconds: float = POLL_INTERVAL_SECONDS
    ):
        self._store = store
        self._clock = clock
        self._poll_interval_seconds = poll_interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stockd-webhook-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def dispatch_once(self) -> int:
        """Send every delivery that is due; returns how many were attempted."""
        due = await self._store.due_deliveries(self._clock.now(), BATCH)
        if due and self._client is None:
            # Made on first use: building one loads the system's CA certificates (tens of ms).
            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        await asyncio.gather(*(self._attempt(delivery, webhook) for delivery, webhook in due))
        return len(due)

    async def _attempt(self, delivery: Delivery, webhook: Webhook) -> None:
        assert self._client is not None
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(webhook.secret, int(time.time()), body),
            "Stockd-Event": delivery.event_type,
            "Stockd-Delivery": str(delivery.id),
        }
        try:
            response = await self._client.post(webhook.url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as error:
            # A URL the client cannot send to (an invalid IDNA host raises a UnicodeError) fails
            # its attempt like a refused connection; left uncaught it would fail the whole batch
            # on every poll and never be recorded.
            outcome = delivery.failed(self._clock.now(), None, f"{type(error).__name__}: {error}")
        else:
            if response.is_success:
                outcome = delivery.succeeded(self._clock.now(), response.status_code)
            else:
                outcome = delivery.failed(
                    self._clock.now(), response.status_code, f"HTTP {response.status_code}"
                )
        WEBHOOK_ATTEMPTS.labels(outcome.status).inc()
        await self._store.record_attempt(outcome)

    async def _run(self) -> None:
        while True:
            try:
                attempted = await self.dispatch_once()
            except Exception:
                WORKER_FAILURES.labels("webhooks").inc()
                log.exception("webhook dispatch failed; retrying")
                attempted = 0
            if attempted < BATCH:
                await asyncio.sleep(self._poll_interval_seconds)
