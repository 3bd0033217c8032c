"""Replenishment: alerts, webhook subscriptions with their delivery log, and a live event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import JSONBody, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from stockd.api import render
from stockd.api.commands import answer_once
from stockd.api.params import Caller, Cursor, Limit, OpaqueId, Service
from stockd.api.schemas import AlertOut, DeliveryOut, Page, WebhookIn, WebhookOut

HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""

StatusQuery = Annotated[
    Literal["open", "resolved"] | None, Parameter(description="only alerts in this status")
]
EventsQuery = Annotated[
    list[Literal["alert.opened", "alert.resolved", "stock.changed"]] | None,
    Parameter(description="only these event types (repeat the parameter); default: all"),
]


@get("/v1/alerts", tags=["replenishment"], summary="Replenishment alerts, oldest first")
async def list_alerts(
    service: Service, principal: Caller, status: StatusQuery = None, limit: Limit = 100, cursor: Cursor = None
) -> Page[AlertOut]:
    page = await service.list_alerts(status, limit, cursor)
    # A limited key sees only its warehouses' alerts (a page may come out short).
    visible = [a for a in page.items if principal.may_touch(a.warehouse_id)]
    return Page([render.alert(a) for a in visible], page.next_cursor)


@post("/v1/webhooks", tags=["replenishment"], summary="Subscribe a URL to events", status_code=201)
async def create_webhook(
    data: JSONBody[WebhookIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
) -> Response[WebhookOut]:
    async def answer() -> WebhookOut:
        return render.webhook(await service.create_webhook(data.url, data.events), with_secret=True)

    return await answer_once(service, request, data, answer, success_status=201)  # type: ignore[return-value]


@get("/v1/webhooks", tags=["replenishment"], summary="Webhook subscriptions", scope="admin")
async def list_webhooks(service: Service, limit: Limit = 100, cursor: Cursor = None) -> Page[WebhookOut]:
    page = await service.list_webhooks(limit, cursor)
    return Page([render.webhook(w) for w in page.items], page.next_cursor)


@delete("/v1/webhooks/{webhook_id:str}", tags=["replenishment"], summary="Unsubscribe", status_code=204)
async def delete_webhook(webhook_id: OpaqueId, service: Service) -> None:
    await service.delete_webhook(webhook_id)


@get(
    "/v1/webhooks/{webhook_id:str}/deliveries",
    tags=["replenishment"],
    summary="A webhook's delivery log",
    scope="admin",
)
async def list_deliveries(
    webhook_id: OpaqueId, service: Service, limit: Limit = 100, cursor: Cursor = None
) -> Page[DeliveryOut]:
    page = await service.list_deliveries(webhook_id, limit, cursor)
    return Page([render.delivery(d) for d in page.items], page.next_cursor)


@get(
    "/v1/events",
    tags=["replenishment"],
    summary="Server-Sent Events: stock changes and alerts, live",
    media_type="text/event-stream",
)
async def stream_events(service: Service, principal: Caller, types: EventsQuery = None) -> ServerSentEvent:
    principal.require_unlimited("follow every warehouse's events")
    wanted = set(types or ())

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        async with service.broadcast.listen() as queue:
            yield ServerSentEventMessage(comment="stockd events")
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="heartbeat")
                    continue
                if not wanted or event.type in wanted:
                    yield ServerSentEventMessage(
                        data=msgspec.json.encode(event.data).decode(), event=event.type
                    )

    return ServerSentEvent(messages())


HANDLERS = [list_alerts, create_webhook, list_webhooks, delete_webhook, list_deliveries, stream_events]
