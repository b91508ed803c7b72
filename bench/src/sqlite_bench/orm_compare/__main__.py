"""`python -m sqlite_bench.orm_compare`: the same CRUD API over three async data layers, under HTTP load.

For each database it seeds users and their orders, then for each layer checks the API contract and runs one
cell per concurrency level, each in a fresh uvicorn process: the load generator drives a fixed mix
(50% read a user, 20% list a user's orders, 15% create, 10% update, 5% delete) for --duration or
--max-requests, and records req/s, p50/p90/p99, errors and the server's peak RSS into the results JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine

import turboalchemy

from .. import results
from ..runner import publish
from ..server import create_database, drop_database, redact
from ..sysinfo import system_info
from ..units import parse_scale
from . import decision_rows
from .app import LAYERS, ORDERS, USERS, create_schema
from .contract import check
from .loadgen import Endpoint, run_load

ERROR_LIMIT = 0.001  # a cell with more server errors than this is flagged in the report


def mix(users: int) -> list[Endpoint]:
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


def seed(url: str, users: int) -> None:
    """The tables, `users` users and three orders each, written with turboalchemy's fast path."""
    create_schema(url)
    engine = create_engine(url)
    turboalchemy.bulk_insert(
        engine,
        USERS,
        ({"id": i, "name": f"user {i}", "email": f"user{i}@seed.test"} for i in range(1, users + 1)),
        chunk_size=10_000,
    )
    turboalchemy.bulk_insert(
        engine,
        ORDERS,
        (
            {"id": i, "user_id": 1 + i % users, "item": f"item {i}", "cents": i % 10_000}
            for i in range(1, 3 * users + 1)
        ),
        chunk_size=10_000,
    )
    if engine.dialect.name == "postgresql":  # move the serial keys past the seeded ids
        with engine.begin() as conn:
            for table in ("users", "orders"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
    engine.dispose()


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


def _duration(text: str) -> float:
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1:] in "sm" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sqlite_bench.orm_compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both, comma-separated")
    parser.add_argument("--layers", default=",".join(LAYERS), help=f"comma list of {', '.join(LAYERS)}")
    parser.add_argument("--concurrency", default="50,200", help="connections of the load generator, comma list")
    parser.add_argument("--duration", type=_duration, default=30.0, help="per cell, e.g. 30s or 2m")
    parser.add_argument("--max-requests", type=parse_scale, default=10_000_000, help="per cell")
    parser.add_argument("--seed-users", type=parse_scale, default=100_000, help="users seeded (3 orders each)")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1/postgres",
        help="the PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--output-dir", default="results/orm_compare")
    args = parser.parse_args(argv)
    databases = [d for d in args.db.split(",") if d]
    layers = [layer for layer in args.layers.split(",") if layer]
    levels = [int(c) for c in args.concurrency.split(",") if c]
    if bad := [d for d in databases if d not in ("sqlite", "postgresql")] + [x for x in layers if x not in LAYERS]:
        parser.error(f"unknown database or layer: {', '.join(bad)}")
    console = Console()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.TemporaryDirectory(prefix="orm-compare-")
    command = "python -m sqlite_bench.orm_compare " + shlex.join(argv if argv is not None else sys.argv[1:])
    cells = [
        results.new_cell(f"{layer}/{db}/c{level}", layer, db, 1, level, "fair", {})
        for db in databases
        for layer in layers
        for level in levels
    ]
    data = results.new_results(
        "orm_compare",
        command,
        {
            "scales": [args.max_requests],
            "phases": ["http"],
            "seed": 1,
            "sample_interval": 0.2,
            "instrumented": True,
            "max_retries": 0,
            "duration_s": args.duration,
            "seed_users": args.seed_users,
            "mix": {e.name: e.weight for e in mix(1)},
        },
        system_info(work.name),
        cells,
    )
    for db in databases:
        for layer in layers:
            # every layer gets a freshly seeded database: earlier cells' creates and deletes never carry over
            url = (
                create_database(args.pg_url, f"compare_{layer}")
                if db == "postgresql"
                else f"sqlite:///{Path(work.name) / f'{layer}.db'}"
            )
            console.print(f"[bold]{db}[/] / {layer}: seeding {args.seed_users:,} users ...")
            seed(url, args.seed_users)
            problems = contract(layer, url)
            for level in levels:
                cell = next(c for c in cells if c["id"] == f"{layer}/{db}/c{level}")
                if problems:
                    cell.update(status="failed", error=f"API contract: {'; '.join(problems)}")
                    continue
                cell["started_at"] = results.utc_now()
                server, port = serve(layer, url)
                try:
                    result = asyncio.run(
                        run_load(
                            "127.0.0.1",
                            port,
                            mix(args.seed_users),
                            concurrency=level,
                            max_requests=args.max_requests,
                            duration_s=args.duration,
                            server_pid=server.pid,
                        )
                    )
                finally:
                    server.terminate()
                    server.wait(30)
                summary = result.summary()
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
                        "memory": {
                            "rss_mb": result.peak_rss_mb,
                            "rss_anon_mb": None,
                            "rss_file_mb": None,
                            "sqlite_heap_mb": None,
                        },
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
                    f"  c={level}: {summary['rate']:,.0f} req/s, p99 {summary['p99_ms']} ms, "
                    f"{result.server_errors} errors, peak RSS {summary['peak_rss_mb']} MB"
                )
                results.write_atomic(out / results.FILENAME, data)
            if db == "postgresql":
                drop_database(url)
    data["settings"]["pg_url"] = redact(args.pg_url) if "postgresql" in databases else None
    work.cleanup()
    return publish(data, out, console, print_table)


def print_table(data: dict[str, Any], console: Console) -> None:
    table = Table(title="CRUD API under load (req/s; latency per request)")
    for name in ("db", "conc.", "layer", "req/s", "× SQLAlchemy", "p50 ms", "p99 ms", "errors", "peak RSS MB"):
        table.add_column(name, justify="left" if name in ("db", "layer") else "right", no_wrap=True)
    for r in decision_rows(data):
        table.add_row(
            r["db"],
            str(r["concurrency"]),
            r["layer"],
            f"{r['rate']:,.0f}",
            "-" if r["vs_sqlalchemy"] is None else f"{r['vs_sqlalchemy']:.2f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['server_errors']}" + (" ⚑" if r["flagged"] else ""),
            f"{r['peak_rss_mb']}",
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
