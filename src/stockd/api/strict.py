"""Strict request bodies.

Litestar converts bodies leniently (it coerces ``"2"`` and ``2.0`` to ``2``, a
leniency meant for query strings). API.md rejects floats, strings, booleans and
``null`` where an integer is expected, so every JSON body is also decoded with
msgspec in strict mode against the handler's declared ``data`` type before the
handler runs. The declared type stays the single source of the schema, in the
OpenAPI document too.
"""

from __future__ import annotations

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException


async def reject_loose_bodies(request: Request) -> None:  # type: ignore[type-arg]
    data_field = request.route_handler.parsed_data_field
    if data_field is None:
        return
    try:
        msgspec.json.decode(await request.body(), type=data_field.annotation)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as error:
        raise ValidationException(
            f"invalid request body: {error}",
            extra=[{"key": "body", "message": str(error), "source": "body"}],
        ) from error
