"""The real server, as a subprocess, on a free port and a fresh data directory.

``server`` starts one stockd process per test and stops it at teardown
whatever happened; ``server_factory`` (and ``module_server_factory``, for
servers a module's tests share) starts as many as a test needs, each with
optional command-line options (``database=``, ``strategy=``, any ``args``),
e.g. two processes on the same PostgreSQL database. Each process runs in its
own session, so ``kill9()`` can SIGKILL its whole process group at once —
exactly what a crash looks like — and ``restart()`` starts it again on the
same data directory and port.

Tests marked ``disturbs_postgres`` (they stop the shared PostgreSQL server)
are moved to the end of the run.

Everything the server prints goes to a log file next to the data directory;
it is shown when the server fails to start, and attached to the report of any
test that fails while a server was running.

The helpers below the fixtures speak the HTTP contract (API.md) through an
``httpx.AsyncClient``; the tests import them from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import httpx
import pytest

from tests.conftest import REDIS_URL, empty_tables

STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_CHARS = 20_000

# Generous on purpose: thousands of requests queue for 200 connections on a
# small machine, and a slow answer is not what these tests are about.
CLIENT_TIMEOUT = httpx.Timeout(120.0)
CLIENT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=200)
LOAD_CONNECTIONS = 200
LOAD_CLIENTS = 40
# The server speaks plain HTTP, but every httpx client builds an SSL context
# (loading the CA bundle, ~30 ms) unless it is handed one: share a single one.
SSL_CONTEXT = ssl.create_default_context()

SERVERS_KEY = pytest.StashKey[list["StockdServer"]]()
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerFailedToStart(RuntimeError):
    pass


class StockdServer:
    """One stockd process (and its successors after ``restart()``) on one data directory."""

    def __init__(self, data_dir: Path, log_path: Path, port: int, args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.log_path = log_path
        self.port = port
        self.host = "127.0.0.1"
        self.base_url = f"http://{self.host}:{port}"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the process and wait (bounded) until /healthz answers 200."""
        if self._process is not None:
            raise RuntimeError("the server is already running; kill9() or stop() it first")
        self.starts += 1
        env = {key: value for key, value in os.environ.items() if not key.startswith("STOCKD_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            sys.executable,
            "-m",
            "stockd",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start #{self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.kill9()
            raise

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        last_error = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=1.0) as probe:
            while time.monotonic() < deadline:
                exit_code = self._process.poll()
                if exit_code is not None:
                    raise ServerFailedToStart(
                        f"stockd exited with code {exit_code} before it was healthy\n{self.log_tail()}"
                    )
                try:
                    response = probe.get("/healthz")
                except httpx.TransportError as error:
                    last_error = repr(error)
                else:
                    if response.status_code == 200 and response.json() == {"status": "ok"}:
                        return
                    last_error = f"{response.status_code} {response.text}"
                time.sleep(0.05)
        raise ServerFailedToStart(
            f"stockd was not healthy within {STARTUP_TIMEOUT_SECONDS:.0f} s "
            f"(last: {last_error})\n{self.log_tail()}"
        )

    def kill9(self) -> None:
        """SIGKILL the whole process group — no shutdown code runs — and reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self) -> None:
        """Start again on the same data directory and port (after ``kill9()`` or ``stop()``)."""
        self.kill9()  # a no-op when it is already down
        self.start()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or with SIGKILL if that takes too long."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.kill9()

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        if len(text) > LOG_TAIL_CHARS:
            text = "…" + text[-LOG_TAIL_CHARS:]
        return f"--- server log {self.log_path} ---{text}"

    def client(
        self, *, timeout: httpx.Timeout = CLIENT_TIMEOUT, limits: httpx.Limits = CLIENT_LIMITS, **kwargs: Any
    ) -> httpx.AsyncClient:
        """An AsyncClient for this server; use it as ``async with server.client() as http``."""
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, limits=limits, verify=SSL_CONTEXT, **kwargs
        )

    def load_client(self) -> LoadClient:
        """200 connections for thousands of concurrent requests: ``async with server.load_client() as load``."""
        return LoadClient(self.base_url)


class LoadClient:
    """httpx.AsyncClients sharing ``LOAD_CONNECTIONS`` keep-alive connections, round-robin.

    One AsyncClient with 200 connections and thousands of queued requests spends
    its time in httpcore's pool bookkeeping (every state change rescans every
    queued request against every connection): on two cores the client, not the
    server, becomes the bottleneck and 2,000 requests take over a minute. So
    the 200 connections are split over ``LOAD_CLIENTS`` small pools, and each
    pool lets only as many requests in as it has connections — the same "at
    most 200 requests on the wire" a single pool of 200 would give.
    """

    def __init__(self, base_url: str) -> None:
        per_client = LOAD_CONNECTIONS // LOAD_CLIENTS
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self._lanes = [
            (
                httpx.AsyncClient(
                    base_url=base_url, timeout=CLIENT_TIMEOUT, limits=limits, verify=SSL_CONTEXT
                ),
                asyncio.Semaphore(per_client),
            )
            for _ in range(LOAD_CLIENTS)
        ]
        self._next_lane = itertools.cycle(self._lanes)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        client, gate = next(self._next_lane)
        async with gate:
            return await client.request(method, path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def aclose(self) -> None:
        for client, _ in self._lanes:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class ServerFactory(Protocol):
    def __call__(
        self, *, database: str | None = None, strategy: str | None = None, args: Sequence[str] = ()
    ) -> StockdServer: ...


def server_arguments(
    database: str | None = None, strategy: str | None = None, args: Sequence[str] = ()
) -> list[str]:
    """``stockd serve`` options beyond host, port and data directory."""
    arguments: list[str] = []
    if database is not None:
        arguments += ["--database", database]
    if strategy is not None:
        arguments += ["--strategy", strategy]
    return [*arguments, *args]


@contextlib.contextmanager
def starting_servers(directory: Path, node: pytest.Item | pytest.Collector) -> Iterator[ServerFactory]:
    """A ``ServerFactory`` whose servers live in ``directory`` and are all stopped on exit.

    The servers are stashed on ``node`` so a failing test shows their logs.
    """
    servers: list[StockdServer] = []
    node.stash[SERVERS_KEY] = servers

    def start(
        *, database: str | None = None, strategy: str | None = None, args: Sequence[str] = ()
    ) -> StockdServer:
        number = len(servers) + 1
        server = StockdServer(
            data_dir=directory / f"server-{number}" / "data",
            log_path=directory / f"server-{number}.log",
            port=free_port(),
            args=server_arguments(database, strategy, args),
        )
        server.data_dir.parent.mkdir(parents=True, exist_ok=True)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def server_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Starts servers, each on its own free port and data directory; stops them all at teardown.

    ``server_factory(database="postgresql://…", strategy="lock")`` passes ``--database``
    and ``--strategy``; ``args=[…]`` passes any other ``stockd serve`` options.
    """
    with starting_servers(tmp_path, request.node) as start:
        yield start


@pytest.fixture(scope="module")
def module_server_factory(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerFactory]:
    """Like ``server_factory``, for servers that the tests of one module share (started once)."""
    with starting_servers(tmp_path_factory.mktemp("servers"), request.node) as start:
        yield start


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code such as a module-scoped fixture."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@pytest.fixture
def server(server_factory: ServerFactory) -> StockdServer:
    """A running stockd on a fresh data directory."""
    return server_factory()


def redis_engine_arguments(prefix: str) -> list[str]:
    return ["--redis", REDIS_URL, "--redis-prefix", prefix]


@pytest.fixture(params=["sqlite", "redis"])
def engine_server(request: pytest.FixtureRequest, server_factory: ServerFactory) -> StockdServer:
    """A running stockd on the embedded engine, then on the Redis engine (fresh PostgreSQL tables, own keys)."""
    if request.param == "sqlite":
        return server_factory()
    return redis_server(request, server_factory)


def redis_server(request: pytest.FixtureRequest, server_factory: ServerFactory) -> StockdServer:
    database: str = request.getfixturevalue("postgres_database")
    run_coroutine(empty_tables(database))
    return server_factory(
        database=database, args=redis_engine_arguments(request.getfixturevalue("redis_prefix"))
    )


@pytest.fixture
async def http(server: StockdServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client


DISTURBS_POSTGRES = "disturbs_postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{DISTURBS_POSTGRES}: stops the shared PostgreSQL server for a while; runs after every other test",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that stop PostgreSQL run last, so no other test meets a database that is away."""
    calm = [item for item in items if item.get_closest_marker(DISTURBS_POSTGRES) is None]
    disturbing = [item for item in items if item.get_closest_marker(DISTURBS_POSTGRES) is not None]
    items[:] = calm + disturbing


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    if report.failed:
        module = item.getparent(pytest.Module)
        shared = [] if module is None else module.stash.get(SERVERS_KEY, [])
        for server in [*item.stash.get(SERVERS_KEY, []), *shared]:
            report.sections.append((f"stockd on port {server.port}", server.log_tail()))
    return report


# -- speaking the contract ----------------------------------------------------------------------


async def seed(
    http: httpx.AsyncClient,
    skus: list[str] | str,
    warehouse_id: str = "ber",
    quantity: int | list[int] = 0,
) -> None:
    """Products, a warehouse, and ``quantity`` units of each sku received there."""
    skus = [skus] if isinstance(skus, str) else skus
    quantities = quantity if isinstance(quantity, list) else [quantity] * len(skus)
    response = await http.put(
        f"/v1/warehouses/{warehouse_id}",
        json={"name": warehouse_id, "latitude": 52.52, "longitude": 13.40, "timezone": "Europe/Berlin"},
    )
    assert response.status_code in (200, 201), response.text
    for sku, units in zip(skus, quantities, strict=True):
        response = await http.put(f"/v1/products/{sku}", json={"name": f"product {sku}"})
        assert response.status_code in (200, 201), response.text
        if units:
            response = await http.post(
                "/v1/stock/receive",
                json={"sku": sku, "warehouse_id": warehouse_id, "quantity": units},
            )
            assert response.status_code == 200, response.text


async def level(http: httpx.AsyncClient, sku: str, warehouse_id: str) -> tuple[int, int, int]:
    """(on hand, reserved, available) of one stock level."""
    response = await http.get(f"/v1/stock/{sku}/{warehouse_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    return body["quantity_on_hand"], body["quantity_reserved"], body["quantity_available"]


async def all_pages(http: httpx.AsyncClient, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {**params, "limit": 1000}
        if cursor is not None:
            query["cursor"] = cursor
        response = await http.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def movements_of(http: httpx.AsyncClient, sku: str) -> list[dict[str, Any]]:
    return await all_pages(http, "/v1/movements", sku=sku)


def ledger_balances(movements: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """warehouse_id → (Σ on_hand_delta, Σ reserved_delta)."""
    balances: dict[str, tuple[int, int]] = {}
    for movement in movements:
        on_hand, reserved = balances.get(movement["warehouse_id"], (0, 0))
        balances[movement["warehouse_id"]] = (
            on_hand + movement["on_hand_delta"],
            reserved + movement["reserved_delta"],
        )
    return balances


async def assert_reconciled(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/reconciliation")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mismatches"] == [], body
    assert body["broken_links"] == [], body  # every movement hash chain holds too
    assert body["levels_checked"] >= 1
    assert body["persister_lag"] == 0, body  # the Redis engine: compared once PostgreSQL caught up


async def assert_sold_out(
    http: httpx.AsyncClient, responses: list[httpx.Response], sku: str, warehouse_id: str, units: int
) -> list[dict[str, Any]]:
    """``units`` single units sold to ``len(responses)`` buyers with distinct orders: exactly
    ``units`` held, every other buyer refused with ``409 out_of_stock``, the ledger in step.

    Returns the reservations that were held.
    """
    statuses = Counter(response.status_code for response in responses)
    unexpected = {response.text for response in responses if response.status_code not in (201, 409)}
    assert statuses == {201: units, 409: len(responses) - units}, (statuses, sorted(unexpected)[:5])
    rejected = [response for response in responses if response.status_code == 409]
    assert {response.headers["content-type"] for response in rejected} == {"application/problem+json"}
    assert Counter(response.json()["code"] for response in rejected) == {"out_of_stock": len(rejected)}

    held = [response.json() for response in responses if response.status_code == 201]
    reservation_ids = {reservation["id"] for reservation in held}
    assert len(reservation_ids) == units
    assert len({reservation["order_id"] for reservation in held}) == units
    for reservation in held:
        assert reservation["status"] == "pending", reservation
        assert reservation["lines"] == [{"sku": sku, "warehouse_id": warehouse_id, "quantity": 1}]

    assert await level(http, sku, warehouse_id) == (units, units, 0)
    await assert_reconciled(http)
    movements = await movements_of(http, sku)
    assert ledger_balances(movements) == {warehouse_id: (units, units)}
    assert Counter(m["type"] for m in movements) == {"receive": 1, "reserve": units}
    assert {m["reference_id"] for m in movements if m["type"] == "reserve"} == reservation_ids
    return held
