"""The embedded engine's one writer connection recovers from a transaction cut off before it ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stockd.config import SQLITE_FILE
from stockd.store.sqlite import SqliteDatabase


async def count_rows(database: SqliteDatabase) -> int:
    rows = await database.fetch("SELECT count(*) FROM products")
    return int(rows[0][0])


async def insert_product(database: SqliteDatabase, sku: str) -> None:
    async with database.transaction() as session:
        await session.execute(
            "INSERT INTO products (sku, name, created_at, updated_at) VALUES (?, ?, 0, 0)", (sku, sku)
        )


async def test_a_transaction_left_open_by_a_cancelled_caller_does_not_block_the_writes_after_it(
    tmp_path: Path,
) -> None:
    database = await asyncio.to_thread(SqliteDatabase, tmp_path / SQLITE_FILE)
    try:
        # What a caller cancelled while its BEGIN ran on the writer thread leaves behind.
        await database.on_writer(lambda connection: connection.execute("BEGIN IMMEDIATE"))
        await database.on_writer(
            lambda connection: connection.execute(
                "INSERT INTO products (sku, name, created_at, updated_at) VALUES ('cut-off', 'x', 0, 0)"
            )
        )

        await insert_product(database, "next")

        assert await count_rows(database) == 1  # the next write went in; the cut-off one did not
    finally:
        await database.close()
