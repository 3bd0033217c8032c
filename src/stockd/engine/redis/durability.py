"""Say so at start-up when Redis cannot keep what stockd acknowledges.

The Redis engine answers a reservation once Redis has it. What a Redis crash
then loses depends on its persistence (docs/redis.md):
``appendonly yes`` + ``appendfsync always`` loses nothing acknowledged;
``everysec`` up to about a second of writes; no AOF everything since the last
snapshot, or everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

log = logging.getLogger("stockd.redis")


@dataclass(frozen=True, slots=True)
class Persistence:
    settings: str
    """``appendonly=…, appendfsync=…`` as Redis reports them."""
    risk: str | None
    """How Redis may lose writes stockd has acknowledged; None when it is set up not to."""


async def persistence_of(redis: aioredis.Redis) -> Persistence:
    try:
        found = {**await redis.config_get("appendonly"), **await redis.config_get("appendfsync")}
    except ResponseError:
        return Persistence(
            "unknown (CONFIG is disabled)",
            "stockd cannot read Redis' persistence settings (CONFIG is disabled), so it cannot tell",
        )
    appendonly = _text(found.get("appendonly"))
    fsync = _text(found.get("appendfsync"))
    settings = f"appendonly={appendonly}, appendfsync={fsync}"
    if appendonly != "yes":
        return Persistence(
            settings,
            "Redis runs without an append-only file: a restart of Redis loses acknowledged reservations",
        )
    if fsync != "always":
        return Persistence(
            settings,
            f"Redis syncs its append-only file {fsync!r}, not 'always': a crash can lose the last second",
        )
    return Persistence(settings, None)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def warn_unless_durable(redis: aioredis.Redis) -> None:
    risk = (await persistence_of(redis)).risk
    if risk is not None:
        log.warning(
            "%s. For a complete ledger run Redis with appendonly yes and appendfsync always (docs/redis.md).",
            risk,
        )
