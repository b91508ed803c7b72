"""`python -m sqlite_bench.orm_compare`: the same CRUD API over three async data layers, under HTTP load.

For each database it seeds users and their orders once, into a template; each layer must pass the API contract
(on its own copy). Then every cell (database x concurrency x layer, and with --repeat N every run of it, run 1 of
every cell before run 2, the layers' order rotated from run to run) starts from a fresh copy of the template and
a fresh uvicorn process, reads the layer's database settings back through the layer (GET /_setup) and records
them, and drives a fixed mix for --duration or --max-requests: req/s, p50/p90/p99, errors, the server's peak
RSS, and CPU per request of the server process, the load generator, PostgreSQL's processes and the whole machine.

Mixes: `crud` (50% read a user, 20% list a user's orders, 15% create, 10% update, 5% delete) and `article`
(the article's own: GET /users, /users/1, /orders, /orders/1 in equal shares, reads only). `--preset article`
runs the article's shape as stated: PostgreSQL, 500 connections, the article mix, 1M users and 10K orders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine

import turboalchemy

from .. import results
from ..runner import publish, wide_console
from ..server import create_database, drop_database, redact
from ..summary import rotated
from ..sysinfo import system_info
from ..units import parse_scale
from . import decision_rows, spread_cells, spreads
from .app import DESIGN, EQUAL, LAYERS, ORDERS, STATEMENTS, USERS, VARIANTS, create_schema, split_layer
from .contract import check
from .loadgen import Endpoint, run_load

ERROR_LIMIT = 0.001  # a cell with more server errors than this is flagged in the report

PRESETS: dict[str, dict[str, Any]] = {
    # the article's shape: PostgreSQL 16 there (15 here), wrk with 500 connections for 30 s, three iterations,
    # 1M users and 10K orders, GET /users, /users/1, /orders, /orders/1
    "article": {
        "db": "postgresql",
        "layers": ",".join(LAYERS),
        "concurrency": "500",
        "mix": "article",
        "seed_users": 1_000_000,
        "seed_orders": 10_000,
        "duration": 30.0,
        "repeat": 3,
    },
}


def crud_mix(users: int) -> list[Endpoint]:
    return [
        Endpoint("read", 50, lambda r: ("GET", f"/users/{r.randint(1, users)}", None)),
        Endpoint("orders", 20, lambda r: ("GET", f"/users/{r.randint(1, users)}/orders", None)),
        Endpoint(
            "create",
            15,
            lambda r: ("POST", "/users", {"name": "new user", "email": f"{r.getrandbits(64):x}@load.test"}),
        ),
        Endpoint(
            "update", 10, lambda r: ("PUT", f"/users/{r.randint(1, users)}", {"name": f"renamed {r.randint(1, 99)}"})
        ),
        Endpoint("delete", 5, lambda r: ("DELETE", f"/users/{r.randint(1, users)}", None)),
    ]


def article_mix(_users: int) -> list[Endpoint]:
    """The article's four endpoints in equal shares, at the fixed ids it requested."""
    return [
        Endpoint("users", 25, lambda r: ("GET", "/users", None)),
        Endpoint("user", 25, lambda r: ("GET", "/users/1", None)),
        Endpoint("orders", 25, lambda r: ("GET", "/orders", None)),
        Endpoint("order", 25, lambda r: ("GET", "/orders/1", None)),
    ]


MIXES = {"crud": crud_mix, "article": article_mix}


def seed(url: str, users: int, orders: int | None = None) -> None:
    """The tables, `users` users and `orders` orders (default three per user), written with turboalchemy's fast
    path."""
    create_schema(url)
    engine = create_engine(url)
    orders = 3 * users if orders is None else orders
    turboalchemy.bulk_insert(
        engine,
        USERS,
        ({"id": i, "name": f"user {i}", "email": f"user{i}@seed.test"} for i in range(1, users + 1)),
        chunk_size=10_000,
    )
    turboalchemy.bulk_insert(
        engine,
        ORDERS,
        ({"id": i, "user_id": 1 + i % users, "item": f"item {i}", "cents": i % 10_000} for i in range(1, orders + 1)),
        chunk_size=10_000,
    )
    if engine.dialect.name == "postgresql":  # move the serial keys past the seeded ids
        with engine.begin() as conn:
            for table in ("users", "orders"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    engine.dispose()


def _autocommit(url: str, sql: str) -> None:
    """One statement that cannot run in a transaction, on a PostgreSQL database: VACUUM ANALYZE of a freshly seeded
    template (no cell pays for its hint bits and statistics), or a CHECKPOINT before a cell's clock starts (the
    copy's writes are on disk, not in the cell's time)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


class Templates:
    """One seeded database per backend; every contract and every cell gets its own copy of it."""

    def __init__(self, work: Path, pg_url: str) -> None:
        self.work, self.pg_url = work, pg_url
        self.made: dict[str, str] = {}
        self.copies = 0

    def make(self, db: str, users: int, orders: int | None) -> None:
        if db == "postgresql":
            url = self.made[db] = create_database(self.pg_url, "compare_template")  # dropped by close() if seed fails
            seed(url, users, orders)
            _autocommit(url, "VACUUM ANALYZE")
        else:
            path = self.work / "template.db"
            url = f"sqlite:///{path}"
            seed(url, users, orders)
            with sqlite3.connect(path) as conn:  # WAL is a property of the file: set once, copied with it
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.close()
        self.made[db] = url

    def copy(self, db: str, layer: str) -> str:
        """A fresh copy for one layer: on SQLite a "+defaults" SQLAlchemy gets the rollback journal a file
        SQLAlchemy created has."""
        self.copies += 1
        if db == "postgresql":
            return create_database(self.pg_url, f"compare_{self.copies}", template=self.made[db])
        path = self.work / f"cell-{self.copies}.db"
        shutil.copyfile(self.work / "template.db", path)
        if split_layer(layer) == ("sqlalchemy", True):
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA journal_mode=DELETE").fetchall()
            conn.close()
        return f"sqlite:///{path}"

    def discard(self, url: str) -> None:
        if url.startswith("postgresql"):
            drop_database(url)
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        for db, url in self.made.items():
            if db == "postgresql":
                drop_database(url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(layer: str, url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "sqlite_bench.orm_compare.app", layer, url, str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"the {layer} server exited with {server.returncode}") from None
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the {layer} server did not listen within 30 s")


def read_setup(port: int) -> dict[str, Any]:
    """The database settings the layer reports through its own connections (GET /_setup)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_setup", timeout=30) as answer:
        return dict(json.loads(answer.read()))


def setup_problems(layer: str, db: str, found: dict[str, Any]) -> list[str]:
    """What keeps a cell from running on equal terms: an SQLite layer (not "+defaults") whose connections do not
    report the equal set-up."""
    if db != "sqlite" or split_layer(layer)[1]:
        return []
    wanted = EQUAL.expected(new_database=False)
    return [f"{k} is {found.get(k)!r}, not {v!r}" for k, v in wanted.items() if found.get(k) != v]


def contract(layer: str, url: str) -> list[str]:
    """Run the contract conversation in its own process (as the server runs) and return its problems."""
    code = (
        "import asyncio, json, sys; from sqlite_bench.orm_compare.contract import conversation; "
        "print(json.dumps(asyncio.run(conversation(sys.argv[1], sys.argv[2]))))"
    )
    out = subprocess.run([sys.executable, "-c", code, layer, url], capture_output=True, text=True)
    if out.returncode != 0:
        return [
            f"the conversation failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
        ]
    return check([tuple(pair) for pair in json.loads(out.stdout.strip().splitlines()[-1])])


class CpuClock:
    """CPU seconds spent during a cell by the server process, this process (the load generator), PostgreSQL's
    processes (those alive at the end: one that exits during the cell is not counted) and the whole machine
    (busy time of every core, whatever process it went to)."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.start = self._read()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))

    @staticmethod
    def _postgres() -> dict[int, float]:
        found = {}
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == "postgres":
                try:
                    t = proc.cpu_times()
                    found[proc.pid] = t.user + t.system
                except psutil.Error:
                    continue
        return found

    def _read(self) -> dict[str, Any]:
        t = self.server.cpu_times()
        return {
            "server": t.user + t.system,
            "client": time.process_time(),
            "postgres": self._postgres(),
            "machine": self._busy(),
        }

    def per_request(self, requests: int, postgres: bool) -> dict[str, float | None]:
        end = self._read()
        n = max(1, requests)
        database = sum(v - self.start["postgres"].get(pid, 0.0) for pid, v in end["postgres"].items())
        ms = {
            "server_ms": (end["server"] - self.start["server"]) * 1000 / n,
            "client_ms": (end["client"] - self.start["client"]) * 1000 / n,
            "database_ms": database * 1000 / n if postgres else None,
            "machine_ms": (end["machine"] - self.start["machine"]) * 1000 / n,
        }
        out: dict[str, float | None] = {k: None if v is None else round(v, 4) for k, v in ms.items()}
        cores = psutil.cpu_count() or 1
        # the most this mix could reach: the server on a core of its own, and every core busy at this cost
        out["server_bound_rps"] = round(1000 / ms["server_ms"]) if ms["server_ms"] else None
        out["machine_bound_rps"] = round(cores * 1000 / ms["machine_ms"]) if ms["machine_ms"] else None
        return out


def _duration(text: str) -> float:
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1:] in "sm" else float(text)


def plan(databases: list[str], layers: list[str], levels: list[int], repeat: int) -> list[dict[str, Any]]:
    """Every cell, interleaved: run 1 of every (database, concurrency, layer), then run 2, ...; within a run the
    layers' order is rotated by one from the run before, so no layer always goes first. "+defaults" layers are
    SQLite's only."""
    cells = []
    for run in range(1, repeat + 1):
        for db in databases:
            for level in levels:
                for layer in rotated(layers, run):
                    if db != "sqlite" and split_layer(layer)[1]:
                        continue
                    cell = results.new_cell(f"{layer}/{db}/c{level}", layer, db, 1, level, "fair", {})
                    if repeat > 1:
                        cell.update(id=f"{cell['id']}#{run}", repeat=run)
                    cells.append(cell)
    return cells


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sqlite_bench.orm_compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="a named shape (explicit options still override its values)"
    )
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both, comma-separated")
    parser.add_argument(
        "--layers",
        default=",".join(LAYERS),
        help=f"comma list of {', '.join(LAYERS + VARIANTS)} (+defaults: the layer's own SQLite set-up, SQLite only)",
    )
    parser.add_argument("--concurrency", default="50,200", help="connections of the load generator, comma list")
    parser.add_argument("--mix", choices=sorted(MIXES), default="crud", help="the requests' mix")
    parser.add_argument("--duration", type=_duration, default=30.0, help="per cell, e.g. 30s or 2m")
    parser.add_argument("--max-requests", type=parse_scale, default=10_000_000, help="per cell")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every cell, interleaved")
    parser.add_argument("--seed-users", type=parse_scale, default=100_000, help="users seeded")
    parser.add_argument("--seed-orders", type=parse_scale, default=None, help="orders seeded (default: 3 per user)")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1/postgres",
        help="the PostgreSQL server to create the benchmark databases on",
    )
    parser.add_argument("--output-dir", default="results/orm_compare")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    first, _ = parser.parse_known_args(argv)
    if first.preset:
        parser.set_defaults(**PRESETS[first.preset])
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.databases = [d for d in args.db.split(",") if d]
    args.layer_names = [layer for layer in args.layers.split(",") if layer]
    args.levels = [int(c) for c in args.concurrency.split(",") if c]
    bad = [d for d in args.databases if d not in ("sqlite", "postgresql")]
    bad += [x for x in args.layer_names if x not in LAYERS + VARIANTS]
    if bad:
        parser.error(f"unknown database or layer: {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parse_args(argv)
    console = wide_console()
    if not console.is_terminal:
        console.width = 180  # the decision table's ranges
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.TemporaryDirectory(prefix="orm-compare-")
    cells = plan(args.databases, args.layer_names, args.levels, args.repeat)
    endpoints = MIXES[args.mix](args.seed_users)
    data = results.new_results(
        "orm_compare",
        "python -m sqlite_bench.orm_compare " + shlex.join(argv),
        {
            "scales": [args.max_requests],
            "phases": ["http"],
            "seed": 1,
            "sample_interval": 0.2,
            "instrumented": True,
            "max_retries": 0,
            "duration_s": args.duration,
            "repeat": args.repeat,
            "seed_users": args.seed_users,
            "seed_orders": 3 * args.seed_users if args.seed_orders is None else args.seed_orders,
            "mix_name": args.mix,
            "mix": {e.name: e.weight for e in endpoints},
            "sqlite_setup": dict(EQUAL.pragmas),
            "statements": STATEMENTS,
            "design": DESIGN,
        },
        system_info(work.name),
        cells,
    )
    templates = Templates(Path(work.name), args.pg_url)
    try:
        problems: dict[tuple[str, str], list[str]] = {}
        for db in args.databases:
            console.print(f"[bold]{db}[/]: seeding {args.seed_users:,} users into the template ...")
            templates.make(db, args.seed_users, args.seed_orders)
            for layer in args.layer_names:
                if db != "sqlite" and split_layer(layer)[1]:
                    continue
                url = templates.copy(db, layer)
                try:
                    problems[(db, layer)] = contract(layer, url)
                except Exception as exc:
                    problems[(db, layer)] = [f"the contract could not run: {type(exc).__name__}: {exc}"]
                finally:
                    templates.discard(url)
        for cell in cells:
            layer, db = cell["path"], cell["config"]
            if problems[(db, layer)]:
                cell.update(status="failed", error=f"API contract: {'; '.join(problems[(db, layer)])}")
                continue
            try:
                run_cell(cell, templates, endpoints, args, console)
            except Exception as exc:  # a server that fails to start or answer: this cell failed, the run goes on
                cell.update(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=results.utc_now())
                console.print(f"  {cell['id']}: [red]failed: {cell['error']}[/]")
            results.write_atomic(out / results.FILENAME, data)
    finally:
        templates.close()
    data["settings"]["pg_url"] = redact(args.pg_url) if "postgresql" in args.databases else None
    work.cleanup()
    return publish(data, out, console, print_table)


def run_cell(
    cell: dict[str, Any], templates: Templates, endpoints: list[Endpoint], args: argparse.Namespace, console: Console
) -> None:
    layer, db, level = cell["path"], cell["config"], cell["writers"]
    url = templates.copy(db, layer)
    cell["started_at"] = results.utc_now()
    server: subprocess.Popen[bytes] | None = None
    try:
        server, port = serve(layer, url)
        found = read_setup(port)
        cell["setup"] = {
            "database": found,
            "design": DESIGN[split_layer(layer)[0]],
            "own_defaults": split_layer(layer)[1],
        }
        if wrong := setup_problems(layer, db, found):
            cell.update(status="failed", error=f"not on equal terms: {'; '.join(wrong)}")
            return
        if db == "postgresql":
            _autocommit(url, "CHECKPOINT")
        clock = CpuClock(server.pid)
        result = asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                endpoints,
                concurrency=level,
                max_requests=args.max_requests,
                duration_s=args.duration,
                server_pid=server.pid,
            )
        )
        cpu = clock.per_request(result.requests, db == "postgresql")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)
        templates.discard(url)
    summary = {**result.summary(), "cpu": cpu}
    latencies = [round(x, 3) for values in result.latencies_ms.values() for x in values]
    results.add_checkpoint(
        cell,
        {
            "phase": "http",
            "rows": max(1, result.requests),
            "segment_rows": max(1, result.requests),
            "wall_s": result.seconds,
            "generation_s": 0.0,
            "write_s": result.seconds,
            "batch_latencies_ms": latencies,
            "errors": {"locked": 0, "integrity": 0, "other": result.server_errors},
            "retries": 0,
            "memory": {"rss_mb": result.peak_rss_mb, "rss_anon_mb": None, "rss_file_mb": None, "sqlite_heap_mb": None},
            "files": {"db_bytes": 0, "wal_bytes": 0, "shm_bytes": 0},
            "peak_rss_mb": result.peak_rss_mb or 0.0,
        },
    )
    cell.update(
        http=summary,
        flagged=result.error_rate > ERROR_LIMIT,
        status="done",
        finished_at=results.utc_now(),
        verification={
            "passed": True,
            "row_count": result.requests,
            "expected_rows": result.requests,
            "quick_check": "not run (HTTP benchmark)",
            "problems": [],
        },
    )
    console.print(
        f"  {cell['id']}: {summary['rate']:,.0f} req/s, p99 {summary['p99_ms']} ms, {result.server_errors} errors, "
        f"server CPU {cpu['server_ms']} ms/request, peak RSS {summary['peak_rss_mb']} MB"
    )


def print_table(data: dict[str, Any], console: Console) -> None:
    repeated = (data["settings"].get("repeat") or 1) > 1
    table = Table(
        title="CRUD API under load (req/s; latency per request; CPU ms per request)"
        + (": median (range) of req/s over the runs, medians of the rest" if repeated else "")
    )
    names = ["db", "conc.", "layer"] + (["runs"] if repeated else [])
    names += ["req/s", "× SQLAlchemy"] + (["vs SQLAlchemy"] if repeated else [])
    names += ["server CPU", "machine CPU", "p50 ms", "p99 ms", "errors", "peak RSS MB"]
    for name in names:
        table.add_column(name, justify="left" if name in ("db", "layer", "vs SQLAlchemy") else "right", no_wrap=True)
    if repeated:
        for r in spreads(data):  # CPU and latency: medians over the runs (each run's figure is in the results)
            table.add_row(*spread_cells(r, latency_ranges=False))
    else:
        for r in decision_rows(data):
            table.add_row(
                r["db"],
                str(r["concurrency"]),
                r["layer"],
                f"{r['rate']:,.0f}",
                "-" if r["vs_sqlalchemy"] is None else f"{r['vs_sqlalchemy']:.2f}",
                "-" if r["server_cpu_ms"] is None else f"{r['server_cpu_ms']:.2f}",
                "-" if r["machine_cpu_ms"] is None else f"{r['machine_cpu_ms']:.2f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['server_errors']}" + (" ⚑" if r["flagged"] else ""),
                f"{r['peak_rss_mb']}",
            )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
