"""Claims of Idempotency-Keys for POSTs that are not stock commands, in the store itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from stockd.config import SQLITE_FILE
from stockd.domain.clock import SystemClock
from stockd.engine.base import IdempotencyRecord, StoredResponse
from stockd.service import ABANDONED_CLAIM_AGE
from stockd.store.sql_store import SqlStore
from stockd.store.sqlite import SqliteDatabase


async def test_a_request_whose_claim_was_taken_over_neither_answers_for_nor_frees_the_new_claim(
    tmp_path: Path,
) -> None:
    store = SqlStore(await asyncio.to_thread(SqliteDatabase, tmp_path / SQLITE_FILE))
    try:
        slow_started = SystemClock().now()
        assert await store.claim_idempotency_key("admin", "k-1", "fp", slow_started, slow_started)
        # The slow request runs past the abandoned age; a retry takes the key over and answers.
        retry_started = slow_started + ABANDONED_CLAIM_AGE + timedelta(seconds=1)
        assert await store.claim_idempotency_key(
            "admin", "k-1", "fp", retry_started, retry_started - ABANDONED_CLAIM_AGE
        )
        retry_answer = StoredResponse(201, b"the retry's answer")
        await store.complete_idempotency_record(
            IdempotencyRecord("admin", "k-1", "fp", retry_answer, retry_started)
        )

        # The slow one finishes at last: its answer and its release touch nothing.
        await store.complete_idempotency_record(
            IdempotencyRecord("admin", "k-1", "fp", StoredResponse(201, b"the slow answer"), slow_started)
        )
        await store.release_idempotency_key("admin", "k-1", slow_started)

        stored = await store.find_idempotency_record("admin", "k-1")
        assert stored is not None and stored.response == retry_answer
    finally:
        await store.close()
