"""Two stockd processes on one PostgreSQL database: the database, not a process, keeps the promises.

Each process has its own batcher and its own set of idempotency keys in
flight, so nothing in memory stops them from deciding on the same balance or
running the same key twice; only PostgreSQL does — its row locks, the per-key
advisory locks and the primary key of the stored idempotency records.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import empty_tables
from tests.integration.conftest import (
    LoadClient,
    ServerFactory,
    StockdServer,
    all_pages,
    assert_reconciled,
    assert_sold_out,
    ledger_balances,
    level,
    movements_of,
    run_coroutine,
    seed,
)

WAREHOUSE = "ber"
UNITS = 1_000
BUYERS = 5_000
KEYS = 40


@pytest.fixture(scope="module")
def two_servers(postgres_database: str, module_server_factory: ServerFactory) -> list[StockdServer]:
    """Two processes, default strategy, on the same PostgreSQL database, shared by this module's
    tests (each uses skus and orders of its own). Started one after the other, so the first has
    migrated the schema before the second looks at it."""
    run_coroutine(empty_tables(postgres_database))
    return [module_server_factory(database=postgres_database) for _ in range(2)]


async def test_two_processes_selling_the_same_thousand_units_to_five_thousand_buyers_hold_exactly_a_thousand(
    two_servers: list[StockdServer],
) -> None:
    sku = "FLASH-TWO"
    first, second = two_servers
    async with first.client() as http, first.load_client() as left, second.load_client() as right:
        await seed(http, sku, WAREHOUSE, quantity=UNITS)

        async def buy(load: LoadClient, n: int) -> httpx.Response:
            return await load.post(
                "/v1/reservations",
                json={"order_id": f"two-{n}", "lines": [{"sku": sku, "quantity": 1}]},
            )

        # Interleaved, so both processes sell from the first request to the last.
        responses = await asyncio.gather(*(buy(left if n % 2 else right, n) for n in range(BUYERS)))

        held = await assert_sold_out(http, responses, sku, WAREHOUSE, UNITS)
        from_first = sum(1 for n, response in enumerate(responses) if n % 2 and response.status_code == 201)
        assert 0 < from_first < UNITS, "both processes were supposed to sell some of the stock"

    # The other process sees the very same state.
    async with second.client() as http:
        assert await level(http, sku, WAREHOUSE) == (UNITS, UNITS, 0)
        await assert_reconciled(http)
        for reservation in held[:50]:
            response = await http.get(f"/v1/reservations/{reservation['id']}")
            assert response.status_code == 200, response.text
            assert response.json() == reservation


async def test_the_same_idempotency_key_sent_to_both_processes_at_once_reserves_exactly_once(
    two_servers: list[StockdServer],
) -> None:
    sku = "KEYED-TWO"
    first, second = two_servers
    async with first.client() as left, second.client() as right:
        await seed(left, sku, WAREHOUSE, quantity=10 * KEYS)

        async def reserve(http: httpx.AsyncClient, n: int) -> httpx.Response:
            return await http.post(
                "/v1/reservations",
                json={"order_id": f"keyed-{n}", "lines": [{"sku": sku, "quantity": 2}]},
                headers={"Idempotency-Key": f"same-key-{n}"},
            )

        pairs = await asyncio.gather(
            *(asyncio.gather(reserve(left, n), reserve(right, n)) for n in range(KEYS))
        )

        answers: dict[int, dict[str, Any]] = {}
        for n, pair in enumerate(pairs):
            created = [response for response in pair if response.status_code == 201]
            for response in pair:
                assert response.status_code in (201, 409), (n, response.status_code, response.text)
                if response.status_code == 409:
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.json()["code"] == "request_in_progress", (n, response.text)
            assert created, (n, [response.text for response in pair])
            assert len({response.content for response in created}) == 1, (n, [r.text for r in created])
            answers[n] = created[0].json()
            assert answers[n]["order_id"] == f"keyed-{n}"

        # One reservation per key, whichever process is asked.
        for http in (left, right):
            for n, answer in answers.items():
                listed = await all_pages(http, "/v1/reservations", order_id=f"keyed-{n}")
                assert [reservation["id"] for reservation in listed] == [answer["id"]], n

        # A repeat, to either process, is the first answer and changes nothing.
        replays = await asyncio.gather(*(reserve(http, n) for n in range(KEYS) for http in (left, right)))
        for index, replay in enumerate(replays):
            assert replay.status_code == 201, replay.text
            assert replay.json() == answers[index // 2]

        assert await level(left, sku, WAREHOUSE) == (10 * KEYS, 2 * KEYS, 8 * KEYS)
        movements = await movements_of(right, sku)
        reserves = [movement for movement in movements if movement["type"] == "reserve"]
        assert sorted(movement["reference_id"] for movement in reserves) == sorted(
            answer["id"] for answer in answers.values()
        )
        assert ledger_balances(movements) == {WAREHOUSE: (10 * KEYS, 2 * KEYS)}
        await assert_reconciled(left)
        await assert_reconciled(right)


async def test_the_same_idempotency_key_sent_to_both_processes_creates_one_webhook(
    two_servers: list[StockdServer],
) -> None:
    """Not a stock command: no batch holds the key. The key is claimed in the database first."""
    first, second = two_servers
    async with first.client() as left, second.client() as right:

        async def subscribe(http: httpx.AsyncClient, n: int) -> httpx.Response:
            return await http.post(
                "/v1/webhooks",
                json={"url": f"http://127.0.0.1:9/hook-{n}", "events": ["alert.opened"]},
                headers={"Idempotency-Key": f"same-webhook-{n}"},
            )

        pairs = await asyncio.gather(
            *(asyncio.gather(subscribe(left, n), subscribe(right, n)) for n in range(KEYS))
        )
        for n, pair in enumerate(pairs):
            assert sorted(response.status_code for response in pair) in ([201, 201], [201, 409]), (
                n,
                [response.text for response in pair],
            )
            created = [response for response in pair if response.status_code == 201]
            assert len({response.content for response in created}) == 1, n  # one answer, byte for byte
            for response in pair:
                if response.status_code == 409:
                    assert response.json()["code"] == "request_in_progress"

        webhooks = await all_pages(left, "/v1/webhooks")
        urls = [webhook["url"] for webhook in webhooks if "/hook-" in webhook["url"]]
        assert sorted(urls) == sorted(f"http://127.0.0.1:9/hook-{n}" for n in range(KEYS))  # one each
