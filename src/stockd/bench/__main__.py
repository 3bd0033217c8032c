"""``python -m stockd.bench``: in-process throughput of the SQLite engine, batched vs one each."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stockd.bench.throughput import ThroughputResult, measure_sqlite

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.callback()
def bench() -> None:
    """stockd benchmarks (they measure; tests assert)."""


@app.command()
def throughput(
    seconds: Annotated[float, typer.Option(help="How long each strategy runs.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent callers.")] = 1000,
    skus: Annotated[int, typer.Option(help="Products, chosen uniformly (1 = one hot SKU).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per strategy.")] = False,
) -> None:
    """Reservations/s through the batcher and with one transaction per reservation, same run."""
    results = [
        asyncio.run(measure_sqlite(seconds=seconds, concurrency=concurrency, skus=skus)),
        asyncio.run(measure_sqlite(seconds=seconds, concurrency=concurrency, skus=skus, max_batch=1)),
    ]
    if as_json:
        for result in results:
            print(json.dumps({**asdict(result), "reservations_per_second": result.reservations_per_second}))
        return
    _print_table(results, seconds, concurrency, skus)


def _print_table(results: list[ThroughputResult], seconds: float, concurrency: int, skus: int) -> None:
    table = Table(
        "engine", "strategy", "reservations/s", "p50 ms", "p99 ms", "mean batch",
        title=f"{skus} SKU(s), {concurrency} callers, {seconds:g} s each, {os.cpu_count()} cores",
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
    baseline = results[-1].reservations_per_second
    console.print(f"batched / one each: {results[0].reservations_per_second / baseline:.1f}×")


if __name__ == "__main__":
    app()
