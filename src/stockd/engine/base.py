"""The narrow interface every engine implements, and what all engines share.

An engine takes commands, decides them in order against the current balances
and makes the result durable before it answers. Idempotency records are
written in the same atomic step as the effects they describe, so after a crash
either both exist or neither does: a retried request is never applied twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from stockd.domain.book import Outcome, StockBook
from stockd.domain.commands import Command
from stockd.domain.errors import StockdError


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer to an idempotent request, replayed byte for byte to repeats."""

    status_code: int
    body: bytes


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


Decision = Outcome | StockdError


class Engine(Protocol):
    async def execute(self, command: Command, claim: IdempotencyClaim | None = None) -> Outcome:
        """Apply one command durably; raise the ``StockdError`` that refused it."""
        ...

    async def close(self) -> None: ...


def decide_batch(
    book: StockBook, submissions: Sequence[Submission], now: datetime
) -> tuple[list[Decision], list[IdempotencyRecord]]:
    """Decide every submission in order; a refusal is an answer, not a failure of the batch."""
    decisions: list[Decision] = []
    records: list[IdempotencyRecord] = []
    for submission in submissions:
        decision: Decision
        try:
            decision = book.decide(submission.command, now)
        except StockdError as refusal:
            decision = refusal
        decisions.append(decision)
        claim = submission.claim
        if claim is not None:
            records.append(
                IdempotencyRecord(claim.principal, claim.key, claim.fingerprint, claim.record(decision), now)
            )
    return decisions, records
