"""A database or Redis that cannot take writes right now is a 503 for the whole batch, not a 500."""

from __future__ import annotations

import asyncpg
import pytest
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from stockd.domain.errors import Unavailable
from stockd.engine.redis.engine import redis_as_unavailable
from stockd.store.postgres import unreachable_as_unavailable


@pytest.mark.parametrize(
    "failure",
    [
        ReadOnlyError("READONLY You can't write against a read only replica."),
        OutOfMemoryError("OOM command not allowed"),
    ],
)
def test_a_redis_that_cannot_take_writes_is_unavailable(failure: Exception) -> None:
    with pytest.raises(Unavailable), redis_as_unavailable():
        raise failure


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        asyncpg.exceptions.DiskFullError("could not extend file"),
    ],
)
def test_a_postgresql_that_cannot_take_writes_is_unavailable(failure: Exception) -> None:
    with pytest.raises(Unavailable), unreachable_as_unavailable():
        raise failure
