"""Access control: API keys, scopes, warehouse-limited keys, loopback-only mode and the rate limit.

API.md's "Access control" section as requests. Until a key exists the service
answers loopback clients only (the in-process test client counts as loopback,
which is why the rest of the suite runs without keys); once one exists every
``/v1`` request needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from typer.testing import CliRunner

from stockd.api.app import create_app
from stockd.cli import app as cli
from stockd.config import Settings
from stockd.domain.clock import FakeClock
from tests.conftest import DEFAULT_ENGINES, seed
from tests.contract.support import Client, assert_json, assert_problem, snapshot

ADMIN_KEY = "an-admin-key-of-the-operator-0123456789"
ALL_SCOPES = ["read", "write", "admin"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(
    client: Client, scopes: list[str], headers: dict[str, str] | None = None, **extra: Any
) -> str:
    body = {"name": "test key", "scopes": scopes, **extra}
    created = assert_json(await client.post("/v1/keys", json=body, headers=headers or {}), 201)
    key: str = created["key"]
    return key


async def from_address(client: Client, host: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request as if from ``host``, sent on the running app's own loop."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://stockd.test") as http:
            return await http.request(method, path, **kwargs)

    return await asyncio.to_thread(client.blocking_portal.call, send)


@pytest.fixture
async def admin_client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    """A service started with STOCKD_ADMIN_KEY set."""
    async with AsyncTestClient(create_app(replace(settings, admin_key=ADMIN_KEY), clock)) as test_client:
        yield test_client


@pytest.fixture
async def limited_client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    """A service capped at 3 requests per second per key."""
    async with AsyncTestClient(create_app(replace(settings, rate_limit=3), clock)) as test_client:
        yield test_client


class TestAtTheEdge:
    """Authentication, scopes and limits happen before any engine runs: one engine per database."""

    @pytest.fixture(params=DEFAULT_ENGINES)
    def engine(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    async def test_without_any_key_only_loopback_clients_are_answered(self, client: Client) -> None:
        assert_json(await from_address(client, "127.0.0.1", "GET", "/v1/products"), 200)
        assert_json(await from_address(client, "::1", "GET", "/v1/products"), 200)
        response = await from_address(client, "203.0.113.7", "GET", "/v1/products")
        assert_problem(response, 401, "unauthorized")
        assert (await from_address(client, "203.0.113.7", "GET", "/healthz")).status_code == 200

    async def test_once_a_key_exists_a_request_without_one_is_unauthorized(self, client: Client) -> None:
        await new_key(client, ["read"])
        response = await client.get("/v1/products")
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(await from_address(client, "127.0.0.1", "GET", "/v1/products"), 401, "unauthorized")

    @pytest.mark.parametrize(
        "authorization",
        ["Bearer stk_nosuchid_secret", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer "],
    )
    async def test_an_unknown_or_malformed_key_is_unauthorized(
        self, client: Client, authorization: str
    ) -> None:
        key = await new_key(client, ALL_SCOPES)
        assert_problem(
            await client.get("/v1/products", headers={"Authorization": authorization}), 401, "unauthorized"
        )
        tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
        assert_problem(await client.get("/v1/products", headers=bearer(tampered)), 401, "unauthorized")

    async def test_operations_endpoints_stay_open_once_keys_exist(self, client: Client) -> None:
        await new_key(client, ["read"])
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path

    async def test_a_new_key_is_shown_once_and_listed_without_its_secret(self, client: Client) -> None:
        admin = await new_key(client, ["admin"])
        body = {"name": "shop", "scopes": ["read", "write"], "warehouse_ids": ["ber"]}
        created = assert_json(await client.post("/v1/keys", json=body, headers=bearer(admin)), 201)
        assert set(created) == {"id", "key", "name", "scopes", "warehouse_ids", "created_at"}
        assert created["key"].startswith(f"stk_{created['id']}_")
        assert (created["scopes"], created["warehouse_ids"]) == (["read", "write"], ["ber"])
        listed = assert_json(await client.get("/v1/keys", headers=bearer(admin)), 200)["items"]
        assert {k["id"] for k in listed} >= {created["id"]}
        assert all("key" not in k for k in listed)

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "x", "scopes": []},
            {"name": "x", "scopes": ["root"]},
            {"name": "", "scopes": ["read"]},
            {"name": "x", "scopes": ["read"], "warehouse_ids": []},
            {"scopes": ["read"]},
        ],
    )
    async def test_a_key_needs_a_name_and_known_scopes(self, client: Client, body: dict[str, Any]) -> None:
        assert_problem(await client.post("/v1/keys", json=body), 422, "validation_error")

    async def test_a_revoked_key_is_refused_at_once(self, client: Client) -> None:
        admin = await new_key(client, ["admin"])
        reader = assert_json(
            await client.post("/v1/keys", json={"name": "r", "scopes": ["read"]}, headers=bearer(admin)), 201
        )
        assert_json(await client.get("/v1/products", headers=bearer(reader["key"])), 200)
        response = await client.delete(f"/v1/keys/{reader['id']}", headers=bearer(admin))
        assert response.status_code == 204, response.text
        assert_problem(await client.get("/v1/products", headers=bearer(reader["key"])), 401, "unauthorized")
        listed = assert_json(await client.get("/v1/keys", headers=bearer(admin)), 200)["items"]
        assert reader["id"] not in {k["id"] for k in listed}
        assert_problem(
            await client.delete(f"/v1/keys/{reader['id']}", headers=bearer(admin)), 404, "not_found"
        )

    async def test_revoking_the_last_key_does_not_reopen_the_service(self, client: Client) -> None:
        created = assert_json(await client.post("/v1/keys", json={"name": "a", "scopes": ["admin"]}), 201)
        await client.delete(f"/v1/keys/{created['id']}", headers=bearer(created["key"]))
        assert_problem(await client.get("/v1/products"), 401, "unauthorized")

    async def test_the_admin_key_from_the_settings_is_a_full_key(self, admin_client: Client) -> None:
        assert_problem(await admin_client.get("/v1/products"), 401, "unauthorized")
        assert_problem(
            await admin_client.get("/v1/products", headers=bearer(ADMIN_KEY + "x")), 401, "unauthorized"
        )
        headers = bearer(ADMIN_KEY)
        assert_json(await admin_client.put("/v1/products/A-1", json={"name": "a"}, headers=headers), 201)
        assert_json(await admin_client.get("/v1/products", headers=headers), 200)
        assert_json(
            await admin_client.post("/v1/keys", json={"name": "k", "scopes": ["read"]}, headers=headers), 201
        )

    async def test_each_route_family_needs_its_scope(self, client: Client) -> None:
        await seed(client)
        keys = {"admin": await new_key(client, ["admin"])}
        for scope in ("read", "write"):
            keys[scope] = await new_key(client, [scope], headers=bearer(keys["admin"]))
        for method, path, body, scope in SCOPED_ROUTES:
            for held, key in keys.items():
                response = await client.request(method, path, json=body, headers=bearer(key))
                if held == scope:
                    assert response.status_code not in (401, 403), (method, path, held, response.text)
                else:
                    assert_problem(response, 403, "forbidden")

    async def test_idempotency_keys_belong_to_the_key_that_used_them(self, client: Client) -> None:
        await seed(client)
        first = await new_key(client, ["write", "admin"])
        second = await new_key(client, ["write"], headers=bearer(first))
        for key, quantity in ((first, 1), (second, 2)):
            response = await client.post(
                "/v1/stock/receive",
                json={"sku": "A-1", "warehouse_id": "ber", "quantity": quantity},
                headers={**bearer(key), "Idempotency-Key": "same"},
            )
            assert_json(response, 200)

    async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(self, limited_client: Client) -> None:
        key = await new_key(limited_client, ["read"])
        for _ in range(50):
            response = await limited_client.get("/v1/products", headers=bearer(key))
            if response.status_code == 429:
                break
            assert_json(response, 200)
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1
        assert (await limited_client.get("/healthz")).status_code == 200

    async def test_serve_refuses_a_public_address_without_an_admin_key(
        self, client: Client, tmp_path: Any
    ) -> None:
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)], env={})
        assert result.exit_code == 2, result.output
        assert "admin key" in result.output


# (method, path, body, the scope it needs) — every route family of API.md.
SCOPED_ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/products", None, "read"),
    ("GET", "/v1/stock/A-1", None, "read"),
    ("GET", "/v1/movements", None, "read"),
    ("GET", "/v1/alerts", None, "read"),
    ("POST", "/v1/stock/receive", {"sku": "A-1", "warehouse_id": "ber", "quantity": 1}, "write"),
    (
        "POST",
        "/v1/stock/adjust",
        {"sku": "A-1", "warehouse_id": "ber", "delta": 1, "reason": "found"},
        "write",
    ),
    ("POST", "/v1/reservations", {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 1}]}, "write"),
    ("POST", "/v1/reservations/nope/confirm", None, "write"),
    (
        "POST",
        "/v1/transfers",
        {"sku": "A-1", "from_warehouse_id": "ber", "to_warehouse_id": "ber", "quantity": 1},
        "write",
    ),
    ("POST", "/v1/fulfillment/plan", {"lines": [{"sku": "A-1", "quantity": 1}]}, "write"),
    ("PUT", "/v1/products/B-2", {"name": "b"}, "admin"),
    ("PUT", "/v1/stock/A-1/ber/reorder-policy", {"reorder_point": 1, "reorder_quantity": 5}, "admin"),
    ("GET", "/v1/keys", None, "admin"),
    ("GET", "/v1/webhooks", None, "admin"),
]


# -- warehouse-limited keys: on every engine ---------------------------------------------


@dataclass
class World:
    """Stock in ber and muc; a reservation and a transfer in muc; an admin key and a key limited to ber."""

    admin: dict[str, str]
    ber_only: dict[str, str]
    muc_reservation: str
    muc_transfer: str


@pytest.fixture
async def world(client: Client) -> World:
    await seed(client, warehouse_id="ber")
    await seed(client, warehouse_id="muc", latitude=48.14, longitude=11.58)
    reservation = assert_json(
        await client.post(
            "/v1/reservations",
            json={"order_id": "o-1", "lines": [{"sku": "A-1", "warehouse_id": "muc", "quantity": 1}]},
        ),
        201,
    )
    transfer = assert_json(
        await client.post(
            "/v1/transfers",
            json={"sku": "A-1", "from_warehouse_id": "muc", "to_warehouse_id": "ber", "quantity": 1},
        ),
        201,
    )
    admin = bearer(await new_key(client, ALL_SCOPES))
    ber_only = bearer(await new_key(client, ["read", "write"], headers=admin, warehouse_ids=["ber"]))
    return World(admin, ber_only, reservation["id"], transfer["id"])


def foreign_requests(w: World) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/v1/stock/receive", {"sku": "A-1", "warehouse_id": "muc", "quantity": 1}),
        ("POST", "/v1/stock/adjust", {"sku": "A-1", "warehouse_id": "muc", "delta": -1, "reason": "lost"}),
        ("GET", "/v1/stock/A-1/muc", None),
        (
            "POST",
            "/v1/reservations",
            {"order_id": "o-1", "lines": [{"sku": "A-1", "warehouse_id": "muc", "quantity": 1}]},
        ),
        ("POST", "/v1/reservations", {"order_id": "o-1", "lines": [{"sku": "A-1", "quantity": 1}]}),
        ("GET", f"/v1/reservations/{w.muc_reservation}", None),
        ("POST", f"/v1/reservations/{w.muc_reservation}/confirm", None),
        ("POST", f"/v1/reservations/{w.muc_reservation}/release", None),
        (
            "POST",
            "/v1/transfers",
            {"sku": "A-1", "from_warehouse_id": "ber", "to_warehouse_id": "muc", "quantity": 1},
        ),
        ("GET", f"/v1/transfers/{w.muc_transfer}", None),
        ("POST", f"/v1/transfers/{w.muc_transfer}/receive", None),
        ("GET", "/v1/movements?warehouse_id=muc", None),
        ("GET", "/v1/reconciliation", None),
    ]


async def test_a_warehouse_limited_key_is_refused_everything_touching_another_warehouse(
    client: Client, world: World
) -> None:
    async def everything() -> dict[str, Any]:
        client.headers.update(world.admin)
        try:
            state = await snapshot(client)
            state["transfer"] = (await client.get(f"/v1/transfers/{world.muc_transfer}")).json()
            return state
        finally:
            del client.headers["Authorization"]

    before = await everything()
    for method, path, body in foreign_requests(world):
        response = await client.request(method, path, json=body, headers=world.ber_only)
        assert response.status_code == 403, (method, path, response.text)
        assert_problem(response, 403, "forbidden")
    assert await everything() == before


async def test_a_warehouse_limited_key_works_within_its_warehouses_and_sees_only_them(
    client: Client, world: World
) -> None:
    headers = world.ber_only
    receive = {"sku": "A-1", "warehouse_id": "ber", "quantity": 2}
    assert_json(await client.post("/v1/stock/receive", json=receive, headers=headers), 200)
    line = {"sku": "A-1", "warehouse_id": "ber", "quantity": 1}
    mine = assert_json(
        await client.post("/v1/reservations", json={"order_id": "o-1", "lines": [line]}, headers=headers), 201
    )
    assert_json(await client.post(f"/v1/reservations/{mine['id']}/confirm", headers=headers), 200)
    stock = assert_json(await client.get("/v1/stock/A-1", headers=headers), 200)
    assert [w["warehouse_id"] for w in stock["warehouses"]] == ["ber"]
    movements = assert_json(await client.get("/v1/movements", headers=headers), 200)["items"]
    assert movements and {m["warehouse_id"] for m in movements} == {"ber"}
    listed = assert_json(
        await client.get("/v1/reservations", params={"order_id": "o-1"}, headers=headers), 200
    )
    assert [r["id"] for r in listed["items"]] == [mine["id"]]
    everyone = assert_json(
        await client.get("/v1/reservations", params={"order_id": "o-1"}, headers=world.admin), 200
    )
    assert len(everyone["items"]) == 2
