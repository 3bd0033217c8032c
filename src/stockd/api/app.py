"""The Litestar application: routes, problem documents, OpenAPI, metrics, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig

from stockd import __version__
from stockd.api.problems import EXCEPTION_HANDLERS
from stockd.api.routes import (
    catalog,
    fulfillment,
    ledger,
    operations,
    replenishment,
    reservations,
    stock,
    transfers,
)
from stockd.api.strict import reject_loose_bodies
from stockd.bootstrap import build_service
from stockd.config import Settings
from stockd.domain.clock import Clock
from stockd.service import StockService
from stockd.workers.expiry import ExpirySweeper
from stockd.workers.webhooks import WebhookDispatcher

MAX_BODY_BYTES = 1024 * 1024
"""A 100-line reservation is about 10 KiB; anything near a mebibyte is not a request we want."""


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        service = await build_service(settings, clock)
        sweeper = ExpirySweeper(service)
        dispatcher = WebhookDispatcher(service.store, service.clock)
        app.state.service = service
        sweeper.start()
        dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
            await sweeper.stop()
            await service.close()

    def provide_service(request: Request) -> StockService:  # type: ignore[type-arg]
        service: StockService = request.app.state.service
        return service

    prometheus = PrometheusConfig(app_name="stockd", prefix="stockd", group_path=True, exclude=["/metrics"])
    return Litestar(
        route_handlers=[
            *catalog.HANDLERS,
            *stock.HANDLERS,
            *reservations.HANDLERS,
            *transfers.HANDLERS,
            *fulfillment.HANDLERS,
            *replenishment.HANDLERS,
            *ledger.HANDLERS,
            *operations.HANDLERS,
        ],
        dependencies={"service": Provide(provide_service, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[prometheus.middleware],
        request_max_body_size=MAX_BODY_BYTES,
        before_request=reject_loose_bodies,
        openapi_config=OpenAPIConfig(
            title="stockd",
            version=__version__,
            description="Inventory that never oversells: stock levels, reservations with a TTL, "
            "an append-only ledger. See API.md for the contract.",
            render_plugins=[JsonRenderPlugin()],
        ),
    )
