"""``python -m stockd.bench``: in-process reservation throughput, strategies side by side."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stockd.bench.throughput import ThroughputResult, measure
from stockd.engine.sql.engine import Strategy

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.callback()
def bench() -> None:
    """stockd benchmarks (they measure; tests assert)."""


@app.command()
def throughput(
    database: Annotated[
        str | None, typer.Option(help="postgresql://… (default: a temporary SQLite file).")
    ] = None,
    strategy: Annotated[
        list[Strategy] | None, typer.Option(help="Strategies to run, in order (default: all four).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="How long each strategy runs.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent callers.")] = 50,
    skus: Annotated[int, typer.Option(help="Products, chosen uniformly (1 = one hot SKU).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per strategy.")] = False,
) -> None:
    """Durable reservations/s of each strategy, measured in the same run."""
    results = [
        asyncio.run(
            measure(
                strategy=chosen,
                database_url=database,
                seconds=seconds,
                concurrency=concurrency,
                skus=skus,
            )
        )
        for chosen in strategy or list(Strategy)
    ]
    if as_json:
        for result in results:
            print(json.dumps({**asdict(result), "reservations_per_second": result.reservations_per_second}))
        return
    _print_table(results, seconds)


def _print_table(results: list[ThroughputResult], seconds: float) -> None:
    first = results[0]
    table = Table(
        "engine", "strategy", "reservations/s", "p50 ms", "p99 ms", "mean batch",
        title=f"{first.skus} SKU(s), {first.concurrency} callers, {seconds:g} s each, {os.cpu_count()} cores",
    )  # fmt: skip
    for r in results:
        table.add_row(
            r.engine,
            r.strategy,
            f"{r.reservations_per_second:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.mean_batch:.0f}",
        )
    console.print(table)
    baseline = next((r for r in results if r.strategy == Strategy.LOCK), None)
    if baseline is not None:
        for r in results:
            console.print(
                f"{r.strategy} / lock: {r.reservations_per_second / baseline.reservations_per_second:.1f}×"
            )


if __name__ == "__main__":
    app()
