"""Tampering with the ledger behind stockd's back is found, and the first broken link is named."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys

import httpx

from tests.integration.conftest import StockdServer, seed


async def stockd_verify(server: StockdServer) -> subprocess.CompletedProcess[str]:
    """The operator's command, run as an operator would, off the event loop."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stockd", "verify", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def tamper(database: str, movement_id: int) -> None:
    """What someone with write access to the file could do: lift the guard, edit history."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("DROP TRIGGER movements_no_update")
        connection.execute("UPDATE movements SET quantity = quantity + 1 WHERE id = ?", (movement_id,))
        connection.commit()
    finally:
        connection.close()


async def test_an_edited_movement_is_named_by_reconciliation_and_by_stockd_verify(
    server: StockdServer, http: httpx.AsyncClient
) -> None:
    await seed(http, "A-1", "ber", 10)
    for order in range(3):
        created = await http.post(
            "/v1/reservations", json={"order_id": f"o-{order}", "lines": [{"sku": "A-1", "quantity": 1}]}
        )
        assert created.status_code == 201
    healthy = (await http.get("/v1/reconciliation")).json()
    assert healthy["broken_links"] == []
    verified = await stockd_verify(server)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    tamper(str(server.data_dir / "stockd.db"), movement_id=3)

    report = (await http.get("/v1/reconciliation")).json()
    assert [(b["sku"], b["warehouse_id"], b["movement_id"]) for b in report["broken_links"]] == [
        ("A-1", "ber", "3")
    ]
    verified = await stockd_verify(server)
    assert verified.returncode == 1
    assert "A-1" in verified.stdout and "3" in verified.stdout
