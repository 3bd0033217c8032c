"""Ledger: the movements, and proof that balances match them."""

from __future__ import annotations

from litestar import get

from stockd.api import render
from stockd.api.params import Cursor, IdentifierQuery, Limit, ReferenceQuery, Service
from stockd.api.schemas import MovementOut, Page, ReconciliationOut
from stockd.store.base import MovementFilter


@get("/v1/movements", tags=["ledger"], summary="Movements, oldest first")
async def list_movements(
    service: Service,
    sku: IdentifierQuery = None,
    warehouse_id: IdentifierQuery = None,
    reference_id: ReferenceQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[MovementOut]:
    where = MovementFilter(sku=sku, warehouse_id=warehouse_id, reference_id=reference_id)
    page = await service.list_movements(where, limit, cursor)
    return Page([render.movement(m) for m in page.items], page.next_cursor)


@get("/v1/reconciliation", tags=["ledger"], summary="Check every balance against its movements")
async def reconcile(service: Service) -> ReconciliationOut:
    return render.reconciliation(await service.reconcile())


HANDLERS = [list_movements, reconcile]
