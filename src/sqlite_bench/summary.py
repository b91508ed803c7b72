"""The terminal table at the end of a run, in the study's layout, with the speedup rows."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .units import format_count


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:,.1f} ms"


def speedups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """raw ÷ orm throughput at each phase and scale: equal chunks (fair), and the study's 50K vs 5K."""
    done = [c for c in data["cells"] if c["status"] == "done"]
    rows = []
    for cell in done:
        if cell["path"] != "raw":
            continue
        if cell["variant"] == "fair":
            orm = [c for c in done if c["path"] == "orm" and c["variant"] == "fair"
                   and c["config"] == cell["config"] and c["chunk_size"] == cell["chunk_size"]]
            label = f"raw ÷ orm, equal {format_count(cell['chunk_size'])} chunks"
        else:
            orm = [c for c in done if c["path"] == "orm" and c["config"] == cell["config"] and c["chunk_size"] == 5_000]
            label = "raw ÷ orm, study's chunks (raw 50K, orm 5K)"
        if not orm:
            continue
        for cp in cell["checkpoints"]:
            match = [o for o in orm[0]["checkpoints"] if o["phase"] == cp["phase"] and o["rows"] == cp["rows"]]
            if match and match[0]["cumulative"]["rows_per_s"]:
                rows.append({"label": label, "config": cell["config"], "phase": cp["phase"], "rows": cp["rows"],
                             "ratio": cp["cumulative"]["rows_per_s"] / match[0]["cumulative"]["rows_per_s"]})
    return rows


def print_summary(data: dict[str, Any], console: Console) -> None:
    """The per-checkpoint table (cumulative figures), then the raw ÷ orm speedups."""
    system = data["system"]
    table = Table(title=f"sqlite_bench {data['benchmark']} on {system['cpu_model']}, SQLite {system['sqlite']['version']}",
                  caption="duration is write time (row generation excluded); p99 is per-chunk transaction latency")
    for column in ("path", "config", "chunk", "phase", "scale", "rows/s", "duration", "p99", "peak RSS", "status"):
        table.add_column(column, justify="left" if column in ("path", "config", "phase", "status") else "right",
                         no_wrap=True)
    for cell in data["cells"]:
        status = cell["status"] if cell["status"] != "failed" else "[red]failed[/]"
        if not cell["checkpoints"]:
            table.add_row(cell["path"], cell["config"], format_count(cell["chunk_size"]), *["-"] * 6, status)
        for cp in cell["checkpoints"]:
            cum = cp["cumulative"]
            table.add_row(cell["path"], cell["config"], format_count(cell["chunk_size"]), cp["phase"],
                          format_count(cp["rows"]), f"{cum['rows_per_s']:,.0f}", _duration(cum["write_s"]),
                          _ms(cum["batches"]["p99_ms"]), f"{cum['peak_rss_mb']:,.0f} MB", status)
    console.print(table)
    ratios = speedups(data)
    if ratios:
        speed = Table(title="speedup (throughput ratio, same run)")
        for column in ("comparison", "config", "phase", "scale", "ratio"):
            speed.add_column(column, justify="right" if column in ("scale", "ratio") else "left", no_wrap=True)
        for s in ratios:
            speed.add_row(s["label"], s["config"], s["phase"], format_count(s["rows"]), f"[bold]{s['ratio']:.2f}×[/]")
        console.print(speed)
