"""PostgreSQL goes away under traffic, twice, and comes back: 503 while it is away, never a hang or a 500.

The test stops the machine's PostgreSQL server (the one every PostgreSQL test
shares), so it is marked ``disturbs_postgres`` and runs after every other test;
it starts PostgreSQL again in a ``finally`` whatever happens, and a fixture
makes sure of it once more at teardown.

While the database is away each request must fail whole and fast with
``503 unavailable``; once it is back, the same server process — never
restarted — must answer 201 again by itself. Whatever it acknowledged before,
during or after the outage must still be there, and a request that got a 503
must not have been applied twice: replayed with its Idempotency-Key, it comes
out as exactly one reservation.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import empty_tables
from tests.integration.conftest import (
    DISTURBS_POSTGRES,
    LoadClient,
    ServerFactory,
    StockdServer,
    assert_reconciled,
    ledger_balances,
    level,
    movements_of,
    seed,
)

pytestmark = getattr(pytest.mark, DISTURBS_POSTGRES)

SKU = "OUTAGE-1"
WAREHOUSE = "ber"
RECEIVED = 1_000_000  # the traffic never runs out of stock
WORKERS = 16
PROMPT = httpx.Timeout(15.0)  # an answer slower than this is a hang
OUTAGES = 2  # a request caught mid-transaction by the stop is what goes wrong, if anything: two chances
ACKNOWLEDGED_BEFORE = 100
ANSWERED_WHILE_DOWN = 40
ACKNOWLEDGED_AFTER = 100
WAIT_SECONDS = 60.0  # bound of every wait for the traffic to get somewhere
POSTGRES_READY_SECONDS = 60.0

CLUSTER_VERSION = sorted(os.listdir("/etc/postgresql"))[0] if os.path.isdir("/etc/postgresql") else "15"


def pg_ctlcluster(action: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", CLUSTER_VERSION, "main", action, *options],
        capture_output=True,
        text=True,
        timeout=POSTGRES_READY_SECONDS,
        check=False,
    )


def postgres_is_ready() -> bool:
    probe = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "1"], capture_output=True, check=False
    )
    return probe.returncode == 0


def start_postgres() -> None:
    """Start PostgreSQL (a no-op if it runs) and wait, bounded, until it accepts connections."""
    if postgres_is_ready():
        return
    started = pg_ctlcluster("start")
    deadline = time.monotonic() + POSTGRES_READY_SECONDS
    while not postgres_is_ready():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"PostgreSQL did not come back within {POSTGRES_READY_SECONDS:.0f} s: "
                f"{started.returncode} {started.stdout} {started.stderr}"
            )
        time.sleep(0.2)


def stop_postgres() -> None:
    stopped = pg_ctlcluster("stop", "-m", "fast")
    assert stopped.returncode == 0, (stopped.stdout, stopped.stderr)
    assert not postgres_is_ready()


@pytest.fixture
def postgres_comes_back() -> Iterator[None]:
    """Whatever the test did, PostgreSQL runs again after it (the rest of the session needs it)."""
    assert postgres_is_ready(), "PostgreSQL was supposed to be running before the outage test"
    try:
        yield
    finally:
        start_postgres()


@dataclass
class Attempt:
    order_id: str
    body: dict[str, Any]
    idempotency_key: str | None
    sent_in: str  # the phase when it was sent …
    answered_in: str | None = None  # … and when its answer came back
    status: int | None = None
    answer: dict[str, Any] | None = None
    content_type: str | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.idempotency_key is None else {"Idempotency-Key": self.idempotency_key}


class Traffic:
    """Workers reserving one unit at a time, steadily, and remembering every answer."""

    def __init__(self) -> None:
        self.phase = "up"  # up → stopping-1 → down-1 → starting-1 → back-1 → stopping-2 → …
        self.attempts: list[Attempt] = []
        self.running = True
        self._numbers = itertools.count()

    def count(self, *, sent_in: str | None = None, answered_in: str | None = None, status: int) -> int:
        return sum(
            1
            for attempt in self.attempts
            if attempt.status == status
            and (sent_in is None or attempt.sent_in == sent_in)
            and (answered_in is None or attempt.answered_in == answered_in)
        )

    def answered_while_down(self) -> list[Attempt]:
        return [a for a in self.attempts if a.sent_in.startswith("down") and a.answered_in == a.sent_in]

    async def worker(self, http: httpx.AsyncClient) -> None:
        while self.running:
            n = next(self._numbers)
            order_id = f"outage-{n}"
            attempt = Attempt(
                order_id,
                {"order_id": order_id, "lines": [{"sku": SKU, "quantity": 1}]},
                f"key-{order_id}" if n % 2 == 0 else None,
                sent_in=self.phase,
            )
            self.attempts.append(attempt)
            try:
                response = await http.post("/v1/reservations", json=attempt.body, headers=attempt.headers())
            except httpx.TimeoutException as error:
                raise AssertionError(
                    f"{order_id} (sent while PostgreSQL was {attempt.sent_in}) got no answer within "
                    f"{PROMPT.read:.0f} s: the server hangs instead of answering 503"
                ) from error
            attempt.answered_in = self.phase
            attempt.status = response.status_code
            attempt.content_type = response.headers.get("content-type")
            try:
                attempt.answer = response.json()
            except ValueError:
                attempt.answer = {"text": response.text}
            if response.status_code != 201:
                await asyncio.sleep(0.05)  # a client backing off a little, as Retry-After asks

    def summary(self) -> str:
        """How many answers of each status, by the phase they were sent in, and the first odd ones."""
        seen = Counter((a.sent_in, a.status) for a in self.attempts if a.status is not None)
        odd = [
            (a.order_id, a.sent_in, a.status, a.answer)
            for a in self.attempts
            if a.status not in (None, 201, 503)
        ]
        return f"answers by (phase sent in, status): {dict(seen)}; unexpected: {odd[:3]}"

    async def wait_until(
        self, condition: Callable[[], bool], what: str, workers: list[asyncio.Task[None]]
    ) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            for task in workers:
                if task.done():
                    task.result()  # a worker failed: show why
                    raise AssertionError("a worker stopped early")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {WAIT_SECONDS:.0f} s: {what}; {self.summary()}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def server_on_postgres(
    postgres_database: str, server_factory: ServerFactory, postgres_comes_back: None
) -> AsyncIterator[StockdServer]:
    await empty_tables(postgres_database)
    server = await asyncio.to_thread(server_factory, database=postgres_database)
    async with server.client() as http:
        await seed(http, SKU, WAREHOUSE, quantity=RECEIVED)
    yield server


async def test_a_postgres_outage_answers_503_promptly_and_the_same_server_recovers_without_losing_an_acknowledged_reservation(
    server_on_postgres: StockdServer,
) -> None:
    server = server_on_postgres
    traffic = Traffic()
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with server.client(timeout=PROMPT, limits=limits) as http:
        workers = [asyncio.create_task(traffic.worker(http)) for _ in range(WORKERS)]
        try:
            await traffic.wait_until(
                lambda: traffic.count(status=201) >= ACKNOWLEDGED_BEFORE,
                f"{ACKNOWLEDGED_BEFORE} reservations acknowledged before the first outage",
                workers,
            )
            for outage in range(1, OUTAGES + 1):
                answered_before = len(traffic.answered_while_down())
                try:
                    traffic.phase = f"stopping-{outage}"
                    await asyncio.to_thread(stop_postgres)
                    traffic.phase = f"down-{outage}"
                    await traffic.wait_until(
                        lambda target=answered_before + ANSWERED_WHILE_DOWN: (
                            len(traffic.answered_while_down()) >= target
                        ),
                        f"{ANSWERED_WHILE_DOWN} answers while PostgreSQL was down (outage {outage})",
                        workers,
                    )
                finally:
                    traffic.phase = f"starting-{outage}"
                    await asyncio.to_thread(start_postgres)
                    traffic.phase = f"back-{outage}"
                await traffic.wait_until(
                    lambda back=f"back-{outage}": (
                        traffic.count(sent_in=back, status=201) >= ACKNOWLEDGED_AFTER
                    ),
                    f"{ACKNOWLEDGED_AFTER} reservations acknowledged by the same server after "
                    f"PostgreSQL came back (outage {outage})",
                    workers,
                )
        finally:
            traffic.running = False
            done, _ = await asyncio.wait(workers, timeout=2 * PROMPT.read)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        for task in done:
            task.result()

    attempts = [attempt for attempt in traffic.attempts if attempt.status is not None]
    assert {attempt.status for attempt in attempts} <= {201, 503}, traffic.summary()
    before = [attempt for attempt in attempts if attempt.sent_in == attempt.answered_in == "up"]
    assert {attempt.status for attempt in before} == {201}, Counter(a.status for a in before)
    while_down = traffic.answered_while_down()
    assert {attempt.status for attempt in while_down} == {503}, Counter(a.status for a in while_down)
    unavailable = [attempt for attempt in attempts if attempt.status == 503]
    assert {attempt.content_type for attempt in unavailable} == {"application/problem+json"}
    assert {(a.answer or {}).get("code") for a in unavailable} == {"unavailable"}, unavailable[:3]
    assert {(a.answer or {}).get("status") for a in unavailable} == {503}

    async with server.client() as http, server.load_client() as load:
        await assert_acknowledged_reservations_exist(load, [a for a in attempts if a.status == 201])
        await assert_refused_requests_were_applied_at_most_once(load, unavailable)
        await assert_reserved_equals_the_reservations(http, load, [a for a in attempts if a.status == 201])
        await assert_reconciled(http)


async def assert_acknowledged_reservations_exist(load: LoadClient, acknowledged: list[Attempt]) -> None:
    responses = await asyncio.gather(
        *(load.get(f"/v1/reservations/{(attempt.answer or {})['id']}") for attempt in acknowledged)
    )
    for attempt, response in zip(acknowledged, responses, strict=True):
        assert response.status_code == 200, (attempt.order_id, attempt.sent_in, response.text)
        assert response.json() == attempt.answer, attempt.order_id


async def assert_refused_requests_were_applied_at_most_once(load: LoadClient, refused: list[Attempt]) -> None:
    """A 503 promised nothing: the request may or may not have committed, but never twice.
    Replayed with its key, a keyed one ends as exactly one reservation."""
    keyed = [attempt for attempt in refused if attempt.idempotency_key is not None]
    replays = await asyncio.gather(
        *(load.post("/v1/reservations", json=attempt.body, headers=attempt.headers()) for attempt in keyed)
    )
    for attempt, replay in zip(keyed, replays, strict=True):
        assert replay.status_code == 201, (attempt.order_id, replay.text)
        attempt.answer = replay.json()

    listed = await asyncio.gather(
        *(load.get("/v1/reservations", params={"order_id": attempt.order_id}) for attempt in refused)
    )
    for attempt, response in zip(refused, listed, strict=True):
        assert response.status_code == 200, response.text
        ids = [reservation["id"] for reservation in response.json()["items"]]
        if attempt.idempotency_key is not None:
            assert ids == [(attempt.answer or {}).get("id")], attempt.order_id
        else:
            assert len(ids) <= 1, attempt.order_id


async def assert_reserved_equals_the_reservations(
    http: httpx.AsyncClient, load: LoadClient, acknowledged: list[Attempt]
) -> None:
    movements = await movements_of(http, SKU)
    reserves = [movement for movement in movements if movement["type"] == "reserve"]
    assert Counter(movement["type"] for movement in movements) == {"receive": 1, "reserve": len(reserves)}
    reservation_ids = [movement["reference_id"] for movement in reserves]
    assert len(set(reservation_ids)) == len(reservation_ids), "a reservation was applied twice"
    assert {(attempt.answer or {}).get("id") for attempt in acknowledged} <= set(reservation_ids)

    listed = await asyncio.gather(
        *(load.get(f"/v1/reservations/{reservation_id}") for reservation_id in reservation_ids)
    )
    assert {response.status_code for response in listed} == {200}
    reservations = [response.json() for response in listed]
    assert {reservation["status"] for reservation in reservations} == {"pending"}
    orders = [reservation["order_id"] for reservation in reservations]
    assert len(set(orders)) == len(orders), "an order was reserved twice"

    on_hand, reserved, available = await level(http, SKU, WAREHOUSE)
    assert (on_hand, reserved, available) == (RECEIVED, len(reserves), RECEIVED - len(reserves))
    assert ledger_balances(movements) == {WAREHOUSE: (on_hand, reserved)}
