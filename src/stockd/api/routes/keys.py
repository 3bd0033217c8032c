"""API keys: issue, list, revoke. Admin scope only.

``POST /v1/keys`` ignores ``Idempotency-Key``: remembering its answer would
store the secret, which must exist only in that one answer.
"""

from __future__ import annotations

from litestar import delete, get, post
from litestar.params import JSONBody

from stockd.api import render
from stockd.api.params import Cursor, KeyRingDep, Limit, OpaqueId
from stockd.api.schemas import KeyIn, KeyOut, Page


@post(
    "/v1/keys",
    tags=["access"],
    summary="Issue an API key (its secret is shown only here)",
    status_code=201,
    scope="admin",
)
async def create_key(data: JSONBody[KeyIn], keyring: KeyRingDep) -> KeyOut:
    key, token = await keyring.create(data.name, data.scopes, data.warehouse_ids)
    return render.api_key(key, token)


@get("/v1/keys", tags=["access"], summary="API keys not revoked (never their secrets)", scope="admin")
async def list_keys(keyring: KeyRingDep, limit: Limit = 100, cursor: Cursor = None) -> Page[KeyOut]:
    page = await keyring.list(limit, cursor)
    return Page([render.api_key(k) for k in page.items], page.next_cursor)


@delete(
    "/v1/keys/{key_id:str}",
    tags=["access"],
    summary="Revoke an API key at once",
    status_code=204,
    scope="admin",
)
async def revoke_key(key_id: OpaqueId, keyring: KeyRingDep) -> None:
    await keyring.revoke(key_id)


HANDLERS = [create_key, list_keys, revoke_key]
