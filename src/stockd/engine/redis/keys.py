"""Where the Redis engine keeps things.

Everything of one SKU's stock sits under the hash tag ``{sku}``, so a level and the
set of warehouses holding that SKU live in one Redis Cluster slot. Reservations,
transfers and idempotency answers have keys of their own; the ledger stream,
its watermark and the ready marker share the tag ``{ledger}``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "stockd"
    """Every key starts with this, so several stockd (or test runs) can share one Redis."""

    def level(self, sku: str, warehouse_id: str) -> str:
        return f"{self.prefix}:{{{sku}}}:level:{warehouse_id}"

    def warehouses_of(self, sku: str) -> str:
        """The set of warehouses that have a level of this SKU (the planner looks at all of them)."""
        return f"{self.prefix}:{{{sku}}}:warehouses"

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}:reservation:{reservation_id}"

    def order(self, order_id: str) -> str:
        """The ids of an order's reservations (read for the per-order cap)."""
        return f"{self.prefix}:order:{order_id}"

    def transfer(self, transfer_id: str) -> str:
        return f"{self.prefix}:transfer:{transfer_id}"

    def idempotency(self, principal: str, key: str) -> str:
        return f"{self.prefix}:idempotency:{principal}:{key}"

    @property
    def stream(self) -> str:
        """Every committed batch, in commit order, until the persister has written it to PostgreSQL."""
        return f"{self.prefix}:{{ledger}}:stream"

    @property
    def persisted(self) -> str:
        """The id of the newest stream entry PostgreSQL has committed."""
        return f"{self.prefix}:{{ledger}}:persisted"

    @property
    def ready(self) -> str:
        """Present once the counters are complete; absent in a new or flushed Redis."""
        return f"{self.prefix}:{{ledger}}:ready"

    @property
    def pattern(self) -> str:
        return f"{self.prefix}:*"


PERSISTER_GROUP = "persisters"
