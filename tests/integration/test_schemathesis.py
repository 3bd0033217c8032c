"""Schemathesis against the service's own /openapi.json: every operation the document describes, fuzzed.

Each operation is called in-process (ASGI) on the real app over the embedded
SQLite engine, through the document's bearer scheme with the start-up admin key,
with requests that follow the document (positive) and requests that break it
(negative), the document's examples and its boundary values. Every built-in
check of Schemathesis is on; every answer must be:

- never a 5xx (``not_a_server_error``);
- a status, a content type, headers and a body the document declares for that
  operation (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- for a request that breaks the document, a refusal (``negative_data_rejection``):
  422, or 404/405 when a broken path names no route, 413 for a body too large,
  401 for a request without the key;
- for a request that follows it, an acceptance (``positive_data_acceptance``):
  2xx, or the domain's own answers to a well-formed request — 404 for an id that
  names nothing, 409 for a conflict with the stock (out_of_stock, invalid_state, ...).
  With an admin key, 401/403/429 are never acceptable;
- after a success, the same request without the key and with a wrong one refused
  with 401 (``ignored_auth``);
- a method the path does not serve refused with 405, and ``Allow`` (on 405 and
  OPTIONS) naming every method the document gives the path (``unsupported_method``,
  ``allow_header_conformance``).

A few rules of API.md cannot be written in JSON Schema; ``within_the_contract``
keeps positive cases inside them rather than counting their refusal as a defect.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from litestar.testing import TestClient

import stockd.api.app
from stockd.api.app import create_app
from stockd.config import SQLITE_FILE, Settings
from stockd.domain.model import MAX_BALANCE

ADMIN_KEY = "schemathesis-admin-key-0123456789"
AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_KEY}"}
SEEDED_SKU = "A-1"
"""The example the document gives for a sku, so examples and positive cases reach a real product."""
SEEDED_WAREHOUSES = {SEEDED_SKU: (52.52, 13.40), "ber": (52.52, 13.40)}
"""One named like the document's example identifier, so its examples reach a real stock level."""
REQUEST_TIMEOUT_SECONDS = 10.0
"""Only a hang guard: an answer takes milliseconds."""
EVENT_STREAM_SECONDS = 0.2
"""The event stream never ends by itself; this much of it is read and checked."""

CONFIG = schemathesis.Config.from_dict(
    {
        # The document's bearer scheme, with the start-up admin key: every scope, every warehouse.
        "auth": {"openapi": {"bearer": {"bearer": ADMIN_KEY}}},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409"]},
            "negative_data_rejection": {"expected-statuses": ["401", "404", "405", "413", "422"]},
        },
    }
)


class AppOfTheRunningTest:
    """The ASGI app Schemathesis calls: it forwards to the app the running test's fixture built.

    The schema must exist when the module is collected, but each test gets a service of
    its own on a fresh database; Schemathesis' own probes (such as retrying a request
    without credentials) go to the schema's app, so that app stands in for the current one.
    """

    def __init__(self) -> None:
        self.current: Litestar | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.current is not None, "no test has built the service yet"
        await self.current(scope, receive, send)


APP_OF_THE_RUNNING_TEST = AppOfTheRunningTest()


class SilentWebhookDispatcher:
    """Generated webhook URLs name arbitrary hosts: nothing may be sent to them from a test."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def served_document() -> dict[str, Any]:
    """The document the service serves at /openapi.json. Serving it needs no database, so the
    app answers it without starting up (no lifespan runs, nothing is written)."""
    response = TestClient(create_app()).get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def seed(service_settings: Settings) -> dict[str, str]:
    """A product and two warehouses with stock, a pending reservation, a transfer in transit,
    a webhook and a key, so positive cases also reach existing rows. Returns the ids the
    server made, by the name of the path parameter that takes them."""
    with TestClient(create_app(service_settings)) as client:
        client.headers.update(AUTHORIZATION)

        def made(method: str, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
            response = client.request(method, path, json=body)
            assert response.status_code == status, response.text
            answer: dict[str, Any] = response.json()
            return answer

        made("PUT", f"/v1/products/{SEEDED_SKU}", {"name": "seeded product"}, 201)
        for warehouse_id, (latitude, longitude) in SEEDED_WAREHOUSES.items():
            body = {
                "name": warehouse_id,
                "latitude": latitude,
                "longitude": longitude,
                "timezone": "Europe/Berlin",
            }
            made("PUT", f"/v1/warehouses/{warehouse_id}", body, 201)
            made(
                "POST",
                "/v1/stock/receive",
                {"sku": SEEDED_SKU, "warehouse_id": warehouse_id, "quantity": 1000},
                200,
            )
        line = {"sku": SEEDED_SKU, "warehouse_id": "ber", "quantity": 1}
        reservation = made(
            "POST", "/v1/reservations", {"order_id": "seeded", "lines": [line], "ttl_seconds": 86_400}, 201
        )
        transfer = made(
            "POST",
            "/v1/transfers",
            {"sku": SEEDED_SKU, "from_warehouse_id": SEEDED_SKU, "to_warehouse_id": "ber", "quantity": 1},
            201,
        )
        # Never called: the dispatcher is silenced, and the address is this machine's discard port.
        webhook = made(
            "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["stock.changed"]}, 201
        )
        key = made("POST", "/v1/keys", {"name": "seeded", "scopes": ["read"]}, 201)
    return {
        "reservation_id": reservation["id"],
        "transfer_id": transfer["id"],
        "webhook_id": webhook["id"],
        "key_id": key["id"],
    }


@pytest.fixture
def seeded_ids(tmp_path: Path, migrated_sqlite: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The service on a fresh embedded SQLite database with seeded rows, started by its first request
    (and stopped by Schemathesis when the test ends); the ids the server made for the rows."""
    monkeypatch.setattr(stockd.api.app, "WebhookDispatcher", SilentWebhookDispatcher)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(migrated_sqlite, data_dir / SQLITE_FILE)
    service_settings = Settings(data_dir=data_dir, admin_key=ADMIN_KEY)
    ids = seed(service_settings)
    APP_OF_THE_RUNNING_TEST.current = create_app(service_settings)
    return ids


def as_json_integers(value: Any) -> Any:
    """``2.0`` spelled ``2``: JSON Schema's ``integer`` admits both, API.md only the second."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [as_json_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json_integers(item) for key, item in value.items()}
    return value


def within_the_contract(case: schemathesis.Case, seeded_ids: dict[str, str]) -> None:
    """Keep a positive case inside the rules of API.md that JSON Schema cannot state.

    - An integer is written as a JSON integer: ``2.0`` is refused (422), though the
      document's ``"type": "integer"`` admits it.
    - A ``cursor`` is opaque: only a ``next_cursor`` the service issued is one, and a
      generator cannot invent it (an invented one is refused with 422).
    - A transfer moves stock between two different warehouses (the same one on both
      ends is 422).
    - A reorder policy's point and quantity add up to at most the largest balance (an
      alert suggests ordering up to their sum; more is 422).
    - Ids the server makes cannot be guessed either: a positive case names the seeded
      reservation, transfer, webhook or key (an unknown id would only ever be 404).

    Negative cases are left alone: each must still be refused.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    for name in case.path_parameters or {}:
        if name in seeded_ids:
            case.path_parameters[name] = seeded_ids[name]
    if isinstance(case.body, (dict, list)):
        case.body = as_json_integers(case.body)
    if case.query:
        case.query.pop("cursor", None)
    body = case.body
    if case.path == "/v1/transfers" and isinstance(body, dict):
        source = body.get("from_warehouse_id")
        if body.get("to_warehouse_id") == source:
            body["to_warehouse_id"] = "ber" if source != "ber" else SEEDED_SKU
    if case.path.endswith("/reorder-policy") and isinstance(body, dict):
        point, quantity = body.get("reorder_point"), body.get("reorder_quantity")
        if isinstance(point, int) and isinstance(quantity, int) and point + quantity > MAX_BALANCE:
            body["reorder_point"] = min(point, MAX_BALANCE - 1)
            body["reorder_quantity"] = MAX_BALANCE - body["reorder_point"]


# Loaded at collection, as ``schemathesis.openapi.from_asgi`` would, but without starting
# a service. (``schemathesis.pytest.from_fixture`` would defer it to a fixture, but it sets
# ``Item._nodeid``, which pytest 9.2 no longer has.)
schema = schemathesis.openapi.from_dict(served_document(), config=CONFIG)
schema.app = APP_OF_THE_RUNNING_TEST


# One service per operation, shared by that operation's examples as a real service is
# shared by its clients; hence the function-scoped fixture under Hypothesis.
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_every_operation_honours_the_openapi_document(
    case: schemathesis.Case, seeded_ids: dict[str, str]
) -> None:
    within_the_contract(case, seeded_ids)
    timeout = EVENT_STREAM_SECONDS if case.path == "/v1/events" else REQUEST_TIMEOUT_SECONDS
    case.call_and_validate(timeout=timeout)
