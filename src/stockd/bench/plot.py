"""``--plot FILE.png``: throughput and latency per engine and strategy, from the JSON records.

One row of two panels per kind of benchmark in the records (throughput,
flash-sale, http): on the left the rate — reservations/s, or requests/s over
HTTP, where the bare app holds no reservations — and on the right p50 and p99
latency on a logarithmic axis. Bars are coloured by engine. matplotlib comes
from the ``bench`` dependency group (``scripts/bench`` installs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Record = Mapping[str, Any]

KINDS = ("throughput", "flash-sale", "http")
RATE_LABELS = {
    "throughput": "durable reservations/s",
    "flash-sale": "reservations/s until sold out",
    "http": "requests/s",
}
ENGINE_COLOURS = {"sqlite": "#4c72b0", "postgres": "#55a868", "redis": "#c44e52", "bare": "#8c8c8c"}
OTHER_COLOUR = "#8172b2"


def label_of(record: Record) -> str:
    if record.get("benchmark") == "http":
        if record.get("target") == "bare":
            return "bare app"
        return f"{record['engine']}\n{record['strategy']}\n{record['lines']} line(s)"
    return f"{record['engine']}\n{record['strategy']}"


def rate_of(record: Record) -> float:
    if record.get("benchmark") == "http":
        return float(record["requests_per_second"])
    return float(record["reservations_per_second"])


def draw(records: Sequence[Record], path: Path, *, title: str) -> None:
    """Write the figure to ``path`` (the format follows its suffix: .png, .svg, .pdf)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [kind for kind in KINDS if any(r.get("benchmark") == kind for r in records)]
    kinds += sorted({str(r.get("benchmark")) for r in records} - set(kinds))
    if not kinds:
        raise ValueError("nothing to plot: no benchmark records")
    widest = max(sum(1 for r in records if r.get("benchmark") == kind) for kind in kinds)
    figure, axes = plt.subplots(
        len(kinds),
        2,
        figsize=(max(9.0, 1.6 * widest + 4), 4.2 * len(kinds)),
        squeeze=False,
        layout="constrained",
    )
    for row, kind in enumerate(kinds):
        chosen = [r for r in records if r.get("benchmark") == kind]
        labels = [label_of(r) for r in chosen]
        colours = [ENGINE_COLOURS.get(str(r.get("engine")), OTHER_COLOUR) for r in chosen]
        positions = list(range(len(chosen)))
        rate_axis, latency_axis = axes[row][0], axes[row][1]

        rates = [rate_of(r) for r in chosen]
        bars = rate_axis.bar(positions, rates, color=colours)
        rate_axis.bar_label(bars, labels=[f"{rate:,.0f}" for rate in rates], fontsize=8, padding=2)
        rate_axis.set_title(f"{kind}: {RATE_LABELS.get(kind, 'per second')}")
        rate_axis.set_ylabel(RATE_LABELS.get(kind, "per second"))
        rate_axis.set_xticks(positions, labels, fontsize=8)
        positive = [rate for rate in rates if rate > 0]
        if positive and max(positive) / min(positive) > 20:
            rate_axis.set_yscale("log")  # batched and per-request strategies differ by orders of magnitude
            rate_axis.set_ylabel(f"{RATE_LABELS.get(kind, 'per second')} (log scale)")
        rate_axis.margins(y=0.15)
        rate_axis.grid(axis="y", alpha=0.3)

        width = 0.4
        p50 = [max(float(r["p50_ms"]), 1e-3) for r in chosen]
        p99 = [max(float(r["p99_ms"]), 1e-3) for r in chosen]
        latency_axis.bar([p - width / 2 for p in positions], p50, width, color=colours, label="p50")
        latency_axis.bar(
            [p + width / 2 for p in positions], p99, width, color=colours, alpha=0.45, hatch="//", label="p99"
        )
        latency_axis.set_yscale("log")
        latency_axis.set_title(f"{kind}: latency per request")
        latency_axis.set_ylabel("ms (log scale)")
        latency_axis.set_xticks(positions, labels, fontsize=8)
        latency_axis.legend(fontsize=8)
        latency_axis.grid(axis="y", alpha=0.3, which="both")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
