"""Webhook subscriptions, signatures and the retry schedule of their deliveries.

A delivery is POSTed as JSON with a ``Stockd-Signature: t=<unix seconds>,v1=<hex>``
header, where ``v1`` is HMAC-SHA256 over ``"<t>.<body>"`` keyed with the
webhook's secret (the scheme Stripe popularized): a receiver recomputes it,
compares in constant time, and rejects stale ``t`` to stop replays. Failed
deliveries are retried with exponential backoff — 1 s, 2 s, 4 s, … — and
given up after ``MAX_ATTEMPTS``; every attempt is kept in the delivery log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MAX_ATTEMPTS = 8
SIGNATURE_HEADER = "Stockd-Signature"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: str
    event_type: str
    payload: str
    status: str  # pending, delivered, failed or cancelled
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    def succeeded(self, now: datetime, status_code: int) -> Delivery:
        return replace(
            self,
            status="delivered",
            attempts=self.attempts + 1,
            last_status_code=status_code,
            last_error=None,
            delivered_at=now,
        )

    def failed(self, now: datetime, status_code: int | None, error: str) -> Delivery:
        attempts = self.attempts + 1
        return replace(
            self,
            status="failed" if attempts >= MAX_ATTEMPTS else "pending",
            attempts=attempts,
            next_attempt_at=now + timedelta(seconds=2 ** (attempts - 1)),
            last_status_code=status_code,
            last_error=error[:500],
        )


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        expected = signature(secret, int(parts["t"]), body)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, header)
