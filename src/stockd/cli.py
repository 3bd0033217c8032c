"""The ``stockd`` command: run the service, and look at stock from a terminal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from stockd.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, ConfigurationError, Settings
from stockd.domain.chain import BrokenLink
from stockd.runtime import tune_garbage_collection
from stockd.service import StockService
from stockd.store.base import MovementFilter

app = typer.Typer(help="stockd: inventory that never oversells.", no_args_is_help=True)
console = Console()
T = TypeVar("T")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="STOCKD_DATA_DIR", help="Where the embedded SQLite database lives."),
]
Database = Annotated[
    str | None,
    typer.Option(
        envvar="STOCKD_DATABASE",
        help="sqlite:///path (default: DATA_DIR/stockd.db) or postgresql://user@host/db.",
    ),
]
StrategyOption = Annotated[
    str,
    typer.Option(
        envvar="STOCKD_STRATEGY",
        help="How the SQL engine prevents oversell: batched (default), lock, optimistic or atomic.",
    ),
]
Redis = Annotated[
    str | None,
    typer.Option(
        envvar="STOCKD_REDIS", help="redis://… for the flash-sale engine (with --database postgresql://…)."
    ),
]
RedisPrefix = Annotated[
    str,
    typer.Option(envvar="STOCKD_REDIS_PREFIX", help="The Redis engine's keys start with this."),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="STOCKD_HOST", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(envvar="STOCKD_PORT", help="Port to listen on.")] = DEFAULT_PORT,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database: Database = None,
    redis: Redis = None,
    redis_prefix: RedisPrefix = "stockd",
    strategy: StrategyOption = "batched",
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="STOCKD_ADMIN_KEY",
            help="A full admin API key (at least 16 characters); required to listen beyond loopback.",
        ),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(
            envvar="STOCKD_RATE_LIMIT", min=1, help="Requests per second per key (or per client address)."
        ),
    ] = None,
    max_units_per_order: Annotated[
        int | None,
        typer.Option(
            envvar="STOCKD_MAX_UNITS_PER_ORDER",
            min=1,
            help="The most units of one SKU one order may hold (a bot cannot hold a whole launch).",
        ),
    ] = None,
) -> None:
    """Run the HTTP service (API docs at /docs)."""
    settings = _settings(
        data_dir,
        database,
        redis,
        redis_prefix=redis_prefix,
        host=host,
        port=port,
        strategy=strategy,
        admin_key=admin_key,
        rate_limit=rate_limit,
        max_units_per_order=max_units_per_order,
        listening=True,
    )
    console.print(
        f"stockd listening on http://{host}:{port} (docs: /docs, data: {settings.shown_database_url})"
    )
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    """Granian embedded in this process's event loop.

    One process on purpose: the engine's batcher and the embedded database's
    single writer live in it, and a kill -9 stops everything at once — a
    worker process orphaned by a killed supervisor would keep answering.
    """
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from stockd.api.app import create_app

    service_app = create_app(settings)
    tune_garbage_collection()
    server = Server(
        service_app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        backlog=4096,
    )
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, server.stop)
    await server.serve()


@app.command()
def stock(
    sku: Annotated[str, typer.Argument(help="The product's sku.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database: Database = None,
) -> None:
    """Show a SKU's stock in every warehouse."""
    summary = _with_service(_settings(data_dir, database), lambda service: service.stock_of(sku))
    table = Table(
        "warehouse", "on hand", "reserved", "available", "in transit", "reorder point", "reorder qty", title=sku
    )  # fmt: skip
    for level in summary.levels:
        table.add_row(
            level.warehouse_id,
            str(level.quantity_on_hand),
            str(level.quantity_reserved),
            str(level.quantity_available),
            str(summary.in_transit.get(level.warehouse_id, 0)),
            _optional(level.reorder_point),
            _optional(level.reorder_quantity),
        )
    table.add_section()
    table.add_row(
        "all",
        str(summary.quantity_on_hand),
        str(summary.quantity_reserved),
        str(summary.quantity_available),
        str(summary.quantity_in_transit),
        "",
        "",
        style="bold",
    )
    console.print(table)


@app.command()
def movements(
    sku: Annotated[str | None, typer.Option(help="Only this sku.")] = None,
    warehouse: Annotated[str | None, typer.Option(help="Only this warehouse.")] = None,
    reference: Annotated[str | None, typer.Option(help="Only this reference id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, oldest first.")] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database: Database = None,
) -> None:
    """List ledger movements, oldest first."""
    where = MovementFilter(sku=sku, warehouse_id=warehouse, reference_id=reference)
    page = _with_service(
        _settings(data_dir, database), lambda service: service.list_movements(where, limit, None)
    )
    table = Table("id", "time", "sku", "warehouse", "type", "qty", "Δ on hand", "Δ reserved", "reference")
    for m in page.items:
        table.add_row(
            m.id or "",
            m.created_at.isoformat(timespec="milliseconds"),
            m.sku,
            m.warehouse_id,
            m.type.value,
            str(m.quantity),
            f"{m.on_hand_delta:+d}",
            f"{m.reserved_delta:+d}",
            f"{m.reference_type or ''} {m.reference_id or ''}".strip(),
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"[dim]more movements follow; showing the first {limit}[/dim]")


@app.command()
def reconcile(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database: Database = None,
    redis: Redis = None,
    redis_prefix: RedisPrefix = "stockd",
) -> None:
    """Prove every balance equals the sum of its movements and every hash chain holds (exit 1 if not).

    With --redis, Redis' counters are checked against the ledger too, once it has caught up.
    """
    settings = _settings(data_dir, database, redis, redis_prefix=redis_prefix)
    result = _with_service(settings, lambda service: service.reconcile())
    if result.persister_lag:
        console.print(
            f"[yellow]behind[/yellow]: PostgreSQL lacks {result.persister_lag} batches Redis acknowledged; "
            "is a persister running? Nothing was compared."
        )
        raise typer.Exit(1)
    if result.mismatches:
        table = Table("sku", "warehouse", "on hand", "ledger on hand", "reserved", "ledger reserved")
        for m in result.mismatches:
            table.add_row(
                m.sku,
                m.warehouse_id,
                str(m.quantity_on_hand),
                str(m.ledger_on_hand),
                str(m.quantity_reserved),
                str(m.ledger_reserved),
                style="red",
            )
        console.print(table)
    _print_broken_links(result.broken_links)
    if result.mismatches or result.broken_links:
        raise typer.Exit(1)
    if result.levels_moving:
        # Not an all-clear: on a quiet system a level that stays here has Redis and the ledger apart.
        console.print(
            f"[yellow]not compared[/yellow]: Redis and the ledger named different newest movements for "
            f"{result.levels_moving} levels through every attempt (still changing, or apart); "
            "the rest match their ledger and its hash chains. Run again when quieter."
        )
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {result.levels_checked} levels match their ledger and its hash chains")


@app.command()
def migrate(data_dir: DataDir = DEFAULT_DATA_DIR, database: Database = None) -> None:
    """Bring the database's schema to this version of stockd (the service also does it at start-up).

    Run it as the database's owner when the service connects as a role that may
    not change the schema (see docs/security.md, "The service's database role").
    """
    from stockd.bootstrap import open_database
    from stockd.store.migrate import HEAD_REVISION

    settings = _settings(data_dir, database)

    async def run() -> None:
        database = await open_database(settings)
        await database.close()

    try:
        asyncio.run(run())
    except ConfigurationError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"[green]ok[/green]: {settings.shown_database_url} is at schema revision {HEAD_REVISION}")


@app.command()
def verify(data_dir: DataDir = DEFAULT_DATA_DIR, database: Database = None) -> None:
    """Check every level's movement hash chain; name the first broken link (exit 1 if any)."""
    broken = _with_service(_settings(data_dir, database), lambda service: service.verify_chains())
    _print_broken_links(broken)
    if broken:
        raise typer.Exit(1)
    console.print("[green]ok[/green]: every movement hash chain holds")


def _print_broken_links(broken: list[BrokenLink]) -> None:
    if not broken:
        return
    table = Table("sku", "warehouse", "first broken movement", "why", title="broken hash chains")
    for link in broken:
        table.add_row(
            link.sku, link.warehouse_id, link.movement_id or "(level head)", link.detail, style="red"
        )
    console.print(table)


worker = typer.Typer(help="Background workers, to run apart from the service.", no_args_is_help=True)
app.add_typer(worker, name="worker")


@worker.command()
def persist(
    database: Annotated[
        str, typer.Option(envvar="STOCKD_DATABASE", help="postgresql://… (the ledger of record).")
    ],
    redis: Annotated[str, typer.Option(envvar="STOCKD_REDIS", help="redis://… (the Redis engine).")],
    redis_prefix: RedisPrefix = "stockd",
) -> None:
    """Write the Redis engine's ledger stream into PostgreSQL (the service also does this itself).

    Several may run: one leads, the others take over the moment it stops.
    """
    settings = _settings(DEFAULT_DATA_DIR, database, redis, redis_prefix=redis_prefix)

    async def run_forever(service: StockService) -> None:
        assert service.persister is not None
        tune_garbage_collection()
        console.print(f"persister {service.persister.name}: writing {redis} into {database}")
        await asyncio.Event().wait()  # the persister runs until the process is stopped

    _with_service(settings, run_forever)


def _settings(
    data_dir: Path,
    database: str | None,
    redis: str | None = None,
    *,
    redis_prefix: str = "stockd",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    strategy: str = "batched",
    admin_key: str | None = None,
    rate_limit: int | None = None,
    max_units_per_order: int | None = None,
    listening: bool = False,
) -> Settings:
    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database=database,
        redis=redis,
        redis_prefix=redis_prefix,
        strategy=strategy,
        admin_key=admin_key,
        rate_limit=rate_limit,
        max_units_per_order=max_units_per_order,
    )
    from stockd.bootstrap import check_exposure, check_supported

    try:
        check_supported(settings)
        if listening:
            check_exposure(settings)
    except ConfigurationError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    return settings


def _with_service(settings: Settings, use: Callable[[StockService], Awaitable[T]]) -> T:
    from stockd.bootstrap import build_service
    from stockd.domain.errors import StockdError

    async def run() -> T:
        service = await build_service(settings)
        if service.persister is not None:
            # With the Redis engine, reads wait for the ledger: keep it moving if no service does.
            service.persister.start()
        try:
            return await use(service)
        finally:
            await service.close()

    try:
        return asyncio.run(run())
    except StockdError as error:
        console.print(f"[red]{error.code}:[/red] {error.detail}")
        raise typer.Exit(1) from error


def _optional(value: int | None) -> str:
    return "—" if value is None else str(value)
