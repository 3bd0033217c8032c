"""Fulfillment planning: where would an order ship from, and why. Changes nothing."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.params import JSONBody

from stockd.api import render
from stockd.api.commands import answer_once
from stockd.api.params import Caller, Service
from stockd.api.schemas import PlanIn, PlanOut
from stockd.domain.commands import RequestedLine
from stockd.domain.model import Location


@post(
    "/v1/fulfillment/plan",
    tags=["fulfillment"],
    summary="Plan where lines would ship from",
    status_code=200,
    scope="write",
)
async def plan_fulfillment(
    data: JSONBody[PlanIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[PlanOut]:
    async def answer() -> PlanOut:
        ship_to = None if data.ship_to is None else Location(data.ship_to.latitude, data.ship_to.longitude)
        lines = [RequestedLine(line.sku, line.quantity) for line in data.lines]
        return render.fulfillment_plan(
            await service.plan(lines, ship_to, data.deliver_within_hours, within=principal.warehouse_ids)
        )

    return await answer_once(service, request, data, answer)  # type: ignore[return-value]


HANDLERS = [plan_fulfillment]
