"""`python -m sqlite_bench.reads --rows 1M`: reading a large table, and paging deep into it.

Full reads of the study's table six ways, each in a fresh process so its peak memory is its own:
  orm_all      session.scalars(select(BenchRow)).all(): every object in memory at once
  orm_yield    the same select with yield_per(1000)
  load_only    ORM objects with three of the thirteen columns loaded, yield_per(1000)
  core         Core rows, fetched all at once
  fetchmany    the DBAPI cursor, fetchmany(1000) on the same SELECT
  stream       turboalchemy.stream(session, select(BenchRow), batch_size=1000)
Then page latency at pages 1, 1,000 and 10,000 (100 rows a page) for LIMIT/OFFSET against turboalchemy.keyset_page,
as ORM objects and as Core rows. With --repeat N the full reads run N times, interleaved (every way once, then
again, the order rotated), and the page timings N times as many; the tables show medians and ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

import turboalchemy

from . import results
from .configs import config_named, open_engine
from .generator import RowGenerator
from .monitor import memory_breakdown
from .paths import PATHS
from .runner import publish
from .schema import TABLE, BenchRow, create_schema
from .server import create_database, drop_database, is_server, redact
from .stats import percentile
from .summary import median_range, rotated
from .sysinfo import system_info
from .units import parse_scale

MODES = ("orm_all", "orm_yield", "load_only", "core", "fetchmany", "stream")
PAGES = (1, 1_000, 10_000)
PAGE_SIZE = 100


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space made at exec; ru_maxrss would carry the
    parent's peak over from the fork that started us."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_all(db: str, mode: str, config: str = "baseline") -> dict[str, Any]:
    """Read every row one way, touching one value per row; runs in its own process (see main)."""
    engine = open_engine(config_named(config), db)
    stmt = select(BenchRow)
    before = memory_breakdown()["rss_mb"] or 0.0
    began = time.perf_counter()
    total = 0
    with Session(engine) as session:
        if mode == "orm_all":
            total = sum(r.entity_id for r in session.scalars(stmt).all())
        elif mode == "orm_yield":
            total = sum(r.entity_id for r in session.scalars(stmt.execution_options(yield_per=1000)))
        elif mode == "load_only":
            narrow = stmt.options(load_only(BenchRow.row_id, BenchRow.entity_id, BenchRow.status))
            total = sum(r.entity_id for r in session.scalars(narrow.execution_options(yield_per=1000)))
        elif mode == "core":
            total = sum(r.entity_id for r in session.connection().execute(select(TABLE)).all())
        elif mode == "fetchmany":
            cursor = session.connection().connection.dbapi_connection.cursor()  # psycopg: client-side, all rows
            cursor.execute("SELECT row_id, tenant_id, entity_id FROM bench_rows")
            while batch := cursor.fetchmany(1000):
                total += sum(r[2] for r in batch)
            cursor.close()
        elif mode == "stream":
            total = sum(r.entity_id for r in turboalchemy.stream(session, stmt, batch_size=1000))
        else:
            raise ValueError(f"unknown read mode {mode!r}")
    seconds = time.perf_counter() - began
    engine.dispose()
    return {"mode": mode, "seconds": seconds, "checksum": total, "rss_before_mb": before, "peak_rss_mb": _peak_rss_mb()}


def page_latencies(db: str, repeats: int = 7, config: str = "baseline") -> list[dict[str, Any]]:
    """Median latency of fetching page p by OFFSET and by keyset, for each p in PAGES, as ORM objects and as
    Core rows (the Core figures show the query alone; ORM ones add building 100 objects)."""
    engine = open_engine(config_named(config), db)
    out = []
    with Session(engine) as session:
        for kind, ordered in (
            ("orm", select(BenchRow).order_by(BenchRow.row_id)),
            ("core", select(TABLE).order_by(TABLE.c.row_id)),
        ):
            for page in PAGES:
                skip = (page - 1) * PAGE_SIZE
                after = None
                if skip:
                    last = session.scalar(select(TABLE.c.row_id).order_by(TABLE.c.row_id).offset(skip - 1).limit(1))
                    if last is None:
                        continue  # the table has fewer pages
                    after = (last,)
                target = session if kind == "orm" else session.connection()
                timings: dict[str, list[float]] = {"offset": [], "keyset": []}
                target.execute(ordered.offset(skip).limit(PAGE_SIZE)).all()  # warm: both read the same pages
                for _ in range(repeats):
                    session.expunge_all()
                    began = time.perf_counter()
                    result = target.execute(ordered.offset(skip).limit(PAGE_SIZE))
                    by_offset = list(result.scalars() if kind == "orm" else result)
                    timings["offset"].append((time.perf_counter() - began) * 1000)
                    session.expunge_all()
                    began = time.perf_counter()
                    by_key = turboalchemy.keyset_page(target, ordered, size=PAGE_SIZE, after=after)
                    timings["keyset"].append((time.perf_counter() - began) * 1000)
                    if [r.row_id for r in by_offset] != [r.row_id for r in by_key.rows]:
                        raise AssertionError(f"page {page}: keyset and OFFSET pages differ")
                for method, values in timings.items():
                    out.append(
                        {
                            "method": f"{method}_{kind}",
                            "page": page,
                            "latencies_ms": values,
                            "median_ms": percentile(values, 50),
                        }
                    )
    engine.dispose()
    return out


def _fill(db: str, rows: int, console: Console, config: str = "baseline") -> float:
    engine = open_engine(config_named(config), db)  # a new file: the configuration's page_size applies
    create_schema(engine)
    writer = PATHS["turbo"].open(engine)
    began = time.perf_counter()
    generator = RowGenerator()
    for chunk in generator.chunks(0, rows, 50_000, "insert"):
        writer.insert(chunk)
    writer.close()
    engine.dispose()
    seconds = time.perf_counter() - began
    console.print(f"filled {rows:,} rows in {seconds:.1f} s")
    return seconds


def _cell(
    mode: str,
    rows: int,
    seconds: float,
    latencies: list[float],
    peak: float,
    before: float,
    db: str,
    kind: str,
    repeat: int | None = None,
) -> dict[str, Any]:
    cell = results.new_cell(f"{mode}/{kind}", mode, kind, max(1, rows), 1, "fair", {})
    if repeat is not None:
        cell.update(id=f"{cell['id']}#{repeat}", repeat=repeat)
    event = {
        "phase": "read",
        "rows": max(1, rows),
        "segment_rows": max(1, rows),
        "wall_s": seconds,
        "generation_s": 0.0,
        "write_s": seconds,
        "batch_latencies_ms": latencies,
        "errors": {"locked": 0, "integrity": 0, "other": 0},
        "retries": 0,
        "memory": {"rss_mb": peak, "rss_anon_mb": None, "rss_file_mb": None, "sqlite_heap_mb": None},
        "files": {"db_bytes": os.path.getsize(db) if not is_server(db) else 0, "wal_bytes": 0, "shm_bytes": 0},
        "peak_rss_mb": peak,
    }
    results.add_checkpoint(cell, event)
    cell["rss_growth_mb"] = round(peak - before, 1)
    cell["status"] = "done"
    cell["verification"] = {
        "passed": True,
        "row_count": rows,
        "expected_rows": rows,
        "quick_check": "ok",
        "problems": [],
    }
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sqlite_bench.reads", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=parse_scale, default=1_000_000, help="rows in the table (e.g. 100K, 1M)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--output-dir", default="results/reads")
    parser.add_argument("--work-dir", default=None, help="where the database goes (default: a temporary dir)")
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="read from a fresh database on this PostgreSQL server instead of an SQLite file",
    )
    parser.add_argument(
        "--config",
        default="baseline",
        help="the SQLite set-up: one of the study's configurations, optionally +PRAGMA=value (e.g. baseline+page_size=8192)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every full read, interleaved")
    parser.add_argument("--one", nargs=3, metavar=("DB", "MODE", "CONFIG"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(read_all(*args.one)))
        return 0
    try:
        config_named(args.config)
    except ValueError as exc:
        parser.error(str(exc))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    modes = [m for m in args.modes.split(",") if m]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    console = Console()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.TemporaryDirectory(prefix="reads-", dir=args.work_dir)
    db = create_database(args.db, "reads") if args.db else str(Path(work.name) / "reads.db")
    _fill(db, args.rows, console, args.config)
    command = "python -m sqlite_bench.reads " + shlex.join(argv if argv is not None else sys.argv[1:])
    cells = []
    for run in range(1, args.repeat + 1):
        for mode in rotated(modes, run):
            console.print(f"reading {args.rows:,} rows: {mode} ...", end=" ")
            child = subprocess.run(
                [sys.executable, "-m", "sqlite_bench.reads", "--one", db, mode, args.config],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(child.stdout.strip().splitlines()[-1])
            repeat = run if args.repeat > 1 else None
            cells.append(
                _cell(mode, args.rows, r["seconds"], [], r["peak_rss_mb"], r["rss_before_mb"], db, "full-read", repeat)
            )
            console.print(
                f"{args.rows / r['seconds']:,.0f} rows/s, peak RSS +{r['peak_rss_mb'] - r['rss_before_mb']:,.0f} MB"
            )
    timed: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeat):
        for page in page_latencies(db, config=args.config):
            timed.setdefault((page["method"], page["page"]), []).extend(page["latencies_ms"])
    for (method, page_number), latencies in timed.items():
        cells.append(_cell(method, PAGE_SIZE, sum(latencies) / 1000, latencies, 0.0, 0.0, db, f"page_{page_number}"))
        console.print(f"page {page_number:,} by {method}: {percentile(latencies, 50):.2f} ms")
    data = results.new_results(
        "reads",
        command,
        {
            "scales": [args.rows],
            "phases": ["read"],
            "seed": 0,
            "sample_interval": 0,
            "instrumented": False,
            "max_retries": 0,
            "rows": args.rows,
            "page_size": PAGE_SIZE,
            "repeat": args.repeat,
        },
        system_info(work.name),
        cells,
    )
    data["settings"]["db_url"] = redact(db) if args.db else None
    work.cleanup()
    if args.db:
        drop_database(db)
    return publish(data, out, console, print_table)


def full_reads(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per full-read way, over its runs: (median, min, max) of rows/s and of peak RSS growth, in the order the
    ways first ran."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in data["cells"]:
        if c["config"] == "full-read" and c.get("checkpoints"):
            groups.setdefault(c["path"], []).append(c)

    return [
        {
            "mode": mode,
            "runs": len(runs),
            "rate": median_range([c["checkpoints"][0]["segment"]["rows_per_s"] for c in runs]),
            "growth_mb": median_range([c.get("rss_growth_mb", 0.0) for c in runs]),
        }
        for mode, runs in groups.items()
    ]


def print_table(data: dict[str, Any], console: Console) -> None:
    repeated = (data["settings"].get("repeat") or 1) > 1
    table = Table(title=f"reading {data['settings']['rows']:,} rows" + (": median (range)" if repeated else ""))
    for name in ("mode", "rows/s", "peak RSS growth"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for r in full_reads(data):
        rate, growth = r["rate"], r["growth_mb"]
        table.add_row(
            r["mode"],
            f"{rate[0]:,.0f}" + (f" ({rate[1]:,.0f}–{rate[2]:,.0f})" if repeated else ""),
            f"{growth[0]:,.0f} MB" + (f" ({growth[1]:,.0f}–{growth[2]:,.0f})" if repeated else ""),
        )
    console.print(table)
    pages = Table(title=f"page latency ({data['settings']['page_size']} rows a page, median)")
    for name in ("page", "as", "OFFSET ms", "keyset ms", "keyset speed-up"):
        pages.add_column(name, justify="right")
    by = {
        (c["path"], c["config"]): percentile(c["checkpoints"][0]["batch_latencies_ms"], 50)
        for c in data["cells"]
        if c["config"].startswith("page_")
    }
    for kind in ("orm", "core"):
        for page in PAGES:
            o, k = by.get((f"offset_{kind}", f"page_{page}")), by.get((f"keyset_{kind}", f"page_{page}"))
            if o is not None and k is not None:
                pages.add_row(f"{page:,}", kind, f"{o:,.2f}", f"{k:,.2f}", f"{o / k:,.0f}×")
    console.print(pages)


if __name__ == "__main__":
    sys.exit(main())
