"""One small interface over SQLite and PostgreSQL, so the store and the engine are written once.

Queries use ``?`` placeholders; the PostgreSQL side numbers them. The few places
where the dialects differ — membership in a list, row locks, bulk inserts — are
the helpers at the bottom of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Row = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]


class Session(Protocol):
    """The statements of one transaction."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert (COPY on PostgreSQL)."""
        ...


class Database(Protocol):
    @property
    def dialect(self) -> Dialect: ...

    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A read-write transaction: committed when the block ends, rolled back if it raises."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read from one consistent snapshot, outside any write transaction."""
        ...

    async def close(self) -> None: ...


def member_of(dialect: Dialect, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column`` is one of ``values``: one array parameter on PostgreSQL, a list of them on SQLite."""
    if dialect == "postgresql":
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def pairs_in(
    dialect: Dialect, columns: tuple[str, str], pairs: Sequence[tuple[str, str]]
) -> tuple[str, list[Any]]:
    """``(first, second)`` is one of ``pairs``: two arrays on PostgreSQL, a chain of ORs on SQLite."""
    first, second = columns
    if dialect == "postgresql":
        return (
            f"({first}, {second}) IN (SELECT * FROM unnest(?::text[], ?::text[]))",
            [[a for a, _ in pairs], [b for _, b in pairs]],
        )
    condition = " OR ".join([f"({first} = ? AND {second} = ?)"] * len(pairs))
    return condition, [part for pair in pairs for part in pair]


def for_update(dialect: Dialect) -> str:
    """Row locks where the database has them (SQLite's BEGIN IMMEDIATE already excludes other writers)."""
    return " FOR UPDATE" if dialect == "postgresql" else ""


def chunks(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """SQLite caps the parameters of one statement; PostgreSQL's arrays make one chunk enough."""
    return [values[start : start + size] for start in range(0, len(values), size)]
