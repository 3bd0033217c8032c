"""Catalog: products and warehouses."""

from __future__ import annotations

from litestar import Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from stockd.api import render
from stockd.api.params import Cursor, Limit, Service, SkuPath, WarehousePath
from stockd.api.schemas import Page, ProductIn, ProductOut, WarehouseIn, WarehouseOut
from stockd.domain.model import Dimensions, Product, Warehouse


@put(
    "/v1/products/{sku:str}",
    tags=["catalog"],
    summary="Create (201) or replace (200) a product",
    responses={201: ResponseSpec(ProductOut, description="Created: the product is new")},
)
async def put_product(sku: SkuPath, data: JSONBody[ProductIn], service: Service) -> Response[ProductOut]:
    now = service.clock.now()
    dimensions = data.dimensions_mm
    product, created = await service.put_product(
        Product(
            sku=sku,
            name=data.name,
            description=data.description,
            weight_grams=data.weight_grams,
            dimensions_mm=None
            if dimensions is None
            else Dimensions(dimensions.length, dimensions.width, dimensions.height),
            created_at=now,
            updated_at=now,
        )
    )
    return Response(render.product(product), status_code=201 if created else 200)


@get("/v1/products/{sku:str}", tags=["catalog"], summary="Get a product")
async def get_product(sku: SkuPath, service: Service) -> ProductOut:
    return render.product(await service.get_product(sku))


@get("/v1/products", tags=["catalog"], summary="List products")
async def list_products(service: Service, limit: Limit = 100, cursor: Cursor = None) -> Page[ProductOut]:
    page = await service.list_products(limit, cursor)
    return Page([render.product(p) for p in page.items], page.next_cursor)


@put(
    "/v1/warehouses/{warehouse_id:str}",
    tags=["catalog"],
    summary="Create (201) or replace (200) a warehouse",
    responses={201: ResponseSpec(WarehouseOut, description="Created: the warehouse is new")},
)
async def put_warehouse(
    warehouse_id: WarehousePath, data: JSONBody[WarehouseIn], service: Service
) -> Response[WarehouseOut]:
    now = service.clock.now()
    warehouse, created = await service.put_warehouse(
        Warehouse(
            warehouse_id=warehouse_id,
            name=data.name,
            latitude=data.latitude,
            longitude=data.longitude,
            timezone=data.timezone,
            handling_hours=data.handling_hours,
            active=data.active,
            created_at=now,
            updated_at=now,
        )
    )
    return Response(render.warehouse(warehouse), status_code=201 if created else 200)


@get("/v1/warehouses/{warehouse_id:str}", tags=["catalog"], summary="Get a warehouse")
async def get_warehouse(warehouse_id: WarehousePath, service: Service) -> WarehouseOut:
    return render.warehouse(await service.get_warehouse(warehouse_id))


@get("/v1/warehouses", tags=["catalog"], summary="List warehouses")
async def list_warehouses(service: Service, limit: Limit = 100, cursor: Cursor = None) -> Page[WarehouseOut]:
    page = await service.list_warehouses(limit, cursor)
    return Page([render.warehouse(w) for w in page.items], page.next_cursor)


HANDLERS = [put_product, get_product, list_products, put_warehouse, get_warehouse, list_warehouses]
