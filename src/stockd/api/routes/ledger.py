"""Ledger: the movements, and proof that balances match them."""

from __future__ import annotations

from litestar import get

from stockd.api import render
from stockd.api.params import Caller, Cursor, IdentifierQuery, Limit, ReferenceQuery, Service
from stockd.api.schemas import MovementOut, Page, ReconciliationOut
from stockd.store.base import MovementFilter


@get("/v1/movements", tags=["ledger"], summary="Movements, oldest first")
async def list_movements(
    service: Service,
    principal: Caller,
    sku: IdentifierQuery = None,
    warehouse_id: IdentifierQuery = None,
    reference_id: ReferenceQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MovementOut]:
    if warehouse_id is not None:
        principal.require_warehouses([warehouse_id])
    where = MovementFilter(
        sku=sku, warehouse_id=warehouse_id, reference_id=reference_id, warehouse_ids=principal.warehouse_ids
    )
    page = await service.list_movements(where, limit, cursor)
    return Page([render.movement(m) for m in page.items], page.next_cursor)


@get("/v1/reconciliation", tags=["ledger"], summary="Check every balance against its movements")
async def reconcile(service: Service, principal: Caller) -> ReconciliationOut:
    principal.require_unlimited("check every warehouse's balances")
    return render.reconciliation(await service.reconcile())


HANDLERS = [list_movements, reconcile]
