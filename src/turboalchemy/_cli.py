"""`turboalchemy ...`: a thin command line over the library.

Exit codes: 0 fine, 1 the command worked and found a problem (a red flag), 2 it could not do its job.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator

from sqlalchemy import exc as sa_exc

from turboalchemy import _driver
from turboalchemy._sqlite import database_path, open_file
from turboalchemy._tools.advise import Advice, advise
from turboalchemy._tools.backup import backup as run_backup
from turboalchemy._tools.health import health
from turboalchemy._tools.migrate import migrate as run_migrate
from turboalchemy._tools.migrate import status
from turboalchemy.errors import TurboAlchemyError


def _fail(command: str, exc: BaseException | str) -> int:
    print(f"turboalchemy {command}: {exc}", file=sys.stderr)
    return 2


def doctor(args: argparse.Namespace) -> int:
    try:
        report = health(args.database)
    except (OSError, ValueError, TurboAlchemyError, *_driver.DatabaseError) as exc:  # type: ignore[misc]
        return _fail("doctor", exc)
    try:
        found: list[Advice] | None = advise(args.database)
        unavailable = None
    except _driver.DatabaseError as exc:  # a damaged file: the health report already says so
        found, unavailable = None, str(exc)
    if args.format == "json":
        advice = None if found is None else [dataclasses.asdict(item) for item in found]
        print(json.dumps({"database": args.database, "health": report.as_dict(), "advice": advice}, indent=2))
        return 0 if report.ok and found is not None else 1
    print(f"turboalchemy doctor {args.database}\n")
    print(report)
    if found is None:
        print(f"\nwrite-performance advice: not available ({unavailable})")
        return 1
    print(f"\nwrite-performance advice ({len(found)} item{'s' if len(found) != 1 else ''}):")
    for item in found:
        print(f"\n{item}")
    if not found:
        print("  none: keys, indexes and cache look right for fast writes")
    return 0 if report.ok else 1


def backup(args: argparse.Namespace) -> int:
    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  {done:,}/{total:,} pages ({done / max(total, 1):.0%})", end="", file=sys.stderr, flush=True)

    try:
        report = run_backup(
            args.database,
            args.dest,
            method=args.method,
            progress=progress,
            pages_per_step=args.pages_per_step,
            overwrite=args.overwrite,
            force=args.force,
        )
    except (OSError, TurboAlchemyError) as exc:
        return _fail("backup", exc)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(report)
    return 0


def migrate(args: argparse.Namespace) -> int:
    try:
        if args.list:
            print(status(args.database, args.directory))
            return 0
        report = run_migrate(
            args.database,
            args.directory,
            dry_run=args.dry_run,
            to=args.to,
            check=not args.no_check,
            progress=lambda m: print(f"  applied {m.version:04d} {m.name}", file=sys.stderr),
        )
    except (OSError, TurboAlchemyError) as exc:
        return _fail("migrate", exc)
    print(report)
    return 0


def checkpoint(args: argparse.Namespace) -> int:
    path = database_path(args.database, "checkpoint")
    try:
        with open_file(path, read_only=False) as conn:  # type: ignore[arg-type]
            busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({args.mode.upper()})").fetchone()  # mode: a choice
    except (OSError, *_driver.Error, TurboAlchemyError) as exc:  # type: ignore[misc]
        return _fail("checkpoint", exc)
    if log == -1:
        print(f"{path} is not in WAL mode: nothing to checkpoint")
        return 0
    print(
        f"{args.mode} checkpoint of {path}: {done} of {log} WAL frames copied into the database"
        + (" (a reader or writer was busy: run again when it finishes)" if busy else "")
    )
    return 1 if busy else 0


def copy(args: argparse.Namespace) -> int:
    from turboalchemy._engine import create_engine
    from turboalchemy._tools.copy import copy_database

    metadata = None
    if args.models:
        module_name, _, attribute = args.models.partition(":")
        try:
            import importlib
            import os

            if os.getcwd() not in sys.path:  # the console script's path lacks the folder it was run from
                sys.path.insert(0, os.getcwd())
            found = getattr(importlib.import_module(module_name), attribute or "metadata")
        except (ImportError, AttributeError) as exc:
            return _fail("copy", f"--models {args.models}: {exc}")
        metadata = getattr(found, "metadata", found)
    try:
        source, dest = create_engine(_url(args.source)), create_engine(_url(args.dest))
        with _progress_bars() as progress:
            report = copy_database(
                source,
                dest,
                metadata=metadata,
                tables=args.tables or None,
                chunk_size=args.chunk_size,
                resume=args.resume,
                progress=progress,
            )
    except (OSError, TurboAlchemyError) as exc:
        return _fail("copy", exc)
    except sa_exc.DBAPIError as exc:  # a server that cannot be reached, a refused statement: the driver's words
        return _fail("copy", f"{type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0]}")
    except sa_exc.SQLAlchemyError as exc:
        return _fail("copy", str(exc).splitlines()[0])
    print(report)
    return 0


@contextlib.contextmanager
def _progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback for copy: rich's bars with the `cli` extra installed, else a line per table on stderr."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
    except ImportError:
        finished: set[str] = set()

        def plain(table: str, done: int, total: int) -> None:
            if done >= total and table not in finished:
                finished.add(table)
                print(f"  {table}: {done:,} rows", file=sys.stderr)

        yield plain
        return
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bars.add_task(table, total=total)
            bars.update(tasks[table], completed=done)

        yield progress


def _url(text: str) -> str:
    """A URL as given, or a path to an SQLite file."""
    return text if "://" in text else f"sqlite:///{text}"


def build_parser() -> argparse.ArgumentParser:
    """The `turboalchemy` command line (docs/reference/cli.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="turboalchemy", description="turboalchemy's tools for SQLite databases")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "doctor", help="report a database's health and what slows its writes, with the fixes (exit 1 on a red flag)"
    )
    check.add_argument("database", help="path to the SQLite file (opened read-only)")
    check.add_argument("--format", choices=["text", "json"], default="text", help="json: the report as data")
    check.set_defaults(run=doctor)

    save = commands.add_parser("backup", help="copy a live database safely, then check the copy")
    save.add_argument("database")
    save.add_argument("dest")
    save.add_argument(
        "--method",
        choices=["online", "vacuum"],
        default="online",
        help="online: stepped backup of one snapshot (default); vacuum: compacted copy (VACUUM INTO)",
    )
    save.add_argument("--pages-per-step", type=int, default=1024)
    save.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    save.add_argument(
        "--force", action="store_true", help="with --overwrite: replace DEST even while another process has it open"
    )
    save.set_defaults(run=backup)

    mig = commands.add_parser("migrate", help="apply numbered .sql files, tracked in PRAGMA user_version")
    mig.add_argument("database")
    mig.add_argument("directory")
    mig.add_argument("--list", action="store_true", help="show the version and pending files; change nothing")
    mig.add_argument("--dry-run", action="store_true", help="run the pending files and roll them back")
    mig.add_argument("--to", type=int, default=None, help="stop at this version")
    mig.add_argument("--no-check", action="store_true", help="skip PRAGMA quick_check after applying")
    mig.set_defaults(run=migrate)

    ckpt = commands.add_parser("checkpoint", help="copy the WAL into the database file")
    ckpt.add_argument("database")
    ckpt.add_argument("--mode", choices=["passive", "full", "restart", "truncate"], default="truncate")
    ckpt.set_defaults(run=checkpoint)

    move = commands.add_parser(
        "copy",
        help="copy every table to another database through the fast paths "
        "(SQLite -> PostgreSQL and back), checking row counts",
    )
    move.add_argument("source", help="URL (postgresql+psycopg://...) or SQLite path")
    move.add_argument("dest", help="URL or SQLite path; missing tables are created")
    move.add_argument("--tables", nargs="*", help="only these tables (default: all, in foreign-key order)")
    move.add_argument("--models", help="module:Base (or module:metadata) to create the destination's tables from")
    move.add_argument("--chunk-size", type=int, default=10_000)
    move.add_argument(
        "--resume",
        action="store_true",
        help="copy the rest of tables that hold only part of the source's rows (from the last key copied; "
        "a table without a one-column primary key is emptied and copied again)",
    )
    move.set_defaults(run=copy)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
