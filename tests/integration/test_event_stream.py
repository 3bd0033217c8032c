"""The Server-Sent Events stream, read by a real client from the real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.integration.conftest import seed

STREAM_DEADLINE_SECONDS = 20.0


async def read_events(
    response: httpx.Response,
    wanted: list[str],
    found: list[tuple[str, dict[str, Any]]],
    subscribed: asyncio.Event,
) -> None:
    """Collect (event, data) pairs until every wanted event type has been seen."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            subscribed.set()  # the server sends a comment once this stream is listening
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event:
            found.append((event, json.loads(line.split(":", 1)[1])))
            if all(any(kind == w for kind, _ in found) for w in wanted):
                return


async def test_a_dashboard_sees_an_alert_open_and_resolve_on_the_event_stream(
    http: httpx.AsyncClient,
) -> None:
    await seed(http, "A-1", "ber", 10)
    policy = await http.put(
        "/v1/stock/A-1/ber/reorder-policy", json={"reorder_point": 5, "reorder_quantity": 20}
    )
    assert policy.status_code == 200
    found: list[tuple[str, dict[str, Any]]] = []
    async with http.stream("GET", "/v1/events", timeout=httpx.Timeout(5.0, read=None)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        subscribed = asyncio.Event()
        reader = asyncio.create_task(
            read_events(stream, ["alert.opened", "alert.resolved"], found, subscribed)
        )
        await asyncio.wait_for(subscribed.wait(), STREAM_DEADLINE_SECONDS)
        created = await http.post(
            "/v1/reservations", json={"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 7}]}
        )
        assert created.status_code == 201
        released = await http.post(f"/v1/reservations/{created.json()['id']}/release")
        assert released.status_code == 200
        await asyncio.wait_for(reader, STREAM_DEADLINE_SECONDS)

    kinds = [kind for kind, _ in found]
    assert kinds.index("alert.opened") < kinds.index("alert.resolved")
    opened = dict(found)["alert.opened"]
    assert (opened["sku"], opened["quantity_available"], opened["suggested_quantity"]) == ("A-1", 3, 22)
    stock_changes = [data for kind, data in found if kind == "stock.changed"]
    assert [change["quantity_available"] for change in stock_changes][:2] == [3, 10]
