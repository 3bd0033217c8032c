"""The errors a caller can cause, as a tree of types.

Every error the domain raises is a ``StockdError``; each carries a stable
machine-readable ``code`` (the ``code`` of API.md's problem documents) and a
plain-words ``detail``. The HTTP layer maps codes to statuses; nothing below it
knows about HTTP.

    StockdError
    ├── InvalidRequest          validation_error      the request itself is wrong
    ├── NotFound                not_found             an identifier names nothing
    └── Conflict                                      the request is fine, the state says no
        ├── OutOfStock          out_of_stock          a reservation cannot be held (with shortfalls)
        ├── InsufficientStock   insufficient_stock    an adjust or transfer would go below available
        ├── OrderLimitExceeded  order_limit_exceeded  one order would hold more of a SKU than allowed
        ├── StaleQuantity       stale_quantity        compare-and-set on quantity_on_hand failed
        ├── InvalidState        invalid_state         the reservation/transfer is in the wrong status
        ├── ReservationExpired  reservation_expired   the hold lapsed before it was confirmed
        └── RequestInProgress   request_in_progress   the first request with this key is still running
    IdempotencyKeyReused        idempotency_key_reused  a key came back with a different request
    Unavailable                 unavailable           the engine's database cannot be reached now
    Unauthorized                unauthorized          no valid API key came with the request
    Forbidden                   forbidden             the key lacks a scope, or the object is in a foreign warehouse
    RateLimited                 rate_limited          the caller sent more requests per second than allowed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class StockdError(Exception):
    """Base of every error the caller can cause."""

    code: ClassVar[str] = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, Any]:
        """Extra machine-readable members of the problem document."""
        return {}


class InvalidRequest(StockdError):
    code = "validation_error"


class NotFound(StockdError):
    code = "not_found"


class Conflict(StockdError):
    code = "conflict"


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One line of a reservation that cannot be held: how much was asked, how much there is."""

    sku: str
    warehouse_id: str | None
    requested: int
    available: int


class OutOfStock(Conflict):
    code = "out_of_stock"

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        names = ", ".join(
            f"{s.sku}@{s.warehouse_id or 'any'} (requested {s.requested}, available {s.available})"
            for s in shortfalls
        )
        super().__init__(f"not enough stock: {names}")
        self.shortfalls = shortfalls

    def extensions(self) -> dict[str, Any]:
        return {
            "shortfalls": [
                {
                    "sku": s.sku,
                    "warehouse_id": s.warehouse_id,
                    "requested": s.requested,
                    "available": s.available,
                }
                for s in self.shortfalls
            ]
        }


class OrderLimitExceeded(Conflict):
    """The order would hold more units of a SKU than one order may (``--max-units-per-order``)."""

    code = "order_limit_exceeded"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class StaleQuantity(Conflict):
    code = "stale_quantity"


class InvalidState(Conflict):
    code = "invalid_state"


class ReservationExpired(Conflict):
    code = "reservation_expired"


class IdempotencyKeyReused(StockdError):
    """The same Idempotency-Key came with a different request."""

    code = "idempotency_key_reused"


class RequestInProgress(Conflict):
    """The first request with this Idempotency-Key has not finished yet."""

    code = "request_in_progress"


class Unavailable(StockdError):
    """The engine cannot take requests right now (its database is unreachable); retry later."""

    code = "unavailable"


class Unauthorized(StockdError):
    """No API key, or one that is unknown, malformed or revoked."""

    code = "unauthorized"


class Forbidden(StockdError):
    """A valid key that may not do this: a missing scope, or a warehouse outside its limit."""

    code = "forbidden"


class RateLimited(StockdError):
    """More requests per second than the caller is allowed; try again after ``retry_after_seconds``."""

    code = "rate_limited"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
