"""Identifiers the server makes: opaque, unguessable, roughly time-ordered.

The millisecond prefix makes new rows land at the right edge of their index
instead of at random places in it; 64 random bits make ids unguessable.
"""

from __future__ import annotations

import os
import threading
import time

_RANDOM_BYTES_PER_REFILL = 8 * 512
_random = b""
_used = 0
_lock = threading.Lock()  # two threads must never hand out the same eight bytes


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:011x}{_random_hex8()}"


def _random_hex8() -> str:
    """Eight bytes from the OS's CSPRNG, drawn 4 KiB at a time: one system call per 512 ids, not per id."""
    global _random, _used
    with _lock:
        if _used >= len(_random):
            _random, _used = os.urandom(_RANDOM_BYTES_PER_REFILL), 0
        chunk = _random[_used : _used + 8]
        _used += 8
    return chunk.hex()
