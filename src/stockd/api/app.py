"""The Litestar application: routes, problem documents, OpenAPI, metrics, lifespan."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response, route
from litestar.di import Provide
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

from stockd.api.access import authorize, provide_principal
from stockd.api.http_metrics import http_metrics
from stockd.api.openapi import describe, openapi_config
from stockd.api.problems import EXCEPTION_HANDLERS
from stockd.api.ratelimit import RateLimiter
from stockd.api.routes import (
    catalog,
    fulfillment,
    keys,
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
from stockd.keyring import KeyRing
from stockd.service import StockService
from stockd.workers.expiry import ExpirySweeper
from stockd.workers.webhooks import WebhookDispatcher

REDIS_READY_SECONDS = 300.0
"""How long start-up waits for Redis' counters to be rebuilt from the ledger before giving up."""

MAX_BODY_BYTES = 1024 * 1024
"""A 100-line reservation is about 10 KiB; anything near a mebibyte is not a request we want."""


async def before_request(request: Request) -> None:  # type: ignore[type-arg]
    # Who is calling comes first: an unauthenticated body is not worth decoding.
    await authorize(request)
    await reject_loose_bodies(request)


def rate_limiter(settings: Settings) -> RateLimiter | None:
    """Per key; shared by every process through Redis when the Redis engine runs, else per process."""
    if settings.rate_limit is None:
        return None
    if settings.redis is not None:
        return RateLimiter.shared_through(settings.rate_limit, settings.redis, settings.redis_prefix)
    return RateLimiter(settings.rate_limit)


def options_handlers(handlers: Sequence[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """An OPTIONS answer for every path, naming all the methods the path is served with.

    Litestar makes one by itself, but freezes it with the methods of the handlers
    registered before it: a path served by two functions (GET and PUT of a product)
    answered ``Allow: OPTIONS, PUT``. Registered ahead of the others, these take its place.
    """
    methods: defaultdict[str, set[str]] = defaultdict(lambda: {HttpMethod.OPTIONS.value})
    for handler in handlers:
        for path in handler.paths:
            methods[path].update(handler.http_methods)
    return [allow_answer(path, sorted(allowed)) for path, allowed in methods.items()]


def allow_answer(path: str, allowed: list[str]) -> HTTPRouteHandler:
    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)
    def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": ", ".join(allowed)})

    return options


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        service = await build_service(settings, clock)
        sweeper = ExpirySweeper(service)
        dispatcher = WebhookDispatcher(service.store, service.clock)
        app.state.service = service
        app.state.keyring = KeyRing(service.store, service.clock, settings.admin_key)
        app.state.rate_limiter = rate_limiter(settings)
        if service.persister is not None:
            service.persister.start()
            # Not a request before Redis holds complete counters (rebuilt from the ledger if it lost them).
            await service.persister.wait_ready(REDIS_READY_SECONDS)
        sweeper.start()
        dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
            await sweeper.stop()
            if app.state.rate_limiter is not None:
                await app.state.rate_limiter.close()
            await service.close()

    def provide_service(request: Request) -> StockService:  # type: ignore[type-arg]
        service: StockService = request.app.state.service
        return service

    def provide_keyring(request: Request) -> KeyRing:  # type: ignore[type-arg]
        keyring: KeyRing = request.app.state.keyring
        return keyring

    handlers = [
        *catalog.HANDLERS,
        *stock.HANDLERS,
        *reservations.HANDLERS,
        *transfers.HANDLERS,
        *fulfillment.HANDLERS,
        *replenishment.HANDLERS,
        *ledger.HANDLERS,
        *keys.HANDLERS,
        *operations.HANDLERS,
    ]
    for handler in handlers:
        describe(handler)
    return Litestar(
        route_handlers=[*options_handlers(handlers), *handlers],
        dependencies={
            "service": Provide(provide_service, sync_to_thread=False),
            "keyring": Provide(provide_keyring, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[http_metrics],
        request_max_body_size=MAX_BODY_BYTES,
        before_request=before_request,
        openapi_config=openapi_config(),
    )
