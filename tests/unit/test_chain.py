"""Movement hash chains: any change to history breaks the chain at the changed movement."""

from __future__ import annotations

import dataclasses

import pytest

from stockd.domain.chain import GENESIS, ChainedMovement, link, verify_level


def chain(count: int) -> list[ChainedMovement]:
    movements, previous = [], GENESIS
    for i in range(count):
        fields = ("A-1", "ber", "reserve", 1, 0, 1, "reservation", f"r-{i}", None, 1_000 + i)
        previous = link(previous, *fields)  # type: ignore[arg-type]
        movements.append(ChainedMovement(str(i + 1), *fields, hash=previous))  # type: ignore[arg-type]
    return movements


def test_an_untouched_chain_verifies() -> None:
    movements = chain(5)
    assert verify_level(movements, movements[-1].hash) is None


@pytest.mark.parametrize(
    ("index", "change"),
    [
        (2, {"quantity": 2}),
        (0, {"reserved_delta": 5}),
        (4, {"reference_id": "someone-else"}),
        (3, {"created_at_ms": 1}),
    ],
)
def test_changing_any_field_of_any_movement_breaks_the_chain_there(index: int, change: dict) -> None:  # type: ignore[type-arg]
    movements = chain(5)
    movements[index] = dataclasses.replace(movements[index], **change)
    broken = verify_level(movements, movements[-1].hash)
    assert broken is not None and broken.movement_id == str(index + 1)


def test_removing_a_movement_breaks_the_chain_at_the_next_one() -> None:
    movements = chain(5)
    del movements[2]
    broken = verify_level(movements, movements[-1].hash)
    assert broken is not None and broken.movement_id == "4"


def test_removing_the_newest_movement_is_caught_by_the_levels_head() -> None:
    movements = chain(5)
    head = movements[-1].hash
    broken = verify_level(movements[:-1], head)
    assert broken is not None and broken.movement_id is None


def test_movements_from_before_chains_existed_start_a_new_chain() -> None:
    movements = [dataclasses.replace(m, hash=None) for m in chain(2)] + chain(3)
    assert verify_level(movements, movements[-1].hash) is None
