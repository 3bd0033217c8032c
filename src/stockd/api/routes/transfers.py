"""Transfers: stock leaves one warehouse at once and enters another on receipt."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import JSONBody

from stockd.api import render
from stockd.api.commands import run_command
from stockd.api.params import Caller, OpaqueId, Service
from stockd.api.schemas import TransferIn, TransferOut
from stockd.domain.commands import TransferIn as ReceiveTransfer
from stockd.domain.commands import TransferOut as SendTransfer
from stockd.service import new_transfer_id


@post(
    "/v1/transfers",
    tags=["transfers"],
    summary="Send stock to another warehouse",
    status_code=201,
    scope="write",
)
async def create_transfer(
    data: JSONBody[TransferIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[TransferOut]:
    principal.require_warehouses((data.from_warehouse_id, data.to_warehouse_id))
    command = SendTransfer(
        new_transfer_id(),
        data.sku,
        data.from_warehouse_id,
        data.to_warehouse_id,
        data.quantity,
        data.reference_id,
    )
    return await run_command(service, request, command, data, success_status=201)  # type: ignore[return-value]


@post(
    "/v1/transfers/{transfer_id:str}/receive",
    tags=["transfers"],
    summary="The transfer arrived",
    status_code=200,
    scope="write",
)
async def receive_transfer(
    transfer_id: OpaqueId,
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[TransferOut]:
    if principal.is_limited:
        # A transfer's warehouses never change, so checking before the command is not a race.
        principal.require_transfer(await service.get_transfer(transfer_id))
    return await run_command(service, request, ReceiveTransfer(transfer_id), None)  # type: ignore[return-value]


@get("/v1/transfers/{transfer_id:str}", tags=["transfers"], summary="Get a transfer")
async def get_transfer(transfer_id: OpaqueId, service: Service, principal: Caller) -> TransferOut:
    transfer = await service.get_transfer(transfer_id)
    principal.require_transfer(transfer)
    return render.transfer(transfer)


HANDLERS = [create_transfer, receive_transfer, get_transfer]
