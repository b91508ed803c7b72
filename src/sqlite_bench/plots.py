"""Plots from results files (matplotlib, written as PNG, no display needed)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from .units import format_count  # noqa: E402


_STYLES = {"raw": "-", "turbo": "--", "orm": ":", "core": "-.", "orm_bulk": (0, (3, 1, 1, 1)), "engine": (0, (1, 1))}


def cell_label(cell: dict[str, Any]) -> str:
    """e.g. 'raw, study table + uuid4 keys, baseline, 5K-row chunks'."""
    return (f"{cell['path']}, {cell.get('schema', 'study')} table + {cell.get('key', 'uuid4')} keys, "
            f"{cell['config']}, {format_count(cell['chunk_size'])}-row chunks")


def throughput_over_rows(results: Iterable[dict[str, Any]], out: str | Path, phase: str = "insert") -> list[str]:
    """Per-segment throughput against rows written, one line per cell of every results file; returns the
    labels of the lines drawn. Segment (not cumulative) throughput shows how the cost of a row grows."""
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    labels = []
    colours: dict[tuple[str, ...], Any] = {}  # one colour per table set-up, one line style per write path
    palette = plt.get_cmap("tab10").colors
    for data in results:
        for cell in data["cells"]:
            points = [(cp["rows"], cp["segment"]["rows_per_s"]) for cp in cell["checkpoints"] if cp["phase"] == phase]
            if not points:
                continue
            xs, ys = zip(*points)
            label = cell_label(cell)
            setup = (cell.get("schema", "study"), cell.get("key", "uuid4"), cell["config"], str(cell["chunk_size"]))
            colour = colours.setdefault(setup, palette[len(colours) % len(palette)])
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6, color=colour,
                    linestyle=_STYLES.get(cell["path"], "-."), label=label)
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
