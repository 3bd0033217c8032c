"""Helpers the contract tests share: problem documents, balances, the ledger, polling, concurrency.

Everything here talks to the service over HTTP only, as a client would.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
EXPIRY_DEADLINE_SECONDS = 5.0
"""Real time allowed for the sweeper to give a lapsed hold back (API.md promises 2 s)."""


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem document with the given status and machine-readable code."""
    assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, (content_type, response.text)
    doc = response.json()
    assert isinstance(doc, dict), doc
    assert doc.get("code") == code, doc
    assert doc.get("status") == status, doc
    for member in ("type", "title", "detail"):
        assert isinstance(doc.get(member), str), (member, doc)
    return doc


def assert_json(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").split(";")[0].strip() == "application/json", (
        response.headers
    )
    return response.json()


def assert_timestamp(value: object) -> datetime:
    assert isinstance(value, str) and TIMESTAMP.match(value), value
    return datetime.fromisoformat(value)


async def stock(client: Client, sku: str = "A-1") -> dict[str, Any]:
    response = await client.get(f"/v1/stock/{sku}")
    return assert_json(response, 200)  # type: ignore[no-any-return]


async def level(client: Client, sku: str = "A-1", warehouse_id: str = "ber") -> dict[str, Any]:
    response = await client.get(f"/v1/stock/{sku}/{warehouse_id}")
    return assert_json(response, 200)  # type: ignore[no-any-return]


def balances(level_or_stock: dict[str, Any]) -> tuple[int, int, int]:
    """(on hand, reserved, available)."""
    return (
        level_or_stock["quantity_on_hand"],
        level_or_stock["quantity_reserved"],
        level_or_stock["quantity_available"],
    )


async def collect(client: Client, path: str, limit: int = 1000, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query = {**params, "limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        page = assert_json(await client.get(path, params=query), 200)
        assert set(page) >= {"items", "next_cursor"}, page
        assert len(page["items"]) <= limit, page
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path} never stopped paginating")


async def movements(client: Client, **filters: Any) -> list[dict[str, Any]]:
    return await collect(client, "/v1/movements", **filters)


async def reserve(
    client: Client,
    lines: Sequence[dict[str, Any]],
    *,
    order_id: str = "o-1",
    ttl_seconds: int | None = None,
    idempotency_key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"order_id": order_id, "lines": list(lines)}
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    return await client.post("/v1/reservations", json=body, headers=headers)


async def reserved(client: Client, lines: Sequence[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """A reservation that must succeed."""
    return assert_json(await reserve(client, lines, **kwargs), 201)  # type: ignore[no-any-return]


async def eventually(
    check: Callable[[], Awaitable[bool]], deadline_seconds: float = EXPIRY_DEADLINE_SECONDS
) -> bool:
    """Poll ``check`` until it holds or the real-time deadline passes; never measures durations."""
    give_up_at = time.monotonic() + deadline_seconds
    while True:
        if await check():
            return True
        if time.monotonic() > give_up_at:
            return False
        await asyncio.sleep(0.05)


async def concurrently(
    client: Client, calls: Sequence[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]]
) -> list[httpx.Response]:
    """Run requests truly at the same time, on the running app's own event loop.

    The test client hands each request to the app and blocks until it is answered,
    so ``asyncio.gather`` over it would serialize them. Here they are gathered on
    the app's loop through a plain ASGI transport, so they interleave as real
    concurrent clients' requests do.
    """

    async def gather_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            return list(await asyncio.gather(*(call(http) for call in calls)))

    return await on_the_apps_loop(client, gather_all)


async def on_the_apps_loop(client: Client, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the event loop the app runs on (its database connections belong to it)."""
    return await asyncio.to_thread(client.blocking_portal.call, work)


async def snapshot(client: Client, sku: str = "A-1", order_ids: Sequence[str] = ("o-1",)) -> dict[str, Any]:
    """Everything a refused request could have changed, to compare before and after."""
    return {
        "stock": (await client.get(f"/v1/stock/{sku}")).json(),
        "movements": len(await movements(client)),
        "products": await collect(client, "/v1/products"),
        "warehouses": await collect(client, "/v1/warehouses"),
        "reservations": {o: await collect(client, "/v1/reservations", order_id=o) for o in order_ids},
    }
