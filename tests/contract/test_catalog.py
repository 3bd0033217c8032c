"""Catalog: products and warehouses are created, replaced, read and listed page by page."""

from __future__ import annotations

import pytest

from stockd.domain.clock import FakeClock
from tests.contract.support import Client, assert_json, assert_problem, assert_timestamp, collect

WAREHOUSE = {"name": "Berlin", "latitude": 52.52, "longitude": 13.40, "timezone": "Europe/Berlin"}


async def test_putting_a_new_product_creates_it_with_201_and_returns_it(client: Client) -> None:
    body = {
        "name": "Anvil",
        "description": "heavy",
        "weight_grams": 50_000,
        "dimensions_mm": {"length": 400, "width": 200, "height": 300},
    }
    product = assert_json(await client.put("/v1/products/A-1", json=body), 201)
    assert {key: product[key] for key in body} == body
    assert product["sku"] == "A-1"
    assert assert_timestamp(product["created_at"]) == assert_timestamp(product["updated_at"])


async def test_a_product_with_only_a_name_has_null_optional_fields(client: Client) -> None:
    product = assert_json(await client.put("/v1/products/A-1", json={"name": "Anvil"}), 201)
    assert product["name"] == "Anvil"
    assert product["description"] is None
    assert product["weight_grams"] is None
    assert product["dimensions_mm"] is None


async def test_putting_an_existing_product_replaces_it_with_200_and_keeps_created_at(
    client: Client, clock: FakeClock
) -> None:
    first = assert_json(
        await client.put("/v1/products/A-1", json={"name": "Anvil", "description": "heavy"}), 201
    )
    clock.advance(60)
    second = assert_json(await client.put("/v1/products/A-1", json={"name": "Big anvil"}), 200)
    assert second["created_at"] == first["created_at"]
    assert assert_timestamp(second["updated_at"]) > assert_timestamp(first["updated_at"])
    assert second["name"] == "Big anvil"
    assert second["description"] is None  # a replacement, not a merge
    fetched = assert_json(await client.get("/v1/products/A-1"), 200)
    assert fetched == second


async def test_getting_a_product_returns_what_was_put(client: Client) -> None:
    created = assert_json(
        await client.put("/v1/products/A-1", json={"name": "Anvil", "weight_grams": 7}), 201
    )
    assert assert_json(await client.get("/v1/products/A-1"), 200) == created


async def test_an_unknown_product_is_a_404_problem_document(client: Client) -> None:
    assert_problem(await client.get("/v1/products/NOPE-1"), 404, "not_found")


async def test_putting_a_new_warehouse_creates_it_with_201_and_defaults(client: Client) -> None:
    warehouse = assert_json(await client.put("/v1/warehouses/ber", json=WAREHOUSE), 201)
    assert warehouse["warehouse_id"] == "ber"
    assert {key: warehouse[key] for key in WAREHOUSE} == WAREHOUSE
    assert warehouse["handling_hours"] == 24
    assert warehouse["active"] is True
    assert_timestamp(warehouse["created_at"])
    assert_timestamp(warehouse["updated_at"])


async def test_putting_an_existing_warehouse_replaces_it_with_200_and_keeps_created_at(
    client: Client, clock: FakeClock
) -> None:
    first = assert_json(await client.put("/v1/warehouses/ber", json=WAREHOUSE), 201)
    clock.advance(60)
    replacement = {**WAREHOUSE, "name": "Berlin 2", "handling_hours": 48, "active": False}
    second = assert_json(await client.put("/v1/warehouses/ber", json=replacement), 200)
    assert second["created_at"] == first["created_at"]
    assert assert_timestamp(second["updated_at"]) > assert_timestamp(first["updated_at"])
    assert (second["name"], second["handling_hours"], second["active"]) == ("Berlin 2", 48, False)
    assert assert_json(await client.get("/v1/warehouses/ber"), 200) == second


async def test_an_unknown_warehouse_is_a_404_problem_document(client: Client) -> None:
    assert_problem(await client.get("/v1/warehouses/nowhere"), 404, "not_found")


async def test_products_page_through_with_limit_and_cursor_with_no_item_twice_and_none_missing(
    client: Client,
) -> None:
    skus = [f"P-{n:03d}" for n in range(23)]
    for sku in reversed(skus):
        assert_json(await client.put(f"/v1/products/{sku}", json={"name": sku}), 201)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor is not None:
            params["cursor"] = cursor
        page = assert_json(await client.get("/v1/products", params=params), 200)
        pages += 1
        assert len(page["items"]) <= 5
        seen.extend(item["sku"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert pages < 50, "pagination never ends"

    assert pages >= 5
    assert len(seen) == len(set(seen)), "an item came twice"
    assert sorted(seen) == skus, "an item is missing"


async def test_warehouses_page_through_with_limit_and_cursor_with_no_item_twice_and_none_missing(
    client: Client,
) -> None:
    ids = [f"wh-{n}" for n in range(7)]
    for warehouse_id in ids:
        assert_json(await client.put(f"/v1/warehouses/{warehouse_id}", json=WAREHOUSE), 201)
    first = assert_json(await client.get("/v1/warehouses", params={"limit": 3}), 200)
    assert len(first["items"]) == 3 and first["next_cursor"] is not None
    everything = await collect(client, "/v1/warehouses", limit=3)
    seen = [w["warehouse_id"] for w in everything]
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(ids)


async def test_a_page_of_exactly_limit_items_ends_the_list_or_leads_to_an_empty_last_page(
    client: Client,
) -> None:
    for n in range(4):
        assert_json(await client.put(f"/v1/products/P-{n}", json={"name": "p"}), 201)
    items = await collect(client, "/v1/products", limit=2)
    assert sorted(p["sku"] for p in items) == ["P-0", "P-1", "P-2", "P-3"]


async def test_an_empty_catalog_is_one_empty_page(client: Client) -> None:
    page = assert_json(await client.get("/v1/products"), 200)
    assert page == {"items": [], "next_cursor": None}


async def test_a_list_without_limit_returns_at_most_100_items(client: Client) -> None:
    for n in range(101):
        assert_json(await client.put(f"/v1/products/P-{n:03d}", json={"name": "p"}), 201)
    page = assert_json(await client.get("/v1/products"), 200)
    assert len(page["items"]) == 100
    assert page["next_cursor"] is not None
    rest = assert_json(await client.get("/v1/products", params={"cursor": page["next_cursor"]}), 200)
    assert [p["sku"] for p in rest["items"]] == ["P-100"]
    assert rest["next_cursor"] is None


async def test_limit_1000_is_accepted(client: Client) -> None:
    assert_json(await client.get("/v1/products", params={"limit": 1000}), 200)


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "!!!", "e30", "WzFd", "W10", "%%%", "é"],
    ids=["word", "not-base64", "json-object", "wrong-type", "empty-key", "percent", "non-ascii"],
)
async def test_a_cursor_the_service_did_not_issue_is_a_422(client: Client, cursor: str) -> None:
    for sku in ("P-1", "P-2", "P-3"):
        assert_json(await client.put(f"/v1/products/{sku}", json={"name": "p"}), 201)
    assert_problem(
        await client.get("/v1/products", params={"limit": 1, "cursor": cursor}), 422, "validation_error"
    )


@pytest.mark.parametrize("path", ["/v1/products/A-1", "/v1/warehouses/ber"])
async def test_options_names_every_method_of_a_path_served_by_several_handlers(
    client: Client, path: str
) -> None:
    response = await client.options(path)
    assert response.status_code == 204, response.text
    assert response.headers["allow"] == "GET, OPTIONS, PUT"
