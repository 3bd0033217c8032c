"""Operations: health and metrics (the docs are served by the OpenAPI config)."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stockd.api.schemas import Health


@get("/healthz", tags=["operations"], summary="Ready to take traffic?")
async def healthz() -> Health:
    return Health(status="ok")


@get("/metrics", tags=["operations"], summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


HANDLERS = [healthz, metrics]
