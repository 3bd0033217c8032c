"""On PostgreSQL the service can run as a role that cannot rewrite the ledger (migration 0007).

A superuser or the tables' owner ignores grants (and may drop the append-only
trigger), so the ledger is only out of the service's reach when the service
connects as a member of ``stockd_service``. These tests connect real servers,
on the SQL and the Redis engine, as such a role: every kind of write the API
offers still works, while UPDATE, DELETE, TRUNCATE and DDL on the ledger are
refused by PostgreSQL's privileges before any trigger runs. A service role
meeting an older schema refuses to start and says to run ``stockd migrate``
as the owner.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from stockd.config import ConfigurationError
from stockd.store.migrate import upgrade_to_head
from stockd.store.postgres import PostgresDatabase, asyncpg_dsn
from tests.conftest import administer, empty_tables
from tests.integration.conftest import (
    ServerFactory,
    assert_reconciled,
    level,
    redis_engine_arguments,
    run_coroutine,
    seed,
)

SERVICE_ROLE = "stockd_service"
ADMIN_KEY = "role-test-admin-key-" + "k" * 24
AUTHORIZED = {"Authorization": f"Bearer {ADMIN_KEY}"}
SKU = "ROLE-1"
HOME, AWAY = "ber", "muc"

APPEND_ONLY = {"movements", "ledger_entries"}
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def migrate(url: str) -> None:
    upgrade_to_head(url.replace("postgresql://", "postgresql+asyncpg://", 1))


@pytest.fixture
def service_role_url(postgres_database: str) -> Iterator[str]:
    """This run's database, migrated by its owner, as a new login role in ``stockd_service``."""
    migrate(postgres_database)
    run_coroutine(empty_tables(postgres_database))
    role = f"stockd_test_app_{uuid.uuid4().hex[:10]}"
    administer(f'CREATE ROLE "{role}" LOGIN IN ROLE {SERVICE_ROLE}')
    try:
        yield as_role(postgres_database, role)
    finally:
        administer(f'DROP ROLE IF EXISTS "{role}"')


async def table_privileges(url: str) -> dict[str, set[str]]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tables = [
            row["tablename"]
            for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        return {
            table: {
                privilege
                for privilege in PRIVILEGES
                if await connection.fetchval(
                    "SELECT has_table_privilege($1, $2, $3)", SERVICE_ROLE, table, privilege
                )
            }
            for table in tables
        }
    finally:
        await connection.close()


def test_the_service_role_may_append_to_the_ledger_and_change_nothing_in_it(postgres_database: str) -> None:
    migrate(postgres_database)
    privileges = run_coroutine(table_privileges(postgres_database))

    # A table a later migration adds without granting would break the service: every table is listed.
    assert privileges["alembic_version"] == {"SELECT"}
    for table in APPEND_ONLY:
        assert privileges[table] == {"SELECT", "INSERT"}, table
    for table, granted in privileges.items():
        if table not in APPEND_ONLY | {"alembic_version"}:
            assert granted == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table


async def exercise_every_kind_of_write(http: httpx.AsyncClient) -> None:
    """Catalog, receive, adjust, reorder policy, reservations to each end, a transfer, keys, webhooks."""
    await seed(http, SKU, HOME, quantity=20)
    await seed(http, SKU, AWAY)

    async def call(method: str, path: str, expected: int, **kwargs: object) -> httpx.Response:
        response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == expected, f"{method} {path}: {response.text}"
        return response

    await call(
        "PUT",
        f"/v1/stock/{SKU}/{HOME}/reorder-policy",
        200,
        json={"reorder_point": 15, "reorder_quantity": 10},
    )
    await call(
        "POST",
        "/v1/stock/adjust",
        200,
        json={"sku": SKU, "warehouse_id": HOME, "delta": -1, "reason": "damaged"},
    )

    async def reserve(order_id: str, quantity: int, ttl_seconds: int = 900) -> str:
        response = await call(
            "POST",
            "/v1/reservations",
            201,
            json={
                "order_id": order_id,
                "lines": [{"sku": SKU, "quantity": quantity, "warehouse_id": HOME}],
                "ttl_seconds": ttl_seconds,
            },
            headers={"Idempotency-Key": f"key-{order_id}"},
        )
        reservation_id: str = response.json()["id"]
        return reservation_id

    await call("POST", f"/v1/reservations/{await reserve('shipped', 2)}/confirm", 200)
    await call("POST", f"/v1/reservations/{await reserve('cancelled', 2)}/release", 200)
    lapsing = await reserve("lapsing", 1, ttl_seconds=1)
    held = await reserve("held", 3)  # 14 available: below the reorder point, so an alert opens

    transfer = (
        await call(
            "POST",
            "/v1/transfers",
            201,
            json={"sku": SKU, "from_warehouse_id": HOME, "to_warehouse_id": AWAY, "quantity": 2},
        )
    ).json()
    await call("POST", f"/v1/transfers/{transfer['id']}/receive", 200)

    key = (await call("POST", "/v1/keys", 201, json={"name": "doomed", "scopes": ["read"]})).json()
    await call("DELETE", f"/v1/keys/{key['id']}", 204)
    hook = (
        await call(
            "POST",
            "/v1/webhooks",
            201,
            json={"url": "https://example.invalid/hook", "events": ["alert.opened"]},
        )
    ).json()

    # The sweeper expires the lapsed hold (within 2 s) and the alert opens: writes of the service's own.
    expected_level = (15, 3, 12)  # 20 received, 1 damaged, 2 shipped, 2 sent away; 3 held
    for _ in range(100):
        home = await level(http, SKU, HOME)
        alerts = (await call("GET", "/v1/alerts", 200, params={"status": "open"})).json()["items"]
        if home == expected_level and alerts:
            break
        await asyncio.sleep(0.1)
    assert home == expected_level
    assert [alert["sku"] for alert in alerts] == [SKU]
    assert (await call("GET", f"/v1/reservations/{lapsing}", 200)).json()["status"] == "expired"
    await call("DELETE", f"/v1/webhooks/{hook['id']}", 204)

    assert (await call("GET", f"/v1/reservations/{held}", 200)).json()["status"] == "pending"
    assert await level(http, SKU, AWAY) == (2, 0, 2)
    await assert_reconciled(http)


async def assert_the_ledger_is_out_of_reach(url: str) -> None:
    """What the service's own connection would need to rewrite history: each refused for want of privilege."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        before = await connection.fetch("SELECT * FROM movements ORDER BY id")
        assert before, "the workflow left movements to guard"
        for statement in (
            "UPDATE movements SET quantity = quantity + 1",
            "DELETE FROM movements",
            "TRUNCATE movements",
            "UPDATE ledger_entries SET persisted_at = 0",
            "DELETE FROM ledger_entries",
            "ALTER TABLE movements DISABLE TRIGGER movements_append_only",
            "DROP TRIGGER movements_append_only ON movements",
            "DROP TABLE movements",
            "UPDATE alembic_version SET version_num = '0001'",
        ):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await connection.execute(statement)
        assert await connection.fetch("SELECT * FROM movements ORDER BY id") == before
    finally:
        await connection.close()


@pytest.mark.parametrize("engine", ["postgresql", "redis"])
def test_a_server_running_as_the_service_role_does_every_kind_of_write_and_cannot_rewrite_the_ledger(
    engine: str, service_role_url: str, server_factory: ServerFactory, request: pytest.FixtureRequest
) -> None:
    args = ["--admin-key", ADMIN_KEY]
    if engine == "redis":
        args += redis_engine_arguments(request.getfixturevalue("redis_prefix"))
    server = server_factory(database=service_role_url, args=args)

    async def scenario() -> None:
        async with server.client(headers=AUTHORIZED) as http:
            await exercise_every_kind_of_write(http)
        await assert_the_ledger_is_out_of_reach(service_role_url)

    run_coroutine(scenario())


@pytest.fixture
def unmigrated_database(postgres_database: str) -> Iterator[str]:
    name = f"stockd_test_unmigrated_{uuid.uuid4().hex[:10]}"
    administer(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_database.rsplit("/", 1)[0] + f"/{name}"
    finally:
        administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_service_role_meeting_an_old_schema_says_to_migrate_as_the_owner(
    unmigrated_database: str, service_role_url: str
) -> None:
    role = make_url(service_role_url).username
    assert role is not None
    as_service = as_role(unmigrated_database, role)

    with pytest.raises(ConfigurationError, match="stockd migrate"):
        run_coroutine(PostgresDatabase.open(as_service))

    migrated = subprocess.run(
        [sys.executable, "-m", "stockd", "migrate", "--database", unmigrated_database],
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "schema revision" in migrated.stdout

    async def open_and_close() -> None:
        database = await PostgresDatabase.open(as_service)
        await database.close()

    run_coroutine(open_and_close())
