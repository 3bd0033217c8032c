"""Identifiers the server makes: opaque, unguessable, roughly time-ordered.

The millisecond prefix makes new rows land at the right edge of their index
instead of at random places in it; 64 random bits make ids unguessable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

_IDS_PER_REFILL = 512
_fresh: Iterator[str] = iter(())
_refill_lock = threading.Lock()


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:011x}{_random_hex16()}"


def _random_hex16() -> str:
    """Eight bytes from the OS's CSPRNG as hex, drawn 4 KiB at a time: one system call per 512 ids.

    Each id takes the next string from a list iterator, and advancing one is a single step
    under the GIL, so two threads never get the same string and the common path takes no lock.
    """
    try:
        return next(_fresh)
    except StopIteration:
        return _refill()


def _refill() -> str:
    """Draw the next 512. Two threads that ran dry together may both draw: every string is still
    fresh randomness, and the set replaced is merely dropped."""
    global _fresh
    with _refill_lock:
        digits = os.urandom(8 * _IDS_PER_REFILL).hex()
        _fresh = iter([digits[start : start + 16] for start in range(0, len(digits), 16)])
        return next(_fresh)
