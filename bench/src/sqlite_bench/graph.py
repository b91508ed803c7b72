"""`python -m sqlite_bench.graph`: a graph of objects (parents holding new children), written by
`session.add_all` + commit, by `turboalchemy.bulk_insert(session, Parent, parents)` + commit (`turbo`: the
objects end persistent in the Session, as add_all leaves them) and by `bulk_insert(engine, ...)` (`turbo_engine`:
each chunk its own transaction, the objects detached with their keys).

Both build the same objects before the clock starts and write them through a Session on the same engine
set-up; each run is its own process on a fresh database, runs interleave across repeats, and after each run
a digest of every stored row (both tables, in key order) must equal the other path's, or the run fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import DateTime, ForeignKey, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from .sysinfo import system_info
from .units import parse_scale

MODES = ("add_all", "turbo", "turbo_engine")


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    children: Mapped[list[Child]] = relationship(back_populates="parent")


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(40))
    parent: Mapped[Parent] = relationship(back_populates="children")


def build(parents: int, children: int) -> list[Parent]:
    start = datetime(2024, 1, 1)
    return [
        Parent(
            name=f"parent {i}",
            created_at=start + timedelta(seconds=i),
            children=[Child(position=j, label=f"child {i}.{j}") for j in range(children)],
        )
        for i in range(parents)
    ]


def digest(url: str) -> str:
    """SHA-256 of every stored row of both tables, in key order, through a fresh connection."""
    engine = create_engine(url)
    h = hashlib.sha256()
    with engine.connect() as conn:
        for table in (Parent.__table__, Child.__table__):
            for row in conn.execute(select(table).order_by(table.c.id)):
                h.update(repr(tuple(row)).encode())
    engine.dispose()
    return h.hexdigest()


def run_one(mode: str, url: str, parents: int, children: int) -> dict[str, Any]:
    """In the child process: build the objects, then time the write and the commit."""
    import turboalchemy

    engine = create_engine(url)
    Base.metadata.create_all(engine)
    objects = build(parents, children)
    with Session(engine) as session:
        began = time.perf_counter()
        if mode == "add_all":
            session.add_all(objects)
        elif mode == "turbo":
            turboalchemy.bulk_insert(session, Parent, objects)  # the Session's transaction; objects persistent in it
        else:
            turboalchemy.bulk_insert(engine, Parent, objects)  # each chunk its own transaction; objects detached
        session.commit()
        seconds = time.perf_counter() - began
    engine.dispose()
    return {"mode": mode, "seconds": seconds}


def _database(server: str | None, work: str, name: str) -> str:
    if server is None:
        return f"sqlite:///{Path(work) / (name + '.db')}"
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server)
    with psycopg.connect(
        host=base.host, port=base.port, user=base.username, dbname=base.database, autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False)


def _drop(server: str | None, url: str) -> None:
    if server is None:
        os.remove(url.removeprefix("sqlite:///"))
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base, name = make_url(server), make_url(url).database
    with psycopg.connect(
        host=base.host, port=base.port, user=base.username, dbname=base.database, autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sqlite_bench.graph", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parents", type=parse_scale, default=100_000, help="parent objects (e.g. 10K, 100K)")
    parser.add_argument("--children", type=int, default=10, help="new children per parent")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of every mode")
    parser.add_argument("--db", metavar="URL", default=None, help="a PostgreSQL server instead of SQLite files")
    parser.add_argument("--output-dir", default="results/graph")
    parser.add_argument("--one", nargs=4, metavar=("MODE", "URL", "PARENTS", "CHILDREN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        mode, url, parents, children = args.one
        print(json.dumps(run_one(mode, url, int(parents), int(children))))
        return 0
    console = Console()
    rows = args.parents * (1 + args.children)
    work = tempfile.TemporaryDirectory(prefix="graph-")
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        digests = {}
        for mode in MODES:
            url = _database(args.db, work.name, f"graph_{mode}_{repeat}")
            child = subprocess.run(
                [sys.executable, "-m", "sqlite_bench.graph", "--one", mode, url, str(args.parents), str(args.children)],
                capture_output=True,
                text=True,
                check=True,
            )
            run = json.loads(child.stdout.strip().splitlines()[-1])
            digests[mode] = run["digest"] = digest(url)
            run["repeat"] = repeat
            run["rows_per_s"] = rows / run["seconds"]
            runs.append(run)
            _drop(args.db, url)
            console.print(
                f"run {repeat + 1}/{args.repeat} {mode}: {run['seconds']:.2f} s, {run['rows_per_s']:,.0f} rows/s"
            )
        if len(set(digests.values())) != 1:
            console.print(f"[red]stored rows differ between modes: {digests}[/red]")
            return 1
    work.cleanup()
    data = {
        "benchmark": "graph",
        "command": "python -m sqlite_bench.graph " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "settings": {
            "parents": args.parents,
            "children": args.children,
            "repeat": args.repeat,
            "backend": "postgresql" if args.db else "sqlite",
        },
        "system": system_info(tempfile.gettempdir()),  # git_commit ends in -dirty for a dirty tree
        "runs": runs,
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "graph.json").write_text(json.dumps(data, indent=2, default=str))
    print_table(data, console)
    console.print(f"results: {out / 'graph.json'}")
    return 0


def summary(data: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """Per mode: (median, min, max) of seconds; and '<mode> vs add_all': add_all seconds / the mode's, per repeat."""
    by: dict[str, list[float]] = {}
    for run in data["runs"]:
        by.setdefault(run["mode"], []).append(run["seconds"])
    out = {mode: (statistics.median(s), min(s), max(s)) for mode, s in by.items()}
    pairs = {}
    for run in data["runs"]:
        pairs.setdefault(run["repeat"], {})[run["mode"]] = run["seconds"]
    for mode in MODES[1:]:
        ratios = [p["add_all"] / p[mode] for p in pairs.values() if "add_all" in p and mode in p]
        if ratios:
            out[f"{mode} vs add_all"] = (statistics.median(ratios), min(ratios), max(ratios))
    return out


def print_table(data: dict[str, Any], console: Console) -> None:
    s = data["settings"]
    rows = s["parents"] * (1 + s["children"])
    table = Table(
        title=f"{s['parents']:,} parents x {s['children']} children as instances ({rows:,} rows), {s['backend']}, "
        f"{s['repeat']} interleaved runs"
    )
    for name in ("path", "seconds (median, range)", "rows/s (median)"):
        table.add_column(name, justify="left" if name == "path" else "right")
    stats = summary(data)
    for mode in MODES:
        med, low, high = stats[mode]
        table.add_row(mode, f"{med:.2f} ({low:.2f}-{high:.2f})", f"{rows / med:,.0f}")
    for mode in MODES[1:]:
        if f"{mode} vs add_all" in stats:
            med, low, high = stats[f"{mode} vs add_all"]
            table.add_row(f"{mode} vs add_all", f"{med:.2f}x ({low:.2f}-{high:.2f}x)", "")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
