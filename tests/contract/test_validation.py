"""Validation: every bad input of API.md's Conventions is a 4xx problem document and changes nothing.

The table below is the Conventions section turned into requests. Each one is sent
to a service holding some stock; the answer must be a problem document with the
right status and ``code``, and afterwards stock, ledger, catalog and reservations
must be exactly as before. (The contract conftest fails any test that sees a 5xx.)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import DEFAULT_ENGINES, seed
from tests.contract.support import (
    Client,
    assert_json,
    assert_problem,
    assert_timestamp,
    balances,
    collect,
    level,
    movements,
    snapshot,
    stock,
)


@pytest.fixture(params=DEFAULT_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Validation happens at the HTTP edge, before any strategy runs: one engine per database suffices."""
    return str(request.param)


RECEIVE: dict[str, Any] = {"sku": "A-1", "warehouse_id": "ber", "quantity": 1}
ADJUST: dict[str, Any] = {"sku": "A-1", "warehouse_id": "ber", "delta": -1, "reason": "lost"}
LINE: dict[str, Any] = {"sku": "A-1", "quantity": 1}
RESERVE: dict[str, Any] = {"order_id": "o-1", "lines": [LINE]}
PRODUCT: dict[str, Any] = {"name": "Anvil"}
WAREHOUSE: dict[str, Any] = {
    "name": "Berlin",
    "latitude": 52.5,
    "longitude": 13.4,
    "timezone": "Europe/Berlin",
}
MISSING = object()
"""Marks a field to drop from a body."""


def edit(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {**base, **changes}
    return {key: value for key, value in body.items() if value is not MISSING}


def reserve_with_line(**changes: Any) -> dict[str, Any]:
    return edit(RESERVE, lines=[edit(LINE, **changes)])


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 422
    code: str = "validation_error"

    async def send(self, client: Client) -> Any:
        if self.content is not None:
            return await client.request(self.method, self.path, content=self.content, headers=self.headers)
        if self.json is not None:
            return await client.request(self.method, self.path, json=self.json, headers=self.headers)
        return await client.request(self.method, self.path, headers=self.headers)


def post(path: str, body: Any) -> Bad:
    return Bad("POST", path, json=body)


def raw(path: str, content: bytes, content_type: str = "application/json") -> Bad:
    return Bad("POST", path, content=content, headers={"Content-Type": content_type})


BAD_IDENTIFIERS = {
    "space": "A 1",
    "star": "A*1",
    "comma": "A,1",
    "umlaut": "Ä-1",
    "newline": "A-1\n",
    "65-chars": "A" * 65,
    "empty": "",
}
BAD_ORDER_IDS = {
    "129-chars": "o" * 129,
    "empty": "",
    "nul": "o\x00-1",
    "tab": "o\t1",
    "newline": "o-1\n",
    "escape": "o\x1b[31m",
    "unit-separator": "o\x1f1",
    "delete": "o\x7f1",
    "c1-next-line": "o\u00851",
    "c1-application-program-command": "o\u009f1",
}
BAD_QUANTITIES = {
    "zero": 0,
    "negative": -1,
    "over-a-billion": 1_000_000_001,
    "beyond-64-bits": 2**64,
    "float": 2.0,
    "fractional": 2.5,
    "string": "2",
    "true": True,
    "null": None,
}
BAD_DELTAS = {
    "over-a-billion": 1_000_000_001,
    "under-minus-a-billion": -1_000_000_001,
    "float": -2.0,
    "string": "-2",
    "true": True,
    "null": None,
}
LIST_PATHS = ["/v1/products", "/v1/warehouses", "/v1/movements", "/v1/reservations?order_id=o-1"]


def cases() -> list[Any]:
    table: list[Any] = []

    def add(case_id: str, case: Bad) -> None:
        table.append(pytest.param(case, id=case_id))

    # Identifiers: 1–64 chars of A-Z a-z 0-9 . _ -
    for name, value in BAD_IDENTIFIERS.items():
        add(f"receive-sku-{name}", post("/v1/stock/receive", edit(RECEIVE, sku=value)))
        add(f"receive-warehouse-{name}", post("/v1/stock/receive", edit(RECEIVE, warehouse_id=value)))
        add(f"adjust-sku-{name}", post("/v1/stock/adjust", edit(ADJUST, sku=value)))
        add(f"line-sku-{name}", post("/v1/reservations", reserve_with_line(sku=value)))
        add(f"line-warehouse-{name}", post("/v1/reservations", reserve_with_line(warehouse_id=value)))
        if value and "\n" not in value:
            add(f"put-product-path-{name}", Bad("PUT", f"/v1/products/{value}", json=PRODUCT))
            add(f"put-warehouse-path-{name}", Bad("PUT", f"/v1/warehouses/{value}", json=WAREHOUSE))
            add(f"get-stock-path-{name}", Bad("GET", f"/v1/stock/{value}"))
            add(
                f"reorder-policy-path-{name}",
                Bad(
                    "PUT",
                    f"/v1/stock/{value}/ber/reorder-policy",
                    json={"reorder_point": 1, "reorder_quantity": 1},
                ),
            )
            add(f"movements-sku-filter-{name}", Bad("GET", f"/v1/movements?sku={value}"))
    # Percent-encoded, so the identifier reaches the service with its trailing newline.
    add("put-product-path-trailing-newline", Bad("PUT", "/v1/products/A-1%0A", json=PRODUCT))
    add("put-warehouse-path-trailing-newline", Bad("PUT", "/v1/warehouses/ber%0A", json=WAREHOUSE))
    add("get-stock-path-trailing-newline", Bad("GET", "/v1/stock/A-1%0A"))
    for name, value in {"not-a-string": 7, "null": None, "missing": MISSING}.items():
        add(f"receive-sku-{name}", post("/v1/stock/receive", edit(RECEIVE, sku=value)))
        add(f"line-sku-{name}", post("/v1/reservations", reserve_with_line(sku=value)))

    # order_id and reference_id: 1–128 printable chars.
    for name, value in BAD_ORDER_IDS.items():
        add(f"order-id-{name}", post("/v1/reservations", edit(RESERVE, order_id=value)))
    add("order-id-missing", post("/v1/reservations", edit(RESERVE, order_id=MISSING)))
    add("order-id-number", post("/v1/reservations", edit(RESERVE, order_id=17)))
    for name in ("129-chars", "empty", "newline", "delete", "c1-next-line"):
        value = BAD_ORDER_IDS[name]
        add(f"receive-reference-id-{name}", post("/v1/stock/receive", edit(RECEIVE, reference_id=value)))
        add(f"adjust-reference-id-{name}", post("/v1/stock/adjust", edit(ADJUST, reference_id=value)))

    # Quantities that move stock: integers 1 ≤ q ≤ 1_000_000_000, never float/str/bool/null.
    for name, value in BAD_QUANTITIES.items():
        add(f"receive-quantity-{name}", post("/v1/stock/receive", edit(RECEIVE, quantity=value)))
        add(f"line-quantity-{name}", post("/v1/reservations", reserve_with_line(quantity=value)))
    add("receive-quantity-missing", post("/v1/stock/receive", edit(RECEIVE, quantity=MISSING)))
    add("line-quantity-missing", post("/v1/reservations", reserve_with_line(quantity=MISSING)))
    for name, value in BAD_DELTAS.items():
        add(f"adjust-delta-{name}", post("/v1/stock/adjust", edit(ADJUST, delta=value)))
    add("adjust-delta-zero", post("/v1/stock/adjust", edit(ADJUST, delta=0)))
    add("adjust-reason-unknown", post("/v1/stock/adjust", edit(ADJUST, reason="stolen")))
    add("adjust-reason-missing", post("/v1/stock/adjust", edit(ADJUST, reason=MISSING)))
    for name, value in {"negative": -1, "float": 10.0, "string": "10", "true": True}.items():
        add(f"adjust-expected-on-hand-{name}", post("/v1/stock/adjust", edit(ADJUST, expected_on_hand=value)))

    # Lines: 1 to 100.
    add("lines-empty", post("/v1/reservations", edit(RESERVE, lines=[])))
    add("lines-101", post("/v1/reservations", edit(RESERVE, lines=[LINE] * 101)))
    add("lines-null", post("/v1/reservations", edit(RESERVE, lines=None)))
    add("lines-missing", post("/v1/reservations", edit(RESERVE, lines=MISSING)))
    add("lines-an-object", post("/v1/reservations", edit(RESERVE, lines=LINE)))

    # ttl_seconds: 1..86400.
    for name, value in {
        "zero": 0,
        "86401": 86_401,
        "negative": -1,
        "float": 900.0,
        "string": "900",
        "true": True,
        "null": None,
    }.items():
        add(f"ttl-{name}", post("/v1/reservations", edit(RESERVE, ttl_seconds=value)))
    add(
        "ship-to-latitude-91",
        post("/v1/reservations", edit(RESERVE, ship_to={"latitude": 91, "longitude": 0})),
    )

    # limit: 1–1000, on every list.
    for path in LIST_PATHS:
        join = "&" if "?" in path else "?"
        for name, value in {
            "zero": "0",
            "1001": "1001",
            "negative": "-1",
            "word": "ten",
            "float": "2.5",
        }.items():
            add(f"limit-{name}-{path.split('?')[0]}", Bad("GET", f"{path}{join}limit={value}"))

    # Catalog bodies.
    add("product-name-missing", Bad("PUT", "/v1/products/A-1", json={}))
    add("product-name-empty", Bad("PUT", "/v1/products/A-1", json={"name": ""}))
    add("product-name-number", Bad("PUT", "/v1/products/A-1", json={"name": 5}))
    add("product-weight-float", Bad("PUT", "/v1/products/A-1", json=edit(PRODUCT, weight_grams=2.5)))
    add("product-weight-string", Bad("PUT", "/v1/products/A-1", json=edit(PRODUCT, weight_grams="2")))
    add(
        "product-dimensions-incomplete",
        Bad("PUT", "/v1/products/A-1", json=edit(PRODUCT, dimensions_mm={"length": 1, "width": 2})),
    )
    add("warehouse-latitude-91", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, latitude=91)))
    add("warehouse-latitude-minus-91", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, latitude=-91)))
    add("warehouse-longitude-181", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, longitude=181)))
    add("warehouse-latitude-string", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, latitude="52")))
    add(
        "warehouse-timezone-missing", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, timezone=MISSING))
    )
    add("warehouse-active-string", Bad("PUT", "/v1/warehouses/ber", json=edit(WAREHOUSE, active="yes")))

    # Malformed JSON and content that is not a JSON object.
    for path in ("/v1/stock/receive", "/v1/stock/adjust", "/v1/reservations"):
        add(f"truncated-json-{path}", raw(path, b'{"sku": "A-1",'))
        add(f"empty-body-{path}", raw(path, b""))
        add(f"single-quotes-{path}", raw(path, b"{'sku': 'A-1', 'warehouse_id': 'ber', 'quantity': 1}"))
    add("trailing-garbage", raw("/v1/stock/receive", json.dumps(RECEIVE).encode() + b"}"))
    add("invalid-utf8", raw("/v1/stock/receive", b'{"sku": "A-\xff", "warehouse_id": "ber", "quantity": 1}'))
    add("json-array", raw("/v1/stock/receive", json.dumps([RECEIVE]).encode()))
    add("json-string", raw("/v1/stock/receive", b'"A-1"'))
    add("json-number", raw("/v1/stock/receive", b"1"))
    add("json-null", raw("/v1/stock/receive", b"null"))
    add(
        "form-encoded",
        raw("/v1/stock/receive", b"sku=A-1&warehouse_id=ber&quantity=1", "application/x-www-form-urlencoded"),
    )
    add(
        "xml",
        raw(
            "/v1/stock/receive",
            b"<receive><sku>A-1</sku><warehouse_id>ber</warehouse_id><quantity>1</quantity></receive>",
            "application/xml",
        ),
    )
    add("put-product-malformed", Bad("PUT", "/v1/products/A-1", content=b'{"name": ', headers={}))

    # Bodies over 1 MiB.
    padding = b"x" * (1024 * 1024)
    big_receive = b'{"sku":"A-1","warehouse_id":"ber","quantity":1,"pad":"' + padding + b'"}'
    add(
        "receive-over-1-mib",
        Bad("POST", "/v1/stock/receive", content=big_receive, status=413, code="payload_too_large"),
    )
    big_product = b'{"name":"Anvil","description":"' + padding + b'"}'
    add(
        "product-over-1-mib",
        Bad("PUT", "/v1/products/A-1", content=big_product, status=413, code="payload_too_large"),
    )
    big_reserve = json.dumps(edit(RESERVE, order_id="o-1", pad="x" * (1024 * 1024))).encode()
    add(
        "reserve-over-1-mib",
        Bad("POST", "/v1/reservations", content=big_reserve, status=413, code="payload_too_large"),
    )

    # Unknown routes.
    for method, path in [
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/stock/A-1/ber/nope"),
        ("GET", "/nope"),
        ("GET", "/v2/products"),
    ]:
        add(f"unknown-route-{method}-{path}", Bad(method, path, status=404, code="not_found"))
    return table


@pytest.mark.parametrize("case", cases())
async def test_a_bad_request_is_a_4xx_problem_document_and_changes_nothing(client: Client, case: Bad) -> None:
    await seed(client, quantity=10)
    before = await snapshot(client)
    response = await case.send(client)
    assert_problem(response, case.status, case.code)
    assert await snapshot(client) == before


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        cursor_of({"a": 1}),
        cursor_of([]),
        cursor_of([1.5]),
        cursor_of([None]),
        cursor_of(["a", "b", "c"]),
        cursor_of([2**63]),
        cursor_of([-(2**63) - 1]),
        cursor_of([2**70]),
        cursor_of([2**70, "x"]),
        cursor_of([2**63, "x"]),
        cursor_of([-(2**63) - 1, "x"]),
        "x" * 600,
    ],
    ids=[
        "word",
        "not-base64",
        "object",
        "empty-list",
        "float",
        "null",
        "three-strings",
        "int-2-pow-63",
        "int-below-int64",
        "int-2-pow-70",
        "huge-int-and-string",
        "int-2-pow-63-and-string",
        "int-below-int64-and-string",
        "600-chars",
    ],
)
async def test_a_cursor_the_service_did_not_issue_is_a_422_on_every_list(
    client: Client, path: str, cursor: str
) -> None:
    await seed(client, quantity=10)
    where, _, query = path.partition("?")
    params = dict(part.split("=") for part in query.split("&") if part)
    response = await client.get(where, params={**params, "limit": 1, "cursor": cursor})
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/v1/products/" + "S" * 64, PRODUCT, 201),
        ("PUT", "/v1/products/a.Z_0-9", PRODUCT, 201),
        ("PUT", "/v1/warehouses/" + "w" * 64, WAREHOUSE, 201),
        ("POST", "/v1/stock/receive", edit(RECEIVE, quantity=1_000_000_000), 200),
        ("POST", "/v1/stock/receive", edit(RECEIVE, reference_id="r" * 128), 200),
        ("POST", "/v1/stock/adjust", edit(ADJUST, delta=1_000_000_000), 200),
        ("POST", "/v1/reservations", edit(RESERVE, order_id="o" * 128), 201),
        ("POST", "/v1/reservations", edit(RESERVE, order_id="Bestellung #42 — grün/€"), 201),
        ("POST", "/v1/reservations", edit(RESERVE, ttl_seconds=1), 201),
        ("POST", "/v1/reservations", edit(RESERVE, ttl_seconds=86_400), 201),
        ("POST", "/v1/reservations", edit(RESERVE, lines=[LINE] * 10), 201),
        ("GET", "/v1/products?limit=1", None, 200),
        ("GET", "/v1/movements?limit=1000", None, 200),
    ],
    ids=[
        "sku-64-chars",
        "sku-whole-alphabet",
        "warehouse-64-chars",
        "quantity-a-billion",
        "reference-id-128-chars",
        "delta-a-billion",
        "order-id-128-chars",
        "order-id-unicode-printable",
        "ttl-1",
        "ttl-86400",
        "ten-lines",
        "limit-1",
        "limit-1000",
    ],
)
async def test_inputs_at_the_edges_of_the_limits_are_accepted(
    client: Client, method: str, path: str, body: Any, status: int
) -> None:
    await seed(client, quantity=10)
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text


# -- unknown fields are ignored: no mass assignment ----------------------------------


async def test_unknown_fields_in_a_new_product_are_ignored(client: Client) -> None:
    body = {
        "name": "Anvil",
        "sku": "OTHER",
        "created_at": "2000-01-01T00:00:00.000Z",
        "updated_at": "2000-01-01T00:00:00.000Z",
        "price": 12,
    }
    product = assert_json(await client.put("/v1/products/A-1", json=body), 201)
    assert product["sku"] == "A-1"
    assert not product["created_at"].startswith("2000")
    assert not product["updated_at"].startswith("2000")
    assert "price" not in product
    assert_problem(await client.get("/v1/products/OTHER"), 404, "not_found")


async def test_replacing_a_product_with_a_created_at_keeps_the_original_created_at(client: Client) -> None:
    first = assert_json(await client.put("/v1/products/A-1", json={"name": "Anvil"}), 201)
    body = {"name": "Anvil 2", "created_at": "2000-01-01T00:00:00.000Z"}
    second = assert_json(await client.put("/v1/products/A-1", json=body), 200)
    assert second["created_at"] == first["created_at"]
    assert assert_json(await client.get("/v1/products/A-1"), 200)["created_at"] == first["created_at"]


async def test_unknown_fields_in_a_warehouse_are_ignored(client: Client) -> None:
    body = {**WAREHOUSE, "warehouse_id": "other", "created_at": "2000-01-01T00:00:00.000Z"}
    warehouse = assert_json(await client.put("/v1/warehouses/ber", json=body), 201)
    assert warehouse["warehouse_id"] == "ber"
    assert not warehouse["created_at"].startswith("2000")
    assert_problem(await client.get("/v1/warehouses/other"), 404, "not_found")


async def test_balances_sent_with_a_receive_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    body = {
        **RECEIVE,
        "quantity": 5,
        "quantity_reserved": 7,
        "quantity_on_hand": 1_000,
        "quantity_available": 1_000,
        "reorder_point": 3,
    }
    level_after = assert_json(await client.post("/v1/stock/receive", json=body), 200)
    assert balances(level_after) == (15, 0, 15)
    assert level_after["reorder_point"] is None
    assert balances(await level(client)) == (15, 0, 15)


async def test_a_movement_type_sent_with_a_receive_is_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    body = {**RECEIVE, "type": "ship", "on_hand_delta": -100, "reserved_delta": 50}
    assert_json(await client.post("/v1/stock/receive", json=body), 200)
    last = (await movements(client))[-1]
    assert (last["type"], last["quantity"], last["on_hand_delta"], last["reserved_delta"]) == (
        "receive",
        1,
        1,
        0,
    )


async def test_balances_sent_with_an_adjustment_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    body = {**ADJUST, "delta": 2, "reason": "found", "quantity_on_hand": 0, "quantity_reserved": 9}
    assert balances(assert_json(await client.post("/v1/stock/adjust", json=body), 200)) == (12, 0, 12)


async def test_server_fields_sent_with_a_reservation_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    body = {
        **RESERVE,
        "id": "chosen-by-client",
        "status": "confirmed",
        "created_at": "2000-01-01T00:00:00.000Z",
        "expires_at": "2100-01-01T00:00:00.000Z",
        "ttl_seconds": 60,
    }
    reservation = assert_json(await client.post("/v1/reservations", json=body), 201)
    assert reservation["id"] != "chosen-by-client"
    assert reservation["status"] == "pending"
    created_at = assert_timestamp(reservation["created_at"])
    assert (assert_timestamp(reservation["expires_at"]) - created_at).total_seconds() == 60
    assert_problem(await client.get("/v1/reservations/chosen-by-client"), 404, "not_found")
    assert balances(await stock(client)) == (10, 1, 9)


async def test_unknown_fields_in_a_reservation_line_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    line = {**LINE, "quantity": 2, "reserved": 9, "price": 100}
    reservation = assert_json(await client.post("/v1/reservations", json=edit(RESERVE, lines=[line])), 201)
    assert reservation["lines"] == [{"sku": "A-1", "warehouse_id": "ber", "quantity": 2}]
    assert balances(await stock(client)) == (10, 2, 8)


async def test_balances_sent_with_a_reorder_policy_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    body = {"reorder_point": 1, "reorder_quantity": 2, "quantity_on_hand": 0, "quantity_reserved": 5}
    result = assert_json(await client.put("/v1/stock/A-1/ber/reorder-policy", json=body), 200)
    assert balances(result) == (10, 0, 10)


async def test_a_body_on_confirm_cannot_change_the_reservation(client: Client) -> None:
    await seed(client, quantity=10)
    reservation = assert_json(await client.post("/v1/reservations", json=RESERVE), 201)
    body = {"status": "released", "lines": [{"sku": "A-1", "warehouse_id": "ber", "quantity": 9}]}
    confirmed = assert_json(
        await client.post(f"/v1/reservations/{reservation['id']}/confirm", json=body), 200
    )
    assert confirmed["status"] == "confirmed"
    assert confirmed["lines"] == reservation["lines"]
    assert balances(await stock(client)) == (9, 0, 9)


async def test_unknown_query_parameters_are_ignored(client: Client) -> None:
    await seed(client, quantity=10)
    page = assert_json(await client.get("/v1/movements", params={"type": "ship", "foo": "bar"}), 200)
    assert [m["type"] for m in page["items"]] == ["receive"]
    assert len(await collect(client, "/v1/products", admin="true")) == 1
