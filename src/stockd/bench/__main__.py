"""``scripts/bench`` (``python -m stockd.bench``): stockd's benchmarks, side by side.

Progress and messages go to stderr; stdout carries the result table, or with
``--json`` one JSON object per measurement (JSON Lines), so the last line of
stdout is always one complete JSON object. Exit codes: 0 measured, 1 a flash
sale's outcome was wrong, 2 the options cannot work (an unknown or unavailable
engine, an unreachable database), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stockd.bench.engines import (
    DEFAULT_POSTGRES_SERVER,
    POSTGRES_SERVER_VARIABLE,
    REDIS_STRATEGIES,
    UNBATCHED,
    BenchEngine,
    BenchUsageError,
    EngineName,
    PersisterPlacement,
    check_engines,
    database_for,
    open_engine,
)
from stockd.bench.flash_sale import FlashSaleResult, run_sale
from stockd.bench.stats import Tick
from stockd.bench.throughput import ThroughputResult, measure
from stockd.domain.errors import StockdError
from stockd.engine.sql.engine import Strategy
from stockd.runtime import tune_garbage_collection

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True,
    help="stockd benchmarks: they measure, the tests assert. Results belong in docs/benchmarks.md.",
)
# Piped or redirected, rich would wrap tables at 80 columns; a results table is wider.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

Engines = Annotated[
    list[EngineName] | None,
    typer.Option(
        "--engine",
        help="Engine to run; repeat for several (default: sqlite). sqlite uses a temporary file unless "
        "--database sqlite:///path is given. postgres uses --database postgresql://… if given, else a "
        "scratch database per measurement, created on the server named by "
        f"${POSTGRES_SERVER_VARIABLE} (default {DEFAULT_POSTGRES_SERVER}) and dropped afterwards. "
        "redis is the Redis engine on --redis (default redis://127.0.0.1:6379/0) with its ledger in a "
        "scratch PostgreSQL database; its strategies are batched and lock (= unbatched, one script call "
        "per reservation).",
        case_sensitive=False,
    ),
]
Strategies = Annotated[
    list[Strategy] | None,
    typer.Option(
        "--strategy",
        help="SQL engine strategy; repeat for several, run in the order given (default: all four).",
        case_sensitive=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="sqlite:///path or postgresql://user@host/db, used by the engine it belongs to. "
        "Runs seed fresh products under a new prefix, so a shared database is safe.",
    ),
]
RedisOption = Annotated[str | None, typer.Option("--redis", help="redis://… for the Redis engine.")]
PersisterOption = Annotated[
    PersisterPlacement,
    typer.Option(
        "--persister",
        help="Redis engine: run its persister in this process (as stockd serve does) or as "
        "`stockd worker persist` in a process of its own.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="One JSON object per measurement on stdout (JSON Lines); nothing else."),
]
PlotOption = Annotated[
    Path | None,
    typer.Option("--plot", help="Also draw throughput and latency per engine and strategy to FILE.png."),
]


@app.callback()
def bench() -> None:
    """stockd benchmarks (they measure; tests assert)."""
    tune_garbage_collection()  # as ``stockd serve`` does: the engines are measured as they run


# -- throughput ---------------------------------------------------------------------------------------


@app.command()
def throughput(
    engine: Engines = None,
    strategy: Strategies = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    persister: PersisterOption = PersisterPlacement.IN_PROCESS,
    seconds: Annotated[float, typer.Option(min=0.1, help="How long each engine × strategy runs.")] = 10.0,
    skus: Annotated[int, typer.Option(min=1, help="Products, chosen uniformly (1 = one hot SKU).")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent callers.")] = 50,
    as_json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Durable reservations/s in process (no HTTP), every engine × strategy in the same run.

    Each caller reserves one unit at a time, against unlimited stock, and is
    answered only once its reservation is committed and fsynced. Reports
    reservations/s, p50 and p99 latency per reservation, batch sizes, and each
    strategy's rate relative to lock's measured in the same run.
    """
    engines = engine or [EngineName.SQLITE]
    strategies = strategy or list(Strategy)
    _check(engines, database, redis)
    err.print(
        f"[bold]throughput[/bold]: {_names(engines)} × {_names(strategies)}; {seconds:g} s each, "
        f"{concurrency} callers, {skus} SKU(s), {os.cpu_count()} cores"
    )

    async def one(bench: BenchEngine, tick: Tick) -> ThroughputResult:
        return await measure(bench, seconds=seconds, concurrency=concurrency, skus=skus, tick=tick)

    results = _run_with_progress(
        _on_every_engine(engines, strategies, database, redis, persister, seconds, one)
    )
    records = [result.as_json() for result in results]
    _add_vs_lock(records)
    table = Table(
        "engine", "strategy", "reservations/s", "× lock", "p50 ms", "p99 ms", "mean batch", "max batch",
        "lag max/end", "errors", title=f"throughput: {skus} SKU(s), {concurrency} callers, {seconds:g} s each, {os.cpu_count()} cores",
    )  # fmt: skip
    for record in records:
        table.add_row(
            record["engine"],
            record["strategy"],
            f"{record['reservations_per_second']:,.0f}",
            _ratio(record.get("vs_lock")),
            f"{record['p50_ms']:.2f}",
            f"{record['p99_ms']:.2f}",
            f"{record['mean_batch']:.1f}",
            str(record["max_batch"]),
            f"{record['persister_lag_max']}/{record['persister_lag_end']}",
            ", ".join(f"{code}: {n}" for code, n in record["errors"].items()) or "0",
        )
    _finish(records, table, as_json, plot, "throughput", _durability_notes(results))


def _add_vs_lock(records: list[dict[str, Any]]) -> None:
    """Each record's rate over the lock strategy's on the same engine in this run."""
    lock = {
        r["engine"]: r["reservations_per_second"]
        for r in records
        if r["strategy"] in (Strategy.LOCK, UNBATCHED)
    }
    for record in records:
        baseline = lock.get(record["engine"])
        record["vs_lock"] = round(record["reservations_per_second"] / baseline, 2) if baseline else None


# -- flash sale ---------------------------------------------------------------------------------------


@app.command("flash-sale")
def flash_sale(
    engine: Engines = None,
    strategy: Strategies = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    persister: PersisterOption = PersisterPlacement.IN_PROCESS,
    units: Annotated[int, typer.Option(min=1, help="Units in stock of the one product on sale.")] = 1000,
    buyers: Annotated[int, typer.Option(min=1, help="Buyers; each tries once to reserve one unit.")] = 5000,
    concurrency: Annotated[int, typer.Option(min=1, help="Buyers trying at the same time.")] = 500,
    as_json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """A flash sale in process: check that exactly the stock was sold, and how fast.

    Counts successful reservations (201 over HTTP) and out-of-stock refusals
    (409), then reads the level back: reserved must equal units (or buyers, if
    fewer), oversold must be 0, every acknowledged reservation must be in the
    database, and every balance must equal the sum of its movements. Reports
    the time to sell out, reservations/s until then, and latency percentiles.
    Exit code 1 if any sale's outcome is wrong.
    """
    engines = engine or [EngineName.SQLITE]
    strategies = strategy or list(Strategy)
    _check(engines, database, redis)
    err.print(
        f"[bold]flash sale[/bold]: {_names(engines)} × {_names(strategies)}; {units:,} units, "
        f"{buyers:,} buyers, {concurrency} at a time, {os.cpu_count()} cores"
    )

    async def one(bench: BenchEngine, tick: Tick) -> FlashSaleResult:
        return await run_sale(bench, units=units, buyers=buyers, concurrency=concurrency, tick=tick)

    results = _run_with_progress(
        _on_every_engine(engines, strategies, database, redis, persister, buyers, one)
    )
    records = [result.as_json() for result in results]
    table = Table(
        "engine", "strategy", "reserved", "oversold", "refused", "errors", "sold out in",
        "reservations/s", "answers/s", "p50 ms", "p99 ms", "outcome",
        title=f"flash sale: {units:,} units, {buyers:,} buyers, {concurrency} at a time, {os.cpu_count()} cores",
    )  # fmt: skip
    for result in results:
        table.add_row(
            result.engine,
            result.strategy,
            f"{result.reserved:,}/{result.units:,}",
            str(result.oversold),
            f"{result.refused:,}",
            ", ".join(f"{code}: {n}" for code, n in result.errors.items()) or "0",
            "—" if result.sell_out_seconds is None else f"{result.sell_out_seconds:.2f} s",
            f"{result.reservations_per_second:,.0f}",
            f"{result.requests_per_second:,.0f}",
            f"{result.latency.p50_ms:.2f}",
            f"{result.latency.p99_ms:.2f}",
            _outcome(result),
        )
    _finish(records, table, as_json, plot, "flash sale", _durability_notes(results))
    if not all(result.ok for result in results):
        raise typer.Exit(1)


# -- http ---------------------------------------------------------------------------------------------


@app.command()
def http(
    url: Annotated[
        str | None,
        typer.Option(
            help="A running stockd to drive (e.g. http://127.0.0.1:8000). Without it, this run starts "
            "stockd itself (python -m stockd serve) for each --engine × --strategy on a fresh database."
        ),
    ] = None,
    engine: Annotated[
        list[EngineName] | None,
        typer.Option(
            "--engine",
            help="Engine of the stockd this run starts (default sqlite; postgres as for throughput). "
            "With --url only a label for the report.",
            case_sensitive=False,
        ),
    ] = None,
    strategy: Annotated[
        list[Strategy] | None,
        typer.Option(
            "--strategy",
            help="Strategy of the stockd this run starts (default batched). With --url only a label.",
            case_sensitive=False,
        ),
    ] = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="STOCKD_BENCH_API_KEY",
            help="Bearer key for a server that has keys (admin and write scopes: the run creates products).",
        ),
    ] = None,
    lines: Annotated[
        list[int] | None,
        typer.Option(
            "--lines", min=1, max=100, help="Lines per reservation; repeat for several (default: 1 and 100)."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(min=1.0, help="How long each measurement runs.")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Unmeasured load before each measurement.")] = 1.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Keep-alive connections.")] = 100,
    client: Annotated[
        str, typer.Option(help="Load generator: auto (wrk if on PATH, else httpx), wrk or httpx.")
    ] = "auto",
    bare: Annotated[
        bool,
        typer.Option(
            help="Also serve a bare ASGI app under the same embedded Granian set-up, on another port, "
            "and measure it with the same load generator: stockd's share of its requests/s "
            "(the target is ≥ 50 %)."
        ),
    ] = True,
    as_json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Reservations over HTTP with many keep-alive connections: the HTTP stack measured apart.

    Creates a warehouse and (longest --lines) products with unlimited stock through the API,
    then posts single-line and 100-line reservations for --seconds each, and
    (with --bare, the default) compares with the bare app in the same run.
    wrk rounds --seconds to whole seconds.
    """
    from stockd.bench.http import Client, HttpBenchError, HttpPlan, HttpResult, run_http

    try:
        chosen_client = Client(client.lower())
    except ValueError:
        _fail(f"--client must be auto, wrk or httpx, not {client!r}")
    if url is not None and database is not None:
        _fail("--database configures the stockd this run starts; a server given with --url has its own")
    if url is not None and (len(engine or []) > 1 or len(strategy or []) > 1):
        _fail(
            "with --url, --engine and --strategy only label the one server measured: give each at most once"
        )
    if url is None:
        _check(engine or [EngineName.SQLITE], database, redis)
    elif EngineName.REDIS in (engine or []):
        _check([EngineName.REDIS], None, redis)
    plan = HttpPlan(
        url=url,
        engines=engine or ([] if url else [EngineName.SQLITE]),
        strategies=strategy or ([] if url else [Strategy.BATCHED]),
        database=database,
        api_key=api_key,
        lines=lines or [1, 100],
        seconds=seconds,
        warmup=warmup,
        connections=concurrency,
        client=chosen_client,
        bare=bare,
        redis=redis,
    )
    err.print(
        f"[bold]http[/bold]: {url or _names(plan.engines) + ' × ' + _names(plan.strategies)}; "
        f"{concurrency} connections, {_names(plan.lines)} line(s), {seconds:g} s each, "
        f"{os.cpu_count()} cores"
    )

    async def run(bars: _Bars) -> list[HttpResult]:
        results: list[HttpResult] = []
        await run_http(plan, bars, results.append)
        return results

    try:
        results = _run_with_progress(run)
    except HttpBenchError as error:
        _fail(str(error))
    records = [result.as_json() for result in results]
    table = Table(
        "target", "engine", "strategy", "lines", "requests/s", "reservations/s", "p50 ms", "p99 ms",
        "failed", "client cpu", "server cpu", "vs bare",
        title=f"http: {concurrency} keep-alive connections, {seconds:g} s each, {os.cpu_count()} cores, "
        f"load from {results[0].client if results else client}",
    )  # fmt: skip
    for result in results:
        table.add_row(
            result.target,
            result.engine,
            result.strategy,
            str(result.lines),
            f"{result.requests_per_second:,.0f}",
            "—" if result.target == "bare" else f"{result.reservations_per_second:,.0f}",
            f"{result.load.latency.p50_ms:.2f}",
            f"{result.load.latency.p99_ms:.2f}",
            ", ".join(f"{kind}: {n}" for kind, n in result.load.failed.items()) or "0",
            f"{result.load.client_cpu:.0%}",
            "—" if result.server_cpu is None else f"{result.server_cpu:.0%}",
            _ratio(result.vs_bare, percent=True),
        )
    notes = []
    for result in results:
        if result.target == "stockd" and result.vs_bare is not None and result.lines == 1:
            verdict = "[green]meets[/green]" if result.vs_bare >= 0.5 else "[red]misses[/red]"
            notes.append(
                f"stockd {result.engine}/{result.strategy}, 1 line: {result.vs_bare:.0%} of the bare app's "
                f"requests/s ({verdict} the ≥ 50 % target)"
            )
        if result.target == "bare" and result.server_cpu is not None and result.server_cpu < 0.8:
            notes.append(
                f"[yellow]the bare app used only {result.server_cpu:.0%} of a core: something else set the "
                "pace (the load generator, or other load on this machine), so the vs-bare ratios measure that, "
                "not the HTTP stack; use wrk on a quiet machine[/yellow]"
            )
        if result.load.client_cpu >= 0.9:
            notes.append(
                f"[yellow]the load generator used {result.load.client_cpu:.0%} of a core against "
                f"{result.target} ({result.lines} line(s)): it may have set the pace; the rate is a floor[/yellow]"
            )
        if result.load.failed:
            notes.append(f"[red]{result.target}: answers other than 2xx: {result.load.failed}[/red]")
    _finish(records, table, as_json, plot, "http", notes)


# -- plot, and the bare server ----------------------------------------------------------------------------


@app.command("plot")
def plot_command(
    files: Annotated[list[Path], typer.Argument(help="JSON Lines written by --json runs ('-' for stdin).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The figure to write (.png, .svg).")],
    title: Annotated[str, typer.Option(help="The figure's title.")] = "stockd benchmarks",
) -> None:
    """Draw one figure from the results of several --json runs (e.g. one per engine)."""
    records: list[dict[str, Any]] = []
    for file in files:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        records += _json_records(text.splitlines())
    if not records:
        _fail("no benchmark records (JSON objects with a 'benchmark' field) in the input")
    _plot(records, output, title)


@app.command("serve-bare", hidden=True)
def serve_bare_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8001,
) -> None:
    """Serve the bare ASGI app (the http benchmark's baseline) until SIGINT or SIGTERM."""
    from stockd.bench.http import serve_bare

    asyncio.run(serve_bare(host, port))


# -- shared ---------------------------------------------------------------------------------------------


class _Bars:
    """Rich progress on stderr: one bar per measurement."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __call__(self, description: str, total: float) -> Tick:
        task = self._progress.add_task(description, total=total, status="")

        def tick(done: float, status: str) -> None:
            self._progress.update(task, completed=done, status=status)

        return tick


def _on_every_engine(
    engines: Sequence[EngineName],
    strategies: Sequence[Strategy],
    database: str | None,
    redis: str | None,
    persister: PersisterPlacement,
    total: float,
    one: Callable[[BenchEngine, Tick], Coroutine[Any, Any, T]],
) -> Callable[[_Bars], Coroutine[Any, Any, list[T]]]:
    """Run ``one`` on each engine × strategy in turn, each on its own fresh database, with a progress bar."""

    async def run(bars: _Bars) -> list[T]:
        results = []
        for engine_name in engines:
            for strategy_name in strategies:
                if engine_name is EngineName.REDIS and strategy_name not in REDIS_STRATEGIES:
                    continue
                async with open_engine(
                    engine_name, strategy_name, database_for(engine_name, database), redis, persister
                ) as bench:
                    results.append(await one(bench, bars(f"{engine_name}/{bench.label}", total)))
        return results

    return run


def _run_with_progress(work: Callable[[_Bars], Coroutine[Any, Any, list[T]]]) -> list[T]:
    """Run ``work(bars)`` (a coroutine function) under one progress display; exit 2 on usage errors."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
    )
    try:
        with progress:
            return asyncio.run(work(_Bars(progress)))
    except BenchUsageError as error:
        _fail(str(error))
    except StockdError as error:  # e.g. the database became unreachable mid-run
        _fail(f"{error.code}: {error.detail}")
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        raise typer.Exit(130) from None


def _finish(
    records: list[dict[str, Any]],
    table: Table,
    as_json: bool,
    plot: Path | None,
    name: str,
    notes: Iterable[str],
) -> None:
    command = "scripts/bench " + shlex.join(sys.argv[1:])
    screen = err if as_json else out
    screen.print(table)
    for note in notes:
        screen.print(note)
    screen.print(f"reproduce: {command}", style="dim", soft_wrap=True, markup=False, highlight=False)
    if plot is not None and records:
        _plot(records, plot, f"stockd {name} — {os.cpu_count()} cores")
    if as_json:
        for record in records:
            print(json.dumps({**record, "cores": os.cpu_count(), "command": command}), flush=True)


def _plot(records: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    from stockd.bench.plot import draw

    try:
        draw(records, path, title=title)
    except ImportError as error:
        _fail(f"--plot needs matplotlib, in the bench dependency group: run scripts/bench ({error})")
    err.print(f"plot written to {path}")


def _json_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "benchmark" in record:
            records.append(record)
    return records


def _outcome(result: FlashSaleResult) -> str:
    if not result.ok:
        return f"[red]WRONG: {'; '.join(result.problems())}[/red]"
    errors = sum(result.errors.values())
    if errors:  # nothing oversold, but API.md counts every 5xx as a bug
        return f"[yellow]ok, but {errors:,} buyers got an error[/yellow]"
    return "[green]ok[/green]"


def _durability_notes(results: Sequence[ThroughputResult | FlashSaleResult]) -> list[str]:
    notes = []
    for engine_name in dict.fromkeys(r.engine for r in results):
        first = next(r for r in results if r.engine == engine_name)
        if first.durable:
            notes.append(f"{engine_name}: {first.engine_version}, {first.durability}: every commit durable")
        else:
            notes.append(
                f"[red]{engine_name}: {first.engine_version}, {first.durability}: commits are NOT durable, "
                "these numbers do not count[/red]"
            )
    return notes


def _check(engines: list[EngineName], database: str | None, redis: str | None) -> None:
    try:
        check_engines(engines, database, redis)
    except BenchUsageError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _names(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def _ratio(value: float | None, *, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.0%}" if percent else f"{value:.2f}×"


if __name__ == "__main__":
    app(prog_name="scripts/bench")
