"""The fulfillment planner, as a specification.

Warehouses stand in real cities (ids are the city names) and parcels go to real
addresses, so every distance below is a true geodesic one: Berlin–Potsdam 27 km,
Berlin–Hamburg 256 km, Berlin–Frankfurt 424 km, Berlin–Cologne 479 km,
Berlin–Munich 505 km, Frankfurt–Cologne 153 km.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from stockd.domain import planner
from stockd.domain.commands import RequestedLine
from stockd.domain.errors import InvalidRequest, Shortfall
from stockd.domain.model import LevelKey, Warehouse
from stockd.domain.planner import (
    LINE_HAUL_OVERHEAD_HOURS,
    Location,
    Plan,
    distance_km,
    estimated_delivery_hours,
    plan,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

CITIES = {
    "berlin": (52.52, 13.405),
    "potsdam": (52.391, 13.066),
    "hamburg": (53.551, 9.994),
    "munich": (48.137, 11.575),
    "frankfurt": (50.11, 8.682),
    "cologne": (50.938, 6.96),
}

Stock = Mapping[LevelKey, int]
Placed = list[tuple[str, str, int]]


def warehouse(
    warehouse_id: str, city: str | None = None, *, handling_hours: int = 24, active: bool = True
) -> Warehouse:
    latitude, longitude = CITIES[city or warehouse_id]
    return Warehouse(
        warehouse_id=warehouse_id,
        name=warehouse_id.title(),
        latitude=latitude,
        longitude=longitude,
        timezone="Europe/Berlin",
        created_at=T0,
        updated_at=T0,
        handling_hours=handling_hours,
        active=active,
    )


def network(*warehouses: Warehouse) -> dict[str, Warehouse]:
    return {w.warehouse_id: w for w in warehouses}


ALL_CITIES = network(*(warehouse(city) for city in CITIES))


def to(city: str | None) -> Location | None:
    return None if city is None else Location(*CITIES[city])


def lines(*wanted: tuple[str, int]) -> list[RequestedLine]:
    return [RequestedLine(sku, quantity) for sku, quantity in wanted]


def placed(result: Plan) -> Placed:
    return [(a.sku, a.warehouse_id, a.quantity) for a in result.allocations]


def plan_for(
    wanted: Sequence[tuple[str, int]],
    stock: Stock,
    ship_to: str | None = "berlin",
    warehouses: Mapping[str, Warehouse] = ALL_CITIES,
    deliver_within_hours: float | None = None,
) -> Plan:
    return plan(
        lines(*wanted),
        warehouses=warehouses,
        available=stock,
        ship_to=to(ship_to),
        deliver_within_hours=deliver_within_hours,
    )


# -- one line, several warehouses could fill it --------------------------------


@pytest.mark.parametrize(
    ("ship_to", "expected_warehouse", "reason"),
    [
        ("berlin", "potsdam", "nearest warehouse with enough stock: 27 km"),
        ("hamburg", "hamburg", "nearest warehouse with enough stock: 0 km"),
        ("cologne", "frankfurt", "nearest warehouse with enough stock: 153 km"),
        ("munich", "frankfurt", "nearest warehouse with enough stock: 304 km"),
    ],
    ids=["to-berlin", "to-hamburg", "to-cologne", "to-munich"],
)
def test_the_nearest_warehouse_that_can_fill_a_line_ships_all_of_it(
    ship_to: str, expected_warehouse: str, reason: str
) -> None:
    stock = {("A", "potsdam"): 5, ("A", "hamburg"): 50, ("A", "frankfurt"): 5, ("A", "munich"): 4}

    result = plan_for([("A", 5)], stock, ship_to)

    assert placed(result) == [("A", expected_warehouse, 5)]
    assert result.allocations[0].reason == reason
    assert result.warehouse_count == 1
    assert result.shortfalls == ()
    assert result.exact


@pytest.mark.parametrize(
    ("stock", "expected"),
    [
        ({("A", "berlin"): 6, ("A", "munich"): 10}, [("A", "munich", 10)]),
        ({("A", "berlin"): 9, ("A", "potsdam"): 9, ("A", "cologne"): 10}, [("A", "cologne", 10)]),
        ({("A", "berlin"): 10, ("A", "munich"): 10}, [("A", "berlin", 10)]),
    ],
    ids=["far-but-enough", "two-near-halves-lose-to-one-far-whole", "near-and-enough"],
)
def test_a_line_that_one_warehouse_can_fill_is_never_split(stock: Stock, expected: Placed) -> None:
    result = plan_for([("A", 10)], stock)

    assert placed(result) == expected
    assert not result.allocations[0].reason.startswith("split")


def test_the_only_warehouse_with_enough_stock_says_so() -> None:
    result = plan_for([("A", 10)], {("A", "berlin"): 3, ("A", "hamburg"): 10})

    assert placed(result) == [("A", "hamburg", 10)]
    assert result.allocations[0].reason == "only warehouse with enough stock: 256 km"


# -- the whole order -----------------------------------------------------------


def test_fewest_warehouses_across_the_order_beats_the_nearest_warehouse_per_line() -> None:
    # Potsdam is nearest for A and Hamburg for B, but Munich ships both in one parcel.
    stock = {("A", "potsdam"): 5, ("B", "hamburg"): 5, ("A", "munich"): 5, ("B", "munich"): 5}

    result = plan_for([("A", 1), ("B", 1)], stock)

    assert placed(result) == [("A", "munich", 1), ("B", "munich", 1)]
    assert result.warehouse_count == 1
    assert [a.reason for a in result.allocations] == [
        "fewest warehouses: ships together with B, 505 km (the nearest with enough stock, potsdam, is 27 km)",
        "fewest warehouses: ships together with A, 505 km (the nearest with enough stock, hamburg, is 256 km)",
    ]


@pytest.mark.parametrize(
    ("stock", "expected"),
    [
        (  # Two warehouses either way: Hamburg + Potsdam is 283 km, Munich + Berlin 505 km.
            {("A", "hamburg"): 1, ("B", "hamburg"): 1, ("C", "potsdam"): 1}
            | {("A", "munich"): 1, ("C", "munich"): 1, ("B", "berlin"): 1},
            [("A", "hamburg", 1), ("B", "hamburg", 1), ("C", "potsdam", 1)],
        ),
        (  # Berlin fills two lines, but only Cologne fills all three.
            {("A", "berlin"): 1, ("B", "berlin"): 1}
            | {("A", "cologne"): 1, ("B", "cologne"): 1, ("C", "cologne"): 1},
            [("A", "cologne", 1), ("B", "cologne", 1), ("C", "cologne", 1)],
        ),
        (  # Each line has its own warehouse: three parcels, each from the nearest.
            {("A", "potsdam"): 1, ("A", "munich"): 1, ("B", "hamburg"): 1, ("C", "frankfurt"): 1},
            [("A", "potsdam", 1), ("B", "hamburg", 1), ("C", "frankfurt", 1)],
        ),
    ],
    ids=["shorter-pair-wins", "one-beats-two", "three-singles"],
)
def test_the_plan_uses_the_fewest_warehouses_then_the_shortest_total_distance(
    stock: Stock, expected: Placed
) -> None:
    result = plan_for([("A", 1), ("B", 1), ("C", 1)], stock)

    assert placed(result) == expected
    assert result.exact


def test_lines_of_the_same_sku_are_added_up_before_choosing() -> None:
    # 6 + 6 = 12: Potsdam's 10 would have done for either line, not for both.
    stock = {("A", "potsdam"): 10, ("A", "hamburg"): 12}

    result = plan_for([("A", 6), ("A", 6)], stock)

    assert placed(result) == [("A", "hamburg", 12)]


# -- splits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ship_to", "stock", "quantity", "expected", "reason"),
    [
        (
            "hamburg",
            {("A", "hamburg"): 10, ("A", "munich"): 8},
            15,
            [("A", "hamburg", 10), ("A", "munich", 5)],
            "split: 10 of 15 from hamburg, the rest from munich (no single warehouse has 15)",
        ),
        (
            "munich",
            {("A", "hamburg"): 10, ("A", "munich"): 8},
            15,
            [("A", "munich", 8), ("A", "hamburg", 7)],
            "split: 8 of 15 from munich, the rest from hamburg (no single warehouse has 15)",
        ),
        (  # Three parts: two would not be enough whichever two were taken.
            "berlin",
            {("A", "potsdam"): 4, ("A", "hamburg"): 4, ("A", "munich"): 4},
            12,
            [("A", "potsdam", 4), ("A", "hamburg", 4), ("A", "munich", 4)],
            "split: 4 of 12 from potsdam, 4 from hamburg, the rest from munich (no single warehouse has 12)",
        ),
        (  # Two parts are enough, so the nearest pair that is enough: not Potsdam's 2.
            "berlin",
            {("A", "potsdam"): 2, ("A", "hamburg"): 6, ("A", "munich"): 6},
            12,
            [("A", "hamburg", 6), ("A", "munich", 6)],
            "split: 6 of 12 from hamburg, the rest from munich (no single warehouse has 12)",
        ),
    ],
    ids=["nearest-first", "nearest-first-other-way", "three-parts", "fewest-parts"],
)
def test_a_line_is_split_only_when_no_single_warehouse_can_fill_it(
    ship_to: str, stock: Stock, quantity: int, expected: Placed, reason: str
) -> None:
    result = plan_for([("A", quantity)], stock, ship_to)

    assert placed(result) == expected
    assert {a.reason for a in result.allocations} == {reason}
    assert result.exact


def test_a_split_line_is_planned_together_with_the_rest_of_the_order() -> None:
    # Munich must ship A anyway, so B's 15 needs one more warehouse, not two: Berlin's 8 with
    # Munich's 8 is enough, and nearer than Hamburg's 10. The nearer part is taken first.
    stock = {("A", "munich"): 1, ("B", "munich"): 8, ("B", "berlin"): 8, ("B", "hamburg"): 10}

    result = plan_for([("A", 1), ("B", 15)], stock)

    assert placed(result) == [("A", "munich", 1), ("B", "berlin", 8), ("B", "munich", 7)]
    assert result.warehouse_count == 2


# -- shortfalls, eligibility ---------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "stock", "expected", "shortfalls"),
    [
        ([("A", 10)], {("A", "berlin"): 3, ("A", "munich"): 4}, [], [Shortfall("A", None, 10, 7)]),
        ([("A", 10)], {}, [], [Shortfall("A", None, 10, 0)]),
        (
            [("A", 10), ("B", 2)],
            {("A", "berlin"): 3, ("B", "hamburg"): 2},
            [("B", "hamburg", 2)],
            [Shortfall("A", None, 10, 3)],
        ),
        (
            [("A", 4), ("B", 9), ("A", 4), ("C", 1)],
            {("A", "berlin"): 7, ("B", "berlin"): 8, ("C", "berlin"): 1},
            [("C", "berlin", 1)],
            [Shortfall("A", None, 8, 7), Shortfall("B", None, 9, 8)],
        ),
    ],
    ids=["not-enough-anywhere", "none-at-all", "the-rest-is-still-planned", "every-shortfall-at-once"],
)
def test_a_sku_that_all_warehouses_together_cannot_fill_is_a_shortfall(
    wanted: list[tuple[str, int]], stock: Stock, expected: Placed, shortfalls: list[Shortfall]
) -> None:
    result = plan_for(wanted, stock)

    assert placed(result) == expected
    assert list(result.shortfalls) == shortfalls


@pytest.mark.parametrize(
    ("stock", "expected", "shortfalls"),
    [
        ({("A", "potsdam"): 10, ("A", "munich"): 10}, [("A", "munich", 5)], []),
        ({("A", "potsdam"): 10, ("A", "munich"): 3, ("A", "berlin"): 3}, [], [Shortfall("A", None, 5, 3)]),
        ({("A", "potsdam"): 3, ("A", "munich"): 3, ("A", "berlin"): 3}, [], [Shortfall("A", None, 5, 3)]),
    ],
    ids=["nearest-is-inactive", "inactive-stock-never-counts", "not-even-in-a-split"],
)
def test_an_inactive_warehouse_is_never_chosen(
    stock: Stock, expected: Placed, shortfalls: list[Shortfall]
) -> None:
    warehouses = network(
        warehouse("potsdam", active=False),
        warehouse("berlin", active=False),
        warehouse("munich"),
    )

    result = plan_for([("A", 5)], stock, warehouses=warehouses)

    assert placed(result) == expected
    assert list(result.shortfalls) == shortfalls


# -- delivery time -------------------------------------------------------------

SLOW_NEAR_FAST_FAR = network(
    warehouse("berlin", handling_hours=48),  # 0 km:   48 + 4 + 0.0  = 52.0 h
    warehouse("hamburg", handling_hours=24),  # 256 km: 24 + 4 + 4.27 = 32.27 h
    warehouse("munich", handling_hours=12),  # 505 km: 12 + 4 + 8.41 = 24.41 h
)
EVERYWHERE = {("A", "berlin"): 5, ("A", "hamburg"): 5, ("A", "munich"): 5}


@pytest.mark.parametrize(
    ("deliver_within_hours", "expected", "hours"),
    [
        (None, [("A", "berlin", 5)], 52.0),
        (52, [("A", "berlin", 5)], 52.0),
        (40, [("A", "hamburg", 5)], 32.27),
        (30, [("A", "munich", 5)], 24.41),
        (24, [], None),
    ],
    ids=["no-deadline", "just-in-time", "two-days", "thirty-hours", "nobody-makes-it"],
)
def test_warehouses_that_cannot_deliver_in_time_are_left_out(
    deliver_within_hours: int | None, expected: Placed, hours: float | None
) -> None:
    result = plan_for([("A", 5)], EVERYWHERE, "berlin", SLOW_NEAR_FAST_FAR, deliver_within_hours)

    assert placed(result) == expected
    if hours is None:
        assert list(result.shortfalls) == [Shortfall("A", None, 5, 0)]
    else:
        assert result.allocations[0].estimated_delivery_hours == pytest.approx(hours)


def test_the_delivery_estimate_is_handling_time_plus_transit_by_distance() -> None:
    munich = SLOW_NEAR_FAST_FAR["munich"]
    km = distance_km(Location(munich.latitude, munich.longitude), Location(*CITIES["berlin"]))

    assert km == pytest.approx(504.6, abs=0.1)
    assert estimated_delivery_hours(munich, km) == pytest.approx(12 + LINE_HAUL_OVERHEAD_HOURS + km / 60)
    assert estimated_delivery_hours(munich, 0) == 12 + LINE_HAUL_OVERHEAD_HOURS


@pytest.mark.parametrize(
    ("deliver_within_hours", "expected"),
    [(None, "berlin"), (30, "hamburg"), (20, "munich")],
    ids=["no-deadline", "berlin-handles-too-slowly", "only-munich-handles-in-time"],
)
def test_without_ship_to_a_deadline_can_only_exclude_by_handling_hours(
    deliver_within_hours: int | None, expected: str
) -> None:
    stock = {("A", "berlin"): 9, ("A", "hamburg"): 8, ("A", "munich"): 7}

    result = plan_for([("A", 5)], stock, None, SLOW_NEAR_FAST_FAR, deliver_within_hours)

    assert placed(result) == [("A", expected, 5)]
    assert result.allocations[0].estimated_delivery_hours is None


# -- ties and the absence of ship_to --------------------------------------------

TWINS = network(warehouse("ber-b", "berlin"), warehouse("ber-a", "berlin"), warehouse("munich"))


@pytest.mark.parametrize(
    ("stock", "expected", "reason"),
    [
        (
            {("A", "ber-a"): 5, ("A", "ber-b"): 5},
            "ber-a",
            "nearest warehouse with enough stock, and the most stock of those as near: 0 km",
        ),
        (
            {("A", "ber-a"): 5, ("A", "ber-b"): 6},
            "ber-b",
            "nearest warehouse with enough stock, and the most stock of those as near: 0 km",
        ),
        (
            {("A", "ber-a"): 5, ("A", "ber-b"): 5, ("A", "munich"): 50},
            "ber-a",
            "nearest warehouse with enough stock, and the most stock of those as near: 0 km",
        ),
    ],
    ids=["same-place-same-stock-smallest-id", "same-place-more-stock", "distance-before-stock"],
)
def test_ties_are_broken_by_stock_then_by_warehouse_id(stock: Stock, expected: str, reason: str) -> None:
    forwards = plan_for([("A", 5)], stock, "berlin", TWINS)
    backwards = plan_for([("A", 5)], stock, "berlin", dict(reversed(TWINS.items())))

    assert placed(forwards) == placed(backwards) == [("A", expected, 5)]
    assert forwards.allocations[0].reason == reason


@pytest.mark.parametrize(
    ("stock", "expected", "reason"),
    [
        (
            {("A", "potsdam"): 5, ("A", "munich"): 50, ("A", "hamburg"): 20},
            "munich",
            "most stock: 50 available (no ship_to, so distance is ignored)",
        ),
        (
            {("A", "potsdam"): 5, ("A", "hamburg"): 20},
            "hamburg",
            "most stock: 20 available (no ship_to, so distance is ignored)",
        ),
        (
            {("A", "potsdam"): 5, ("A", "munich"): 4},
            "potsdam",
            "only warehouse with enough stock: 5 available (no ship_to, so distance is ignored)",
        ),
    ],
    ids=["fullest-wins", "fullest-of-two", "only-one"],
)
def test_without_ship_to_the_warehouse_with_the_most_stock_ships(
    stock: Stock, expected: str, reason: str
) -> None:
    result = plan_for([("A", 5)], stock, ship_to=None)

    assert placed(result) == [("A", expected, 5)]
    assert result.allocations[0].reason == reason
    assert result.allocations[0].distance_km is None


def test_without_ship_to_fewest_warehouses_still_comes_first() -> None:
    stock = {("A", "potsdam"): 90, ("B", "hamburg"): 90, ("A", "munich"): 1, ("B", "munich"): 1}

    result = plan_for([("A", 1), ("B", 1)], stock, ship_to=None)

    assert placed(result) == [("A", "munich", 1), ("B", "munich", 1)]
    assert result.allocations[0].reason == (
        "fewest warehouses: ships together with B, 1 available (the one with most stock, potsdam, has 90)"
    )


# -- inputs --------------------------------------------------------------------


def test_availability_may_be_a_function_and_negative_stock_counts_as_none() -> None:
    def available(sku: str, warehouse_id: str) -> int:
        return {"potsdam": -3, "hamburg": 7}.get(warehouse_id, 0)

    result = plan(lines(("A", 5)), warehouses=ALL_CITIES, available=available, ship_to=to("berlin"))

    assert placed(result) == [("A", "hamburg", 5)]


def test_a_line_that_names_its_warehouse_is_not_the_planners_business() -> None:
    with pytest.raises(ValueError, match="only open lines"):
        plan([RequestedLine("A", 1, "berlin")], warehouses=ALL_CITIES, available={}, ship_to=None)


def test_an_empty_order_has_an_empty_plan() -> None:
    result = plan([], warehouses=ALL_CITIES, available={}, ship_to=to("berlin"))

    assert result == Plan((), ())
    assert result.warehouse_count == 0


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(91.0, 0.0), (-90.5, 0.0), (0.0, 180.5), (float("nan"), 0.0)]
)
def test_a_location_off_the_globe_is_refused(latitude: float, longitude: float) -> None:
    with pytest.raises(InvalidRequest):
        Location(latitude, longitude)


# -- against every possible choice ----------------------------------------------


def best_by_brute_force(
    demand: Mapping[str, int], warehouses: Mapping[str, Warehouse], stock: Stock, ship_to: Location | None
) -> tuple[int, int, int, tuple[str, ...]]:
    """The module's order of preference, applied to every set of warehouses in turn."""
    ids = sorted(w for w in warehouses if any(stock.get((sku, w), 0) > 0 for sku in demand))

    def held(sku: str, warehouse_id: str) -> int:
        return max(stock.get((sku, warehouse_id), 0), 0)

    shipped = {sku: q for sku, q in demand.items() if sum(held(sku, w) for w in ids) >= q}
    whole = {sku for sku, q in shipped.items() if any(held(sku, w) >= q for w in ids)}

    def metres(warehouse_id: str) -> int:
        if ship_to is None:
            return 0
        w = warehouses[warehouse_id]
        return round(distance_km(Location(w.latitude, w.longitude), ship_to) * 1000)

    def feasible(chosen: tuple[str, ...]) -> bool:
        return all(
            any(held(sku, w) >= q for w in chosen) if sku in whole else sum(held(sku, w) for w in chosen) >= q
            for sku, q in shipped.items()
        )

    costs = [
        (
            len(chosen),
            sum(metres(w) for w in chosen),
            -sum(held(sku, w) for w in chosen for sku in shipped),
            chosen,
        )
        for size in range(len(ids) + 1)
        for chosen in itertools.combinations(ids, size)
        if feasible(chosen)
    ]
    return min(costs)


@pytest.mark.parametrize("seed", range(40))
def test_the_plan_is_the_best_of_every_possible_set_of_warehouses(seed: int) -> None:
    rng = random.Random(seed)
    cities = list(CITIES)
    warehouses = network(*(warehouse(f"w{i}", rng.choice(cities)) for i in range(7)))
    skus = ["A", "B", "C", "D"][: rng.randint(1, 4)]
    stock = {(sku, w): rng.randint(0, 6) for sku in skus for w in warehouses if rng.random() < 0.6}
    demand = {sku: rng.randint(1, 9) for sku in skus}
    ship_to = to(rng.choice([*cities, None]))

    result = plan(lines(*demand.items()), warehouses=warehouses, available=stock, ship_to=ship_to)

    size, _, _, chosen = best_by_brute_force(demand, warehouses, stock, ship_to)
    assert result.exact
    assert result.warehouse_count == size
    assert tuple(sorted({a.warehouse_id for a in result.allocations})) == chosen
    assert_is_a_valid_plan(result, demand, stock)


def assert_is_a_valid_plan(result: Plan, demand: Mapping[str, int], stock: Stock) -> None:
    """Every sku is either shipped in full or reported short, and no warehouse gives what it lacks."""
    shipped: dict[str, int] = {}
    for a in result.allocations:
        assert 0 < a.quantity <= stock.get((a.sku, a.warehouse_id), 0)
        shipped[a.sku] = shipped.get(a.sku, 0) + a.quantity
    short = {s.sku for s in result.shortfalls}
    assert set(shipped) | short == set(demand)
    assert not set(shipped) & short
    assert all(shipped[sku] == demand[sku] for sku in shipped)


def test_when_the_exact_search_gives_up_the_heuristic_plan_is_complete_but_not_proven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(planner, "EXACT_SEARCH_STEP_LIMIT", 0)
    stock = {
        ("A", "potsdam"): 5,
        ("B", "hamburg"): 5,
        ("A", "munich"): 5,
        ("B", "munich"): 5,
        ("C", "berlin"): 9,
    }
    demand = {"A": 2, "B": 2, "C": 12}

    result = plan(lines(*demand.items()), warehouses=ALL_CITIES, available=stock, ship_to=to("berlin"))

    assert not result.exact
    assert_is_a_valid_plan(result, demand, stock)
    assert placed(result)[:2] == [("A", "munich", 2), ("B", "munich", 2)]


# -- scale ---------------------------------------------------------------------


def thousand_warehouses(rng: random.Random) -> dict[str, Warehouse]:
    return {
        f"wh-{i:04d}": Warehouse(
            warehouse_id=f"wh-{i:04d}",
            name=f"Warehouse {i}",
            latitude=rng.uniform(36.0, 60.0),
            longitude=rng.uniform(-9.0, 30.0),
            timezone="Europe/Berlin",
            created_at=T0,
            updated_at=T0,
            handling_hours=rng.choice([12, 24, 48]),
            active=rng.random() > 0.05,
        )
        for i in range(1000)
    }


@pytest.mark.parametrize(
    ("skus_per_warehouse", "most_per_level", "quantity"),
    [(10, 50, 5), (3, 10, 5), (10, 12, 40)],
    ids=["every-warehouse-stocks-everything", "sparse-stock", "every-line-split"],
)
def test_a_thousand_warehouses_and_a_ten_line_order_are_planned(
    skus_per_warehouse: int, most_per_level: int, quantity: int
) -> None:
    rng = random.Random(skus_per_warehouse * 1000 + quantity)
    warehouses = thousand_warehouses(rng)
    skus = [f"SKU-{j}" for j in range(10)]
    stock = {
        (sku, w): rng.randint(1, most_per_level)
        for w in warehouses
        for sku in rng.sample(skus, skus_per_warehouse)
    }
    demand = dict.fromkeys(skus, quantity)

    result = plan(lines(*demand.items()), warehouses=warehouses, available=stock, ship_to=to("berlin"))

    assert result.shortfalls == ()
    assert_is_a_valid_plan(result, demand, stock)
    assert all(warehouses[a.warehouse_id].active for a in result.allocations)
