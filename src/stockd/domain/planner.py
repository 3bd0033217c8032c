"""The fulfillment planner: which warehouses ship an order, how much each, and why.

The planner answers ``POST /v1/fulfillment/plan`` and places the lines of a
reservation that name no warehouse. It is a pure function of the order, the
warehouses, the stock available in them and the destination: no I/O, no clock.

The rules, in order of precedence (API.md, "Fulfillment planning"):

1. **Fewest warehouses** for the whole order, not line by line: one parcel from
   one warehouse beats two parcels from two nearer ones.
2. **Shortest distance**: among plans with as few warehouses, the smallest sum
   of the geodesic distances from each chosen warehouse to ``ship_to`` (each
   warehouse sends one parcel, so each counts once). Distances are computed on
   the WGS84 ellipsoid by geographiclib (accurate far below a millimetre);
   the plan compares them in whole metres so that equal distances really tie.
3. **Most stock**: then the plan whose warehouses hold the most of the ordered
   skus, which leaves the most behind for the next order.
4. Then the smallest warehouse ids, so the same question always gets the same
   answer.

A sku's demand is the sum of its lines. It comes **whole** from one warehouse
whenever any eligible warehouse can fill it; it is **split** only when none
can, and a sku that all eligible warehouses together cannot fill is a
**shortfall** (``available`` is their total) and gets no allocation at all.
Only active warehouses are eligible.

Within the chosen warehouses, a whole sku ships from the nearest one that can
fill it (then the one with most of it, then by id), and a split sku is taken
nearest first until it is filled. Every allocation carries a plain-words
``reason``: "nearest warehouse with enough stock: 27 km", "only warehouse with
enough stock: 256 km", "fewest warehouses: ships together with B, 505 km (the
nearest with enough stock, potsdam, is 27 km)", "split: 10 of 15 from hamburg,
the rest from munich (no single warehouse has 15)".

Delivery time
-------------
``estimated_delivery_hours = handling_hours + transit_hours`` with
``transit_hours = LINE_HAUL_OVERHEAD_HOURS + distance_km / AVERAGE_GROUND_SPEED_KMH``:
a fixed 4 hours for pick-up, hub sorting and the last mile, plus the distance
at 60 km/h, a door-to-door average for road freight. It is an estimate for
ranking and filtering, not a carrier promise. With ``deliver_within_hours``, a
warehouse whose estimate exceeds it is not eligible. Without ``ship_to`` there
is no distance and no estimate (both ``None``, and distance plays no part in
the choice); ``deliver_within_hours`` then excludes only the warehouses whose
``handling_hours`` alone exceed it, since no parcel can arrive before it leaves.

The search
----------
Choosing the warehouses is a covering problem: every whole sku needs one chosen
warehouse that can fill it (set cover) and every split sku needs the chosen
warehouses' stock of it to add up to its quantity (multi-cover). Set cover is
NP-hard, so:

* First a **greedy** cover (the classic ln n-approximation): repeatedly take
  the warehouse that fills the most still-open demand — one per whole sku it
  can fill, plus for split skus the fraction of the remaining quantity it
  holds — ties to the nearest, then most stock; then drop every warehouse the
  others make redundant, farthest first. Gains only shrink as demand is met,
  so the greedy evaluates lazily from a heap ("lazy greedy").
* Then an **exact branch and bound** that starts from the greedy plan as its
  incumbent: it branches on the first open requirement (whole skus with the
  fewest candidate warehouses first), trying candidates nearest first and
  excluding each one from its later siblings so that every set of warehouses
  is visited at most once, and prunes a branch when
  ``(warehouses so far + lower bound, distance so far)`` cannot beat the
  incumbent. Before searching, a warehouse with no stock of a split sku is
  dropped when another one fills every sku it fills, is no farther and holds
  no less — it can never be in a better plan.
* The exact search stops after ``EXACT_SEARCH_STEP_LIMIT`` steps (about 20 ms
  of CPU), and is not tried at all when the greedy plan needs more than
  ``EXACT_SEARCH_MAX_WAREHOUSES``; the plan is then the best one found, never
  worse than the greedy one, and ``Plan.exact`` is ``False``. ``Plan.exact``
  is ``True`` when the choice is proven optimal under the rules above.

Checked against brute force (every subset of warehouses) on 3,000 random
orders of 1–5 skus over 1–10 warehouses: the exact search found the optimum
every time; the greedy alone had the fewest warehouses in 99.4% of them.

Complexity
----------
With ``W`` warehouses, ``S`` distinct skus in the order and ``k`` warehouses
in the plan:

* eligibility, stock and classification: ``O(W·S)`` stock look-ups and at
  most ``W`` geodesic inversions (only for active warehouses holding some of
  the order). At ~75 µs each in pure-Python geographiclib, the inversions are
  the dominant cost whenever there is a ``ship_to``;
* dominance pruning: ``O(W + P·F)`` for ``P`` distinct fill patterns and ``F``
  surviving ones (``P ≤ min(W, 2^S)``);
* lazy greedy: ``O(W·S + r·S·log W)`` for ``r`` heap re-evaluations
  (``r ≤ k·W``, in practice a few per pick); redundancy pass ``O(k²·S)``;
* exact search: at most ``EXACT_SEARCH_STEP_LIMIT`` steps of ``O(S)`` each —
  bounded by design; typical orders need a few dozen to a few thousand;
* allocation and reasons: ``O(S·W)``.

So ``O(W·S)`` plus a bounded search. Measured by a timing script (not a test)
with 1,000 warehouses at random places in Europe (5% inactive) and a 10-line
order shipped to Berlin, CPU time per ``plan()`` call, median of 20, CPython
3.11 on the 2-core development machine; 1,000 geodesic inversions alone take
75 ms there:

===============================================  ========  ==========  =======  ========
stock                                            ship_to   no ship_to  search   result
===============================================  ========  ==========  =======  ========
every warehouse holds 1–50 of every sku          93 ms     11 ms       0.1 ms   1, exact
each holds 1–10 of 3 skus (no one fills all)     91 ms     12 ms       2–4 ms   4, exact
every line split (40 each, 0–12 per warehouse)   108 ms    26 ms       16 ms    5, limit
one sku per warehouse, 1–3 units (30 each)       93 ms     12 ms       6 ms     100, greedy
===============================================  ========  ==========  =======  ========

("limit": the search stopped at its step limit, unable to rule out a 4-warehouse
plan; "greedy": too many warehouses for the exact search.)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from geographiclib.geodesic import Geodesic  # type: ignore[import-untyped]

from stockd.domain.commands import RequestedLine
from stockd.domain.errors import Shortfall
from stockd.domain.model import LevelKey, Location, Warehouse

AVERAGE_GROUND_SPEED_KMH = 60.0
"""Door-to-door average speed of road freight, used to turn distance into transit time."""

LINE_HAUL_OVERHEAD_HOURS = 4.0
"""Transit time that does not depend on distance: pick-up, hub sorting, last mile."""

EXACT_SEARCH_STEP_LIMIT = 200_000
"""Work the exact search may do — one step per node and per option it looks at — before the
planner settles for the best plan found: about 20 ms of CPU."""

EXACT_SEARCH_MAX_WAREHOUSES = 32
"""The exact search is tried only when the greedy plan needs at most this many warehouses."""

Availability = Mapping[LevelKey, int] | Callable[[str, str], int]
"""Stock that may be promised, by ``(sku, warehouse_id)``: a mapping (missing means 0)
or a function ``(sku, warehouse_id) -> quantity``. Negative values count as 0."""

_Cost = tuple[int, int, int, tuple[str, ...]]
"""What the planner minimises, in order: warehouses, metres, −stock, warehouse ids."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """Part of the order that one warehouse ships; ``reason`` says why, in plain words.

    ``distance_km`` (rounded to the metre) and ``estimated_delivery_hours``
    (rounded to 0.01 h) are ``None`` when the order has no ``ship_to``.
    """

    sku: str
    warehouse_id: str
    quantity: int
    distance_km: float | None
    estimated_delivery_hours: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Where an order ships from, and what cannot be shipped at all.

    Allocations come in the order the skus first appear in the request; a split
    sku's parts come nearest (or, without ``ship_to``, fullest) first. Each
    shortfall names a sku (``warehouse_id`` ``None``), its total demand, and
    what all eligible warehouses together have. ``exact`` is ``True`` when the
    choice of warehouses is proven optimal, ``False`` when the search space was
    too large and the plan is the best one found.
    """

    allocations: tuple[Allocation, ...]
    shortfalls: tuple[Shortfall, ...]
    exact: bool = True

    @property
    def warehouse_count(self) -> int:
        """How many warehouses ship something: the number of parcels."""
        return len({allocation.warehouse_id for allocation in self.allocations})


def distance_km(origin: Location, destination: Location) -> float:
    """The geodesic (shortest over the WGS84 ellipsoid) distance between two points."""
    result = Geodesic.WGS84.Inverse(
        origin.latitude, origin.longitude, destination.latitude, destination.longitude, Geodesic.DISTANCE
    )
    return float(result["s12"]) / 1000.0


def transit_hours(distance_in_km: float) -> float:
    """Estimated time on the road for a parcel travelling ``distance_in_km``."""
    return LINE_HAUL_OVERHEAD_HOURS + distance_in_km / AVERAGE_GROUND_SPEED_KMH


def estimated_delivery_hours(warehouse: Warehouse, distance_in_km: float) -> float:
    """Hours from order to delivery: the warehouse's handling time, then transit."""
    return warehouse.handling_hours + transit_hours(distance_in_km)


def plan(
    lines: Sequence[RequestedLine],
    *,
    warehouses: Mapping[str, Warehouse],
    available: Availability,
    ship_to: Location | None = None,
    deliver_within_hours: float | None = None,
) -> Plan:
    """Choose warehouses for ``lines`` (none of which may name one) by the rules of this module.

    ``available`` must already leave out stock the caller has promised
    elsewhere, for instance to lines of the same reservation that name their
    warehouse. Shortfalls are reported, not raised: the caller decides whether
    a partial answer is useful (a plan) or not (a reservation).
    """
    demand = _demand_per_sku(lines)
    candidates = _eligible_candidates(demand, warehouses, available, ship_to, deliver_within_hours)
    whole, split, shortfalls = _classify(demand, candidates)
    if not whole and not split:
        return Plan((), tuple(shortfalls))
    cover = _Cover(whole, split, candidates)
    chosen, exact = cover.solve()
    allocations = _allocate(demand, whole, split, chosen, candidates, ship_to is not None)
    return Plan(tuple(allocations), tuple(shortfalls), exact)


# -- the candidates -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An eligible warehouse as the planner sees it: how far, how soon, and what it holds."""

    warehouse_id: str
    distance_m: int  # 0 without ship_to; whole metres, so that sums compare exactly
    distance_km: float | None
    delivery_hours: float | None
    stock: dict[str, int]  # the ordered skus it holds, each with a positive quantity

    def held(self, sku: str) -> int:
        return self.stock.get(sku, 0)

    def rank_for(self, sku: str) -> tuple[int, int, str]:
        """Which warehouse ships a sku when several could: nearest, then fullest, then by id."""
        return (self.distance_m, -self.held(sku), self.warehouse_id)


def _demand_per_sku(lines: Sequence[RequestedLine]) -> dict[str, int]:
    demand: dict[str, int] = {}
    for line in lines:
        if line.warehouse_id is not None:
            raise ValueError(f"the planner places only open lines, not one for {line.warehouse_id!r}")
        if line.quantity < 1:
            raise ValueError(f"a line's quantity must be positive, not {line.quantity}")
        demand[line.sku] = demand.get(line.sku, 0) + line.quantity
    return demand


def _eligible_candidates(
    demand: Mapping[str, int],
    warehouses: Mapping[str, Warehouse],
    available: Availability,
    ship_to: Location | None,
    deliver_within_hours: float | None,
) -> list[_Candidate]:
    """Active warehouses that hold some of the order and can meet the deadline, by id."""
    lookup = _lookup(available)
    candidates: list[_Candidate] = []
    for warehouse in sorted(warehouses.values(), key=lambda w: w.warehouse_id):
        if not warehouse.active:
            continue
        # A parcel cannot arrive before it is handled and has made the fixed part of the trip,
        # so the deadline can rule a warehouse out before its distance is worked out.
        earliest = warehouse.handling_hours + (0.0 if ship_to is None else LINE_HAUL_OVERHEAD_HOURS)
        if deliver_within_hours is not None and earliest > deliver_within_hours:
            continue
        stock = {sku: held for sku in demand if (held := lookup(sku, warehouse.warehouse_id)) > 0}
        if not stock:
            continue
        candidate = _measure(warehouse, stock, ship_to)
        hours = candidate.delivery_hours
        if hours is not None and deliver_within_hours is not None and hours > deliver_within_hours:
            continue
        candidates.append(candidate)
    return candidates


def _lookup(available: Availability) -> Callable[[str, str], int]:
    if isinstance(available, Mapping):
        stock = available
        return lambda sku, warehouse_id: stock.get((sku, warehouse_id), 0)
    return available


def _measure(warehouse: Warehouse, stock: dict[str, int], ship_to: Location | None) -> _Candidate:
    if ship_to is None:
        return _Candidate(warehouse.warehouse_id, 0, None, None, stock)
    km = distance_km(Location(warehouse.latitude, warehouse.longitude), ship_to)
    return _Candidate(
        warehouse.warehouse_id,
        round(km * 1000),
        round(km, 3),
        round(estimated_delivery_hours(warehouse, km), 2),
        stock,
    )


def _classify(
    demand: Mapping[str, int], candidates: Sequence[_Candidate]
) -> tuple[dict[str, int], dict[str, int], list[Shortfall]]:
    """Sort each sku into whole (one warehouse fills it), split, or short."""
    whole: dict[str, int] = {}
    split: dict[str, int] = {}
    shortfalls: list[Shortfall] = []
    largest = dict.fromkeys(demand, 0)
    total = dict.fromkeys(demand, 0)
    for candidate in candidates:
        for sku, held in candidate.stock.items():
            largest[sku] = max(largest[sku], held)
            total[sku] += held
    for sku, quantity in demand.items():
        if largest[sku] >= quantity:
            whole[sku] = quantity
        elif total[sku] >= quantity:
            split[sku] = quantity
        else:
            shortfalls.append(Shortfall(sku, None, quantity, total[sku]))
    return whole, split, shortfalls


# -- choosing the warehouses ----------------------------------------------------


class _SearchExhausted(Exception):
    """The exact search reached its step limit."""


@dataclass(frozen=True, slots=True)
class _Option:
    """A candidate as the covering problem sees it."""

    candidate: _Candidate
    fills: int  # bit j set: it can fill whole sku j on its own
    holds: tuple[int, ...]  # its stock of each split sku
    stock: int  # its stock of every sku the plan ships


class _Cover:
    """Choose the set of warehouses: lazy greedy first, then branch and bound from it.

    Options are numbered in rank order (nearest, then fullest, then by id). The
    state of a partial plan is the whole skus still open (a bit mask) and the
    quantity of each split sku still open.
    """

    def __init__(self, whole: Mapping[str, int], split: Mapping[str, int], candidates: Sequence[_Candidate]):
        self._split_quantity = list(split.values())
        self._full = (1 << len(whole)) - 1
        options = [_option(c, whole, split) for c in candidates]
        self._options = sorted(_undominated([o for o in options if o.fills or any(o.holds)]), key=_rank)
        n, n_whole, n_split = len(self._options), len(whole), len(split)
        # Candidates for each requirement, nearest first, so that good plans are found early.
        self._fillers = [[i for i in range(n) if self._options[i].fills >> j & 1] for j in range(n_whole)]
        self._holders = [[i for i in range(n) if self._options[i].holds[p]] for p in range(n_split)]
        # Branching on the whole sku with the fewest candidates narrows the search most.
        self._whole_order = sorted(range(n_whole), key=lambda j: len(self._fillers[j]))
        # For the bounds: the most skus one option fills, the options by stock held.
        self._most_filled = max([1, *(o.fills.bit_count() for o in self._options)])
        self._by_held = [
            sorted(self._holders[p], key=lambda i: -self._options[i].holds[p]) for p in range(n_split)
        ]
        self._by_stock = sorted(range(n), key=lambda i: -self._options[i].stock)
        self._excluded = [False] * n
        self._steps = 0
        self._best: list[int] = []
        self._best_cost: _Cost = (n + 1, 0, 0, ())

    def solve(self) -> tuple[list[_Candidate], bool]:
        """The chosen warehouses, and whether they are proven to be the best choice."""
        chosen = self._greedy()
        exact = False
        if len(chosen) <= EXACT_SEARCH_MAX_WAREHOUSES:
            chosen, exact = self._branch_and_bound(chosen)
        return [self._options[i].candidate for i in chosen], exact

    def _cost(self, chosen: Iterable[int]) -> _Cost:
        options = [self._options[i] for i in chosen]
        return (
            len(options),
            sum(o.candidate.distance_m for o in options),
            -sum(o.stock for o in options),
            tuple(sorted(o.candidate.warehouse_id for o in options)),
        )

    def _is_feasible(self, chosen: Iterable[int]) -> bool:
        open_whole = self._full
        open_split = list(self._split_quantity)
        for i in chosen:
            open_whole &= ~self._options[i].fills
            for p, held in enumerate(self._options[i].holds):
                open_split[p] -= held
        return not open_whole and all(left <= 0 for left in open_split)

    # -- greedy

    def _greedy(self) -> list[int]:
        open_whole = self._full
        open_split = list(self._split_quantity)

        def gain(i: int) -> float:
            option = self._options[i]
            covered = float((option.fills & open_whole).bit_count())
            for p, held in enumerate(option.holds):
                if held and open_split[p] > 0:
                    covered += min(held, open_split[p]) / self._split_quantity[p]
            return covered

        heap = [(-gain(i), i) for i in range(len(self._options))]
        heapq.heapify(heap)
        chosen: list[int] = []
        while open_whole or any(left > 0 for left in open_split):
            _, i = heapq.heappop(heap)
            current = gain(i)
            if current == 0:
                continue
            # Gains only shrink, so the other entries are optimistic: i is the best if it still
            # leads with its fresh gain (ties go to the lower index, the better rank).
            if heap and (-current, i) > heap[0]:
                heapq.heappush(heap, (-current, i))
                continue
            chosen.append(i)
            open_whole &= ~self._options[i].fills
            for p, held in enumerate(self._options[i].holds):
                open_split[p] -= held
        return self._without_redundant(chosen)

    def _without_redundant(self, chosen: list[int]) -> list[int]:
        kept = list(chosen)
        for i in sorted(chosen, reverse=True):  # The worst-ranked goes first.
            rest = [j for j in kept if j != i]
            if self._is_feasible(rest):
                kept = rest
        return sorted(kept)

    # -- branch and bound

    def _branch_and_bound(self, incumbent: list[int]) -> tuple[list[int], bool]:
        self._best, self._best_cost = incumbent, self._cost(incumbent)
        try:
            self._visit([], self._full, list(self._split_quantity), 0, 0)
        except _SearchExhausted:
            return sorted(self._best), False
        return sorted(self._best), True

    def _visit(
        self, chosen: list[int], open_whole: int, open_split: list[int], metres: int, stock: int
    ) -> None:
        self._steps += 1
        if self._steps > EXACT_SEARCH_STEP_LIMIT:
            raise _SearchExhausted
        best_size, best_metres, best_stock, _ = self._best_cost
        needed = len(chosen) + self._lower_bound(open_whole, open_split)
        if (needed, metres) > (best_size, best_metres):
            return
        if needed == len(chosen):
            cost = self._cost(chosen)
            if cost < self._best_cost:
                self._best, self._best_cost = list(chosen), cost
            return
        # A plan of exactly this size and distance could still win, but only on stock.
        tied = (needed, metres) == (best_size, best_metres)
        if tied and stock + self._most_stock(needed - len(chosen)) < -best_stock:
            return
        branches = self._branches(open_whole, open_split)
        for i in branches:
            # Later siblings never take i again, so no set of warehouses is visited twice.
            self._excluded[i] = True
            option = self._options[i]
            chosen.append(i)
            self._visit(
                chosen,
                open_whole & ~option.fills,
                [left - held for left, held in zip(open_split, option.holds, strict=True)],
                metres + option.candidate.distance_m,
                stock + option.stock,
            )
            chosen.pop()
        for i in branches:
            self._excluded[i] = False

    def _branches(self, open_whole: int, open_split: Sequence[int]) -> list[int]:
        """The options for the first open requirement, best-ranked first."""
        options: list[int] = []
        for j in self._whole_order:
            if open_whole >> j & 1:
                options = self._fillers[j]
                break
        else:
            options = next((self._holders[p] for p, left in enumerate(open_split) if left > 0), [])
        self._steps += len(options)
        return [i for i in options if not self._excluded[i]]

    def _lower_bound(self, open_whole: int, open_split: Sequence[int]) -> int:
        """Options still needed at least (0 exactly when nothing is open); too many if impossible."""
        bound = -(-open_whole.bit_count() // self._most_filled)
        for p, left in enumerate(open_split):
            if left > 0:
                bound = max(bound, self._pieces(p, left))
        return bound

    def _pieces(self, p: int, left: int) -> int:
        """How many of the options still free it takes, largest first, to fill split sku p."""
        count = 0
        for walked, i in enumerate(self._by_held[p], start=1):
            if not self._excluded[i]:
                count += 1
                left -= self._options[i].holds[p]
                if left <= 0:
                    self._steps += walked
                    return count
        self._steps += len(self._by_held[p])
        return len(self._options) + 1

    def _most_stock(self, more: int) -> int:
        """The most stock ``more`` of the options still free could add."""
        total = 0
        for i in self._by_stock:
            if more == 0:
                break
            self._steps += 1
            if not self._excluded[i]:
                total += self._options[i].stock
                more -= 1
        return total


def _rank(option: _Option) -> tuple[int, int, str]:
    return (option.candidate.distance_m, -option.stock, option.candidate.warehouse_id)


def _option(candidate: _Candidate, whole: Mapping[str, int], split: Mapping[str, int]) -> _Option:
    stock = candidate.stock
    fills = 0
    for j, (sku, quantity) in enumerate(whole.items()):
        if stock.get(sku, 0) >= quantity:
            fills |= 1 << j
    holds = tuple(stock.get(sku, 0) for sku in split)
    return _Option(candidate, fills, holds, sum(stock.get(sku, 0) for sku in whole) + sum(holds))


def _undominated(options: list[_Option]) -> list[_Option]:
    """Drop the options that can never be part of a best plan.

    An option without stock of any split sku is dominated by another that fills
    every sku it fills and ranks before it while holding no less: swapping it
    for the other keeps a plan feasible and makes it no worse, and a plan with
    both is not minimal. (Options holding split stock are all kept, because a
    plan may need several of them together.)
    """
    best_per_pattern: dict[int, _Option] = {}
    holders: list[_Option] = []
    for option in options:
        if any(option.holds):
            holders.append(option)
        elif option.fills not in best_per_pattern or _rank(option) < _rank(best_per_pattern[option.fills]):
            best_per_pattern[option.fills] = option
    kept: list[_Option] = []
    for option in sorted([*best_per_pattern.values(), *holders], key=_rank):
        if any(option.holds) or not any(_dominates(other, option) for other in kept):
            kept.append(option)
    return kept


def _dominates(other: _Option, option: _Option) -> bool:
    """``other`` ranks before ``option`` (the caller ensures it); is it also at least as good?"""
    return option.fills & ~other.fills == 0 and other.stock >= option.stock


# -- allocating -----------------------------------------------------------------

_Parts = list[tuple[_Candidate, int]]


def _allocate(
    order: Iterable[str],
    whole: Mapping[str, int],
    split: Mapping[str, int],
    chosen: Sequence[_Candidate],
    candidates: Sequence[_Candidate],
    measured: bool,
) -> list[Allocation]:
    """Give each sku its warehouse(s) among the chosen ones, then explain each choice."""
    parts: dict[str, _Parts] = {}
    for sku, quantity in whole.items():
        ours = min((c for c in chosen if c.held(sku) >= quantity), key=lambda c: c.rank_for(sku))
        parts[sku] = [(ours, quantity)]
    for sku, quantity in split.items():
        parts[sku] = _split_parts(sku, quantity, chosen)
    skus_from: dict[str, list[str]] = {}
    for sku, sku_parts in parts.items():
        for candidate, _ in sku_parts:
            skus_from.setdefault(candidate.warehouse_id, []).append(sku)

    allocations: list[Allocation] = []
    for sku in order:
        if sku in whole:
            ours = parts[sku][0][0]
            others = [other for other in skus_from[ours.warehouse_id] if other != sku]
            reason = _whole_reason(sku, whole[sku], ours, candidates, others, measured)
        elif sku in split:
            reason = _split_reason(split[sku], parts[sku])
        else:
            continue  # A shortfall: nothing is allocated.
        allocations += [
            Allocation(sku, c.warehouse_id, taken, c.distance_km, c.delivery_hours, reason)
            for c, taken in parts[sku]
        ]
    return allocations


def _split_parts(sku: str, quantity: int, chosen: Sequence[_Candidate]) -> _Parts:
    """Take from the chosen warehouses, nearest (or, without ship_to, fullest) first, until filled."""
    parts: _Parts = []
    left = quantity
    for candidate in sorted((c for c in chosen if c.held(sku)), key=lambda c: c.rank_for(sku)):
        if left == 0:
            break
        taken = min(candidate.held(sku), left)
        parts.append((candidate, taken))
        left -= taken
    # The search only returns sets that hold enough; only a bug could break this.
    assert left == 0 and len(parts) >= 2, (sku, quantity, parts)
    return parts


def _whole_reason(
    sku: str,
    quantity: int,
    ours: _Candidate,
    candidates: Sequence[_Candidate],
    others: Sequence[str],
    measured: bool,
) -> str:
    fillers = (c for c in candidates if c.stock.get(sku, 0) >= quantity)
    best, *runner_up = heapq.nsmallest(2, fillers, key=lambda c: c.rank_for(sku))
    if best.warehouse_id != ours.warehouse_id:
        return _detour_reason(sku, ours, best, others, measured)
    if not runner_up:
        lead = "only warehouse with enough stock"
    elif not measured:
        lead = "most stock"
    elif runner_up[0].distance_m == ours.distance_m:
        lead = "nearest warehouse with enough stock, and the most stock of those as near"
    else:
        lead = "nearest warehouse with enough stock"
    if measured:
        return f"{lead}: {ours.distance_km:.0f} km"
    return f"{lead}: {ours.held(sku)} available (no ship_to, so distance is ignored)"


def _detour_reason(
    sku: str, ours: _Candidate, best: _Candidate, others: Sequence[str], measured: bool
) -> str:
    """Why a warehouse that is not the best for this sku alone ships it anyway."""
    # Without other skus from here, the choice came from the plan as a whole: a tie on distance
    # broken by the stock of the whole order, or the greedy heuristic.
    together = (
        f"ships together with {', '.join(others)}" if others else "the best fit for the plan as a whole"
    )
    if measured:
        return (
            f"fewest warehouses: {together}, {ours.distance_km:.0f} km "
            f"(the nearest with enough stock, {best.warehouse_id}, is {best.distance_km:.0f} km)"
        )
    return (
        f"fewest warehouses: {together}, {ours.held(sku)} available "
        f"(the one with most stock, {best.warehouse_id}, has {best.held(sku)})"
    )


def _split_reason(quantity: int, parts: _Parts) -> str:
    (first, taken), *middle, (last, _) = parts
    pieces = [f"{taken} of {quantity} from {first.warehouse_id}"]
    pieces += [f"{taken} from {c.warehouse_id}" for c, taken in middle]
    pieces.append(f"the rest from {last.warehouse_id}")
    return f"split: {', '.join(pieces)} (no single warehouse has {quantity})"
