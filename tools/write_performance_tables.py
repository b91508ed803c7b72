"""The measured tables of docs/guides/write-performance.md, printed from their results files.

    python tools/write_performance_tables.py keys docs/results/keys-1m
    python tools/write_performance_tables.py transactions docs/results/transaction-size

`keys`: one row per run folder (page cache and rows per transaction) and path: lean + uuid7's rows/s at the
largest scale, that over study + uuid4's, and each table's last segment over its first (and over its second).
`transactions`: one row per chunk configuration: the study table's and the ordered table's rows/s (median and
range over the repeats) and the p99 commit latency of the median run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

KEY_RUNS = {  # folder -> (page cache, rows per transaction), in the page's order
    "chunk-5000": ("4 MB", "5K"),
    "chunk-50000": ("4 MB", "50K"),
    "cache64m-chunk_5000": ("64 MB", "5K"),
    "cache64m-chunk_50000": ("64 MB", "50K"),
}
PATHS = {"raw": "raw", "turbo": "turbo", "engine": "engine (SQLite alone)"}


def _rows(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}K"


def _cells(file: Path) -> tuple[list[dict[str, Any]], list[int]]:
    data = json.loads(file.read_text())
    return [c for c in data["cells"] if c["status"] == "done"], data["settings"]["scales"]


def _segments(cell: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {cp["rows"]: cp for cp in cell["checkpoints"] if cp["phase"] == "insert"}


def keys(folder: Path) -> str:
    lines: list[str] = []
    for name, (cache, chunk) in KEY_RUNS.items():
        cells, scales = _cells(folder / name / "results.json")
        if not lines:
            lines = [
                f"| page cache, rows per transaction | path | lean+uuid7 rows/s at {_rows(scales[-1])} "
                "| × study+uuid4 | lean+uuid7 last ÷ first | lean+uuid7 last ÷ second | ordered+uuid7 last ÷ first "
                "| study+uuid4 last ÷ first |",
                "|---|---|---:|---:|---:|---:|---:|---:|",
            ]
        first, second, last = scales[0], scales[1], scales[-1]
        for path, label in PATHS.items():
            by = {(c["schema"], c["key"]): _segments(c) for c in cells if c["path"] == path}
            lean, study, ordered = by[("lean", "uuid7")], by[("study", "uuid4")], by[("ordered", "uuid7")]

            def growth(s: dict[int, dict[str, Any]], base: int, last: int = last) -> float:
                return float(s[last]["segment"]["rows_per_s"] / s[base]["segment"]["rows_per_s"])

            rate = lean[last]["cumulative"]["rows_per_s"]
            lines.append(
                f"| {cache}, {chunk} | {label} | {rate:,.0f} | {rate / study[last]['cumulative']['rows_per_s']:.2f} "
                f"| {growth(lean, first):.2f} | {growth(lean, second):.2f} | {growth(ordered, first):.2f} "
                f"| {growth(study, first):.2f} |"
            )
    return "\n".join(lines) + "\n"


def _median_run(cells: list[dict[str, Any]], top: int) -> tuple[list[float], dict[str, Any]]:
    """The runs' cumulative rows/s at `top` (every run must have reached it), and the checkpoint of the median
    run (the lower of the two middle ones for an even count, so that its figures are one run's)."""
    points = [c["checkpoints"][-1] for c in cells]
    if any(cp["rows"] != top for cp in points):
        raise SystemExit(f"a run did not reach {top:,} rows")
    points.sort(key=lambda cp: cp["cumulative"]["rows_per_s"])
    return [cp["cumulative"]["rows_per_s"] for cp in points], points[(len(points) - 1) // 2]


def transactions(folder: Path) -> str:
    tables = {name: _cells(folder / name / "results.json") for name in ("study", "ordered")}
    chunks = sorted({c["chunk_size"] for c in tables["study"][0]})
    lines = [
        "| rows per transaction | study table: rows/s (range) | p99 | table in arrival order: rows/s (range) | p99 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for chunk in chunks:
        row = [f"{chunk:,}"]
        for cells, scales in tables.values():
            rates, median = _median_run([c for c in cells if c["chunk_size"] == chunk], scales[-1])
            middle = median["cumulative"]["rows_per_s"]
            row.append(f"{middle:,.0f} ({min(rates):,.0f}–{max(rates):,.0f})")
            row.append(f"{median['cumulative']['batches']['p99_ms']:,.0f} ms")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["keys", "transactions"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    sys.stdout.write((keys if args.table == "keys" else transactions)(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
