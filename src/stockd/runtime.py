"""Process-wide tuning for a long-running stockd process: the server and the benchmarks."""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default is 700).

A batch of 1,000 reservations allocates tens of thousands of short-lived objects,
which reference counting frees; collecting every 700 allocations scans them for
cycles that are not there, and promotes survivors into costly full collections.
"""


def tune_garbage_collection() -> None:
    """Call once start-up is done: what it built lives as long as the process."""
    gc.freeze()  # never scan the modules, routes and schemas again
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)
