"""When the Redis engine may decide on Redis' counters: once the leading persister has checked them.

The ready marker holds the run id (``INFO server``) of the Redis the leading
persister checked against the ledger in PostgreSQL, or rebuilt from it. A
Redis that restarted has a new run id, so nothing is decided on what it brought
back until the persister has compared it with the ledger: kept if its stream
holds every entry PostgreSQL has (an append-only file synced always loses
nothing), rebuilt if not (an RDB snapshot, the last second of ``everysec``, a
replica that lagged), for counters older than the ledger would sell stock twice.
"""

from __future__ import annotations

from importlib.resources import files

import redis.asyncio as aioredis

READY_LUA = files("stockd.engine.redis").joinpath("ready.lua").read_text()
"""Defines the Lua function ``is_ready(marker)``; scripts that must check readiness start with it."""

IS_READY_SCRIPT = READY_LUA + "\nreturn is_ready(KEYS[1]) and 1 or 0\n"


async def run_id(redis: aioredis.Redis) -> str:
    """The id of this run of Redis: a restart changes it."""
    return str((await redis.info("server"))["run_id"])
