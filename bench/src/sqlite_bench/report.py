"""`sqlite-bench report RESULTS... --out DIR`: Markdown tables, PNG plots and one offline HTML page.

Reads any results file the suite writes (before_after, scale_benchmark, concurrency), from one machine or
several: runs from different machines merge into one cross-hardware table keyed by machine. The HTML
embeds its images as data URIs and its style inline, so it opens anywhere with no network.
"""

from __future__ import annotations

import base64
import html
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plots
from .results import path_label, table_variant
from .stats import percentile
from .summary import ratios, speedups
from .units import format_count


@dataclass
class Table:
    """A titled table rendered the same way to Markdown and HTML."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---:" if i else "---" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in self.rows)
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3>{note}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Report:
    tables: list[Table]
    plots: dict[str, str]  # file name -> caption
    out: Path


def _machine(data: dict[str, Any]) -> str:
    """The hardware a results file was measured on (the database it ran against is _backend's)."""
    s = data["system"]
    return f"{s.get('machine', '?')}: {s['cpu_model']} ({s['cpu_logical']} CPUs, {s['ram_gb']} GB)"


def _backend(data: dict[str, Any]) -> str:
    return "PostgreSQL" if data["settings"].get("db_url") else f"SQLite {data['system']['sqlite']['version']}"


def _without_empty_columns(table: Table) -> Table:
    """The table without columns whose every cell is empty or '-'."""
    keep = [i for i in range(len(table.columns)) if any(row[i] not in ("", "-") for row in table.rows)]
    if len(keep) == len(table.columns):
        return table
    table.columns = [table.columns[i] for i in keep]
    table.rows = [[row[i] for i in keep] for row in table.rows]
    return table


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _harness_tables(data: dict[str, Any], tag: str) -> list[Table]:
    done = [c for c in data["cells"] if c["status"] == "done"]
    tables = []
    head = Table(
        f"{tag}: headline at {format_count(data['settings']['scales'][-1])} rows",
        ["path", "config", "phase", "rows/s", "× raw", "× engine"],
        note="throughput as a multiple of raw executemany and of the database alone (the engine path), "
        "same chunk size, same run",
    )
    for r in sorted(ratios(data), key=lambda r: (r["phase"], -r["rows_per_s"])):
        head.rows.append(
            [
                r["path"],
                r["config"],
                r["phase"],
                f"{r['rows_per_s']:,.0f}",
                "-" if r["vs_raw"] is None else f"{r['vs_raw']:.2f}",
                "-" if r["vs_engine"] is None else f"{r['vs_engine']:.2f}",
            ]
        )
    tables.append(head)
    speed = speedups(data)
    if speed:
        tables.append(
            Table(
                f"{tag}: raw ÷ orm",
                ["comparison", "config", "phase", "rows", "ratio"],
                [[s["label"], s["config"], s["phase"], format_count(s["rows"]), f"{s['ratio']:.2f}×"] for s in speed],
            )
        )
    configs = list(dict.fromkeys(c["config"] for c in done))
    if len(configs) > 1:
        sweep = Table(
            f"{tag}: configuration sweep",
            ["config", "path", "chunk", "phase", "rows", "rows/s", "p99 ms", "peak RSS MB"],
        )
        for cell in done:
            cp = cell["checkpoints"][-1]
            sweep.rows.append(
                [
                    cell["config"],
                    path_label(cell),
                    format_count(cell["chunk_size"]),
                    cp["phase"],
                    format_count(cp["rows"]),
                    f"{cp['cumulative']['rows_per_s']:,.0f}",
                    _ms(cp["cumulative"]["batches"]["p99_ms"]),
                    f"{cp['cumulative']['peak_rss_mb']:,.0f}",
                ]
            )
        tables.append(sweep)
    chunks = sorted({c["chunk_size"] for c in done})
    if len(chunks) > 1:
        lat = Table(
            f"{tag}: transaction size against latency",
            ["path", "chunk", "phase", "rows/s", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        )
        for cell in sorted(done, key=lambda c: (path_label(c), c["chunk_size"])):
            for cp in cell["checkpoints"][-1:]:
                b = cp["cumulative"]["batches"]
                lat.rows.append(
                    [
                        path_label(cell),
                        format_count(cell["chunk_size"]),
                        cp["phase"],
                        f"{cp['cumulative']['rows_per_s']:,.0f}",
                        _ms(b["p50_ms"]),
                        _ms(b["p95_ms"]),
                        _ms(b["p99_ms"]),
                        _ms(b["max_ms"]),
                    ]
                )
        tables.append(lat)
    every = Table(
        f"{tag}: every checkpoint (cumulative)",
        [
            "path",
            "config",
            "chunk",
            "phase",
            "rows",
            "rows/s",
            "write s",
            "generation s",
            "wall s",
            "p50 ms",
            "p99 ms",
            "peak RSS MB",
            "db MiB",
            "WAL MiB",
            "errors",
            "retries",
        ],
    )
    segments = Table(
        f"{tag}: per-segment throughput", ["path", "config", "chunk", "phase", "segment", "rows/s", "p99 ms"]
    )
    for cell in data["cells"]:
        previous: dict[str, int] = {}
        for cp in cell["checkpoints"]:
            cum, seg = cp["cumulative"], cp["segment"]
            errors = sum(cp["errors"].values())
            every.rows.append(
                [
                    path_label(cell),
                    cell["config"],
                    format_count(cell["chunk_size"]),
                    cp["phase"],
                    format_count(cp["rows"]),
                    f"{cum['rows_per_s']:,.0f}",
                    f"{cum['write_s']:,.2f}",
                    f"{cum['generation_s']:,.2f}",
                    f"{cum['wall_s']:,.2f}",
                    _ms(cum["batches"]["p50_ms"]),
                    _ms(cum["batches"]["p99_ms"]),
                    f"{cum['peak_rss_mb']:,.0f}",
                    f"{cp['files']['db_bytes'] / 2**20:,.1f}",
                    f"{cp['files']['wal_bytes'] / 2**20:,.1f}",
                    str(errors),
                    str(cp["retries"]),
                ]
            )
            start = previous.get(cp["phase"], 0)
            previous[cp["phase"]] = cp["rows"]
            segments.rows.append(
                [
                    path_label(cell),
                    cell["config"],
                    format_count(cell["chunk_size"]),
                    cp["phase"],
                    f"{format_count(start)}–{format_count(cp['rows'])}",
                    f"{seg['rows_per_s']:,.0f}",
                    _ms(seg["batches"]["p99_ms"]),
                ]
            )
    tables += [every, segments]
    growth = _growth_table(data, tag)
    if growth.rows:
        tables.append(growth)
    return tables


def _growth_table(data: dict[str, Any], tag: str) -> Table:
    """Each cell's last segment against its first (and its second, once the table is past its first
    segment): whether the cost of a row grows with the table, per path, so the database's own curve
    (the engine path) sits next to the clients'."""
    table = Table(
        f"{tag}: as the table grows",
        [
            "path",
            "config",
            "chunk",
            "phase",
            "first segment rows/s",
            "last segment rows/s",
            "last ÷ first",
            "last ÷ second",
        ],
        note="same cell, same run; the first segment starts on an empty table, so it includes "
        "the time its indexes are smaller than their set of insertion points",
    )
    for cell in data["cells"]:
        if cell["status"] != "done":
            continue
        for phase in dict.fromkeys(cp["phase"] for cp in cell["checkpoints"]):
            rates = [cp["segment"]["rows_per_s"] for cp in cell["checkpoints"] if cp["phase"] == phase]
            if len(rates) < 2 or not rates[0]:
                continue
            second = f"{rates[-1] / rates[1]:.2f}" if len(rates) > 2 and rates[1] else "-"
            table.rows.append(
                [
                    path_label(cell),
                    cell["config"],
                    format_count(cell["chunk_size"]),
                    phase,
                    f"{rates[0]:,.0f}",
                    f"{rates[-1]:,.0f}",
                    f"{rates[-1] / rates[0]:.2f}",
                    second,
                ]
            )
    return table


def _concurrency_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per mode and writer count: the cell's figures, or with --repeat the medians over the runs with the
    range of writes/s."""
    from .concurrency import spreads

    if (data["settings"].get("repeat") or 1) > 1:
        return [
            {
                "mode": r["mode"],
                "profile": data["settings"]["profile"],
                "writers": r["writers"],
                "runs": r["runs"],
                "rate": r["rate"][0],
                "rate_range": r["rate"][1:],
                "p50": r["p50"][0],
                "p99": r["p99"][0],
                "p999": r["p999"][0],
                "locked": r["locked"],
            }
            for r in spreads(data)
        ]
    out = []
    for cell in data["cells"]:
        if cell["status"] != "done" or not cell["checkpoints"]:
            continue
        cp = cell["checkpoints"][-1]
        lat = cp["batch_latencies_ms"]
        out.append(
            {
                "mode": cell["path"],
                "profile": cell["config"],
                "writers": cell["writers"],
                "rate": cp["segment"]["rows_per_s"],
                "p50": percentile(lat, 50),
                "p99": percentile(lat, 99),
                "p999": percentile(lat, 99.9),
                "locked": cp["errors"]["locked"],
            }
        )
    return out


def _database(data: dict[str, Any]) -> str:
    """Which database a run read or wrote: 'PostgreSQL' when it was given a server URL, else 'SQLite'."""
    return "PostgreSQL" if data["settings"].get("db_url") else "SQLite"


def _reads_tables(data: dict[str, Any]) -> list[Table]:
    database = _database(data)
    from .reads import full_reads

    repeated = (data["settings"].get("repeat") or 1) > 1
    full = Table(
        f"reads ({database}): {data['settings']['rows']:,} rows, each way in a fresh process"
        + (", median (range) over interleaved runs" if repeated else ""),
        ["mode", "runs", "rows/s", "range", "peak RSS growth MB"],
    )
    for r in full_reads(data):
        rate = r["rate"]
        full.rows.append(
            [
                r["mode"],
                str(r["runs"]) if repeated else "",
                f"{rate[0]:,.0f}",
                f"{rate[1]:,.0f}–{rate[2]:,.0f}" if repeated else "",
                f"{r['growth_mb'][0]:,.0f}",
            ]
        )
    pages = Table(
        f"reads ({database}): page latency, {data['settings']['page_size']} rows a page",
        ["method", "page", "median ms", "all runs ms"],
    )
    for cell in data["cells"]:
        cp = cell["checkpoints"][0]
        if cell["config"] != "full-read":
            lat = cp["batch_latencies_ms"]
            pages.rows.append(
                [
                    cell["path"],
                    cell["config"].removeprefix("page_"),
                    f"{percentile(lat, 50):,.2f}",
                    ", ".join(f"{v:,.2f}" for v in lat),
                ]
            )
    return [_without_empty_columns(full), pages]


def _compare_table(data: dict[str, Any]) -> Table:
    from .orm_compare import decision_rows, spread_cells, spreads

    note = (
        "⚑: more than 0.1% of requests failed; the cell's figures are not comparable. CPU: milliseconds of CPU per "
        "request, of the server process and of the whole machine (every process on it: the server, the load "
        "generator, the database and anything else running)"
    )
    if (data["settings"].get("repeat") or 1) > 1:
        table = Table(
            "data layers under HTTP load: the decision table, median (range) over the runs",
            [
                "database",
                "concurrency",
                "layer",
                "runs",
                "req/s",
                "× SQLAlchemy async",
                "vs SQLAlchemy async",
                "server CPU ms",
                "machine CPU ms",
                "p50 ms",
                "p99 ms",
                "server errors",
                "peak RSS MB",
            ],
            note=note + "; win/loss only when the req/s ranges do not overlap",
        )
        table.rows += [spread_cells(r) for r in spreads(data)]
        return _without_empty_columns(table)
    table = Table(
        "data layers under HTTP load: the decision table",
        [
            "database",
            "concurrency",
            "layer",
            "req/s",
            "× SQLAlchemy async",
            "server CPU ms",
            "machine CPU ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "server errors",
            "error rate",
            "peak RSS MB",
        ],
        note=note,
    )

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    for r in decision_rows(data):
        table.rows.append(
            [
                r["db"],
                str(r["concurrency"]),
                r["layer"],
                f"{r['rate']:,.0f}",
                "-" if r["vs_sqlalchemy"] is None else f"{r['vs_sqlalchemy']:.2f}",
                ms(r["server_cpu_ms"]),
                ms(r["machine_cpu_ms"]),
                f"{r['p50_ms']:.1f}",
                f"{r['p90_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['server_errors']}" + (" ⚑" if r["flagged"] else ""),
                f"{r['error_rate']:.4%}",
                f"{r['peak_rss_mb']}",
            ]
        )
    return _without_empty_columns(table)


def build_report(files: list[dict[str, Any]], out: str | Path) -> Report:
    """Write report.md, report.html and the PNG plots for the loaded results files into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables: list[Table] = []
    figures: dict[str, str] = {}
    harness = [d for d in files if d["benchmark"] in ("before_after", "scale_benchmark")]
    contention = [d for d in files if d["benchmark"] == "concurrency"]
    machines = list(dict.fromkeys(_machine(d) for d in files))
    tags = [_run_tag(data, i, len(harness)) for i, data in enumerate(harness)]
    if len(set(tags)) < len(tags):  # two runs whose last folders share a name: name them by their last two
        tags = [_run_tag(data, i, len(harness), depth=2) for i, data in enumerate(harness)]
    for data, tag in zip(harness, tags):
        tables += _harness_tables(data, tag)
    if contention:
        rows = [r for d in contention for r in _concurrency_rows(d)]
        tables.append(
            _without_empty_columns(
                Table(
                    "concurrency: single-row writes (with runs: medians over interleaved runs, writes/s range)",
                    [
                        "profile",
                        "writers",
                        "mode",
                        "runs",
                        "writes/s",
                        "range",
                        "p50 ms",
                        "p99 ms",
                        "p99.9 ms",
                        "lock errors",
                    ],
                    [
                        [
                            r["profile"],
                            str(r["writers"]),
                            r["mode"],
                            str(r.get("runs", "")),
                            f"{r['rate']:,.0f}",
                            "{:,.0f}–{:,.0f}".format(*r["rate_range"]) if r.get("rate_range") else "",
                            f"{r['p50']:.2f}",
                            f"{r['p99']:.1f}",
                            f"{r['p999']:.1f}",
                            str(r["locked"]),
                        ]
                        for r in rows
                    ],
                )
            )
        )
        plots.concurrency(rows, out / "concurrency.png")
        figures["concurrency.png"] = "writes/s and p99 latency against writer count"
    for i, data in enumerate(d for d in files if d["benchmark"] == "reads"):
        tables += _reads_tables(data)
        database = _database(data)
        name = f"reads-{database.lower()}.png"
        name = name if name not in figures else f"reads-{database.lower()}-{i + 1}.png"
        plots.reads(data, out / name)
        figures[name] = (
            f"{database}: full reads (rows/s, peak memory growth) and page latency against depth, OFFSET vs keyset"
        )
    for data in (d for d in files if d["benchmark"] == "orm_compare"):
        tables.append(_compare_table(data))
    if len(machines) > 1:  # one machine with SQLite and PostgreSQL runs is still one machine
        cross = Table(
            "across machines",
            ["machine", "database", "benchmark", "path", "config", "chunk", "phase", "rows", "rows/s"],
        )
        for data in harness:
            for cell in (c for c in data["cells"] if c["status"] == "done"):
                for phase in data["settings"]["phases"]:
                    points = [cp for cp in cell["checkpoints"] if cp["phase"] == phase]
                    if not points:
                        continue
                    cp = points[-1]
                    cross.rows.append(
                        [
                            _machine(data),
                            _backend(data),
                            data["benchmark"],
                            path_label(cell),
                            cell["config"],
                            format_count(cell["chunk_size"]),
                            phase,
                            format_count(cp["rows"]),
                            f"{cp['cumulative']['rows_per_s']:,.0f}",
                        ]
                    )
        tables.insert(0, _without_empty_columns(cross))
    for data, tag in zip(harness, tags):  # one set of plots per run: runs with other paths or tables do not mix
        prefix = "" if len(harness) == 1 else re.sub(r"[^A-Za-z0-9_.]+", "-", tag).strip("-") + "-"
        figures.update(_harness_plots(data, out, prefix, "" if len(harness) == 1 else f"{tag}: "))
    commands = [d["command"] for d in files]
    tables = [_without_empty_columns(t) for t in tables]
    _write_markdown(out / "report.md", tables, figures, machines, commands)
    _write_html(out / "report.html", tables, figures, machines, commands, out)
    return Report(tables, figures, out)


def _run_tag(data: dict[str, Any], index: int, runs: int, depth: int = 1) -> str:
    """How a harness run is named in a report of several: its --output-dir, which says what the run was (the
    part after a `results` folder, e.g. keys-1m/chunk-5000, or its last `depth` folders); else its place in the
    list."""
    if runs == 1:
        return data["benchmark"]
    words = shlex.split(data.get("command", ""))
    if "--output-dir" in words[:-1]:
        parts = Path(words[words.index("--output-dir") + 1]).parts
        below = parts[len(parts) - parts[::-1].index("results") :] if "results" in parts else parts[-depth:]
        if below:
            return "/".join(below)
    return f"{data['benchmark']} #{index + 1}"


def _median_runs(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With --repeat, one cell per path, configuration, chunk and table: the run whose final rate (first phase) is
    the median, carrying `runs_range` (phase -> (min, max) of the final cumulative rows/s over the runs). A plot
    of every run would draw each configuration three times under one label."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in cells:
        key = (c["path"], c["config"], c["chunk_size"], c.get("variant"), table_variant(c), c.get("sqlite"))
        groups.setdefault(key, []).append(c)
    if all(len(runs) == 1 for runs in groups.values()):
        return cells
    out = []
    for runs in groups.values():
        phase = runs[0]["checkpoints"][0]["phase"]

        def final(c: dict[str, Any], phase: str) -> float:
            points = [cp for cp in c["checkpoints"] if cp["phase"] == phase]
            return float(points[-1]["cumulative"]["rows_per_s"]) if points else 0.0

        ordered = sorted(runs, key=lambda c: final(c, phase))
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        phases = dict.fromkeys(cp["phase"] for cp in chosen["checkpoints"])
        chosen["runs_range"] = {ph: (min(final(c, ph) for c in runs), max(final(c, ph) for c in runs)) for ph in phases}
        out.append(chosen)
    return out


def _harness_plots(data: dict[str, Any], out: Path, prefix: str, tag: str) -> dict[str, str]:
    """The plots of one before_after or scale_benchmark run, named with `prefix` and captioned with `tag`."""
    cells = _median_runs([c for c in data["cells"] if c["status"] == "done" and c["checkpoints"]])
    if not cells:
        return {}
    figures: dict[str, str] = {}
    if any(c.get("runs_range") for c in cells):
        tag += "the median run of each cell (bars: the range over the runs); "
        data = {**data, "cells": cells}

    def draw(name: str, plot: Any, source: Any, caption: str) -> None:
        plot(source, out / f"{prefix}{name}")
        figures[f"{prefix}{name}"] = tag + caption

    draw("throughput-per-config.png", plots.throughput_per_config, cells, "throughput per configuration and path")
    draw("throughput-over-rows.png", plots.cumulative_over_rows, cells, "cumulative throughput over rows")
    draw("db-size-over-rows.png", plots.db_size_over_rows, cells, "database size over rows")
    draw(
        "segments-over-rows.png",
        plots.throughput_over_rows,
        [data],
        "per-segment throughput: the cost of a row as the table grows",
    )
    if len({table_variant(c) for c in cells}) > 1:
        draw(
            "growth-by-table.png",
            plots.growth_by_table,
            cells,
            "each table variant's segments as a share of its first: does a row's cost grow with the table?",
        )
    if len({c["chunk_size"] for c in cells}) > 1:
        draw("p99-vs-chunk.png", plots.p99_vs_chunk, cells, "p99 transaction latency against chunk size (log-log)")
    if any(len(c.get("rss_samples") or []) >= 2 for c in cells):
        draw("rss-over-time.png", plots.rss_over_time, cells, "resident memory over time, from the sampler")
    return figures


def _write_markdown(
    path: Path, tables: list[Table], figures: dict[str, str], machines: list[str], commands: list[str]
) -> None:
    parts = ["# sqlite_bench report", "", "Machines: " + "; ".join(machines), "", "Commands:", ""]
    parts += [f"    {c}" for c in commands] + [""]
    parts += [t.markdown() for t in tables]
    parts += [f"![{caption}]({name})\n" for name, caption in figures.items()]
    path.write_text("\n".join(parts), encoding="utf-8")


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px}
td{text-align:right}td:first-child{text-align:left}th{background:#f3f3f3}h3{margin-top:1.6em}
.note{color:#555;font-size:13px}figure{margin:1.5em 0}img{max-width:100%}code{background:#f3f3f3;padding:1px 4px}"""


def _write_html(
    path: Path, tables: list[Table], figures: dict[str, str], machines: list[str], commands: list[str], folder: Path
) -> None:
    images = []
    for name, caption in figures.items():
        data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
        images.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    body = (
        f"<h1>sqlite_bench report</h1><p>Machines: {html.escape('; '.join(machines))}</p>"
        + "".join(f"<p><code>{html.escape(c)}</code></p>" for c in commands)
        + "".join(t.html() for t in tables)
        + "".join(images)
    )
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sqlite_bench report</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>",
        encoding="utf-8",
    )
