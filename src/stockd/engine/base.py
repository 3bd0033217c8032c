"""The narrow interface every engine implements, and what all engines share.

An engine takes commands, decides them in order against the current balances
and makes the result durable before it answers. Idempotency records are
written in the same atomic step as the effects they describe, so after a crash
either both exist or neither does: a retried request is never applied twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from stockd.domain.book import Outcome, StockBook
from stockd.domain.commands import Command
from stockd.domain.errors import IdempotencyKeyReused, RequestInProgress, StockdError
from stockd.domain.model import LevelKey


class WriteConflict(Exception):
    """Another transaction changed what this one decided on; decide again on fresh rows."""


Counters = tuple[int, int, str | None]
"""A level's on hand and reserved as an engine that keeps them apart (Redis) holds them, with the hash
of the newest movement they include: where PostgreSQL names the same one, the two must agree."""

IN_PROGRESS = 0
"""The status stored with an Idempotency-Key whose request is still running (no answer yet)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer to an idempotent request, replayed byte for byte to repeats."""

    status_code: int
    body: bytes

    @property
    def in_progress(self) -> bool:
        return self.status_code == IN_PROGRESS


class IdempotencyClaim(Protocol):
    """A request that carried an Idempotency-Key; the edge that received it knows how to answer."""

    principal: str
    key: str
    fingerprint: str

    def record(self, outcome: Outcome | StockdError) -> StoredResponse:
        """Render the answer that will be stored with the command's effects."""
        ...


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    principal: str
    key: str
    fingerprint: str
    response: StoredResponse
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Submission:
    command: Command
    claim: IdempotencyClaim | None = None


Decision = Outcome | StoredResponse | StockdError
"""What a submission comes to: a new outcome, the stored answer of an earlier request, or a refusal."""


class Engine(Protocol):
    async def execute(
        self, command: Command, claim: IdempotencyClaim | None = None
    ) -> Outcome | StoredResponse:
        """Apply one command durably; raise the ``StockdError`` that refused it.

        With a claim whose key was already used, the stored first answer comes back instead.
        """
        ...

    async def caught_up(self) -> None:
        """Return once the ledger store shows every change acknowledged before this call.

        At once on the SQL engines, whose store is where they decide; the Redis
        engine waits for its persister (or raises ``Unavailable`` if it lags too far).
        """
        ...

    async def counters(self) -> Mapping[LevelKey, Counters] | None:
        """(on hand, reserved) of every level as the engine itself holds them, when it holds them apart
        from the ledger store (Redis); None when the store's levels are the engine's."""
        ...

    async def lag(self) -> int:
        """Batches acknowledged but not yet in the ledger store."""
        ...

    async def close(self) -> None: ...


def decide_batch(
    book: StockBook,
    submissions: Sequence[Submission],
    now: datetime,
    stored: Mapping[tuple[str, str], IdempotencyRecord] | None = None,
) -> tuple[list[Decision], list[IdempotencyRecord]]:
    """Decide every submission in order; a refusal is an answer, not a failure of the batch.

    ``stored`` holds the records, read inside the same transaction, of keys the
    submissions claim: a key that already has one is answered from it, not run again.
    """
    decisions: list[Decision] = []
    records: list[IdempotencyRecord] = []
    # A repeat may share the batch with its first request (its caller went away and the client
    # retried before the batch ran): it is answered from the record the first one made here.
    answered = dict(stored or {})
    for submission in submissions:
        claim = submission.claim
        earlier = None if claim is None else answered.get((claim.principal, claim.key))
        if earlier is not None and claim is not None:
            decisions.append(_replay(earlier, claim))
            continue
        decision: Decision
        try:
            decision = book.decide(submission.command, now)
        except StockdError as refusal:
            decision = refusal
        decisions.append(decision)
        if claim is not None:
            record = IdempotencyRecord(
                claim.principal, claim.key, claim.fingerprint, claim.record(decision), now
            )
            records.append(record)
            answered[(claim.principal, claim.key)] = record
    return decisions, records


def _replay(earlier: IdempotencyRecord, claim: IdempotencyClaim) -> StoredResponse | StockdError:
    if earlier.fingerprint != claim.fingerprint:
        return IdempotencyKeyReused(f"Idempotency-Key {claim.key!r} was already used for a different request")
    if earlier.response.in_progress:
        return RequestInProgress(f"a request with Idempotency-Key {claim.key!r} is still running")
    return earlier.response
