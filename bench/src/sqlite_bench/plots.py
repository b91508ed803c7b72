"""Plots from results files (matplotlib, written as PNG, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from .results import path_label, table_variant, variant  # noqa: E402
from .stats import percentile  # noqa: E402
from .units import format_count  # noqa: E402

_STYLES = {
    "raw": "-",
    "turbo": "--",
    "orm": ":",
    "core": "-.",
    "orm_bulk": (0, (3, 1, 1, 1)),
    "engine": (0, (1, 1)),
    "prebuilt": (0, (5, 2)),
    "prebuilt_multi": (0, (5, 1, 1, 1)),
}


def cell_label(cell: dict[str, Any]) -> str:
    """e.g. 'raw, study table + uuid4 keys, baseline, 5K-row chunks'."""
    schema, key, module = variant(cell)
    through = "" if module == "stdlib" else f", through {module}"
    return (
        f"{cell['path']}, {schema} table + {key} keys, {cell['config']}, {format_count(cell['chunk_size'])}-row "
        f"chunks{through}"
    )


def _setup(cell: dict[str, Any]) -> tuple[str, ...]:
    return (*variant(cell), cell["config"], str(cell["chunk_size"]))


def throughput_over_rows(results: Iterable[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Per-segment throughput against rows written, one line per cell of every results file; returns the
    labels of the lines drawn. Segment (not cumulative) throughput shows how the cost of a row grows."""
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    labels = []
    colours: dict[tuple[str, ...], Any] = {}  # one colour per table set-up, one line style per write path
    palette = plt.get_cmap("tab10").colors
    results = list(results)
    setups = {_setup(c) for data in results for c in data["cells"]}
    for data in results:
        for cell in data["cells"]:
            points = [(cp["rows"], cp["segment"]["rows_per_s"]) for cp in cell["checkpoints"] if cp["phase"] == phase]
            if not points:
                continue
            xs, ys = zip(*points)
            label = cell_label(cell)
            setup = _setup(cell) if len(setups) > 1 else (cell["path"],)  # one set-up: a colour per path instead
            colour = colours.setdefault(setup, palette[len(colours) % len(palette)])
            ax.plot(
                xs,
                ys,
                marker="o",
                markersize=3,
                linewidth=1.6,
                color=colour,
                linestyle=_STYLES.get(cell["path"], "-."),
                label=label,
            )
            labels.append(label)
    ax.set_xlabel(f"rows in the table ({phase} phase; each point is the segment ending there)")
    ax.set_ylabel("rows/s in that segment")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_count(int(v)) if v >= 1 else "0"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("sqlite_bench: insert throughput as the table grows")
    if labels:
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return labels


def growth_by_table(cells: list[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """One panel per table variant (schema + key): each cell's segment throughput as a share of its first
    segment, a colour per path and a line style per configuration, so that whether a row's cost grows with
    the table reads the same for SQLite alone (the engine path) and for each client. Returns the lines' labels."""
    from matplotlib.lines import Line2D

    tables = list(dict.fromkeys(table_variant(c) for c in cells))
    paths = list(dict.fromkeys(c["path"] for c in cells))
    setups = list(dict.fromkeys((c["config"], c["chunk_size"]) for c in cells))
    palette, styles = plt.get_cmap("tab10").colors, ["-", "--", ":", "-."]
    columns = min(3, len(tables))
    rows = -(-len(tables) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.4 * columns, 3.2 * rows + 1.2), dpi=110, sharey=True, squeeze=False
    )
    labels, top = [], 1.0
    for ax, (schema, key) in zip(axes.flat, tables):
        for cell in cells:
            if table_variant(cell) != (schema, key):
                continue
            points = [(cp["rows"], cp["segment"]["rows_per_s"]) for cp in cell["checkpoints"] if cp["phase"] == phase]
            if len(points) < 2 or not points[0][1]:
                continue
            xs, ys = zip(*points)
            top = max(top, *(y / ys[0] for y in ys))
            ax.plot(
                xs,
                [y / ys[0] for y in ys],
                marker="o",
                markersize=3,
                linewidth=1.5,
                color=palette[paths.index(cell["path"]) % len(palette)],
                linestyle=styles[setups.index((cell["config"], cell["chunk_size"])) % len(styles)],
            )
            labels.append(cell_label(cell))
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_title(f"{schema} table + {key} keys", fontsize=9)
        _rows_axis(ax)
    axes[0, 0].set_ylim(0, top * 1.05)  # shared: every panel on the same scale
    for ax in axes.flat[len(tables) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("÷ first segment")
    handles = [Line2D([], [], color=palette[i % len(palette)], label=path) for i, path in enumerate(paths)]
    if len(setups) > 1:
        handles += [
            Line2D(
                [],
                [],
                color="black",
                linestyle=styles[i % len(styles)],
                label=f"{config}, {format_count(chunk)}-row chunks",
            )
            for i, (config, chunk) in enumerate(setups)
        ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(
        f"each segment's rows/s ÷ the cell's first segment ({phase} phase; 1.0 = as fast as on an empty table)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(handles) > 4), 1, 0.97))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return labels


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def series_style(i: int) -> dict[str, Any]:
    """The i-th series' colour and marker: ten colours, then the same colours with the next marker, so no two of
    up to 80 series look alike (matplotlib's default cycle repeats after ten)."""
    palette = plt.get_cmap("tab10").colors
    return {"color": palette[i % len(palette)], "marker": _MARKERS[(i // len(palette)) % len(_MARKERS)]}


def _legend_outside(ax: Any, count: int) -> None:
    """The legend beside the axes, never over the data."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, ncol=1 if count <= 20 else 2)


def _save(fig: Any, out: str | Path) -> None:
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)


def _rows_axis(ax: Any) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_count(int(v)) if v >= 1 else "0"))
    ax.grid(True, alpha=0.3)


def _short(cell: dict[str, Any]) -> str:
    return f"{path_label(cell)} {cell['config']} {format_count(cell['chunk_size'])}"


def throughput_per_config(cells: list[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Bars: rows/s at each cell's largest checkpoint of `phase`, one bar per cell, grouped by configuration."""
    bars = []
    for cell in cells:
        points = [cp for cp in cell["checkpoints"] if cp["phase"] == phase]
        if points:
            rate = points[-1]["cumulative"]["rows_per_s"]
            low, high = (cell.get("runs_range") or {}).get(phase, (rate, rate))  # with --repeat: the runs' range
            bars.append((_short(cell), rate, cell["path"], (rate - low, high - rate)))
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.32 * len(bars) + 1.5)), dpi=110)
    palette = plt.get_cmap("tab10").colors
    paths = list(dict.fromkeys(b[2] for b in bars))
    spread = [[b[3][0] for b in bars], [b[3][1] for b in bars]]
    ax.barh(
        [b[0] for b in bars],
        [b[1] for b in bars],
        color=[palette[paths.index(b[2]) % 10] for b in bars],
        xerr=spread if any(any(b[3]) for b in bars) else None,
        capsize=3,
    )
    ax.invert_yaxis()
    ax.set_xlabel(f"rows/s ({phase}, cumulative at the largest scale)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("throughput per configuration")
    _save(fig, out)
    return [b[0] for b in bars]


def p99_vs_chunk(cells: list[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Log-log: per-chunk p99 latency against chunk size, one line per path and table, over the chunk
    configurations only (chunk_1000 ... chunk_50000: one writer, the same PRAGMAs); pool and preset
    configurations differ in more than their chunk size, and their lock waits would read as chunk effects."""
    series: dict[str, list[tuple[int, float]]] = {}
    for cell in (c for c in cells if str(c["config"]).split("+")[0].startswith("chunk_")):
        points = [cp for cp in cell["checkpoints"] if cp["phase"] == phase]
        p99 = points[-1]["cumulative"]["batches"]["p99_ms"] if points else None
        if p99:
            key = _short(cell).rsplit(" ", 2)[0]
            series.setdefault(key, []).append((cell["chunk_size"], p99))
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for i, (label, points) in enumerate(series.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, label=label, **series_style(i))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows per transaction (chunk size)")
    ax.set_ylabel("p99 transaction latency, ms")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"p99 transaction latency against chunk size, chunk configurations ({phase})")
    if series:
        _legend_outside(ax, len(series))
    _save(fig, out)
    return list(series)


def cumulative_over_rows(cells: list[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Cumulative rows/s at each checkpoint, one line per cell."""
    return _lines(
        cells,
        out,
        lambda cp: cp["cumulative"]["rows_per_s"],
        phase,
        "cumulative rows/s",
        f"cumulative throughput over rows ({phase})",
    )


def db_size_over_rows(cells: list[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Database file size (MiB) at each checkpoint."""
    return _lines(
        cells,
        out,
        lambda cp: cp["files"]["db_bytes"] / 2**20,
        phase,
        "database size, MiB",
        f"database size over rows ({phase})",
    )


def _lines(cells: list[dict[str, Any]], out: str | Path, value: Any, phase: str, ylabel: str, title: str) -> list[str]:
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    labels = []
    for cell in cells:
        points = [(cp["rows"], value(cp)) for cp in cell["checkpoints"] if cp["phase"] == phase]
        if points:
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                markersize=3,
                linestyle=_STYLES.get(cell["path"], "-"),
                label=_short(cell),
                **series_style(len(labels)),
            )
            labels.append(_short(cell))
    ax.set_xlabel(f"rows written ({phase})")
    ax.set_ylabel(ylabel)
    _rows_axis(ax)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    if labels:
        _legend_outside(ax, len(labels))
    _save(fig, out)
    return labels


def rss_over_time(cells: list[dict[str, Any]], out: str | Path) -> list[str]:
    """Resident memory of each cell's process over its run, from the sampler."""
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    labels = []
    for cell in cells:
        samples = cell.get("rss_samples") or []
        if len(samples) >= 2:
            start = samples[0][0]
            ax.plot(
                [t - start for t, _ in samples],
                [mb for _, mb in samples],
                label=_short(cell),
                markersize=2,
                markevery=max(1, len(samples) // 12),
                **series_style(len(labels)),
            )
            labels.append(_short(cell))
    ax.set_xlabel("seconds since the cell started sampling")
    ax.set_ylabel("RSS, MB")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("memory over time")
    if labels:
        _legend_outside(ax, len(labels))
    _save(fig, out)
    return labels


def concurrency(rows: list[dict[str, Any]], out: str | Path) -> list[str]:
    """Writes/s and p99 latency against writer count, one line per mode (and profile)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110)
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(f"{r['mode']} ({r['profile']})", []).append(r)
    for label, points in series.items():
        points.sort(key=lambda r: r["writers"])
        xs = [p["writers"] for p in points]
        if all(p.get("rate_range") for p in points):  # medians over repeated runs, the range as error bars
            rates = [p["rate"] for p in points]
            spread = [
                [r - p["rate_range"][0] for r, p in zip(rates, points)],
                [p["rate_range"][1] - r for r, p in zip(rates, points)],
            ]
            left.errorbar(xs, rates, yerr=spread, marker="o", capsize=3, label=label)
        else:
            left.plot(xs, [p["rate"] for p in points], marker="o", label=label)
        right.plot(xs, [p["p99"] for p in points], marker="o", label=label)
    counts = sorted({r["writers"] for r in rows})
    for ax, title in ((left, "writes/s (log scale)"), (right, "p99 latency per write, ms (log scale)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("writer threads")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    left.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    left.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    if series:
        _legend_outside(right, len(series))
    _save(fig, out)
    return list(series)


def reads(data: dict[str, Any], out: str | Path) -> list[str]:
    """The read benchmark: each full-read way's rows/s with its peak memory growth, and page latency against
    page depth for OFFSET and keyset (log scales: keyset stays flat where OFFSET grows with the depth)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    from .reads import full_reads

    full = full_reads(data)  # medians over the runs, the range as error bars
    names = [r["mode"] for r in full]
    rates = [r["rate"][0] for r in full]
    spread = [[r["rate"][0] - r["rate"][1] for r in full], [r["rate"][2] - r["rate"][0] for r in full]]
    bars = left.barh(names, rates, color="tab:blue", xerr=spread if any(r["runs"] > 1 for r in full) else None)
    for bar, r in zip(bars, full):
        left.annotate(
            f"{bar.get_width():,.0f} rows/s, +{r['growth_mb'][0]:,.0f} MB",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    left.set_xlim(0, max(rates, default=1) * 1.6)  # room for the labels
    left.invert_yaxis()
    left.set_xlabel("rows/s; label: rows/s and peak RSS growth")
    left.set_title(f"reading {data['settings']['rows']:,} rows")
    left.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    series: dict[str, list[tuple[int, float]]] = {}
    for cell in (c for c in data["cells"] if c["config"] != "full-read" and c.get("checkpoints")):
        page = int(cell["config"].removeprefix("page_"))
        series.setdefault(cell["path"], []).append((page, percentile(cell["checkpoints"][0]["batch_latencies_ms"], 50)))
    for label, points in sorted(series.items()):
        points.sort()
        style = "-" if label.startswith("offset") else "--"
        right.plot([p for p, _ in points], [ms for _, ms in points], style, marker="o", label=label)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("page number (log scale)")
    right.set_ylabel("median ms (log scale)")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    right.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    right.xaxis.set_minor_locator(NullLocator())
    pages = sorted({p for points in series.values() for p, _ in points})
    if pages:
        right.set_xticks(pages, [f"{p:,}" for p in pages])
    right.set_title(f"one page of {data['settings']['page_size']} rows")
    right.grid(True, which="both", alpha=0.3)
    if series:
        right.legend(fontsize=8)
    _save(fig, out)
    return [*names, *sorted(series)]
