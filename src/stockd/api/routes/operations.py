"""Operations: health, metrics, and the API documentation at the root."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.enums import OpenAPIMediaType
from litestar.openapi.plugins import SwaggerRenderPlugin
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from stockd.api.openapi import openapi_document
from stockd.api.schemas import Health


@get("/healthz", tags=["operations"], summary="Ready to take traffic?")
async def healthz() -> Health:
    return Health(status="ok")


@get("/metrics", tags=["operations"], summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class _SwaggerAtRoot(SwaggerRenderPlugin):
    """Swagger UI served at /docs, reading the schema from /openapi.json.

    Litestar mounts its documentation router under one prefix with a catch-all
    that answers unknown paths with an HTML page; at the root that would swallow
    every unknown URL. So the documents stay under /schema and these two routes
    expose them where API.md promises.
    """

    @staticmethod
    def get_openapi_json_route(request: Request) -> str:  # type: ignore[type-arg]
        return "/openapi.json"


_SWAGGER = _SwaggerAtRoot()


@get("/openapi.json", include_in_schema=False, media_type=OpenAPIMediaType.OPENAPI_JSON)
async def openapi_json(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    return openapi_document(request.app)


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request) -> bytes:  # type: ignore[type-arg]
    return _SWAGGER.render(request, openapi_document(request.app))


HANDLERS = [healthz, metrics, openapi_json, docs]
