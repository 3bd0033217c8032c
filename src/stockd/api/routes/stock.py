"""Stock: levels, receiving goods, adjustments, reorder policies."""

from __future__ import annotations

from litestar import Request, Response, get, post, put
from litestar.params import JSONBody

from stockd.api import render
from stockd.api.commands import run_command
from stockd.api.params import Caller, Service, SkuPath, WarehousePath
from stockd.api.schemas import AdjustIn, ReceiveIn, ReorderPolicyIn, SkuLevelOut, StockOut
from stockd.domain.commands import Adjust, Receive, SetReorderPolicy
from stockd.domain.model import AdjustReason


@get("/v1/stock/{sku:str}", tags=["stock"], summary="A SKU's stock in every warehouse")
async def get_stock(sku: SkuPath, service: Service, principal: Caller) -> StockOut:
    return render.stock((await service.stock_of(sku)).within(principal.warehouse_ids))


@get(
    "/v1/stock/{sku:str}/{warehouse_id:str}",
    tags=["stock"],
    summary="A SKU's stock in one warehouse",
)
async def get_level(
    sku: SkuPath, warehouse_id: WarehousePath, service: Service, principal: Caller
) -> SkuLevelOut:
    principal.require_warehouses([warehouse_id])
    level, in_transit = await service.level_of(sku, warehouse_id)
    return render.sku_level(level, in_transit)


@post("/v1/stock/receive", tags=["stock"], summary="Goods arrive", status_code=200, scope="write")
async def receive(
    data: JSONBody[ReceiveIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[SkuLevelOut]:
    principal.require_warehouses([data.warehouse_id])
    command = Receive(data.sku, data.warehouse_id, data.quantity, data.reference_id, data.reference_type)
    return await run_command(service, request, command, data)  # type: ignore[return-value]


@post(
    "/v1/stock/adjust",
    tags=["stock"],
    summary="Correct stock after a count, damage or loss",
    status_code=200,
    scope="write",
)
async def adjust(
    data: JSONBody[AdjustIn],
    request: Request,  # type: ignore[type-arg]
    service: Service,
    principal: Caller,
) -> Response[SkuLevelOut]:
    principal.require_warehouses([data.warehouse_id])
    command = Adjust(
        data.sku,
        data.warehouse_id,
        data.delta,
        AdjustReason(data.reason),
        data.expected_on_hand,
        data.reference_id,
    )
    return await run_command(service, request, command, data)  # type: ignore[return-value]


@put(
    "/v1/stock/{sku:str}/{warehouse_id:str}/reorder-policy",
    tags=["stock"],
    summary="Set a reorder policy",
)
async def put_reorder_policy(
    sku: SkuPath,
    warehouse_id: WarehousePath,
    data: JSONBody[ReorderPolicyIn],
    service: Service,
    principal: Caller,
) -> SkuLevelOut:
    principal.require_warehouses([warehouse_id])
    command = SetReorderPolicy(sku, warehouse_id, data.reorder_point, data.reorder_quantity)
    outcome = await service.execute(command)
    return render.sku_level(outcome)  # type: ignore[arg-type]


HANDLERS = [get_stock, get_level, receive, adjust, put_reorder_policy]
