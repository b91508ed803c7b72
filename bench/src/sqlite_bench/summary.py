"""The terminal table at the end of a run, in the study's layout, with the speedup rows."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

from .results import path_label, sqlite_module, variant
from .units import format_count


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:,.1f} ms"


def _rate(cell: dict[str, Any], phase: str, rows: int) -> float | None:
    for cp in cell["checkpoints"]:
        if cp["phase"] == phase and cp["rows"] == rows:
            return cp["cumulative"]["rows_per_s"] or None
    return None


def _peer(
    done: list[dict[str, Any]],
    path: str,
    config: str,
    chunk: int,
    table: tuple[str, str, str] = ("study", "uuid4", "stdlib"),
    repeat: int | None = None,
) -> dict[str, Any] | None:
    """The cell of `path` measured beside another (same config, chunk, table, SQLite module, and the same run of a
    --repeat)."""
    return next(
        (
            c
            for c in done
            if c["path"] == path
            and c["config"] == config
            and c["chunk_size"] == chunk
            and variant(c) == table
            and c.get("repeat") == repeat
        ),
        None,
    )


def speedups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """raw ÷ orm throughput at each phase and scale: equal chunks (fair), and the study's 50K vs 5K."""
    done = [c for c in data["cells"] if c["status"] == "done"]
    rows = []
    for cell in (c for c in done if c["path"] == "raw"):
        if cell["variant"] == "fair":
            orm = _peer(
                [c for c in done if c["variant"] == "fair"],
                "orm",
                cell["config"],
                cell["chunk_size"],
                variant(cell),
                cell.get("repeat"),
            )
            label = f"raw ÷ orm, equal {format_count(cell['chunk_size'])} chunks"
        else:
            orm = _peer(done, "orm", cell["config"], 5_000, variant(cell), cell.get("repeat"))
            label = "raw ÷ orm, study's chunks (raw 50K, orm 5K)"
        if orm is None:
            continue
        for cp in cell["checkpoints"]:
            base = _rate(orm, cp["phase"], cp["rows"])
            if base:
                rows.append(
                    {
                        "label": label,
                        "config": cell["config"],
                        "phase": cp["phase"],
                        "rows": cp["rows"],
                        "ratio": cp["cumulative"]["rows_per_s"] / base,
                    }
                )
    return rows


def ratios(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each fair cell's throughput at the largest scale as a multiple of raw executemany and of the
    SQLite engine alone (INSERT ... SELECT), both measured at the same chunk size in the same run."""
    done = [c for c in data["cells"] if c["status"] == "done" and c["variant"] == "fair"]
    top = data["settings"]["scales"][-1]
    out = []
    for cell in done:
        raw = _peer(done, "raw", cell["config"], cell["chunk_size"], variant(cell), cell.get("repeat"))
        engine = _peer(done, "engine", cell["config"], cell["chunk_size"], variant(cell), cell.get("repeat"))
        stdlib = (
            None
            if sqlite_module(cell) == "stdlib"
            else _peer(
                done,
                cell["path"],
                cell["config"],
                cell["chunk_size"],
                (*variant(cell)[:2], "stdlib"),
                cell.get("repeat"),
            )
        )
        for phase in data["settings"]["phases"]:
            rate = _rate(cell, phase, top)
            if rate is None:
                continue
            base_raw = raw and _rate(raw, phase, top)
            base_engine = engine and _rate(engine, phase, top)
            base_stdlib = stdlib and _rate(stdlib, phase, top)
            out.append(
                {
                    "path": path_label(cell).replace(" ", ""),
                    "base_path": cell["path"],
                    "config": cell["config"],
                    "phase": phase,
                    "rows": top,
                    "rows_per_s": rate,
                    "vs_raw": rate / base_raw if base_raw else None,
                    "vs_engine": rate / base_engine if base_engine else None,
                    "vs_stdlib": rate / base_stdlib if base_stdlib else None,
                    "repeat": cell.get("repeat"),
                    "chunk_size": cell["chunk_size"],
                    "table": variant(cell),
                }
            )
    return out


def median_range(values: list[float]) -> tuple[float, float, float] | None:
    """(median, min, max) of a run-by-run figure, or None when there is none."""
    return (statistics.median(values), min(values), max(values)) if values else None


def range_text(value: tuple[float, float, float] | None, fmt: str = ".2f", unit: str = "") -> str:
    """'median (min–max)' as the tables print a median_range, '-' for none."""
    if value is None:
        return "-"
    return f"{value[0]:{fmt}}{unit} ({value[1]:{fmt}}–{value[2]:{fmt}})"


def rotated(items: list[Any], run: int) -> list[Any]:
    """`items` for run 1, 2, ... of a --repeat: shifted by one place per run, so that none always runs first."""
    shift = (run - 1) % len(items)
    return items[shift:] + items[:shift]


def verdict(ours: list[float], theirs: list[float]) -> str:
    """'win' when every run of ours beats every run of theirs, 'loss' the other way round, else 'overlap'."""
    if min(ours) > max(theirs):
        return "win"
    if max(ours) < min(theirs):
        return "loss"
    return "overlap"


def spreads(data: dict[str, Any]) -> list[dict[str, Any]]:
    """With --repeat: per path, config and phase at the largest scale, the median and range of rows/s over the
    runs, the same for the ratio to raw executemany (run by run), and whether the ranges overlap raw's."""
    rows = [r for r in ratios(data) if r["repeat"] is not None]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["base_path"], r["config"], r["chunk_size"], r["table"], r["phase"]), []).append(r)
    out = []
    for (base, config, chunk, table, phase), runs in groups.items():
        path = runs[0]["path"]
        rates = [r["rows_per_s"] for r in runs]
        raw = groups.get(("raw", config, chunk, table, phase), [])  # raw of the same table and SQLite module
        vs_raw = [r["vs_raw"] for r in runs if r["vs_raw"]]
        vs_engine = [r["vs_engine"] for r in runs if r["vs_engine"]]
        vs_stdlib = [r["vs_stdlib"] for r in runs if r["vs_stdlib"]]
        out.append(
            {
                "path": path,
                "config": config,
                "phase": phase,
                "runs": len(runs),
                "rows_per_s": median_range(rates),
                "vs_raw": median_range(vs_raw),
                "vs_engine": median_range(vs_engine),
                "vs_stdlib": median_range(vs_stdlib),
                "against_raw": verdict(rates, [r["rows_per_s"] for r in raw]) if raw and base != "raw" else "-",
            }
        )
    return out


def print_summary(data: dict[str, Any], console: Console) -> None:
    """The per-checkpoint table (cumulative figures), then the raw ÷ orm speedups."""
    system = data["system"]
    table = Table(
        title=f"sqlite_bench {data['benchmark']} on {system['cpu_model']}, SQLite {system['sqlite']['version']}",
        caption="duration is write time (row generation excluded); p99 is per-chunk transaction latency",
    )
    for column in ("path", "config", "chunk", "phase", "scale", "rows/s", "duration", "p99", "peak RSS", "status"):
        table.add_column(
            column, justify="left" if column in ("path", "config", "phase", "status") else "right", no_wrap=True
        )
    for cell in data["cells"]:
        status = cell["status"] if cell["status"] != "failed" else "[red]failed[/]"
        if not cell["checkpoints"]:
            table.add_row(path_label(cell), cell["config"], format_count(cell["chunk_size"]), *["-"] * 6, status)
        for cp in cell["checkpoints"]:
            cum = cp["cumulative"]
            table.add_row(
                path_label(cell),
                cell["config"],
                format_count(cell["chunk_size"]),
                cp["phase"],
                format_count(cp["rows"]),
                f"{cum['rows_per_s']:,.0f}",
                _duration(cum["write_s"]),
                _ms(cum["batches"]["p99_ms"]),
                f"{cum['peak_rss_mb']:,.0f} MB",
                status,
            )
    console.print(table)
    spread = spreads(data)
    if spread:
        runs = max(r["runs"] for r in spread)
        repeated = Table(
            title=f"median and range over {runs} interleaved runs at {format_count(data['settings']['scales'][-1])} rows",
            caption="vs raw: 'win' only when every run beats every raw run; 'overlap' when the ranges overlap",
        )
        # the engine limit and the cross-module ratio only when the run measured them
        extra = [
            (k, label)
            for k, label in (("vs_engine", "× engine"), ("vs_stdlib", "× stdlib"))
            if any(r[k] for r in spread)
        ]
        columns = (
            "path",
            "config",
            "phase",
            "rows/s median",
            "range",
            "× raw median (range)",
            *(label for _, label in extra),
        )
        for column in (*columns, "vs raw"):
            repeated.add_column(column, justify="left" if column in ("path", "config", "phase", "vs raw") else "right")
        for r in sorted(spread, key=lambda r: (r["phase"], r["rows_per_s"][0])):
            med, low, high = r["rows_per_s"]
            repeated.add_row(
                r["path"],
                r["config"],
                r["phase"],
                f"{med:,.0f}",
                f"{low:,.0f}–{high:,.0f}",
                *(range_text(r[k]) for k in ("vs_raw", *(k for k, _ in extra))),
                r["against_raw"],
            )
        console.print(repeated)
        return
    multiples = ratios(data)
    if any(r["vs_raw"] or r["vs_engine"] for r in multiples):
        bases = [b for b in ("raw", "engine") if any(r[f"vs_{b}"] for r in multiples)]
        engine = " (and of the database alone, the engine path)" if "engine" in bases else ""
        versus = Table(
            title=f"throughput as a multiple of raw executemany{engine} "
            f"at {format_count(data['settings']['scales'][-1])} rows"
        )
        for column in ("path", "config", "phase", "rows/s", *(f"× {b}" for b in bases)):
            versus.add_column(
                column, justify="left" if column in ("path", "config", "phase") else "right", no_wrap=True
            )
        for r in sorted(multiples, key=lambda r: (r["phase"], r["rows_per_s"])):
            versus.add_row(
                r["path"],
                r["config"],
                r["phase"],
                f"{r['rows_per_s']:,.0f}",
                *("-" if r[f"vs_{b}"] is None else f"{r[f'vs_{b}']:.2f}" for b in bases),
            )
        console.print(versus)
    ratios_ = speedups(data)
    if ratios_:
        speed = Table(title="speedup (throughput ratio, same run)")
        for column in ("comparison", "config", "phase", "scale", "ratio"):
            speed.add_column(column, justify="right" if column in ("scale", "ratio") else "left", no_wrap=True)
        for s in ratios_:
            speed.add_row(s["label"], s["config"], s["phase"], format_count(s["rows"]), f"[bold]{s['ratio']:.2f}×[/]")
        console.print(speed)
