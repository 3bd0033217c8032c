"""Reservations: hold, confirm, release; expiry happens by itself."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get, post
from litestar.params import JSONBody, Parameter

from stockd.api import render
from stockd.api.commands import run_command
from stockd.api.params import Caller, Cursor, Limit, OpaqueId, Service
from stockd.api.schemas import Page, ReservationOut, ReserveIn
from stockd.domain.access import Principal
from stockd.domain.commands import Confirm, Release, RequestedLine, Reserve
from stockd.domain.errors import Forbidden
from stockd.domain.model import Location
from stockd.service import new_reservation_id

OrderQuery = Annotated[str, Parameter(min_length=1, max_length=128, description="the order's id")]


@post(
    "/v1/reservations",
    tags=["reservations"],
    summary="Hold stock for an order",
    status_code=201,
    scope="write",
)
async def create_reservation(
    data: JSONBody[ReserveIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[ReservationOut]:
    if principal.is_limited and any(line.warehouse_id is None for line in data.lines):
        # The planner would be free to pick any warehouse; a limited key must name its own.
        raise Forbidden("a key limited to some warehouses must name a warehouse_id on every line")
    principal.require_warehouses(line.warehouse_id for line in data.lines if line.warehouse_id is not None)
    command = Reserve(
        reservation_id=new_reservation_id(),
        order_id=data.order_id,
        lines=tuple(RequestedLine(line.sku, line.quantity, line.warehouse_id) for line in data.lines),
        ttl_seconds=data.ttl_seconds,
        ship_to=None if data.ship_to is None else Location(data.ship_to.latitude, data.ship_to.longitude),
        deliver_within_hours=data.deliver_within_hours,
    )
    return await run_command(service, request, command, data, success_status=201)  # type: ignore[return-value]


@get("/v1/reservations/{reservation_id:str}", tags=["reservations"], summary="Get a reservation")
async def get_reservation(reservation_id: OpaqueId, service: Service, principal: Caller) -> ReservationOut:
    reservation = await service.get_reservation(reservation_id)
    principal.require_reservation(reservation)
    return render.reservation(reservation)


@get("/v1/reservations", tags=["reservations"], summary="List an order's reservations")
async def list_reservations(
    order_id: OrderQuery, service: Service, principal: Caller, limit: Limit = 100, cursor: Cursor = None
) -> Page[ReservationOut]:
    page = await service.list_reservations(order_id, limit, cursor)
    # A limited key sees only reservations wholly within its warehouses (a page may come out short).
    visible = [r for r in page.items if principal.may_see_reservation(r)]
    return Page([render.reservation(r) for r in visible], page.next_cursor)


@post(
    "/v1/reservations/{reservation_id:str}/confirm",
    tags=["reservations"],
    summary="Payment succeeded: ship",
    status_code=200,
    scope="write",
)
async def confirm(
    reservation_id: OpaqueId,
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[ReservationOut]:
    await require_reservation(service, principal, reservation_id)
    return await run_command(service, request, Confirm(reservation_id), None)  # type: ignore[return-value]


@post(
    "/v1/reservations/{reservation_id:str}/release",
    tags=["reservations"],
    summary="The order was cancelled",
    status_code=200,
    scope="write",
)
async def release(
    reservation_id: OpaqueId,
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[ReservationOut]:
    await require_reservation(service, principal, reservation_id)
    return await run_command(service, request, Release(reservation_id), None)  # type: ignore[return-value]


async def require_reservation(service: Service, principal: Principal, reservation_id: str) -> None:
    """A limited key may act only on reservations within its warehouses. A reservation's
    lines never change after it is made, so checking before the command is not a race."""
    if principal.is_limited:
        principal.require_reservation(await service.get_reservation(reservation_id))


HANDLERS = [create_reservation, get_reservation, list_reservations, confirm, release]
