"""Fixtures shared by every test: a fake clock, and the service behind a real ASGI client.

``engine`` is parametrized over every engine stockd ships, so the contract
suite runs unchanged on each of them; later engines add themselves to
``ENGINES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from stockd.api.app import create_app
from stockd.config import Settings
from stockd.domain.clock import FakeClock, SystemClock

ENGINES = ["sqlite"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(engine: str, tmp_path: Path) -> Settings:
    if engine == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    raise AssertionError(f"unknown engine {engine}")


@pytest.fixture
def clock() -> FakeClock:
    # Start from the real time so the API's timestamps look like today's.
    return FakeClock(SystemClock().now())


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The whole service in-process, on a fresh database, with a clock the test moves."""
    async with AsyncTestClient(create_app(settings, clock)) as test_client:
        yield test_client


async def seed(
    client: AsyncTestClient,  # type: ignore[type-arg]
    sku: str = "A-1",
    warehouse_id: str = "ber",
    quantity: int = 10,
    *,
    latitude: float = 52.52,
    longitude: float = 13.40,
) -> None:
    """A product, a warehouse, and ``quantity`` units of it there."""
    response = await client.put(f"/v1/products/{sku}", json={"name": f"product {sku}"})
    assert response.status_code in (200, 201), response.text
    response = await client.put(
        f"/v1/warehouses/{warehouse_id}",
        json={
            "name": warehouse_id,
            "latitude": latitude,
            "longitude": longitude,
            "timezone": "Europe/Berlin",
        },
    )
    assert response.status_code in (200, 201), response.text
    if quantity:
        response = await client.post(
            "/v1/stock/receive",
            json={"sku": sku, "warehouse_id": warehouse_id, "quantity": quantity},
        )
        assert response.status_code == 200, response.text
