"""A Markdown table of rows/s and ratios over repeated runs: one results file per run (or one --repeat run).

    python tools/ratio_table.py docs/results/returning-1m/sqlite-*/results.json \
        --ratio turbo_returning:turbo --ratio turbo_returning:core_returning

For each path and phase: the median and range of cumulative rows/s at the largest scale over the runs; for
each ratio A:B, A's rate divided by B's within each run (side by side in one run), median and range, and
whether every run's ratio is above 1 ('win'), below ('loss'), or not ('overlap').
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def rates(files: list[Path]) -> dict[tuple[str, str], list[float]]:
    """(path, phase) -> rows/s per run, in run order (a --repeat file counts each repeat as a run)."""
    out: dict[tuple[str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    for n, file in enumerate(files):
        data = json.loads(file.read_text())
        top = data["settings"]["scales"][-1]
        for cell in data["cells"]:
            if cell["status"] != "done":
                continue
            run = (str(n), cell.get("repeat") or 0)
            for cp in cell["checkpoints"]:
                if cp["rows"] == top:
                    out[(cell["path"], cp["phase"])][run] = cp["cumulative"]["rows_per_s"]
    runs = sorted({run for by in out.values() for run in by})
    return {key: [by[r] for r in runs if r in by] for key, by in out.items()}


def _spread(values: list[float], digits: int) -> str:
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def table(files: list[Path], ratios: list[tuple[str, str]]) -> str:
    by = rates(files)
    phases = sorted({phase for _, phase in by}, key=["insert", "upsert"].index)
    lines = ["| path | phase | runs | rows/s median (range) |", "|---|---|---:|---:|"]
    for (path, phase), values in sorted(by.items(), key=lambda kv: (phases.index(kv[0][1]), kv[0][0])):
        lines.append(f"| `{path}` | {phase} | {len(values)} | {_spread(values, 0)} |")
    if ratios:
        lines += ["", "| ratio (same run) | phase | median (range) | verdict |", "|---|---|---:|---|"]
        for a, b in ratios:
            for phase in phases:
                if (a, phase) in by and (b, phase) in by:
                    each = [x / y for x, y in zip(by[(a, phase)], by[(b, phase)])]
                    verdict = "win" if min(each) > 1 else "loss" if max(each) < 1 else "overlap"
                    lines.append(f"| `{a}` ÷ `{b}` | {phase} | {_spread(each, 2)} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--ratio", action="append", default=[], help="A:B, e.g. turbo_returning:turbo")
    args = parser.parse_args(argv)
    ratios = [tuple(r.split(":", 1)) for r in args.ratio]
    sys.stdout.write(table(args.files, ratios))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
