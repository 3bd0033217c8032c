"""Identifiers the server makes: opaque, unguessable, roughly time-ordered.

The millisecond prefix makes new rows land at the right edge of their index
instead of at random places in it; 64 random bits make ids unguessable.
"""

from __future__ import annotations

import os
import time


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:011x}{os.urandom(8).hex()}"
