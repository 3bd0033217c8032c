"""The rules of ``StockBook``, as a specification.

Every scenario builds a book directly — known skus, warehouses, stock levels and
reservations — decides commands at times given by a ``FakeClock``, and then
checks the outcome, the balances, and every movement with its signed deltas.
Two SKUs (``A``, ``B``) and two warehouses (``ber``, ``muc``) are enough for all
of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from stockd.domain.book import StockBook
from stockd.domain.clock import FakeClock
from stockd.domain.commands import (
    Adjust,
    Command,
    Confirm,
    Expire,
    Receive,
    Release,
    RequestedLine,
    Reserve,
    SetReorderPolicy,
)
from stockd.domain.errors import (
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidRequest,
    InvalidState,
    NotFound,
    OutOfStock,
    ReservationExpired,
    Shortfall,
    StaleQuantity,
    StockdError,
)
from stockd.domain.model import (
    MAX_BALANCE,
    AdjustReason,
    LevelKey,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    Warehouse,
)
from stockd.engine.base import StoredResponse, Submission, decide_batch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = 900
SKUS = ("A", "B")
WAREHOUSE_IDS = ("ber", "muc")

PENDING = ReservationStatus.PENDING
CONFIRMED = ReservationStatus.CONFIRMED
RELEASED = ReservationStatus.RELEASED
EXPIRED = ReservationStatus.EXPIRED

MovementRow = tuple[str, str, str, int, int, int]
"""(type, sku, warehouse_id, quantity, on_hand_delta, reserved_delta) of one movement."""


# -- building a book ------------------------------------------------------------


def warehouse(warehouse_id: str, *, active: bool = True) -> Warehouse:
    return Warehouse(
        warehouse_id=warehouse_id,
        name=warehouse_id,
        latitude=52.5,
        longitude=13.4,
        timezone="Europe/Berlin",
        created_at=T0,
        updated_at=T0,
        active=active,
    )


def reservation(
    *lines: tuple[str, str, int],
    reservation_id: str = "r-1",
    status: ReservationStatus = PENDING,
    ttl_seconds: int = TTL,
) -> Reservation:
    """A reservation made at ``T0``, holding ``(sku, warehouse_id, quantity)`` lines."""
    return Reservation(
        id=reservation_id,
        order_id=f"order-{reservation_id}",
        status=status,
        created_at=T0,
        expires_at=T0 + timedelta(seconds=ttl_seconds),
        lines=tuple(ReservationLine(sku, warehouse_id, quantity) for sku, warehouse_id, quantity in lines),
    )


@dataclass
class World:
    """A book, the clock that feeds it ``now``, and the levels it started from."""

    book: StockBook
    clock: FakeClock
    initial: dict[LevelKey, tuple[int, int]]

    def decide(self, command: Command) -> Reservation | StockLevel:
        return self.book.decide(command, self.clock.now())

    def level(self, sku: str, warehouse_id: str) -> tuple[int, int]:
        """(quantity_on_hand, quantity_reserved) of a level now; (0, 0) if it has none."""
        changed = self.book.changed_levels.get((sku, warehouse_id))
        if changed is not None:
            return (changed.quantity_on_hand, changed.quantity_reserved)
        return self.initial.get((sku, warehouse_id), (0, 0))

    def balances(self) -> dict[LevelKey, tuple[int, int]]:
        return {(sku, wid): self.level(sku, wid) for sku in SKUS for wid in WAREHOUSE_IDS}

    def movements(self) -> list[MovementRow]:
        return [
            (m.type.value, m.sku, m.warehouse_id, m.quantity, m.on_hand_delta, m.reserved_delta)
            for m in self.book.movements
        ]


def world(
    stock: dict[LevelKey, int | tuple[int, int]] | None = None,
    *,
    reservations: tuple[Reservation, ...] = (),
    inactive: tuple[str, ...] = (),
) -> World:
    """A book over skus A, B and warehouses ber, muc.

    ``stock`` maps (sku, warehouse_id) to ``on_hand`` or ``(on_hand, reserved)``;
    a pair not named has no stock level at all.
    """
    initial: dict[LevelKey, tuple[int, int]] = {}
    for key, quantities in (stock or {}).items():
        initial[key] = quantities if isinstance(quantities, tuple) else (quantities, 0)
    levels = [StockLevel(sku, wid, on_hand, reserved) for (sku, wid), (on_hand, reserved) in initial.items()]
    book = StockBook(
        known_skus=SKUS,
        warehouses={wid: warehouse(wid, active=wid not in inactive) for wid in WAREHOUSE_IDS},
        levels=levels,
        reservations=reservations,
    )
    return World(book=book, clock=FakeClock(T0), initial=initial)


def reserve(
    *lines: tuple[str, int, str | None], ttl_seconds: int = TTL, reservation_id: str = "r-1"
) -> Reserve:
    """A Reserve of ``(sku, quantity, warehouse_id or None)`` lines."""
    return Reserve(
        reservation_id=reservation_id,
        order_id=f"order-{reservation_id}",
        lines=tuple(RequestedLine(sku, quantity, warehouse_id) for sku, quantity, warehouse_id in lines),
        ttl_seconds=ttl_seconds,
    )


def assert_refused_without_trace(w: World, command: Command, error: type[StockdError]) -> StockdError:
    """The command is refused with ``error`` and leaves no movement, balance or reservation behind."""
    before = w.balances()
    with pytest.raises(error) as refused:
        w.decide(command)
    assert w.book.movements == []
    assert w.balances() == before
    assert w.book.created_reservations == {}
    assert w.book.updated_reservations == {}
    return refused.value


def lines_of(result: Reservation | StockLevel) -> list[tuple[str, str, int]]:
    assert isinstance(result, Reservation)
    return [(line.sku, line.warehouse_id, line.quantity) for line in result.lines]


# -- reserve ----------------------------------------------------------------------


def test_reserve_holds_stock_in_the_named_warehouse() -> None:
    w = world({("A", "ber"): 10})
    w.clock.advance(30)

    held = w.decide(reserve(("A", 3, "ber")))

    assert isinstance(held, Reservation)
    assert (held.id, held.order_id, held.status) == ("r-1", "order-r-1", PENDING)
    assert held.created_at == T0 + timedelta(seconds=30)
    assert held.expires_at == T0 + timedelta(seconds=30 + TTL)
    assert lines_of(held) == [("A", "ber", 3)]
    assert w.level("A", "ber") == (10, 3)
    assert w.movements() == [("reserve", "A", "ber", 3, 0, +3)]
    movement = w.book.movements[0]
    assert (movement.reference_type, movement.reference_id) == ("reservation", "r-1")
    assert movement.created_at == w.clock.now()
    assert w.book.created_reservations == {"r-1": held}


@pytest.mark.parametrize("ttl_seconds", [1, 900, 86_400])
def test_a_reservation_expires_ttl_seconds_after_it_is_made(ttl_seconds: int) -> None:
    w = world({("A", "ber"): 10})

    held = w.decide(reserve(("A", 1, "ber"), ttl_seconds=ttl_seconds))

    assert isinstance(held, Reservation)
    assert held.expires_at - held.created_at == timedelta(seconds=ttl_seconds)


def test_reserve_may_take_exactly_what_is_available() -> None:
    w = world({("A", "ber"): (10, 4)})

    w.decide(reserve(("A", 6, "ber")))

    assert w.level("A", "ber") == (10, 10)
    assert w.movements() == [("reserve", "A", "ber", 6, 0, +6)]


def test_reserve_of_several_lines_holds_each_with_its_own_movement() -> None:
    w = world({("A", "ber"): 10, ("B", "muc"): 5})

    held = w.decide(reserve(("A", 2, "ber"), ("B", 5, "muc")))

    assert lines_of(held) == [("A", "ber", 2), ("B", "muc", 5)]
    assert w.level("A", "ber") == (10, 2)
    assert w.level("B", "muc") == (5, 5)
    assert w.movements() == [
        ("reserve", "A", "ber", 2, 0, +2),
        ("reserve", "B", "muc", 5, 0, +5),
    ]


def test_out_of_stock_lists_every_shortfall_at_once_and_changes_nothing() -> None:
    w = world({("A", "ber"): 3, ("A", "muc"): (4, 2), ("B", "ber"): 1})

    refused = assert_refused_without_trace(
        w,
        reserve(
            ("A", 5, "ber"),  # 3 there
            ("B", 1, "ber"),  # fine on its own
            ("B", 2, "muc"),  # no level at all
            ("A", 4, None),  # at most 3 anywhere, and ber's 3 are asked for above
        ),
        OutOfStock,
    )

    assert isinstance(refused, OutOfStock)
    assert refused.shortfalls == [
        Shortfall("A", "ber", requested=5, available=3),
        Shortfall("B", "muc", requested=2, available=0),
        Shortfall("A", None, requested=4, available=2),
    ]


@pytest.mark.parametrize(
    ("short_line", "expected_shortfall"),
    [
        pytest.param(("B", 6, "muc"), Shortfall("B", "muc", 6, 5), id="named warehouse short by one"),
        pytest.param(("B", 6, None), Shortfall("B", None, 6, 5), id="no warehouse can fill it"),
        pytest.param(("B", 1, "ber"), Shortfall("B", "ber", 1, 0), id="no level in that warehouse"),
    ],
)
def test_one_short_line_means_nothing_is_held(
    short_line: tuple[str, int, str | None], expected_shortfall: Shortfall
) -> None:
    w = world({("A", "ber"): 10, ("A", "muc"): 10, ("B", "muc"): 5})

    refused = assert_refused_without_trace(
        w, reserve(("A", 2, "ber"), short_line, ("A", 3, None)), OutOfStock
    )

    assert isinstance(refused, OutOfStock)
    assert refused.shortfalls == [expected_shortfall]


def test_the_same_sku_in_two_lines_is_held_twice_in_one_warehouse() -> None:
    w = world({("A", "ber"): 10})

    held = w.decide(reserve(("A", 4, "ber"), ("A", 6, "ber")))

    assert lines_of(held) == [("A", "ber", 4), ("A", "ber", 6)]
    assert w.level("A", "ber") == (10, 10)
    assert w.movements() == [
        ("reserve", "A", "ber", 4, 0, +4),
        ("reserve", "A", "ber", 6, 0, +6),
    ]


def test_the_same_sku_in_two_lines_is_short_by_their_sum() -> None:
    w = world({("A", "ber"): 10})

    refused = assert_refused_without_trace(w, reserve(("A", 6, "ber"), ("A", 6, "ber")), OutOfStock)

    assert isinstance(refused, OutOfStock)
    assert refused.shortfalls == [Shortfall("A", "ber", requested=12, available=10)]


@pytest.mark.parametrize(
    ("stock", "lines", "expected_lines"),
    [
        pytest.param(
            {("A", "ber"): 10, ("A", "muc"): 7},
            [("A", 6, None), ("A", 6, None)],
            [("A", "ber", 10), ("A", "muc", 2)],
            id="open lines of one sku are planned together, split only because no warehouse has 12",
        ),
        pytest.param(
            {("A", "ber"): 10, ("A", "muc"): 4},
            [("A", 7, "ber"), ("A", 4, None)],
            [("A", "ber", 7), ("A", "muc", 4)],
            id="an open line sees what a named line took",
        ),
        pytest.param(
            {("A", "ber"): 10, ("A", "muc"): 4},
            [("A", 4, None), ("A", 7, "ber")],
            [("A", "ber", 7), ("A", "muc", 4)],
            id="an open line sees what a later named line takes (named lines come first)",
        ),
    ],
)
def test_the_same_sku_in_open_and_named_lines_never_holds_more_than_there_is(
    stock: dict[LevelKey, int],
    lines: list[tuple[str, int, str | None]],
    expected_lines: list[tuple[str, str, int]],
) -> None:
    w = world(dict(stock))

    held = w.decide(reserve(*lines))

    assert lines_of(held) == expected_lines
    for sku, wid, quantity in expected_lines:
        assert ("reserve", sku, wid, quantity, 0, quantity) in w.movements()
    assert len(w.movements()) == len(expected_lines)
    for on_hand, reserved in w.balances().values():
        assert 0 <= reserved <= on_hand


def test_an_open_line_is_short_when_named_lines_leave_too_little() -> None:
    w = world({("A", "ber"): 10, ("A", "muc"): 2})

    refused = assert_refused_without_trace(w, reserve(("A", 8, "ber"), ("A", 5, None)), OutOfStock)

    assert isinstance(refused, OutOfStock)
    # 2 left in ber after the named line, 2 in muc: 4 in all for the open line's 5.
    assert refused.shortfalls == [Shortfall("A", None, requested=5, available=4)]


# -- lines without a warehouse ------------------------------------------------------


@pytest.mark.parametrize(
    ("stock", "inactive", "quantity", "expected_warehouse"),
    [
        pytest.param({("A", "ber"): 5, ("A", "muc"): 9}, (), 3, "muc", id="most available wins"),
        pytest.param({("A", "ber"): 9, ("A", "muc"): 5}, (), 3, "ber", id="most available wins, other way"),
        pytest.param({("A", "ber"): 7, ("A", "muc"): 7}, (), 3, "ber", id="a tie goes to the smallest id"),
        pytest.param(
            {("A", "ber"): (10, 8), ("A", "muc"): 5}, (), 3, "muc", id="reserved stock is not available"
        ),
        pytest.param({("A", "muc"): 2}, (), 2, "muc", id="the only level"),
        pytest.param({("A", "ber"): 3, ("A", "muc"): 100}, ("muc",), 3, "ber", id="inactive never chosen"),
    ],
)
def test_an_open_line_goes_to_the_active_warehouse_with_most_available_when_distance_is_unknown(
    stock: dict[LevelKey, int | tuple[int, int]],
    inactive: tuple[str, ...],
    quantity: int,
    expected_warehouse: str,
) -> None:
    w = world(dict(stock), inactive=inactive)
    on_hand, reserved = w.level("A", expected_warehouse)

    held = w.decide(reserve(("A", quantity, None)))

    assert lines_of(held) == [("A", expected_warehouse, quantity)]
    assert w.level("A", expected_warehouse) == (on_hand, reserved + quantity)
    assert w.movements() == [("reserve", "A", expected_warehouse, quantity, 0, +quantity)]


@pytest.mark.parametrize(
    ("stock", "inactive", "expected_available"),
    [
        pytest.param({("A", "ber"): 2, ("A", "muc"): 100}, ("muc",), 2, id="only an inactive one could"),
        pytest.param({("A", "muc"): 100}, ("muc",), 0, id="all stock is in an inactive warehouse"),
        pytest.param({("A", "ber"): 1, ("A", "muc"): 1}, (), 2, id="not even all warehouses together"),
        pytest.param({}, (), 0, id="no level anywhere"),
    ],
)
def test_an_open_line_that_no_active_warehouse_can_fill_is_short(
    stock: dict[LevelKey, int], inactive: tuple[str, ...], expected_available: int
) -> None:
    w = world(dict(stock), inactive=inactive)

    refused = assert_refused_without_trace(w, reserve(("A", 3, None)), OutOfStock)

    assert isinstance(refused, OutOfStock)
    assert refused.shortfalls == [Shortfall("A", None, requested=3, available=expected_available)]


def test_an_open_line_no_single_warehouse_can_fill_is_split_across_them() -> None:
    w = world({("A", "ber"): 2, ("A", "muc"): 2})

    held = w.decide(reserve(("A", 3, None)))

    assert sorted(lines_of(held)) == [("A", "ber", 2), ("A", "muc", 1)]
    assert sorted(w.movements()) == [("reserve", "A", "ber", 2, 0, 2), ("reserve", "A", "muc", 1, 0, 1)]


def test_a_line_naming_an_inactive_warehouse_is_short() -> None:
    w = world({("A", "muc"): 100}, inactive=("muc",))

    refused = assert_refused_without_trace(w, reserve(("A", 1, "muc")), OutOfStock)

    assert isinstance(refused, OutOfStock)
    assert refused.shortfalls == [Shortfall("A", "muc", requested=1, available=0)]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(reserve(("Z", 1, "ber")), id="unknown sku in a named line"),
        pytest.param(reserve(("A", 1, "ber"), ("Z", 1, None)), id="unknown sku in an open line"),
        pytest.param(reserve(("A", 1, "ber"), ("A", 1, "ham")), id="unknown warehouse"),
    ],
)
def test_reserve_naming_something_unknown_is_not_found(command: Reserve) -> None:
    w = world({("A", "ber"): 10})

    assert_refused_without_trace(w, command, NotFound)


# -- confirm, release, expire ---------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_later", "command", "expected_status", "expected_movements", "expected_level"),
    [
        pytest.param(10, Confirm("r-1"), CONFIRMED, [("ship", "A", "ber", 3, -3, -3)], (7, 0), id="confirm"),
        pytest.param(
            10, Release("r-1"), RELEASED, [("release", "A", "ber", 3, 0, -3)], (10, 0), id="release"
        ),
        pytest.param(TTL - 1, Expire("r-1"), PENDING, [], (10, 3), id="expire before the hold lapses"),
        pytest.param(
            TTL, Expire("r-1"), EXPIRED, [("expire", "A", "ber", 3, 0, -3)], (10, 0), id="expire as it lapses"
        ),
        pytest.param(
            TTL + 60, Expire("r-1"), EXPIRED, [("expire", "A", "ber", 3, 0, -3)], (10, 0), id="expire after"
        ),
        pytest.param(
            TTL + 60,
            Release("r-1"),
            EXPIRED,
            [("expire", "A", "ber", 3, 0, -3)],
            (10, 0),
            id="release after the hold lapsed records an expiry",
        ),
    ],
)
def test_a_pending_reservation_moves_to_its_final_status(
    seconds_later: int,
    command: Confirm | Release | Expire,
    expected_status: ReservationStatus,
    expected_movements: list[MovementRow],
    expected_level: tuple[int, int],
) -> None:
    w = world({("A", "ber"): (10, 3)}, reservations=(reservation(("A", "ber", 3)),))
    w.clock.advance(seconds_later)

    result = w.decide(command)

    assert isinstance(result, Reservation)
    assert result.status is expected_status
    assert w.level("A", "ber") == expected_level
    assert w.movements() == expected_movements
    for movement in w.book.movements:
        assert (movement.reference_type, movement.reference_id) == ("reservation", "r-1")
        assert movement.created_at == w.clock.now()
    if expected_movements:
        assert result.updated_at == w.clock.now()
        assert w.book.updated_reservations == {"r-1": result}
    else:
        assert w.book.updated_reservations == {}


def test_finishing_a_reservation_undoes_every_line() -> None:
    held = reservation(("A", "ber", 2), ("B", "muc", 5), ("A", "ber", 1))
    w = world({("A", "ber"): (10, 3), ("B", "muc"): (5, 5)}, reservations=(held,))

    w.decide(Confirm("r-1"))

    assert w.level("A", "ber") == (7, 0)
    assert w.level("B", "muc") == (0, 0)
    assert w.movements() == [
        ("ship", "A", "ber", 2, -2, -2),
        ("ship", "B", "muc", 5, -5, -5),
        ("ship", "A", "ber", 1, -1, -1),
    ]


@pytest.mark.parametrize("seconds_later", [TTL, TTL + 1, 10 * TTL])
def test_confirm_after_expiry_is_rejected_even_before_any_sweep(seconds_later: int) -> None:
    w = world({("A", "ber"): (10, 3)}, reservations=(reservation(("A", "ber", 3)),))
    w.clock.advance(seconds_later)

    assert_refused_without_trace(w, Confirm("r-1"), ReservationExpired)


def test_confirm_after_expiry_is_rejected() -> None:
    w = world({("A", "ber"): (10, 3)}, reservations=(reservation(("A", "ber", 3)),))
    w.clock.advance(TTL + 1)
    w.decide(Expire("r-1"))
    w.clock.advance(1)

    with pytest.raises(ReservationExpired):
        w.decide(Confirm("r-1"))

    assert w.movements() == [("expire", "A", "ber", 3, 0, -3)]
    assert w.level("A", "ber") == (10, 0)


def test_a_reservation_made_in_the_book_can_be_confirmed_in_the_same_book() -> None:
    w = world({("A", "ber"): 10})
    w.decide(reserve(("A", 4, None)))
    w.clock.advance(5)

    confirmed = w.decide(Confirm("r-1"))

    assert isinstance(confirmed, Reservation)
    assert confirmed.status is CONFIRMED
    assert w.book.created_reservations == {"r-1": confirmed}
    assert w.book.updated_reservations == {}
    assert w.level("A", "ber") == (6, 0)
    assert w.movements() == [("reserve", "A", "ber", 4, 0, +4), ("ship", "A", "ber", 4, -4, -4)]


@pytest.mark.parametrize(
    ("steps", "expected_status", "expected_movements", "expected_level"),
    [
        pytest.param(
            [(10, Confirm("r-1")), (10, Confirm("r-1"))],
            CONFIRMED,
            [("ship", "A", "ber", 3, -3, -3)],
            (7, 0),
            id="confirm twice",
        ),
        pytest.param(
            [(10, Confirm("r-1")), (TTL, Confirm("r-1"))],
            CONFIRMED,
            [("ship", "A", "ber", 3, -3, -3)],
            (7, 0),
            id="confirm again after the old expiry time",
        ),
        pytest.param(
            [(10, Release("r-1")), (10, Release("r-1"))],
            RELEASED,
            [("release", "A", "ber", 3, 0, -3)],
            (10, 0),
            id="release twice",
        ),
        pytest.param(
            [(TTL + 1, Expire("r-1")), (10, Release("r-1"))],
            EXPIRED,
            [("expire", "A", "ber", 3, 0, -3)],
            (10, 0),
            id="release an expired one",
        ),
        pytest.param(
            [(TTL + 1, Expire("r-1")), (10, Expire("r-1"))],
            EXPIRED,
            [("expire", "A", "ber", 3, 0, -3)],
            (10, 0),
            id="expire twice",
        ),
        pytest.param(
            [(10, Release("r-1")), (TTL, Expire("r-1"))],
            RELEASED,
            [("release", "A", "ber", 3, 0, -3)],
            (10, 0),
            id="expire a released one",
        ),
        pytest.param(
            [(10, Confirm("r-1")), (TTL, Expire("r-1"))],
            CONFIRMED,
            [("ship", "A", "ber", 3, -3, -3)],
            (7, 0),
            id="expire a confirmed one",
        ),
        pytest.param(
            [(10, Expire("r-1")), (10, Expire("r-1"))],
            PENDING,
            [],
            (10, 3),
            id="expire before the hold lapses, twice",
        ),
    ],
)
def test_repeating_a_transition_returns_the_same_reservation_and_moves_nothing_more(
    steps: list[tuple[int, Confirm | Release | Expire]],
    expected_status: ReservationStatus,
    expected_movements: list[MovementRow],
    expected_level: tuple[int, int],
) -> None:
    w = world({("A", "ber"): (10, 3)}, reservations=(reservation(("A", "ber", 3)),))

    results = []
    for seconds_later, command in steps:
        w.clock.advance(seconds_later)
        results.append(w.decide(command))

    assert isinstance(results[-1], Reservation)
    assert results[-1].status is expected_status
    assert results[-1] == results[-2]
    assert w.movements() == expected_movements
    assert w.level("A", "ber") == expected_level


@pytest.mark.parametrize(
    ("status", "command", "error"),
    [
        pytest.param(RELEASED, Confirm("r-1"), InvalidState, id="confirm a released one"),
        pytest.param(CONFIRMED, Release("r-1"), InvalidState, id="release a confirmed one"),
        pytest.param(EXPIRED, Confirm("r-1"), ReservationExpired, id="confirm an expired one"),
    ],
)
def test_an_invalid_transition_is_refused_and_changes_nothing(
    status: ReservationStatus, command: Confirm | Release, error: type[StockdError]
) -> None:
    # A finished reservation holds nothing, so the level shows no reservation.
    w = world({("A", "ber"): 10}, reservations=(reservation(("A", "ber", 3), status=status),))
    w.clock.advance(10)

    assert_refused_without_trace(w, command, error)


def test_a_released_reservation_stays_released_after_its_expiry_time() -> None:
    w = world({("A", "ber"): 10}, reservations=(reservation(("A", "ber", 3), status=RELEASED),))
    w.clock.advance(TTL + 1)

    assert_refused_without_trace(w, Confirm("r-1"), InvalidState)


@pytest.mark.parametrize("command", [Confirm("nope"), Release("nope"), Expire("nope")])
def test_a_command_on_an_unknown_reservation_is_not_found(command: Confirm | Release | Expire) -> None:
    w = world({("A", "ber"): (10, 3)}, reservations=(reservation(("A", "ber", 3)),))

    assert_refused_without_trace(w, command, NotFound)


# -- receive and adjust -----------------------------------------------------------------


def test_receive_creates_a_level_on_its_first_movement() -> None:
    w = world()

    level = w.decide(Receive("A", "muc", 5, reference_id="po-7", reference_type="purchase_order"))

    assert isinstance(level, StockLevel)
    assert (level.sku, level.warehouse_id, level.quantity_on_hand, level.quantity_reserved) == (
        "A",
        "muc",
        5,
        0,
    )
    assert w.movements() == [("receive", "A", "muc", 5, +5, 0)]
    movement = w.book.movements[0]
    assert (movement.reference_type, movement.reference_id) == ("purchase_order", "po-7")
    assert set(w.book.changed_levels) == {("A", "muc")}


def test_receive_adds_to_what_is_on_hand_and_leaves_reservations_alone() -> None:
    w = world({("A", "ber"): (10, 4)})

    level = w.decide(Receive("A", "ber", 7))

    assert isinstance(level, StockLevel)
    assert (level.quantity_on_hand, level.quantity_reserved, level.quantity_available) == (17, 4, 13)
    assert w.movements() == [("receive", "A", "ber", 7, +7, 0)]
    assert (w.book.movements[0].reference_type, w.book.movements[0].reference_id) == (None, None)


def test_a_level_returned_by_receive_is_a_snapshot() -> None:
    w = world({("A", "ber"): 10})

    first = w.decide(Receive("A", "ber", 1))
    w.decide(Receive("A", "ber", 1))

    assert isinstance(first, StockLevel)
    assert first.quantity_on_hand == 11
    assert w.level("A", "ber") == (12, 0)


@pytest.mark.parametrize(
    ("start", "delta", "expected_on_hand", "expected_level"),
    [
        pytest.param((10, 0), -3, None, (7, 0), id="remove some"),
        pytest.param((10, 0), +4, None, (14, 0), id="add some"),
        pytest.param((10, 4), -6, None, (4, 4), id="remove exactly what is available"),
        pytest.param((10, 0), -10, None, (0, 0), id="remove everything"),
        pytest.param((10, 4), -3, 10, (7, 4), id="compare-and-set that matches"),
        pytest.param((0, 0), +2, 0, (2, 0), id="compare-and-set on a level that has none yet"),
    ],
)
def test_adjust_changes_on_hand_by_its_signed_delta(
    start: tuple[int, int], delta: int, expected_on_hand: int | None, expected_level: tuple[int, int]
) -> None:
    w = world({("A", "ber"): start} if start != (0, 0) else {})

    level = w.decide(
        Adjust("A", "ber", delta, AdjustReason.COUNT_CORRECTION, expected_on_hand=expected_on_hand)
    )

    assert isinstance(level, StockLevel)
    assert (level.quantity_on_hand, level.quantity_reserved) == expected_level
    assert w.level("A", "ber") == expected_level
    assert w.movements() == [("adjust", "A", "ber", abs(delta), delta, 0)]
    movement = w.book.movements[0]
    assert movement.reason == "count_correction"
    assert (movement.reference_type, movement.reference_id) == (None, None)


@pytest.mark.parametrize("reason", list(AdjustReason))
def test_adjust_records_its_reason_and_reference(reason: AdjustReason) -> None:
    w = world({("A", "ber"): 10})

    w.decide(Adjust("A", "ber", -1, reason, reference_id="count-12"))

    movement = w.book.movements[0]
    assert movement.reason == reason.value
    assert (movement.reference_type, movement.reference_id) == ("adjustment", "count-12")


@pytest.mark.parametrize(
    ("start", "command", "error"),
    [
        pytest.param(
            (10, 0), Adjust("A", "ber", -3, AdjustReason.LOST, expected_on_hand=9), StaleQuantity, id="stale"
        ),
        pytest.param(
            (10, 0),
            Adjust("A", "ber", +3, AdjustReason.FOUND, expected_on_hand=11),
            StaleQuantity,
            id="stale up",
        ),
        pytest.param(
            (10, 4), Adjust("A", "ber", -7, AdjustReason.DAMAGED), InsufficientStock, id="beyond available"
        ),
        pytest.param(
            (0, 0), Adjust("A", "muc", -1, AdjustReason.LOST), InsufficientStock, id="nothing there"
        ),
        pytest.param((10, 0), Adjust("A", "ber", 0, AdjustReason.LOST), InvalidRequest, id="zero delta"),
        pytest.param((10, 0), Adjust("Z", "ber", 1, AdjustReason.FOUND), NotFound, id="adjust unknown sku"),
        pytest.param(
            (10, 0), Adjust("A", "ham", 1, AdjustReason.FOUND), NotFound, id="adjust unknown warehouse"
        ),
        pytest.param((10, 0), Receive("Z", "ber", 1), NotFound, id="receive unknown sku"),
        pytest.param((10, 0), Receive("A", "ham", 1), NotFound, id="receive unknown warehouse"),
        pytest.param((10, 0), SetReorderPolicy("Z", "ber", 1, 1), NotFound, id="policy for unknown sku"),
        pytest.param(
            (10, 0), SetReorderPolicy("A", "ham", 1, 1), NotFound, id="policy for unknown warehouse"
        ),
        pytest.param(
            (MAX_BALANCE - 1, 0),
            Receive("A", "ber", 2),
            InvalidRequest,
            id="receive past the largest balance",
        ),
        pytest.param(
            (MAX_BALANCE - 1, 0),
            Adjust("A", "ber", 2, AdjustReason.FOUND),
            InvalidRequest,
            id="adjust past the largest balance",
        ),
        pytest.param(
            (10, 0),
            SetReorderPolicy("A", "ber", 5, MAX_BALANCE - 4),
            InvalidRequest,
            id="a policy that would suggest ordering more than a balance holds",
        ),
    ],
)
def test_a_refused_stock_command_changes_nothing(
    start: tuple[int, int], command: Command, error: type[StockdError]
) -> None:
    w = world({("A", "ber"): start})

    assert_refused_without_trace(w, command, error)
    assert w.book.changed_levels == {}


# -- reorder policy --------------------------------------------------------------------


def test_a_reorder_policy_is_set_on_the_level_without_a_movement() -> None:
    w = world({("A", "ber"): (10, 4)})

    level = w.decide(SetReorderPolicy("A", "ber", reorder_point=5, reorder_quantity=20))

    assert isinstance(level, StockLevel)
    assert (level.reorder_point, level.reorder_quantity) == (5, 20)
    assert (level.quantity_on_hand, level.quantity_reserved) == (10, 4)
    assert w.movements() == []
    changed = w.book.changed_levels[("A", "ber")]
    assert (changed.reorder_point, changed.reorder_quantity) == (5, 20)


def test_a_reorder_policy_creates_an_empty_level_that_keeps_it() -> None:
    w = world()

    w.decide(SetReorderPolicy("B", "muc", reorder_point=0, reorder_quantity=1))
    level = w.decide(Receive("B", "muc", 3))

    assert isinstance(level, StockLevel)
    assert (level.quantity_on_hand, level.reorder_point, level.reorder_quantity) == (3, 0, 1)
    assert w.movements() == [("receive", "B", "muc", 3, +3, 0)]


def test_a_new_reorder_policy_replaces_the_old_one() -> None:
    w = world({("A", "ber"): 10})

    w.decide(SetReorderPolicy("A", "ber", reorder_point=5, reorder_quantity=20))
    level = w.decide(SetReorderPolicy("A", "ber", reorder_point=2, reorder_quantity=8))

    assert isinstance(level, StockLevel)
    assert (level.reorder_point, level.reorder_quantity) == (2, 8)


# -- a batch's Idempotency-Keys ------------------------------------------------------------


class Claim:
    """An Idempotency-Key as the HTTP edge makes one: it renders the answer to store."""

    def __init__(self, key: str, fingerprint: str = "the same request") -> None:
        self.principal, self.key, self.fingerprint = "admin", key, fingerprint

    def record(self, outcome: object) -> StoredResponse:
        return StoredResponse(201, repr(outcome).encode())


def test_a_repeat_in_the_same_batch_as_its_first_request_is_answered_from_it_not_run_again() -> None:
    w = world({("A", "ber"): 10})
    first, repeat = Claim("k-1"), Claim("k-1")

    decisions, records = decide_batch(
        w.book,
        [
            Submission(reserve(("A", 2, "ber")), first),
            Submission(reserve(("A", 2, "ber"), reservation_id="r-2"), repeat),
        ],
        w.clock.now(),
        {},
    )

    assert isinstance(decisions[0], Reservation)
    assert decisions[1] == records[0].response  # the first answer, byte for byte
    assert len(records) == 1
    assert w.level("A", "ber") == (10, 2)


def test_a_key_reused_for_another_request_in_the_same_batch_is_refused() -> None:
    w = world({("A", "ber"): 10})

    decisions, records = decide_batch(
        w.book,
        [
            Submission(reserve(("A", 2, "ber")), Claim("k-1")),
            Submission(reserve(("A", 3, "ber"), reservation_id="r-2"), Claim("k-1", "another request")),
        ],
        w.clock.now(),
        {},
    )

    assert isinstance(decisions[1], IdempotencyKeyReused)
    assert len(records) == 1
    assert w.level("A", "ber") == (10, 2)
