"""Over HTTP: many keep-alive connections against a running server, the HTTP stack measured apart.

The load generator is ``wrk`` when it is on PATH (C, epoll: it does not become
the bottleneck on a small machine), otherwise ``httpx.AsyncClient``s in this
process, each bounded to one keep-alive connection (``--client`` chooses).
Each run reports the load generator's own CPU use, and the server's when this
run started it: a client near 100 % of a core, or a bare app well short of
one, means something other than the server set the pace.

The target is either a server already running (``--url``) or stockd started
here, one process per engine and strategy, on a fresh database, exactly as
``scripts/serve`` runs it. In the same run the *bare* app — an ASGI function
that reads the body and answers a fixed JSON document, nothing else — is
served by the same embedded Granian set-up stockd uses (``stockd.cli._serve``),
in its own process on another port, and measured with the same load
generator and the same request. stockd's requests/s over the bare app's is the
share of the HTTP stack's capacity that stockd keeps (the target is ≥ 50 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from stockd.bench.engines import DEFAULT_REDIS, WAREHOUSE, EngineName, database_for, database_url
from stockd.bench.stats import Latency, Tick, ticking
from stockd.domain.model import MAX_QUANTITY
from stockd.engine.sql.engine import Strategy
from stockd.ids import new_id

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0
RESERVATIONS_PATH = "/v1/reservations"
BARE_BODY = b'{"status":"ok"}'
# The server speaks plain HTTP, but an httpx client builds an SSL context (~30 ms) unless given one.
SSL_CONTEXT = ssl.create_default_context()

TickFactory = Callable[[str, float], Tick]
"""Makes a progress bar: (description, total seconds) → its tick."""


class Client(StrEnum):
    AUTO = "auto"
    WRK = "wrk"
    HTTPX = "httpx"


class HttpBenchError(Exception):
    """The target cannot be measured; the message says why."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    succeeded: int
    """2xx answers."""
    failed: dict[str, int]
    """Other answers by status, and socket errors and timeouts."""
    seconds: float
    latency: Latency
    client_cpu: float
    """The load generator's CPU time over the wall time (1.0 = one core busy)."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    target: str
    """``stockd`` or ``bare``."""
    engine: str
    strategy: str
    lines: int
    client: str
    connections: int
    load: LoadResult
    server_cpu: float | None
    """The server process's CPU time over the wall time, when this run started it."""
    vs_bare: float | None = None

    @property
    def requests_per_second(self) -> float:
        return self.load.requests / self.load.seconds if self.load.seconds else 0.0

    @property
    def reservations_per_second(self) -> float:
        """Reservations held per second (201s); the bare app holds none."""
        if self.target == "bare" or not self.load.seconds:
            return 0.0
        return self.load.succeeded / self.load.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "http",
            "target": self.target,
            "engine": self.engine,
            "strategy": self.strategy,
            "lines": self.lines,
            "reservations_per_second": round(self.reservations_per_second, 1),
            "requests_per_second": round(self.requests_per_second, 1),
            "lines_per_second": round(self.reservations_per_second * self.lines, 1),
            **self.load.latency.as_json(),
            "requests": self.load.requests,
            "succeeded": self.load.succeeded,
            "failed": self.load.failed,
            "seconds": round(self.load.seconds, 3),
            "client": self.client,
            "connections": self.connections,
            "client_cpu": round(self.load.client_cpu, 2),
            "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 2),
            "vs_bare": None if self.vs_bare is None else round(self.vs_bare, 3),
        }


# -- the bare app ----------------------------------------------------------------------------

Message = dict[str, Any]


async def bare_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The least an ASGI app can do for a request: read its body, answer a fixed JSON document."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        more_body = bool((await receive()).get("more_body", False))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BARE_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BARE_BODY})


async def serve_bare(host: str, port: int) -> None:
    """The bare app under the embedded Granian server exactly as ``stockd.cli._serve`` sets it up."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(bare_app, address=host, port=port, interface=Interfaces.ASGI, backlog=4096)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, server.stop)
    await server.serve()


# -- servers started by this run ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A server in a child process of its own session, with its output in a log file."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process and all its threads so far (Linux /proc only)."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@asynccontextmanager
async def running_server(
    command: Sequence[str], port: int, ready_path: str, log: Path
) -> AsyncIterator[ServerProcess]:
    """Start ``command``, wait until ``ready_path`` answers 200, stop it (SIGTERM, then SIGKILL)."""
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(process, base_url, log)
    try:
        await _wait_ready(server, ready_path)
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_ready(server: ServerProcess, path: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0, verify=SSL_CONTEXT) as client:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise HttpBenchError(
        f"the server at {server.base_url} did not become ready within {STARTUP_TIMEOUT_SECONDS:g} s; "
        f"its log ({server.log}):\n{server.log_tail()}"
    )


# -- load generators ------------------------------------------------------------------------------


def choose_client(client: Client) -> Client:
    if client is Client.AUTO:
        return Client.WRK if shutil.which("wrk") else Client.HTTPX
    if client is Client.WRK and not shutil.which("wrk"):
        raise HttpBenchError("--client wrk: wrk is not on PATH (use --client httpx)")
    return client


async def generate_load(
    client: Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    seconds: float,
    connections: int,
    tick: Tick | None,
) -> LoadResult:
    if client is Client.WRK:
        return await _wrk(url, body, headers, seconds=seconds, connections=connections, tick=tick)
    return await _httpx(url, body, headers, seconds=seconds, connections=connections, tick=tick)


WRK_SCRIPT = """
local file = assert(io.open([==[{body_path}]==], "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
{headers}
-- Answers other than 2xx, by status, counted in each thread and summed in done().
others = {{}}
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  if status < 200 or status > 299 then others[status] = (others[status] or 0) + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("\\nSTOCKD-BENCH %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("others")) do
      io.write(string.format("STOCKD-BENCH-STATUS %d %d\\n", status, count))
    end
  end
end
"""
WRK_SUMMARY = re.compile(r"^STOCKD-BENCH ((?:[\d.]+ ?){11})$", re.MULTILINE)
WRK_STATUS = re.compile(r"^STOCKD-BENCH-STATUS (\d+) (\d+)$", re.MULTILINE)


async def _wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    seconds: float,
    connections: int,
    tick: Tick | None,
) -> LoadResult:
    """``wrk`` with a Lua script that posts ``body`` and prints a machine-readable summary.

    One wrk thread per two cores: on a small machine the server needs the rest.
    wrk counts whole seconds, so ``seconds`` is rounded (at least 1).
    """
    threads = max(1, min(connections, (os.cpu_count() or 2) // 2))
    duration = max(1, round(seconds))
    with tempfile.TemporaryDirectory(prefix="stockd-bench-wrk-") as directory:
        body_path = Path(directory) / "body.json"
        body_path.write_bytes(body)
        script = Path(directory) / "post.lua"
        header_lines = "\n".join(f"wrk.headers[ [==[{k}]==] ] = [==[{v}]==]" for k, v in headers.items())
        script.write_text(WRK_SCRIPT.format(body_path=body_path, headers=header_lines))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            "wrk",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={duration}s",
            f"--timeout={REQUEST_TIMEOUT_SECONDS:.0f}s",
            f"--script={script}",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        communicate = asyncio.ensure_future(process.communicate())
        while not communicate.done():
            await asyncio.wait([communicate], timeout=0.2)
            if tick is not None:
                tick(min(time.perf_counter() - began, duration), "wrk running")
        stdout, stderr = communicate.result()
        wall = time.perf_counter() - began
        if tick is not None:
            tick(duration, "done")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = stdout.decode(errors="replace")
    found = WRK_SUMMARY.search(text)
    if process.returncode != 0 or found is None:
        raise HttpBenchError(
            f"wrk failed (exit {process.returncode}):\n{text}{stderr.decode(errors='replace')}"
        )
    values = [float(v) for v in found.group(1).split()]
    requests, duration_us, connect, read, write, _, timeout = (int(v) for v in values[:7])
    p50, p90, p99, longest = (v / 1000 for v in values[7:])
    statuses: Counter[str] = Counter()
    for status, count in WRK_STATUS.findall(text):
        statuses[status] += int(count)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    socket_errors = {"connect": connect, "read": read, "write": write, "timeout": timeout}
    return LoadResult(
        requests=requests,
        succeeded=requests - sum(statuses.values()),
        failed=dict(statuses) | {kind: count for kind, count in socket_errors.items() if count},
        seconds=duration_us / 1_000_000,
        latency=Latency(p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=longest),
        client_cpu=cpu / wall if wall else 0.0,
    )


async def _httpx(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    seconds: float,
    connections: int,
    tick: Tick | None,
) -> LoadResult:
    """``connections`` workers posting ``body`` until the deadline, each on its own keep-alive connection.

    Each worker has a client of its own, bounded to one connection: one client
    whose pool all workers share spends its time in the pool's bookkeeping once
    it has dozens of connections (5x fewer requests/s at 50 on a 2-core machine).
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    cpu_before = time.process_time()
    began = time.perf_counter()
    deadline = began + seconds

    async def worker() -> None:
        async with httpx.AsyncClient(
            limits=one_connection, timeout=REQUEST_TIMEOUT_SECONDS, verify=SSL_CONTEXT, headers=headers
        ) as client:
            while (started := time.perf_counter()) < deadline:
                try:
                    response = await client.post(url, content=body)
                except httpx.TimeoutException:
                    statuses["timeout"] += 1
                except httpx.TransportError as error:
                    statuses[type(error).__name__] += 1
                else:
                    statuses[str(response.status_code)] += 1
                latencies.append(time.perf_counter() - started)

    def progress() -> tuple[float, str]:
        elapsed = time.perf_counter() - began
        rate = len(latencies) / elapsed if elapsed else 0.0
        return min(elapsed, seconds), f"{len(latencies):,} requests, {rate:,.0f}/s"

    async with ticking(tick, progress):
        await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    succeeded = sum(count for status, count in statuses.items() if status.startswith("2"))
    return LoadResult(
        requests=len(latencies),
        succeeded=succeeded,
        failed={status: count for status, count in statuses.items() if not status.startswith("2")},
        seconds=wall,
        latency=Latency.of(latencies),
        client_cpu=cpu / wall if wall else 0.0,
    )


# -- stockd as the target -------------------------------------------------------------------------


def reservation_body(skus: Sequence[str], lines: int) -> bytes:
    """A reservation of one unit of each of the first ``lines`` skus, in the bench warehouse."""
    return json.dumps(
        {
            "order_id": "bench",
            "lines": [{"sku": sku, "quantity": 1, "warehouse_id": WAREHOUSE} for sku in skus[:lines]],
        },
        separators=(",", ":"),
    ).encode()


async def prepare_stockd(base_url: str, headers: dict[str, str], skus: int) -> list[str]:
    """A warehouse and ``skus`` fresh products with unlimited stock, through the API itself."""
    tag = new_id()[-8:]
    names = [f"H{tag}-{i}" for i in range(skus)]
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS, verify=SSL_CONTEXT
    ) as client:
        try:
            health = await client.get("/healthz")
        except httpx.HTTPError as error:
            raise HttpBenchError(f"cannot reach stockd at {base_url}: {error}") from error
        if health.status_code != 200:
            raise HttpBenchError(f"{base_url}/healthz answered {health.status_code}: {health.text[:500]}")
        warehouse = {"name": "bench", "latitude": 0.0, "longitude": 0.0, "timezone": "UTC"}
        await _expect(client.put(f"/v1/warehouses/{WAREHOUSE}", json=warehouse), (200, 201))
        for name in names:
            await _expect(client.put(f"/v1/products/{name}", json={"name": name}), (200, 201))
            receive = {"sku": name, "warehouse_id": WAREHOUSE, "quantity": MAX_QUANTITY}
            await _expect(client.post("/v1/stock/receive", json=receive), (200,))
        # One reservation of each shape proves the requests the load generator will send are accepted.
        for lines in sorted({1, skus}):
            await _expect(
                client.post(
                    RESERVATIONS_PATH,
                    content=reservation_body(names, lines),
                    headers={"content-type": "application/json"},
                ),
                (201,),
            )
    return names


async def _expect(request: Awaitable[httpx.Response], statuses: tuple[int, ...]) -> None:
    response = await request
    if response.status_code in (401, 403):
        raise HttpBenchError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            "pass --api-key with a key that has the admin and write scopes"
        )
    if response.status_code not in statuses:
        raise HttpBenchError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )


@dataclass(frozen=True, slots=True)
class HttpPlan:
    url: str | None
    engines: list[EngineName]
    strategies: list[Strategy]
    database: str | None
    api_key: str | None
    lines: list[int]
    seconds: float
    warmup: float
    connections: int
    client: Client
    bare: bool
    redis: str | None = None


async def run_http(plan: HttpPlan, progress: TickFactory, on_result: Callable[[HttpResult], None]) -> None:
    """Bare app first (if asked), then every stockd target and line count; results as they come."""
    client = choose_client(plan.client)
    headers = {"content-type": "application/json"}
    if plan.api_key:
        headers["authorization"] = f"Bearer {plan.api_key}"
    max_lines = max(plan.lines)
    placeholder = reservation_body(["BARE-00000000-0"], 1)  # the same shape as stockd's 1-line request

    async def measure(
        target: str,
        engine: str,
        strategy: str,
        url: str,
        body: bytes,
        lines: int,
        server: ServerProcess | None,
    ) -> HttpResult:
        shape = f"{lines} line{'s' if lines > 1 else ''}"
        label = f"bare app, {shape}" if target == "bare" else f"stockd {engine}/{strategy}, {shape}"
        if plan.warmup > 0:
            await generate_load(
                client,
                url,
                body,
                headers,
                seconds=plan.warmup,
                connections=plan.connections,
                tick=progress(f"warm-up: {label}", plan.warmup),
            )
        cpu_before = server.cpu_seconds() if server else None
        began = time.perf_counter()
        load = await generate_load(
            client,
            url,
            body,
            headers,
            seconds=plan.seconds,
            connections=plan.connections,
            tick=progress(label, plan.seconds),
        )
        wall = time.perf_counter() - began
        cpu_after = server.cpu_seconds() if server else None
        server_cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / wall
        return HttpResult(target, engine, strategy, lines, client.value, plan.connections, load, server_cpu)

    bare_rate: float | None = None
    external_skus: list[str] = []
    if plan.url is not None:  # before anything is measured: a wrong --url fails at once
        external_skus = await prepare_stockd(plan.url.rstrip("/"), headers, max_lines)
    with tempfile.TemporaryDirectory(prefix="stockd-bench-http-") as directory:
        logs = Path(directory)
        if plan.bare:
            port = free_port()
            command = [sys.executable, "-m", "stockd.bench", "serve-bare", "--port", str(port)]
            async with running_server(command, port, "/", logs / "bare.log") as bare:
                result = await measure(
                    "bare", "bare", "none", bare.base_url + RESERVATIONS_PATH, placeholder, 1, bare
                )
            bare_rate = result.requests_per_second
            on_result(result)

        def against_bare(result: HttpResult) -> HttpResult:
            if not bare_rate:
                return result
            return replace(result, vs_bare=result.requests_per_second / bare_rate)

        if plan.url is not None:
            base_url = plan.url.rstrip("/")
            engine = plan.engines[0].value if plan.engines else "external"
            strategy = plan.strategies[0].value if plan.strategies else "unknown"
            for lines in plan.lines:
                body = reservation_body(external_skus, lines)
                result = await measure(
                    "stockd", engine, strategy, base_url + RESERVATIONS_PATH, body, lines, None
                )
                on_result(against_bare(result))
            return

        for engine_name in plan.engines or [EngineName.SQLITE]:
            for strategy_name in plan.strategies or [Strategy.BATCHED]:
                async with database_url(engine_name, database_for(engine_name, plan.database)) as url:
                    port = free_port()
                    command = [
                        sys.executable, "-m", "stockd", "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--database", url, "--strategy", strategy_name.value,
                    ]  # fmt: skip
                    if engine_name is EngineName.REDIS:
                        prefix = f"stockd-bench-{new_id()[-12:]}"
                        command[-1] = Strategy.BATCHED.value  # the Redis engine always batches
                        command += ["--redis", plan.redis or DEFAULT_REDIS, "--redis-prefix", prefix]
                    log = logs / f"stockd-{engine_name}-{strategy_name}.log"
                    async with running_server(command, port, "/healthz", log) as server:
                        skus = await prepare_stockd(server.base_url, headers, max_lines)
                        for lines in plan.lines:
                            body = reservation_body(skus, lines)
                            result = await measure(
                                "stockd",
                                engine_name.value,
                                strategy_name.value,
                                server.base_url + RESERVATIONS_PATH,
                                body,
                                lines,
                                server,
                            )
                            on_result(against_bare(result))
