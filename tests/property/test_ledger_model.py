"""The ledger explains every balance, whatever order the commands come in.

A Hypothesis state machine drives one ``StockBook`` through random receives,
adjustments, reservations (one or several lines, named or open warehouses),
confirmations, releases, expiries and clock advances over two SKUs in two
warehouses. Next to it runs a reference model in plain dicts — balances,
reservation statuses, expiry times — that predicts each command's outcome,
including which error refuses it. After every step:

- per level, ``quantity_on_hand == Σ on_hand_delta`` and
  ``quantity_reserved == Σ reserved_delta`` over its movements, and
  ``0 ≤ quantity_reserved ≤ quantity_on_hand``;
- the book's balances and reservation statuses are the model's;
- a refused command appended no movement and changed no balance or reservation;
- a reservation reaches at most one final status, and never leaves it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

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
)
from stockd.domain.errors import (
    InsufficientStock,
    InvalidState,
    OutOfStock,
    ReservationExpired,
    Shortfall,
    StaleQuantity,
    StockdError,
)
from stockd.domain.model import (
    AdjustReason,
    LevelKey,
    MovementType,
    Reservation,
    ReservationStatus,
    StockLevel,
    Warehouse,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SKUS = ("A", "B")
WAREHOUSE_IDS = ("ber", "muc")
KEYS: tuple[LevelKey, ...] = tuple((sku, wid) for sku in SKUS for wid in WAREHOUSE_IDS)

PENDING = ReservationStatus.PENDING
FINAL = frozenset({ReservationStatus.CONFIRMED, ReservationStatus.RELEASED, ReservationStatus.EXPIRED})
FINISHING_MOVEMENTS = frozenset({MovementType.SHIP, MovementType.RELEASE, MovementType.EXPIRE})

skus = st.sampled_from(SKUS)
warehouse_ids = st.sampled_from(WAREHOUSE_IDS)
# Most steps happen at once; some after a while, long enough for any hold to lapse.
waits = st.one_of(st.just(0), st.integers(1, 60), st.integers(300, 900))
requested_lines = st.tuples(skus, st.integers(1, 6), st.one_of(st.none(), warehouse_ids))

Balances = dict[LevelKey, tuple[int, int]]


class LedgerMachine(RuleBasedStateMachine):
    """One StockBook, the clock that feeds it, and a reference model of what it should hold."""

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.book = StockBook(known_skus=SKUS, warehouses={}, levels=[])
        self.active: dict[str, bool] = {}
        # The reference model.
        self.on_hand: dict[LevelKey, int] = dict.fromkeys(KEYS, 0)
        self.reserved: dict[LevelKey, int] = dict.fromkeys(KEYS, 0)
        self.status: dict[str, ReservationStatus] = {}
        self.expires_at: dict[str, datetime] = {}
        self.held: dict[str, list[tuple[str, str, int]]] = {}
        self.history: dict[str, list[ReservationStatus]] = {}
        self.next_id = 0

    @initialize(
        active=st.sampled_from([(True, True), (True, False), (False, True)]),
        initial_stock=st.tuples(*[st.integers(0, 20)] * len(KEYS)),
    )
    def open_the_book(self, active: tuple[bool, bool], initial_stock: tuple[int, ...]) -> None:
        self.active = dict(zip(WAREHOUSE_IDS, active, strict=True))
        warehouses = {
            wid: Warehouse(
                warehouse_id=wid,
                name=wid,
                latitude=52.5,
                longitude=13.4,
                timezone="Europe/Berlin",
                created_at=T0,
                updated_at=T0,
                active=self.active[wid],
            )
            for wid in WAREHOUSE_IDS
        }
        self.book = StockBook(known_skus=SKUS, warehouses=warehouses, levels=[])
        # Start with some stock, received through the book so that the ledger explains it.
        for key, quantity in zip(KEYS, initial_stock, strict=True):
            if quantity:
                self.receive(*key, quantity)

    # -- what the book holds ----------------------------------------------------------

    def level(self, key: LevelKey) -> StockLevel | None:
        # Every level starts from nothing, so any level with stock has moved and is in changed_levels.
        return self.book.changed_levels.get(key)

    def balances(self) -> Balances:
        result: Balances = {}
        for key in KEYS:
            level = self.level(key)
            result[key] = (0, 0) if level is None else (level.quantity_on_hand, level.quantity_reserved)
        return result

    def book_reservation(self, reservation_id: str) -> Reservation:
        # Every reservation is made in this book, so its latest version is among the created ones.
        return self.book.created_reservations[reservation_id]

    def decide(self, command: Command, expected_error: type[StockdError] | None) -> object:
        """Decide ``command``; check it fails exactly as the model says, and without a trace."""
        movements_before = len(self.book.movements)
        balances_before = self.balances()
        reservations_before = dict(self.book.created_reservations)
        try:
            outcome = self.book.decide(command, self.clock.now())
        except StockdError as refused:
            event(f"{type(command).__name__}: {refused.code}")
            assert expected_error is not None, f"{command} refused unexpectedly: {refused!r}"
            assert type(refused) is expected_error, f"{command}: {refused!r}, expected {expected_error}"
            assert len(self.book.movements) == movements_before
            assert self.balances() == balances_before
            assert self.book.created_reservations == reservations_before
            return refused
        assert expected_error is None, f"{command} succeeded; expected {expected_error}"
        event(f"{type(command).__name__}: {getattr(outcome, 'status', 'ok')}")
        return outcome

    def lapsed(self, reservation_id: str) -> bool:
        return self.status[reservation_id] is PENDING and self.expires_at[reservation_id] <= self.clock.now()

    # -- steps ------------------------------------------------------------------------

    @rule(sku=skus, warehouse_id=warehouse_ids, quantity=st.integers(1, 20))
    def receive(self, sku: str, warehouse_id: str, quantity: int) -> None:
        self.decide(Receive(sku, warehouse_id, quantity), None)
        self.on_hand[(sku, warehouse_id)] += quantity

    @rule(
        sku=skus,
        warehouse_id=warehouse_ids,
        delta=st.one_of(st.integers(-15, -1), st.integers(1, 15)),
        reason=st.sampled_from(AdjustReason),
        expectation=st.one_of(st.none(), st.just("current"), st.integers(0, 30)),
    )
    def adjust(
        self, sku: str, warehouse_id: str, delta: int, reason: AdjustReason, expectation: str | int | None
    ) -> None:
        key = (sku, warehouse_id)
        expected_on_hand = self.on_hand[key] if expectation == "current" else expectation
        assert not isinstance(expected_on_hand, str)
        error: type[StockdError] | None = None
        if expected_on_hand is not None and expected_on_hand != self.on_hand[key]:
            error = StaleQuantity
        elif -delta > self.on_hand[key] - self.reserved[key]:
            error = InsufficientStock
        self.decide(Adjust(sku, warehouse_id, delta, reason, expected_on_hand=expected_on_hand), error)
        if error is None:
            self.on_hand[key] += delta

    @rule(
        target=reservations,
        lines=st.lists(requested_lines, min_size=1, max_size=4),
        ttl_seconds=st.integers(1, 300),
    )
    def reserve(self, lines: list[tuple[str, int, str | None]], ttl_seconds: int) -> object:
        reservation_id = f"r-{self.next_id}"
        self.next_id += 1
        placed, shortfalls = self.place(lines)
        outcome = self.decide(
            Reserve(
                reservation_id,
                f"order-{reservation_id}",
                tuple(RequestedLine(sku, quantity, wid) for sku, quantity, wid in lines),
                ttl_seconds,
            ),
            OutOfStock if shortfalls else None,
        )
        if isinstance(outcome, OutOfStock):
            assert outcome.shortfalls == shortfalls
            return multiple()
        assert isinstance(outcome, Reservation)
        assert outcome.status is PENDING
        actual = [(line.sku, line.warehouse_id, line.quantity) for line in outcome.lines]
        if placed is None:
            self.check_placement(lines, actual)
            placed = actual
        assert actual == placed
        for sku, wid, quantity in placed:
            self.reserved[(sku, wid)] += quantity
        self.status[reservation_id] = PENDING
        self.history[reservation_id] = [PENDING]
        self.expires_at[reservation_id] = self.clock.now() + timedelta(seconds=ttl_seconds)
        self.held[reservation_id] = placed
        return reservation_id

    def place(
        self, lines: list[tuple[str, int, str | None]]
    ) -> tuple[list[tuple[str, str, int]] | None, list[Shortfall]]:
        """The model's placement: named lines where named, and the shortfalls the order must have.

        Where the open lines go is the planner's choice (tested on its own); the
        model only knows whether they can be filled at all, and ``None`` for
        their placement, which ``check_placement`` then verifies by its limits.
        """
        demand: Counter[LevelKey] = Counter()
        open_demand: Counter[str] = Counter()
        for sku, quantity, wid in lines:
            if wid is not None:
                demand[(sku, wid)] += quantity
            else:
                open_demand[sku] += quantity

        shortfalls = [
            Shortfall(sku, wid, requested, self.sellable((sku, wid)))
            for (sku, wid), requested in demand.items()
            if self.sellable((sku, wid)) < requested
        ]
        for sku, requested in open_demand.items():
            room = sum(max(self.sellable((sku, w)) - demand[(sku, w)], 0) for w in WAREHOUSE_IDS)
            if room < requested:
                shortfalls.append(Shortfall(sku, None, requested, room))
        if not open_demand:
            return [(sku, wid, q) for sku, q, wid in lines if wid is not None], shortfalls
        return None, shortfalls

    def sellable(self, key: LevelKey) -> int:
        return self.on_hand[key] - self.reserved[key] if self.active[key[1]] else 0

    def check_placement(
        self, lines: list[tuple[str, int, str | None]], placed: list[tuple[str, str, int]]
    ) -> None:
        """Named lines first and unchanged; the planned ones add up to the open lines per sku, in
        active warehouses, and nothing takes more than a level has."""
        named = [(sku, wid, q) for sku, q, wid in lines if wid is not None]
        assert placed[: len(named)] == named
        planned: Counter[str] = Counter()
        for sku, wid, quantity in placed[len(named) :]:
            assert self.active[wid] and quantity > 0
            planned[sku] += quantity
        assert planned == _sum_open(lines)
        taken: Counter[LevelKey] = Counter()
        for sku, wid, quantity in placed:
            taken[(sku, wid)] += quantity
        for key, quantity in taken.items():
            assert quantity <= self.sellable(key), (key, quantity)

    @rule(reservation_id=reservations, wait=waits)
    def confirm(self, reservation_id: str, wait: int) -> None:
        self.clock.advance(wait)
        status = self.status[reservation_id]
        error: type[StockdError] | None = None
        if status is ReservationStatus.EXPIRED or self.lapsed(reservation_id):
            error = ReservationExpired
        elif status is ReservationStatus.RELEASED:
            error = InvalidState
        if self.lapsed(reservation_id):
            event("Confirm: lapsed, not yet swept")
        outcome = self.decide(Confirm(reservation_id), error)
        if error is None and status is PENDING:
            self.finish(reservation_id, ReservationStatus.CONFIRMED, ship=True)
        self.check_outcome(reservation_id, outcome)

    @rule(reservation_id=reservations, wait=waits)
    def release(self, reservation_id: str, wait: int) -> None:
        self.clock.advance(wait)
        status = self.status[reservation_id]
        error = InvalidState if status is ReservationStatus.CONFIRMED else None
        lapsed = self.lapsed(reservation_id)
        outcome = self.decide(Release(reservation_id), error)
        if status is PENDING:
            self.finish(reservation_id, ReservationStatus.EXPIRED if lapsed else ReservationStatus.RELEASED)
        self.check_outcome(reservation_id, outcome)

    @rule(reservation_id=reservations, wait=waits)
    def expire(self, reservation_id: str, wait: int) -> None:
        self.clock.advance(wait)
        lapsed = self.lapsed(reservation_id)
        outcome = self.decide(Expire(reservation_id), None)
        if lapsed:
            self.finish(reservation_id, ReservationStatus.EXPIRED)
        self.check_outcome(reservation_id, outcome)

    @rule(seconds=waits)
    def advance_the_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    def finish(self, reservation_id: str, status: ReservationStatus, *, ship: bool = False) -> None:
        self.status[reservation_id] = status
        self.history[reservation_id].append(status)
        for sku, wid, quantity in self.held[reservation_id]:
            self.reserved[(sku, wid)] -= quantity
            if ship:
                self.on_hand[(sku, wid)] -= quantity

    def check_outcome(self, reservation_id: str, outcome: object) -> None:
        if isinstance(outcome, Reservation):
            assert outcome.id == reservation_id
            assert outcome.status is self.status[reservation_id]

    # -- what must always hold -----------------------------------------------------------

    @invariant()
    def every_balance_is_the_sum_of_its_movements(self) -> None:
        on_hand_sums: Counter[LevelKey] = Counter()
        reserved_sums: Counter[LevelKey] = Counter()
        for movement in self.book.movements:
            assert movement.quantity > 0, movement
            key = (movement.sku, movement.warehouse_id)
            on_hand_sums[key] += movement.on_hand_delta
            reserved_sums[key] += movement.reserved_delta
        assert set(on_hand_sums) <= set(KEYS)
        for key, (on_hand, reserved) in self.balances().items():
            assert on_hand == on_hand_sums[key], key
            assert reserved == reserved_sums[key], key
            assert 0 <= reserved <= on_hand, key

    @invariant()
    def the_book_agrees_with_the_model(self) -> None:
        assert self.balances() == {key: (self.on_hand[key], self.reserved[key]) for key in KEYS}
        assert set(self.book.created_reservations) == set(self.status)
        for reservation_id, status in self.status.items():
            reservation = self.book_reservation(reservation_id)
            assert reservation.status is status, reservation_id
            assert reservation.expires_at == self.expires_at[reservation_id]

    @invariant()
    def every_movement_has_the_sign_its_type_demands(self) -> None:
        for m in self.book.movements:
            expected = {
                MovementType.RECEIVE: (m.quantity, 0),
                MovementType.ADJUST: (m.on_hand_delta, 0),
                MovementType.RESERVE: (0, m.quantity),
                MovementType.RELEASE: (0, -m.quantity),
                MovementType.EXPIRE: (0, -m.quantity),
                MovementType.SHIP: (-m.quantity, -m.quantity),
            }[m.type]
            assert (m.on_hand_delta, m.reserved_delta) == expected, m
            if m.type is MovementType.ADJUST:
                assert abs(m.on_hand_delta) == m.quantity, m
            if m.type in FINISHING_MOVEMENTS or m.type is MovementType.RESERVE:
                assert m.reference_type == "reservation", m
            if m.type is MovementType.RESERVE:
                assert self.active[m.warehouse_id], f"held stock in inactive warehouse: {m}"

    @invariant()
    def a_reservation_reaches_at_most_one_final_status(self) -> None:
        finishing: dict[str, list[MovementType]] = {}
        reserving: Counter[str] = Counter()
        for m in self.book.movements:
            if m.reference_id is None:
                continue
            if m.type is MovementType.RESERVE:
                reserving[m.reference_id] += 1
            elif m.type in FINISHING_MOVEMENTS:
                finishing.setdefault(m.reference_id, []).append(m.type)
        for reservation_id, history in self.history.items():
            assert history[0] is PENDING
            finals = history[1:]
            assert len(finals) <= 1, (reservation_id, history)
            assert all(status in FINAL for status in finals)
            lines = len(self.held[reservation_id])
            assert reserving[reservation_id] == lines
            types = finishing.get(reservation_id, [])
            if finals:
                assert len(types) == lines and len(set(types)) == 1, (reservation_id, types)
                expected_type = {
                    ReservationStatus.CONFIRMED: MovementType.SHIP,
                    ReservationStatus.RELEASED: MovementType.RELEASE,
                    ReservationStatus.EXPIRED: MovementType.EXPIRE,
                }[finals[0]]
                assert types[0] is expected_type
            else:
                assert types == []


LedgerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    # On a failure, shrink to one minimal example and skip the explain phase: both multiply
    # the replays of a 40-step machine, and turned a 3-second failure into minutes.
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestTheLedgerExplainsEveryBalance = LedgerMachine.TestCase


def _sum_open(lines: list[tuple[str, int, str | None]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for sku, quantity, wid in lines:
        if wid is None:
            total[sku] += quantity
    return total
