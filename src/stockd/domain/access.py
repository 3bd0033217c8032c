"""Who is asking, and what they may touch: API keys, scopes and warehouse limits.

A key has scopes — ``read`` (every GET), ``write`` (stock commands) and
``admin`` (catalog, reorder policies, keys, webhooks) — which are independent:
``admin`` does not imply ``read``. A key may also be limited to a set of
warehouses; it can then neither read nor change stock, reservations or
transfers that touch any other warehouse. Nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from stockd.domain.errors import Forbidden
from stockd.domain.model import Reservation, Transfer

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

KEY_PREFIX = "stk_"
ANONYMOUS = ""
"""The principal of a request without a key (loopback-only mode); idempotency keys are scoped by it."""
ADMIN = "admin"
"""The principal of the start-up admin key (``STOCKD_ADMIN_KEY``)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key. Only the SHA-256 digest of its secret is kept, never the secret."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    warehouse_ids: tuple[str, ...] | None
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None


def new_secret() -> str:
    """32 random bytes, URL-safe: 43 characters."""
    return secrets.token_urlsafe(32)


def format_key(key_id: str, secret: str) -> str:
    """The bearer token a client sends: ``stk_<id>_<secret>``."""
    return f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None. Ids never contain ``_``; secrets may."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, separator, secret = token[len(KEY_PREFIX) :].partition("_")
    if not separator or not key_id or not secret:
        return None
    return key_id, secret


def digest(secret: str) -> str:
    """SHA-256 of a secret, hex.

    A plain fast hash is enough here: the secret is 256 random bits, so there is
    no dictionary to try and brute force is hopeless; slow password KDFs
    (bcrypt, scrypt, Argon2) protect low-entropy human passwords and would only
    add latency to every request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: a key's id, its scopes and its warehouses (None: all)."""

    id: str
    scopes: frozenset[Scope]
    warehouse_ids: frozenset[str] | None = None

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        warehouses = None if key.warehouse_ids is None else frozenset(key.warehouse_ids)
        return cls(key.id, frozenset(key.scopes), warehouses)

    @property
    def is_limited(self) -> bool:
        return self.warehouse_ids is not None

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this key lacks the {scope!r} scope")

    def may_touch(self, warehouse_id: str) -> bool:
        return self.warehouse_ids is None or warehouse_id in self.warehouse_ids

    def require_warehouses(self, warehouse_ids: Iterable[str]) -> None:
        """Refuse unless every one of ``warehouse_ids`` is among this key's warehouses."""
        foreign = sorted({w for w in warehouse_ids if not self.may_touch(w)})
        if foreign:
            raise Forbidden(f"this key may not touch warehouse(s) {', '.join(foreign)}")

    def may_see_reservation(self, reservation: Reservation) -> bool:
        return all(self.may_touch(line.warehouse_id) for line in reservation.lines)

    def require_reservation(self, reservation: Reservation) -> None:
        self.require_warehouses(line.warehouse_id for line in reservation.lines)

    def require_transfer(self, transfer: Transfer) -> None:
        self.require_warehouses((transfer.from_warehouse_id, transfer.to_warehouse_id))

    def require_unlimited(self, what: str) -> None:
        """Refuse a warehouse-limited key something that spans every warehouse."""
        if self.is_limited:
            raise Forbidden(f"a key limited to some warehouses may not {what}")


EVERYONE = Principal(ANONYMOUS, frozenset(SCOPES))
"""No key exists yet and the client is on the loopback interface: everything is allowed."""
START_UP_ADMIN = Principal(ADMIN, frozenset(SCOPES))
