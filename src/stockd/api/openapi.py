"""The OpenAPI document: what every operation shares, and shapes described by msgspec itself.

Litestar builds the operations (paths, parameters, statuses). Its own reading of
msgspec's constraints loses some on the way: it writes integer bounds as floats
(``2**63 - 1`` comes out as ``2**63``, a value the service refuses) and drops the
constraints of the items of an optional list (the pattern of each ``warehouse_ids``
entry of a key). msgspec's JSON Schema is exactly what strict decoding
(``api/strict.py``) enforces and what the encoder writes, so the component schemas
are taken from it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from stockd import __version__
from stockd.api import schemas
from stockd.api.problems import problem_responses

COMPONENT_REF = "#/components/schemas/{name}"
DOCUMENT_STATE_KEY = "openapi_document"
BEARER = "bearer"
NEVER_ANSWERED = ("400",)
"""Litestar documents a 400 for every operation with parameters; stockd answers a malformed request 422."""

DESCRIPTION = """Inventory that never oversells: stock levels, reservations with a TTL, \
an append-only ledger. See API.md for the contract.

Rules of API.md that JSON Schema cannot state:

- An integer is written as a JSON integer: `2.0` is refused (422), though JSON Schema's
  `integer` admits it.
- A `cursor` is only ever a `next_cursor` this service issued; any other value is 422.
- A transfer's `from_warehouse_id` and `to_warehouse_id` must differ (422).
- A reorder policy's `reorder_point` + `reorder_quantity` must be at most 2^63 − 1, the largest
  balance (422): an alert suggests ordering up to their sum.
"""


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="stockd",
        version=__version__,
        description=DESCRIPTION,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key: STOCKD_ADMIN_KEY, or one issued by POST /v1/keys. "
                    "Until any key exists, loopback clients may call without one.",
                )
            }
        ),
        render_plugins=[StockdJsonRenderPlugin()],
    )


def describe(handler: HTTPRouteHandler) -> None:
    """Say what every /v1 operation shares: it needs a bearer key, and it can answer problem documents.

    A handler's own extra answers (a PUT's 201 Created) come on top of the problems.
    """
    if not any(path.startswith("/v1/") for path in handler.paths):
        return
    method = next(iter(handler.http_methods))
    handler.responses = {**problem_responses(method), **(handler.responses or {})}
    handler.security = [{BEARER: []}]


def shapes() -> list[type[msgspec.Struct]]:
    """Every concrete shape declared in ``api/schemas.py`` (the generic ``Page`` is described per use by Litestar)."""
    return [
        value
        for value in vars(schemas).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == schemas.__name__
        and not getattr(value, "__parameters__", ())
    ]


def build_document(app: Litestar) -> dict[str, Any]:
    document = app.openapi_schema.to_schema()
    _, components = msgspec.json.schema_components(shapes(), ref_template=COMPONENT_REF)
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                for status in NEVER_ANSWERED:
                    operation.get("responses", {}).pop(status, None)
    return document


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The document served at /openapi.json (and at /schema), built once per app."""
    document: dict[str, Any] | None = app.state.get(DOCUMENT_STATE_KEY)
    if document is None:
        document = build_document(app)
        app.state[DOCUMENT_STATE_KEY] = document
    return document


class StockdJsonRenderPlugin(JsonRenderPlugin):
    """Litestar's own copy of the document under /schema, made the same as /openapi.json."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:  # type: ignore[type-arg]
        return self.render_json(request, openapi_document(request.app))
