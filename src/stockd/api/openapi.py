"""The OpenAPI document: Litestar's operations, with every request and response shape described by msgspec.

Litestar re-derives msgspec's constraints on its own and loses some on the way:
it writes integer bounds as floats (``2**63 - 1`` comes out as ``2**63``, a value
the service refuses) and drops the constraints of the items of an optional list
(the pattern of each ``warehouse_ids`` entry of a key). msgspec's own JSON Schema
is exactly what strict decoding (``api/strict.py``) enforces and what the encoder
writes, so the component schemas are taken from it; paths, parameters and
statuses stay as Litestar describes them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from stockd.api import schemas

COMPONENT_REF = "#/components/schemas/{name}"
DOCUMENT_STATE_KEY = "openapi_document"


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
