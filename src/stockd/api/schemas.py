"""Request and response shapes, declared once. msgspec enforces every limit of API.md."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

# Python's ``$`` also matches before a final newline; ``(?!\n)`` pins the match to
# the true end of the string and is valid ECMA-262 for the OpenAPI document too.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._-]{1,64}$(?!\n)"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$(?!\n)"
"""No C0 or C1 control characters, no DEL."""

Identifier = Annotated[
    str,
    Meta(
        pattern=IDENTIFIER_PATTERN,
        description="1–64 characters of A-Z a-z 0-9 . _ -",
        examples=["A-1"],
    ),
]
Reference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=PRINTABLE_PATTERN,
        description="1–128 printable characters",
    ),
]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000_000, description="units moved, 1 to 1,000,000,000")]
Delta = Annotated[
    int,
    Meta(
        ge=-1_000_000_000,
        le=1_000_000_000,
        description="signed, non-zero",
        # Zero is refused by the domain (422); saying so lets clients and fuzzers know it.
        extra_json_schema={"not": {"const": 0}},
    ),
]
Balance = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Timestamp = Annotated[str, Meta(description="RFC 3339 UTC time with a Z suffix")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Description = Annotated[str, Meta(max_length=4000)]
Positive = Annotated[int, Meta(ge=1, le=2**31 - 1)]
NonNegative = Annotated[int, Meta(ge=0, le=2**63 - 1)]

T = TypeVar("T")


class Page(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


# -- catalog -----------------------------------------------------------------------


class DimensionsMm(Struct):
    length: Positive
    width: Positive
    height: Positive


class ProductIn(Struct):
    name: Name
    description: Description | None = None
    weight_grams: Positive | None = None
    dimensions_mm: DimensionsMm | None = None


class ProductOut(Struct):
    sku: str
    name: str
    description: str | None
    weight_grams: int | None
    dimensions_mm: DimensionsMm | None
    created_at: Timestamp
    updated_at: Timestamp


class WarehouseIn(Struct):
    name: Name
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    timezone: Annotated[str, Meta(min_length=1, max_length=64, examples=["Europe/Berlin"])]
    handling_hours: Annotated[int, Meta(ge=0, le=8760)] = 24
    active: bool = True


class WarehouseOut(Struct):
    warehouse_id: str
    name: str
    latitude: float
    longitude: float
    timezone: str
    handling_hours: int
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


# -- stock -------------------------------------------------------------------------


InTransit = Annotated[int, Meta(description="units on their way to this warehouse in open transfers")]


class LevelOut(Struct, omit_defaults=True):
    warehouse_id: str
    quantity_on_hand: int
    quantity_reserved: int
    quantity_available: int
    reorder_point: int | None
    reorder_quantity: int | None
    quantity_in_transit: InTransit | None = None


class SkuLevelOut(Struct, omit_defaults=True):
    sku: str
    warehouse_id: str
    quantity_on_hand: int
    quantity_reserved: int
    quantity_available: int
    reorder_point: int | None
    reorder_quantity: int | None
    quantity_in_transit: InTransit | None = None


class StockOut(Struct):
    sku: str
    quantity_on_hand: int
    quantity_reserved: int
    quantity_available: int
    quantity_in_transit: int
    warehouses: list[LevelOut]


class ReceiveIn(Struct):
    sku: Identifier
    warehouse_id: Identifier
    quantity: Quantity
    reference_id: Reference | None = None
    reference_type: (
        Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$(?!\n)")] | None
    ) = None


AdjustReasonName = Literal["damaged", "lost", "found", "count_correction"]


class AdjustIn(Struct):
    sku: Identifier
    warehouse_id: Identifier
    delta: Delta
    reason: AdjustReasonName
    expected_on_hand: NonNegative | None = None
    reference_id: Reference | None = None


class ReorderPolicyIn(Struct):
    reorder_point: NonNegative
    reorder_quantity: Annotated[int, Meta(ge=1, le=2**63 - 1)]


# -- transfers ---------------------------------------------------------------------


class TransferIn(Struct):
    """from_warehouse_id and to_warehouse_id must differ (422 otherwise)."""

    sku: Identifier
    from_warehouse_id: Identifier
    to_warehouse_id: Identifier
    quantity: Quantity
    reference_id: Reference | None = None


class TransferOut(Struct):
    id: str
    sku: str
    from_warehouse_id: str
    to_warehouse_id: str
    quantity: int
    status: Literal["in_transit", "received"]
    created_at: Timestamp
    received_at: Timestamp | None
    reference_id: str | None


# -- reservations ------------------------------------------------------------------


class Location(Struct):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]


class LineIn(Struct):
    sku: Identifier
    quantity: Quantity
    warehouse_id: Identifier | None = None


DeliverWithin = Annotated[
    int,
    Meta(
        ge=1,
        le=8760,
        description="only warehouses whose estimated delivery (handling + transit) is this soon",
    ),
]


class ReserveIn(Struct):
    order_id: Reference
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=100)]
    ttl_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 900
    ship_to: Location | None = None
    deliver_within_hours: DeliverWithin | None = None


class LineOut(Struct):
    sku: str
    warehouse_id: str
    quantity: int


class ReservationOut(Struct):
    id: str
    order_id: str
    status: Literal["pending", "confirmed", "released", "expired"]
    created_at: Timestamp
    expires_at: Timestamp
    lines: list[LineOut]


# -- replenishment -------------------------------------------------------------------


class AlertOut(Struct):
    id: str
    sku: str
    warehouse_id: str
    status: Literal["open", "resolved"]
    quantity_available: int
    reorder_point: int
    suggested_quantity: Annotated[
        int, Meta(description="what to order to reach reorder_point + reorder_quantity")
    ]
    opened_at: Timestamp
    resolved_at: Timestamp | None


EventType = Literal["alert.opened", "alert.resolved", "stock.changed"]
# ``\s`` means different characters to Python (which enforces the pattern) and to
# ECMA-262 (which the OpenAPI document speaks), so the excluded characters are
# spelled out: control characters and Unicode spaces, none of which a URL can carry.
URL_CHARACTER = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
WebhookUrl = Annotated[
    str,
    Meta(
        pattern=rf"^https?://{URL_CHARACTER}+$(?!\n)",
        max_length=2000,
        description="http(s) URL without spaces or control characters",
    ),
]


class WebhookIn(Struct):
    url: WebhookUrl
    events: Annotated[list[EventType], Meta(min_length=1, max_length=3)]


class WebhookOut(Struct, omit_defaults=True):
    id: str
    url: str
    events: list[str]
    created_at: Timestamp
    secret: Annotated[
        str | None, Meta(description="HMAC-SHA256 key of the Stockd-Signature header; shown only on creation")
    ] = None


class DeliveryOut(Struct):
    id: str
    event_type: str
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None


# -- fulfillment planning ------------------------------------------------------------


class PlanLineIn(Struct):
    sku: Identifier
    quantity: Quantity


class PlanIn(Struct):
    lines: Annotated[list[PlanLineIn], Meta(min_length=1, max_length=100)]
    ship_to: Location | None = None
    deliver_within_hours: DeliverWithin | None = None


class AllocationOut(Struct):
    sku: str
    warehouse_id: str
    quantity: int
    distance_km: float | None
    reason: str
    estimated_delivery_hours: float | None


class PlanShortfallOut(Struct):
    sku: str
    requested: int
    available: int


class PlanOut(Struct):
    allocations: list[AllocationOut]
    warehouse_count: int
    shortfalls: list[PlanShortfallOut]


# -- ledger ------------------------------------------------------------------------


class MovementOut(Struct):
    id: str
    sku: str
    warehouse_id: str
    type: Literal["receive", "adjust", "reserve", "release", "expire", "ship", "transfer_out", "transfer_in"]
    quantity: int
    on_hand_delta: int
    reserved_delta: int
    reference_type: str | None
    reference_id: str | None
    created_at: Timestamp
    reason: str | None = None


class MismatchOut(Struct):
    sku: str
    warehouse_id: str
    quantity_on_hand: int
    ledger_on_hand: int
    quantity_reserved: int
    ledger_reserved: int


class BrokenLinkOut(Struct):
    sku: str
    warehouse_id: str
    movement_id: Annotated[str | None, Meta(description="the first movement whose hash does not follow")]
    detail: str


class ReconciliationOut(Struct):
    levels_checked: int
    mismatches: list[MismatchOut]
    broken_links: Annotated[
        list[BrokenLinkOut],
        Meta(description="levels whose movement hash chain is broken; empty when healthy"),
    ]
    persister_lag: Annotated[
        int,
        Meta(
            description="Redis engine: batches acknowledged but not yet written to PostgreSQL. "
            "When not 0 the ledger was behind and was not compared; always 0 on the SQL engines."
        ),
    ] = 0
    levels_moving: Annotated[
        int,
        Meta(
            description="Redis engine: levels that kept changing while they were being compared (commits "
            "landing meanwhile, through every attempt), so not compared this time. 0 on a quiet system; "
            "always 0 on the SQL engines."
        ),
    ] = 0


# -- access control ----------------------------------------------------------------

ScopeName = Literal["read", "write", "admin"]


class KeyIn(Struct):
    name: Name
    scopes: Annotated[list[ScopeName], Meta(min_length=1, max_length=3)]
    warehouse_ids: (
        Annotated[
            list[Identifier],
            Meta(min_length=1, max_length=1000, description="limit the key to these warehouses"),
        ]
        | None
    ) = None


class KeyOut(Struct, omit_defaults=True):
    id: str
    name: str
    scopes: list[str]
    warehouse_ids: Annotated[list[str] | None, Meta(description="null: every warehouse")]
    created_at: Timestamp
    key: Annotated[str | None, Meta(description="the bearer token; shown only on creation")] = None


# -- operations and errors ---------------------------------------------------------


class Health(Struct):
    status: str


class ShortfallOut(Struct):
    sku: str
    warehouse_id: str | None
    requested: int
    available: int


class Problem(Struct, omit_defaults=True):
    """An RFC 9457 problem document with stockd's machine-readable ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    shortfalls: list[ShortfallOut] | None = None
    errors: list[dict[str, str]] | None = None


encode = msgspec.json.Encoder().encode
