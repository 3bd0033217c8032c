"""Hash chains over each level's movements: tampering with history shows.

Every movement carries ``hash = SHA-256(previous hash of its level | its
fields)``; the level keeps the hash of its newest movement. Changing, removing
or inserting a movement anywhere breaks every hash after it, and verification
names the first broken link. (The database also refuses UPDATE and DELETE on
movements; the chain catches what gets past that, such as edits by someone
with direct write access to the files or tables.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from stockd.domain.model import LevelKey, Movement

GENESIS = ""
"""The 'previous hash' of a level's first movement."""


def link(
    previous: str,
    sku: str,
    warehouse_id: str,
    movement_type: str,
    quantity: int,
    on_hand_delta: int,
    reserved_delta: int,
    reference_type: str | None,
    reference_id: str | None,
    reason: str | None,
    created_at_ms: int,
) -> str:
    """The hash of one movement, chained to the hash before it."""
    fields = (
        previous, sku, warehouse_id, movement_type, str(quantity), str(on_hand_delta), str(reserved_delta),
        reference_type or "", reference_id or "", reason or "", str(created_at_ms),
    )  # fmt: skip
    # The unit separator cannot occur in any field (identifiers and references refuse control characters).
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def chain(movements: Iterable[Movement], heads: dict[LevelKey, str | None], created_at_ms: int) -> list[str]:
    """The hash of each movement of a batch, in order; ``heads`` (each level's newest hash) moves along."""
    hashes = []
    for m in movements:
        key = (m.sku, m.warehouse_id)
        head = link(
            heads.get(key) or GENESIS, m.sku, m.warehouse_id, m.type.value, m.quantity, m.on_hand_delta,
            m.reserved_delta, m.reference_type, m.reference_id, m.reason, created_at_ms,
        )  # fmt: skip
        heads[key] = head
        hashes.append(head)
    return hashes


@dataclass(frozen=True, slots=True)
class BrokenLink:
    sku: str
    warehouse_id: str
    movement_id: str | None
    """The first movement whose hash does not follow; None when the level's head does not match."""
    detail: str


@dataclass(frozen=True, slots=True)
class ChainedMovement:
    id: str
    sku: str
    warehouse_id: str
    type: str
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    reference_type: str | None
    reference_id: str | None
    reason: str | None
    created_at_ms: int
    hash: str | None


def verify_level(movements: Iterable[ChainedMovement], head: str | None) -> BrokenLink | None:
    """Recompute one level's chain, oldest first; ``head`` is the hash the level says is newest."""
    previous = GENESIS
    last: ChainedMovement | None = None
    for m in movements:
        last = m
        if m.hash is None:  # written before chains existed: the chain starts after it
            previous = GENESIS
            continue
        expected = link(
            previous, m.sku, m.warehouse_id, m.type, m.quantity, m.on_hand_delta, m.reserved_delta,
            m.reference_type, m.reference_id, m.reason, m.created_at_ms,
        )  # fmt: skip
        if m.hash != expected:
            return BrokenLink(
                m.sku, m.warehouse_id, m.id, "its hash does not follow from the movement before it"
            )
        previous = m.hash
    if last is not None and last.hash is not None and head != last.hash:
        return BrokenLink(
            last.sku, last.warehouse_id, None, "the level's newest hash is not its newest movement's"
        )
    return None
