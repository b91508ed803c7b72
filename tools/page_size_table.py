"""The page-size table of docs/results/page-size: each page size's rows/s as a multiple of 4096's, per path,
table, phase, with the range over the runs (each run holds all page sizes, interleaved).

    python tools/page_size_table.py docs/results/page-size
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
from collections import defaultdict

SIZES = (4096, 8192, 16384)


def page_size(config: str) -> int:
    return int(config.split("page_size=")[1]) if "page_size=" in config else 4096


def rate(cell: dict) -> float:
    return float(cell["checkpoints"][-1]["cumulative"]["rows_per_s"])


def writes(folder: pathlib.Path) -> list[str]:
    ratios: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for results in sorted(folder.glob("writes-run*/results.json")):
        by: dict[tuple[str, str, str, int], float] = {}
        for cell in json.loads(results.read_text())["cells"]:
            table = f"{cell['schema']}+{cell['key']}"
            for phase in ("insert", "upsert"):
                points = [c for c in cell["checkpoints"] if c["phase"] == phase]
                if points:
                    by[(cell["path"], table, phase, page_size(cell["config"]))] = points[-1]["cumulative"]["rows_per_s"]
        for (path, table, phase, size), value in by.items():
            base = by.get((path, table, phase, 4096))
            if base:
                ratios[(path, table, phase)][size].append(value / base)
    lines = ["| path | table | phase | 8192 ÷ 4096 | 16384 ÷ 4096 |", "|---|---|---|---|---|"]
    for (path, table, phase), got in sorted(ratios.items()):
        cells = [f"{statistics.median(got[s]):.2f} ({min(got[s]):.2f}–{max(got[s]):.2f})" for s in SIZES[1:]]
        lines.append(f"| {path} | {table} | {phase} | " + " | ".join(cells) + " |")
    return lines


def reads(folder: pathlib.Path) -> list[str]:
    runs = sorted({p.name.rsplit("-run", 1)[1] for p in folder.glob("reads-*-run*")})
    ratios: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by: dict[tuple[str, int], float] = {}
        for size in SIZES:
            path = folder / f"reads-{size}-run{run}" / "results.json"
            if not path.exists():
                continue
            for cell in json.loads(path.read_text())["cells"]:
                if cell["config"] == "full-read":
                    by[(cell["path"], size)] = cell["checkpoints"][0]["cumulative"]["rows_per_s"]
                elif cell["config"] == "page_1000":  # pages a second, from the median page latency
                    latency = statistics.median(cell["checkpoints"][0]["batch_latencies_ms"])
                    by[(f"{cell['path']} page 1,000", size)] = 1000 / latency
        for (mode, size), value in by.items():
            if by.get((mode, 4096)):
                ratios[mode][size].append(value / by[(mode, 4096)])
    lines = ["| read (rows/s, or pages/s) | 8192 ÷ 4096 | 16384 ÷ 4096 |", "|---|---|---|"]
    for mode, got in sorted(ratios.items()):
        cells = [f"{statistics.median(got[s]):.2f} ({min(got[s]):.2f}–{max(got[s]):.2f})" for s in SIZES[1:]]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return lines


def commits(folder: pathlib.Path) -> list[str]:
    """Single-row writes (the concurrency benchmark): writes/s at 16384 as a multiple of 4096's, per run."""
    ratios: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for small in sorted(folder.glob("commits-*-4096-run*/results.json")):
        big = pathlib.Path(str(small).replace("-4096-", "-16384-"))
        if not big.exists():
            continue
        profile = small.parent.name.split("-")[1]
        rates = {}
        for size, path in ((4096, small), (16384, big)):
            for cell in json.loads(path.read_text())["cells"]:
                if cell["checkpoints"]:
                    rates[(size, cell["path"], cell["writers"])] = rate(cell)
        for (size, mode, writers), value in rates.items():
            if size == 16384 and rates.get((4096, mode, writers)):
                ratios[(profile, mode, writers)].append(value / rates[(4096, mode, writers)])
    lines = ["| single-row writes | profile | writers | 16384 ÷ 4096 |", "|---|---|---|---|"]
    for (profile, mode, writers), got in sorted(ratios.items()):
        lines.append(
            f"| {mode} | {profile} | {writers} | {statistics.median(got):.2f} ({min(got):.2f}–{max(got):.2f}) |"
        )
    return lines


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    print("\n".join(writes(root)))
    print()
    print("\n".join(reads(root)))
    print()
    print("\n".join(commits(root)))
