"""API keys: issuing, listing, revoking, and checking the one a request came with.

Keys are looked up by the id embedded in the token, and the digest of the
presented secret is compared with the stored one in constant time. Found keys
are cached for ``KEY_CACHE_SECONDS``: a revocation takes effect at once in the
process that revoked it (its cache entry is dropped) and within that time in
every other process sharing the database.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence

from stockd.domain.access import (
    START_UP_ADMIN,
    ApiKey,
    Principal,
    Scope,
    digest,
    format_key,
    new_secret,
    parse_key,
)
from stockd.domain.clock import Clock
from stockd.domain.errors import NotFound, Unauthorized
from stockd.ids import new_id
from stockd.store.pagination import Page
from stockd.store.sql_store import SqlStore

KEY_CACHE_SECONDS = 1.0
MAX_CACHED_KEYS = 10_000
"""Beyond this many the cache starts afresh, so it cannot grow without bound."""


class KeyRing:
    def __init__(
        self,
        store: SqlStore,
        clock: Clock,
        admin_key: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._admin_key = None if admin_key is None else admin_key.encode()
        self._monotonic = monotonic
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._keys_exist = False
        self._keys_checked_at = float("-inf")

    async def enforcing(self) -> bool:
        """Must every request carry a key? Yes once an admin key is set or any key was ever created.

        A revoked key still counts, so revoking the last key does not quietly
        reopen the service to anonymous callers.
        """
        if self._admin_key is not None or self._keys_exist:
            return True
        now = self._monotonic()
        if now - self._keys_checked_at >= KEY_CACHE_SECONDS:
            self._keys_exist = await self._store.any_api_key()
            self._keys_checked_at = now
        return self._keys_exist

    async def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; ``Unauthorized`` if it stands for none."""
        if self._admin_key is not None and hmac.compare_digest(token.encode(), self._admin_key):
            return START_UP_ADMIN
        parsed = parse_key(token)
        if parsed is None:
            raise Unauthorized("malformed API key")
        key_id, secret = parsed
        key = await self._lookup(key_id)
        if key is None or not hmac.compare_digest(digest(secret), key.secret_sha256):
            raise Unauthorized("unknown or revoked API key")
        return Principal.of_key(key)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        """A key that is not revoked, from the cache if it is fresh."""
        now = self._monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[1] < KEY_CACHE_SECONDS:
            return cached[0]
        key = await self._store.get_api_key(key_id)
        if key is None or key.revoked_at is not None:
            self._cache.pop(key_id, None)
            return None
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key_id] = (key, now)
        return key

    async def create(
        self, name: str, scopes: Sequence[Scope], warehouse_ids: Sequence[str] | None
    ) -> tuple[ApiKey, str]:
        """A new key and its bearer token; the token is never stored, only its secret's digest."""
        key_id, secret = new_id(), new_secret()
        key = ApiKey(
            id=key_id,
            name=name,
            scopes=tuple(dict.fromkeys(scopes)),
            warehouse_ids=None if warehouse_ids is None else tuple(dict.fromkeys(warehouse_ids)),
            secret_sha256=digest(secret),
            created_at=self._clock.now(),
        )
        await self._store.put_api_key(key)
        self._keys_exist = True
        return key, format_key(key_id, secret)

    async def list(self, limit: int, cursor: str | None) -> Page[ApiKey]:
        return await self._store.list_api_keys(limit, cursor)

    async def revoke(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
        if not await self._store.revoke_api_key(key_id, self._clock.now()):
            raise NotFound(f"API key {key_id!r} does not exist or is already revoked")
