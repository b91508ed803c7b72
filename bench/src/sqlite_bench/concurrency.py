"""`python -m sqlite_bench.concurrency`: many writers, one row per write, three ways of sharing SQLite.

  sqlite3     each thread has its own sqlite3 connection and commits every write: the engine's own limit
  connection  each thread has its own SQLAlchemy connection and commits every write (the common default)
  pool        the threads share one SQLAlchemy QueuePool (one connection per writer), commit per write
  queue       every write goes through one turboalchemy.WriteQueue (one writer at a time, group commit)

All four run the same INSERT of one row; the last three take it as the same SQLAlchemy text().

Each cell (mode x writer count) runs in a process of its own on a fresh database with the chosen profile, for
--ops writes or, with --seconds, for that long; writes/s, per-write latency percentiles and lock errors go into
the harness's results JSON and a table. With --repeat N every cell runs N times, interleaved (run 1 of every
cell, then run 2, ...; the modes' order rotated from run to run), and the table shows medians and ranges.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

import turboalchemy
from turboalchemy import Profile

from . import results
from .cell import file_sizes
from .configs import ALL_PROFILES as PROFILES
from .configs import profile_named
from .monitor import memory_breakdown
from .runner import publish, wide_console
from .stats import percentile
from .summary import median_range, range_text, rotated, verdict
from .sysinfo import system_info

MODES = ("sqlite3", "connection", "pool", "queue")
_CREATE = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL)"
)
_INSERT = "INSERT INTO events (writer, seq, payload) VALUES (:writer, :seq, :payload)"
_INSERT_QMARK = "INSERT INTO events (writer, seq, payload) VALUES (?, ?, ?)"
_PAYLOAD = "x" * 100

WriteFn = Callable[[int, int], None]


def _is_lock(exc: BaseException) -> bool:
    return isinstance(exc, turboalchemy.DatabaseLockedError) or "locked" in str(exc) or "busy" in str(exc).lower()


class _Mode:
    """Opens per-mode resources, gives each writer thread a `write(writer, seq)` function, and closes."""

    def __init__(self, mode: str, db: str, profile: Profile, writers: int) -> None:
        self.mode, self.db, self.profile = mode, db, profile
        self.engine: sqlalchemy.Engine | None = None
        self.queue: turboalchemy.WriteQueue | None = None
        if mode in ("pool", "connection"):
            self.engine = sqlalchemy.create_engine(
                f"sqlite:///{db}", pool_size=writers, max_overflow=0, connect_args={"check_same_thread": False}
            )
            profile.install(self.engine)
        elif mode == "queue":
            # the stdlib's SQLite, as the sqlite3 mode it is compared with
            self.engine = turboalchemy.create_engine(f"sqlite:///{db}", profile, driver="stdlib")
            self.queue = turboalchemy.WriteQueue(self.engine)

    def writer(self) -> tuple[WriteFn, Callable[[], None]]:
        if self.mode == "connection":
            assert self.engine is not None
            own = self.engine.connect()  # held by this thread for the whole run
            insert = text(_INSERT)

            def write(w: int, seq: int) -> None:
                with own.begin():
                    own.execute(insert, {"writer": w, "seq": seq, "payload": _PAYLOAD})

            return write, own.close
        if self.mode == "sqlite3":
            conn = sqlite3.connect(self.db, check_same_thread=False)
            self.profile.apply(conn)

            def write(w: int, seq: int) -> None:
                try:
                    conn.execute(_INSERT_QMARK, (w, seq, _PAYLOAD))
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise

            return write, conn.close
        if self.mode == "pool":
            engine = self.engine
            assert engine is not None
            stmt = text(_INSERT)

            def write(w: int, seq: int) -> None:
                with engine.begin() as c:
                    c.execute(stmt, {"writer": w, "seq": seq, "payload": _PAYLOAD})

            return write, lambda: None
        queue = self.queue
        assert queue is not None
        stmt = text(_INSERT)
        return (lambda w, seq: queue.execute(stmt, {"writer": w, "seq": seq, "payload": _PAYLOAD})), lambda: None

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()
        if self.engine is not None:
            self.engine.dispose()


def run_cell(
    mode: str, writers: int, ops: int, profile: Profile, work_dir: str, seconds: float | None = None
) -> dict[str, Any]:
    """Run `ops` single-row writes split across `writers` threads (or, with `seconds`, as many as the threads
    write in that time); return the checkpoint event."""
    db = str(Path(work_dir) / f"{mode}-{writers}-{time.monotonic_ns()}.db")
    setup = sqlite3.connect(db)
    profile.apply(setup)
    setup.execute(_CREATE)
    setup.commit()
    setup.close()
    m = _Mode(mode, db, profile, writers)
    per_writer = [ops // writers + (1 if i < ops % writers else 0) for i in range(writers)]
    deadline = [float("inf")]  # set when the clock starts, with --seconds
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors: Counter[str] = Counter()
    retries = Counter[int]()
    failures: list[BaseException] = []
    began = [0.0]

    def start_clock() -> None:  # once every writer holds its connection, before any is let go
        began[0] = time.perf_counter()
        deadline[0] = began[0] + seconds if seconds is not None else float("inf")

    start = threading.Barrier(writers + 1, action=start_clock)

    def run(w: int) -> None:
        write, close = m.writer()
        clock = time.perf_counter
        mine = latencies[w]
        start.wait()
        try:
            seq = -1
            while True:
                seq += 1
                if (seconds is None and seq >= per_writer[w]) or (seconds is not None and clock() >= deadline[0]):
                    break
                while True:
                    t0 = clock()
                    try:
                        write(w, seq)
                    except Exception as exc:  # a lock error: count it and write the same row again
                        errors["locked" if _is_lock(exc) else "other"] += 1
                        if not _is_lock(exc):
                            raise
                        retries[w] += 1
                        continue
                    mine.append((clock() - t0) * 1000)
                    break
        except BaseException as exc:  # a writer that stops early fails the cell, it does not just write less
            failures.append(exc)
        finally:
            close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began[0]
    m.close()
    if failures:
        raise RuntimeError(f"{len(failures)} writer(s) stopped: {type(failures[0]).__name__}: {failures[0]}")
    ops = sum(len(per) for per in latencies)
    check = sqlite3.connect(db)
    stored = (
        *check.execute("SELECT count(*), count(DISTINCT writer || ':' || seq) FROM events").fetchone(),
        check.execute("PRAGMA quick_check").fetchone()[0],
    )
    check.close()
    sizes = file_sizes(db)
    for suffix in ("", "-wal", "-shm"):  # a run of many cells must not fill the work folder (a tmpfs is RAM)
        Path(db + suffix).unlink(missing_ok=True)
    flat = [x for per in latencies for x in per]
    return {
        "phase": "insert",
        "rows": ops,
        "segment_rows": ops,
        "wall_s": elapsed,
        "generation_s": 0.0,
        "write_s": elapsed,
        "batch_latencies_ms": [round(x, 4) for x in flat],
        "errors": {"locked": errors["locked"], "integrity": 0, "other": errors["other"]},
        "retries": sum(retries.values()),
        "memory": memory_breakdown(),
        "files": sizes,
        "peak_rss_mb": memory_breakdown()["rss_mb"],
        "stored": stored,
        "pid": os.getpid(),
    }


def run_cell_in_process(
    mode: str, writers: int, ops: int, profile: Profile, work_dir: str, seconds: float | None = None
) -> dict[str, Any]:
    """run_cell in a fresh process of its own (spawned, so no state of earlier cells carries over)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
        return one.submit(run_cell, mode, writers, ops, profile, work_dir, seconds).result()


def _row(cell: dict[str, Any]) -> dict[str, Any]:
    cp = cell["checkpoints"][-1]
    lat = cp["batch_latencies_ms"]
    return {
        "mode": cell["path"],
        "writers": cell["writers"],
        "repeat": cell.get("repeat"),
        "rate": cp["segment"]["rows_per_s"],
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "p999": percentile(lat, 99.9),
        "locked": cp["errors"]["locked"],
    }


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per done cell, with writes/s as a multiple of a connection per thread at the same writer count in
    the same run of a --repeat."""
    found = [_row(c) for c in data["cells"] if c["status"] == "done"]
    base = {(r["writers"], r["repeat"]): r["rate"] for r in found if r["mode"] == "connection"}
    for r in found:
        peer = base.get((r["writers"], r["repeat"]))
        r["vs_connection"] = r["rate"] / peer if peer else None
    return found


def spreads(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per mode and writer count over the runs: median and range of writes/s, of the ratio to a connection per
    thread (run by run) and of the latency percentiles; "win"/"loss" against the connections only when the
    writes/s ranges do not overlap."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows(data):
        groups.setdefault((r["mode"], r["writers"]), []).append(r)

    out = []
    for (mode, writers), runs in groups.items():
        rates = [r["rate"] for r in runs]
        base = [r["rate"] for r in groups.get(("connection", writers), [])]
        out.append(
            {
                "mode": mode,
                "writers": writers,
                "runs": len(runs),
                "rate": median_range(rates),
                "vs_connection": median_range([r["vs_connection"] for r in runs if r["vs_connection"]]),
                "against_connection": verdict(rates, base) if base and mode != "connection" else "-",
                "p50": median_range([r["p50"] for r in runs]),
                "p99": median_range([r["p99"] for r in runs]),
                "p999": median_range([r["p999"] for r in runs]),
                "locked": sum(r["locked"] for r in runs),
            }
        )
    return out


def print_table(data: dict[str, Any], console: Console) -> None:
    settings = data["settings"]
    size = f"{settings['seconds']:g} s per cell" if settings.get("seconds") else f"{settings['ops']:,} writes per cell"
    repeated = (settings.get("repeat") or 1) > 1
    table = Table(
        title=f"single-row writes, profile {settings['profile']} ({size}"
        + (f", {settings['repeat']} interleaved runs: median (range))" if repeated else ")"),
        caption="vs conn.: writes/s against a SQLAlchemy connection per thread at the same writer count, run by run",
    )
    names = ["mode", "writers", "writes/s", "vs conn."] + (["verdict"] if repeated else [])
    for name in [*names, "p50 ms", "p99 ms", "p99.9 ms", "locked"]:
        table.add_column(name, justify="left" if name in ("mode", "verdict") else "right", no_wrap=True)
    if repeated:
        for r in spreads(data):
            table.add_row(
                r["mode"],
                str(r["writers"]),
                range_text(r["rate"], ",.0f"),
                range_text(r["vs_connection"], ".2f", "x"),
                r["against_connection"],
                f"{r['p50'][0]:.2f}",  # latencies: medians over the runs (each run's in the results file)
                f"{r['p99'][0]:.2f}",
                f"{r['p999'][0]:.2f}",
                str(r["locked"]),
            )
    else:
        for r in rows(data):
            table.add_row(
                r["mode"],
                str(r["writers"]),
                f"{r['rate']:,.0f}",
                "-" if r["vs_connection"] is None else f"{r['vs_connection']:.2f}x",
                f"{r['p50']:.2f}",
                f"{r['p99']:.2f}",
                f"{r['p999']:.2f}",
                str(r["locked"]),
            )
    console.print(table)


def plan(modes: list[str], writer_counts: list[int], profile: str, pragmas: dict[str, Any], repeat: int) -> list[Any]:
    """Every (mode, writers) cell; with repeat > 1 run 1 of every cell, then run 2, ..., the modes' order rotated
    by one from run to run so that no mode always runs first."""
    cells = []
    for run in range(1, repeat + 1):
        for n in writer_counts:
            for m in rotated(modes, run):
                cell = results.new_cell(f"{m}/{profile}/w{n}", m, profile, 1, n, "fair", dict(pragmas))
                if repeat > 1:
                    cell.update(id=f"{cell['id']}#{run}", repeat=run)
                cells.append(cell)
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sqlite_bench.concurrency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--writers", default="1,4,16,64", help="comma list of writer-thread counts")
    parser.add_argument("--ops", type=int, default=20_000, help="single-row writes per cell, split across writers")
    parser.add_argument(
        "--profile",
        default="production",
        help=f"PRAGMA profile: one of {', '.join(sorted(PROFILES))}, optionally +PRAGMA=value (production+page_size=16384)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="run each cell this long instead of for --ops writes"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every cell, interleaved")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--output-dir", default="results/concurrency", help="where results.json is written")
    parser.add_argument("--work-dir", default=None, help="where the databases go (default: a temporary dir)")
    args = parser.parse_args(argv)
    writer_counts = [int(w) for w in args.writers.split(",") if w]
    modes = [m for m in args.modes.split(",") if m]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.repeat < 1 or (args.seconds is not None and args.seconds <= 0):
        parser.error("--repeat must be at least 1 and --seconds positive")
    try:
        profile = profile_named(args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    console = wide_console()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.TemporaryDirectory(prefix="concurrency-", dir=args.work_dir)
    command = "python -m sqlite_bench.concurrency " + shlex.join(argv if argv is not None else sys.argv[1:])
    cells = plan(modes, writer_counts, args.profile, dict(profile.pragmas), args.repeat)
    data = results.new_results(
        "concurrency",
        command,
        {
            "scales": [args.ops],
            "phases": ["insert"],
            "seed": 0,
            "sample_interval": 0,
            "instrumented": False,
            "max_retries": 0,
            "ops": args.ops,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "profile": args.profile,
        },
        system_info(work.name),
        cells,
    )
    for cell in cells:
        console.print(f"[bold]{cell['path']}[/] x {cell['writers']} writers ...", end=" ")
        cell["status"], cell["started_at"] = "running", results.utc_now()
        try:
            event = run_cell_in_process(cell["path"], cell["writers"], args.ops, profile, work.name, args.seconds)
        except Exception as exc:
            cell["status"], cell["error"] = "failed", f"{type(exc).__name__}: {exc}"
            console.print(f"[red]failed: {cell['error']}[/]")
            continue
        count, distinct, quick = event.pop("stored")
        cell["pid"] = event.pop("pid")
        written = event["rows"]  # every write a thread saw committed (--ops of them without --seconds)
        problems = [f"{count - distinct} writes stored twice"] if distinct != count else []
        problems += [f"stored {count} of {written} writes"] if count != written else []
        problems += [f"quick_check: {quick}"] if quick != "ok" else []
        cell["verification"] = {
            "passed": not problems,
            "row_count": count,
            "expected_rows": written,
            "quick_check": quick,
            "problems": problems,
        }
        checkpoint = results.add_checkpoint(cell, event)
        cell["status"] = "done" if not problems else "failed"
        cell["finished_at"] = results.utc_now()
        console.print(
            f"{checkpoint['segment']['rows_per_s']:,.0f} writes/s, {event['errors']['locked']} lock errors"
            + ("" if not problems else f" [red]{'; '.join(problems)}[/]")
        )
        results.write_atomic(out / results.FILENAME, data)
    work.cleanup()
    return publish(data, out, console, print_table)


if __name__ == "__main__":
    sys.exit(main())
