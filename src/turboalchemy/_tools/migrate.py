"""migrate: numbered `.sql` files applied in order, the schema version kept in `PRAGMA user_version`.

`0001_create_users.sql`, `0002_add_email.sql`, ...: a file's leading number is the version it brings the
database to. Each file runs, statement by statement, in one IMMEDIATE transaction together with its
`PRAGMA user_version` bump (the version lives in the database header, which the transaction writes) and its
row in the `turboalchemy_migrations` table, so a crash at any point leaves the schema, the version and the
record agreeing. A database newer than the newest file is refused: that code is older than the data it would
touch. A file numbered below the version that was never applied (a branch merged late) is refused too, naming
it: applied now it would run out of order, and skipped it would be lost without a word.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turboalchemy import _driver
from turboalchemy._sqlite import Target, database_path, open_file
from turboalchemy.errors import MigrationError, translate

_FILE = re.compile(r"^(\d+)(?:[_\-. ](.*))?\.sql$", re.IGNORECASE)
_MAX_VERSION = 2**31 - 1  # PRAGMA user_version is a signed 32-bit integer
_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    """One numbered file."""

    version: int
    name: str
    path: Path


@dataclass
class MigrationReport:
    """Where the database was, where it is now, and which files ran (or would run, in a dry run)."""

    database: str
    before: int
    after: int
    latest: int
    applied: list[Migration] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    dry_run: bool = False
    quick_check: str | None = None  # after applying: "ok", or what PRAGMA quick_check found; None when not run
    out_of_order: list[Migration] = field(default_factory=list)  # numbered at or below the version, never applied

    def __str__(self) -> str:
        verb = "would apply" if self.dry_run else "applied"
        lines = [f"{self.database}: version {self.before} -> {self.after} (latest file: {self.latest})"]
        lines += [f"  {verb} {m.version:04d} {m.name}" for m in self.applied]
        lines += [f"  pending {m.version:04d} {m.name}" for m in self.pending]
        lines += [f"  NEVER APPLIED, numbered below the version: {m.path.name}" for m in self.out_of_order]
        if not self.applied and not self.pending:
            lines.append("  up to date")
        if self.quick_check is not None:
            lines.append(f"  quick_check: {self.quick_check}")
        return "\n".join(lines)


def discover(directory: str | os.PathLike[str]) -> list[Migration]:
    """The directory's migration files in version order; refuses two files with the same number."""
    folder = Path(directory)
    if not folder.is_dir():
        raise MigrationError(f"{folder}: no such migrations directory")
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".sql":
            continue  # a README, a folder: not a migration
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: a migration is named NUMBER_name.sql (0002_add_b.sql), with a separator after the "
                "number; rename it, or move it out of the folder (every .sql file here is read as a migration)"
            )
        version = int(match.group(1))
        if version > _MAX_VERSION:
            raise MigrationError(
                f"{path.name}: version {version} does not fit in PRAGMA user_version (a 32-bit signed integer, at "
                f"most {_MAX_VERSION:,}), so it would be stored wrongly and applied again on the next run; "
                "number the files 1, 2, 3... (or 0001_, 0002_...), not by date and time"
            )
        if version == 0:
            raise MigrationError(f"{path.name}: versions start at 1 (0 is a database no migration has touched)")
        if version in found:
            raise MigrationError(f"{path.name} and {found[version].path.name} both claim version {version}")
        found[version] = Migration(version, match.group(2) or "", path)
    return [found[v] for v in sorted(found)]


def statements(sql: str) -> Iterator[tuple[int, str]]:
    """Split a script into complete statements (CREATE TRIGGER bodies included), with each one's first line."""
    buffer, start = "", 1
    for number, line in enumerate(sql.splitlines(keepends=True), 1):
        if not buffer.strip():
            start = number
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield start, buffer.strip()
            buffer = ""
    if buffer.strip() and not _comment_only(buffer):
        raise MigrationError(f"line {start}: statement not terminated by ';': {buffer.strip()[:80]!r}")


def _comment_only(text: str) -> bool:
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    return not stripped.strip()


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    """Run one file and its version bump in the connection's open transaction."""
    sql = migration.path.read_text(encoding="utf-8")
    for line, statement in statements(sql):
        if _comment_only(statement):
            continue
        body = re.sub(r"^(\s*(--[^\n]*\n|/\*.*?\*/))*", "", statement, flags=re.DOTALL)
        if _TRANSACTION_CONTROL.match(body):
            raise MigrationError(
                f"{migration.path.name} line {line}: transaction control ({body.split()[0]}) is not "
                "allowed; turboalchemy runs each file in its own transaction"
            )
        try:
            conn.execute(statement)
        except _driver.Error as exc:
            raise MigrationError(
                f"{migration.path.name} line {line}: {exc}; the file was rolled back and the "
                "database keeps the version it had before it"
            ) from exc
    conn.execute(f"PRAGMA user_version = {int(migration.version)}")  # an int, so nothing foreign reaches the SQL


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


APPLIED_TABLE = "turboalchemy_migrations"


def _applied(conn: sqlite3.Connection) -> set[int] | None:
    """The versions recorded as applied; None when the table does not exist yet (a database no migration has
    touched, or one migrated before the table existed, whose user_version then says what was applied)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (APPLIED_TABLE,)).fetchone():
        return None
    return {int(r[0]) for r in conn.execute(f"SELECT version FROM {APPLIED_TABLE}")}


def _record(conn: sqlite3.Connection, migrations: list[Migration], note: str) -> None:
    """Create the table if needed and add rows for `migrations`, inside the caller's transaction."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, note TEXT)"
    )
    conn.executemany(
        f"INSERT OR IGNORE INTO {APPLIED_TABLE} (version, name, note) VALUES (?, ?, ?)",
        [(m.version, m.path.name, note) for m in migrations],
    )


def _out_of_order(files: list[Migration], applied: set[int] | None, version: int) -> list[Migration]:
    """Files numbered at or below the database's version that were never applied."""
    if applied is None:  # before the table: every file up to the version was applied, as user_version says
        return []
    return [m for m in files if m.version <= version and m.version not in applied]


def _refuse_out_of_order(path: Path, late: list[Migration], version: int) -> None:
    if late:
        names = ", ".join(m.path.name for m in late)
        raise MigrationError(
            f"{path} is at version {version} but {names} {'was' if len(late) == 1 else 'were'} never applied: "
            f"applied now {'it' if len(late) == 1 else 'they'} would run after later files. Renumber above "
            f"{version} (it then runs next), or apply by hand and record it in {APPLIED_TABLE}"
        )


def migrate(
    target: Target,
    directory: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    to: int | None = None,
    progress: Callable[[Migration], Any] | None = None,
    check: bool = True,
) -> MigrationReport:
    """Apply the pending numbered .sql files of `directory`, tracked in PRAGMA user_version.

    Args:
        target: The database: a path or an Engine.
        directory: Folder of files named NNNN_name.sql (0001_users.sql, ...).
        dry_run: Run the pending files in one transaction and roll it back: the report says what would happen,
            and the SQL is checked against the real schema.
        to: Stop at this version (default: the newest file).
        progress: Called with each Migration as it is applied.
        check: Run PRAGMA quick_check after applying any file (its verdict is in the report).

    Returns:
        A MigrationReport: the version before and after, the files applied (or pending), the check's verdict.

    Raises:
        MigrationError: A database newer than the newest file, two files with one number, transaction control
            inside a file, a failing file (the files before it stay committed, each was its own transaction),
            or a failed quick_check.
    """
    files = discover(directory)
    latest = files[-1].version if files else 0
    path = database_path(target, "migrate")
    if path is None:
        raise MigrationError("migrate needs a database file (an in-memory database vanishes with its connection)")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _driver.for_file(path).connect(path).close()  # an empty database to start from, at version 0
    goal = latest if to is None else to
    try:
        with open_file(path, read_only=False) as conn:
            before = _version(conn)
            if before > latest:
                raise MigrationError(
                    f"{path} is at schema version {before} but {directory} goes only up to {latest}: "
                    "this code is older than the database; deploy the newer code (or restore a backup)"
                )
            applied = _applied(conn)
            _refuse_out_of_order(path, _out_of_order(files, applied, before), before)
            todo = [m for m in files if before < m.version <= goal]
            report = MigrationReport(
                str(path), before, before, latest, dry_run=dry_run, pending=[m for m in files if m.version > goal]
            )
            if dry_run:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for migration in todo:
                        _apply(conn, migration)
                        report.applied.append(migration)
                    report.after = _version(conn)
                finally:
                    conn.execute("ROLLBACK")
                return report
            for first, migration in enumerate(todo):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if applied is None and first == 0 and before > 0:
                        _record(conn, [m for m in files if m.version <= before], "recorded from user_version")
                    _apply(conn, migration)
                    _record(conn, [migration], "")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                report.applied.append(migration)
                report.after = migration.version
                if progress is not None:
                    progress(migration)
            if check and report.applied:
                found = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()[:5]]
                report.quick_check = "; ".join(found)
                if found != ["ok"]:
                    raise MigrationError(
                        f"{path}: version {before} -> {report.after} applied, but quick_check then found: "
                        f"{report.quick_check}; restore the backup taken before migrating"
                    )
            return report

    except _driver.Error as exc:  # the file itself: locked past busy_timeout, not a database, read-only
        typed = translate(exc)
        if typed is not None:
            typed.args = (f"migrate {path}: {typed}",)
            raise typed from exc
        raise MigrationError(f"migrate {path}: {exc}") from exc


def status(target: Target, directory: str | os.PathLike[str]) -> MigrationReport:
    """What `migrate` would do, without opening a transaction: the version and the pending files."""
    files = discover(directory)
    path = database_path(target, "migrate")
    before = 0
    late: list[Migration] = []
    if path is not None and path.exists():
        with open_file(path, read_only=True) as conn:
            before = _version(conn)
            late = _out_of_order(files, _applied(conn), before)
    latest = files[-1].version if files else 0
    return MigrationReport(
        str(path), before, before, latest, pending=[m for m in files if m.version > before], out_of_order=late
    )
