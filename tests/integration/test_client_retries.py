"""A client that gives up waiting and retries with the same Idempotency-Key gets one reservation.

The first attempt times out on the client's side after the request is sent:
the server may have finished it, be in the middle of it, or not have started.
Retrying with the same key until an answer comes must end with exactly one
reservation, answered the same way to every retry that gets one.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from tests.integration.conftest import StockdServer, all_pages, level, seed

SKU = "RETRY-1"
WAREHOUSE = "ber"
ORDERS = 30


async def test_a_client_that_times_out_and_retries_with_its_key_holds_stock_once(
    engine_server: StockdServer,
) -> None:
    async with engine_server.client() as http:
        await seed(http, SKU, WAREHOUSE, quantity=1_000)
        # Impatient clients: a timeout shorter than the round trip, so most first attempts are cut off.
        async with engine_server.client(timeout=httpx.Timeout(0.0005)) as impatient:
            answers = await asyncio.gather(
                *(reserve_until_answered(impatient, http, n) for n in range(ORDERS))
            )

        for order_number, answer in enumerate(answers):
            listed = await all_pages(http, "/v1/reservations", order_id=f"retry-{order_number}")
            assert [r["id"] for r in listed] == [answer["id"]]
        assert await level(http, SKU, WAREHOUSE) == (1_000, ORDERS, 1_000 - ORDERS)


async def reserve_until_answered(
    impatient: httpx.AsyncClient, patient: httpx.AsyncClient, order_number: int
) -> dict[str, object]:
    body = {
        "order_id": f"retry-{order_number}",
        "lines": [{"sku": SKU, "quantity": 1, "warehouse_id": WAREHOUSE}],
    }
    headers = {"Idempotency-Key": f"retry-key-{order_number}"}
    # A timeout leaves the outcome unknown: exactly the case the key is for.
    with contextlib.suppress(httpx.TimeoutException):
        await impatient.post("/v1/reservations", json=body, headers=headers)
    while True:
        response = await patient.post("/v1/reservations", json=body, headers=headers)
        if response.status_code == 409 and response.json()["code"] == "request_in_progress":
            await asyncio.sleep(0.01)
            continue
        assert response.status_code == 201, response.text
        again = await patient.post("/v1/reservations", json=body, headers=headers)
        assert (again.status_code, again.json()) == (201, response.json())
        return dict(response.json())
