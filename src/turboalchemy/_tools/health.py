"""health: the facts about an SQLite database that decide whether it is safe and fast, and the red flags.

Read-only: it opens the file read-only (or borrows an Engine's connection, so that engine's per-connection
settings such as synchronous are what it reports) and changes nothing.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from turboalchemy._sqlite import WITH_CONNECTION, database_path, reading
from turboalchemy._sqlite import quote as _quote
from turboalchemy._targets import FileTarget, kind_of

# Filesystems on which SQLite's locking cannot be trusted (sqlite.org/useovernet.html)
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "fuse.sshfs",
        "sshfs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "afs",
        "davfs",
        "fuse.s3fs",
        "gcsfuse",
    }
)
_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
_AUTO_VACUUM = {0: "NONE", 1: "FULL", 2: "INCREMENTAL"}
FREELIST_LIMIT = 0.20
WAL_FLOOR = 64 * 1024 * 1024  # a WAL under this size is never a red flag


@dataclass(frozen=True)
class Flag:
    """One problem: `red` ones make `turboalchemy doctor` exit non-zero; `warn` ones are worth a look."""

    level: str
    what: str
    advice: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.what}\n        fix: {self.advice}"


@dataclass
class HealthReport:
    """Sizes, settings and checks of one database, with the flags they raise."""

    path: str | None
    size_bytes: int
    wal_bytes: int
    page_size: int
    page_count: int
    freelist_count: int
    journal_mode: str
    synchronous: str | None
    auto_vacuum: str
    wal_autocheckpoint: int | None
    quick_check: str
    unindexed_foreign_keys: list[tuple[str, tuple[str, ...], str]]  # (table, columns, parent table)
    filesystem: str | None
    flags: list[Flag] = field(default_factory=list)

    @property
    def freelist_share(self) -> float:
        return self.freelist_count / self.page_count if self.page_count else 0.0

    @property
    def ok(self) -> bool:
        """No red flag."""
        return not any(f.level == "red" for f in self.flags)

    def __str__(self) -> str:
        mb = 1024 * 1024
        sync = self.synchronous or "per connection (not stored in the file; pass the app's Engine to see it)"
        lines = [
            f"database      {self.path or ':memory:'} on {self.filesystem or 'unknown filesystem'}",
            f"size          {self.size_bytes / mb:,.1f} MiB ({self.page_count:,} pages of {self.page_size} bytes)",
            f"free pages    {self.freelist_count:,} ({self.freelist_share:.1%})",
            f"journal       {self.journal_mode}, WAL file {self.wal_bytes / mb:,.1f} MiB",
            f"synchronous   {sync}",
            f"auto_vacuum   {self.auto_vacuum}",
            f"quick_check   {self.quick_check}",
            f"foreign keys without an index: {', '.join(map(_fk, self.unindexed_foreign_keys)) or 'none'}",
        ]
        red = [f for f in self.flags if f.level == "red"]
        lines.append(f"\nhealth: {'OK' if not red else f'{len(red)} red flag(s)'}")
        lines += [f"  {flag}" for flag in self.flags]
        return "\n".join(lines)


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The filesystem type of the mount holding `path`, from /proc/mounts (Linux); None when unknown."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, kind = "", None
    for entry in entries:
        if len(entry) < 3:
            continue
        point = entry[1].replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, entry[2]
    return kind


def _fk(fk: tuple[str, tuple[str, ...], str]) -> str:
    return f"{fk[0]}({', '.join(fk[1])}) -> {fk[2]}"


def _unindexed_foreign_keys(conn: sqlite3.Connection) -> list[tuple[str, tuple[str, ...], str]]:
    out = []
    tables = [
        r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    for table in tables:
        groups: dict[int, list[str]] = {}
        parents: dict[int, str] = {}
        for row in conn.execute(
            'SELECT id, seq, "table", "from" FROM pragma_foreign_key_list(?) ORDER BY id, seq', (table,)
        ):
            groups.setdefault(row[0], []).append(row[3])
            parents[row[0]] = row[2]
        if not groups:
            continue
        leads = []
        for (index,) in conn.execute("SELECT name FROM pragma_index_list(?)", (table,)):
            leads.append([r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,))])
        pk = [r[1] for r in sorted(conn.execute("SELECT pk, name FROM pragma_table_info(?) WHERE pk > 0", (table,)))]
        leads.append(pk)
        for fk, columns in groups.items():
            if not any(lead[: len(columns)] == columns for lead in leads):
                out.append((table, tuple(columns), parents[fk]))
    return out


def _quick_check(conn: sqlite3.Connection) -> str:
    try:
        return "; ".join(r[0] for r in conn.execute("PRAGMA quick_check").fetchall()[:5])
    except sqlite3.DatabaseError as exc:  # damage bad enough that the check itself cannot run
        return f"could not run: {exc}"


def health(target: FileTarget | Connection) -> HealthReport:
    """Inspect the database at `target` (a path, an Engine or a Connection) and flag what needs attention."""
    path = database_path(target, "health", WITH_CONNECTION)
    with reading(target, "health", WITH_CONNECTION) as conn:

        def pragma(name: str) -> Any:  # fixed names only
            return conn.execute(f"PRAGMA {name}").fetchone()[0]

        borrowed = kind_of(target) != "path"  # the engine's own connection: its settings are readable
        report = HealthReport(
            path=str(path) if path else None,
            size_bytes=os.path.getsize(path) if path and path.exists() else 0,
            wal_bytes=os.path.getsize(f"{path}-wal") if path and os.path.exists(f"{path}-wal") else 0,
            page_size=pragma("page_size"),
            page_count=pragma("page_count"),
            freelist_count=pragma("freelist_count"),
            journal_mode=str(pragma("journal_mode")).lower(),
            synchronous=_SYNCHRONOUS.get(pragma("synchronous")) if borrowed else None,
            auto_vacuum=_AUTO_VACUUM.get(pragma("auto_vacuum"), "?"),
            wal_autocheckpoint=pragma("wal_autocheckpoint"),
            quick_check=_quick_check(conn),
            unindexed_foreign_keys=_unindexed_foreign_keys(conn),
            filesystem=filesystem_type(path.parent if path else ".") if path else None,
        )
    report.flags = _flags(report)
    return report


def _flags(r: HealthReport) -> list[Flag]:
    flags = []
    if r.quick_check != "ok":
        flags.append(
            Flag(
                "red",
                f"quick_check failed: {r.quick_check}",
                "restore the latest backup; copy out what you can with `sqlite3 DB .recover`",
            )
        )
    if r.filesystem in NETWORK_FILESYSTEMS:
        flags.append(
            Flag(
                "red",
                f"the database is on a network filesystem ({r.filesystem}): its locks are not reliable "
                "and WAL needs shared memory between processes on one host",
                "move the file to a local disk; serve it to other hosts through your application",
            )
        )
    if r.journal_mode in ("delete", "truncate", "persist"):
        flags.append(
            Flag(
                "red",
                f"journal_mode is {r.journal_mode.upper()}: every reader blocks writers and commits cost more fsyncs",
                "PRAGMA journal_mode = WAL (persistent; turboalchemy's production profile sets it)",
            )
        )
    elif r.journal_mode in ("off", "memory"):
        flags.append(
            Flag(
                "red",
                f"journal_mode is {r.journal_mode.upper()}: a crash mid-transaction can corrupt the file",
                "PRAGMA journal_mode = WAL",
            )
        )
    if r.synchronous == "OFF":
        flags.append(
            Flag(
                "red",
                "synchronous is OFF: a power loss or OS crash can corrupt the database",
                "PRAGMA synchronous = NORMAL (WAL: durable against application crashes) or FULL (profile 'durable')",
            )
        )
    if r.journal_mode == "wal":
        expected = max(r.wal_autocheckpoint or 1000, 1000) * r.page_size
        if r.wal_bytes > max(WAL_FLOOR, 4 * expected):
            flags.append(
                Flag(
                    "red",
                    f"the WAL is {r.wal_bytes / 2**20:,.0f} MiB, over 4x what automatic checkpoints let it "
                    "reach: a long-lived reader or a disabled autocheckpoint is stopping checkpoints",
                    "find the reader that never finishes its transaction; then `turboalchemy checkpoint DB` "
                    "(PRAGMA wal_checkpoint(TRUNCATE))",
                )
            )
    if r.freelist_share > FREELIST_LIMIT:
        fix = (
            "PRAGMA incremental_vacuum"
            if r.auto_vacuum == "INCREMENTAL"
            else "VACUUM (or `turboalchemy backup DB COPY --method vacuum` for a compacted copy)"
        )
        flags.append(Flag("red", f"{r.freelist_share:.0%} of the file is free pages ({r.freelist_count:,})", fix))
    for table, columns, parent in r.unindexed_foreign_keys:
        name = _quote(f"ix_{table}_{'_'.join(columns)}")
        flags.append(
            Flag(
                "warn",
                f"foreign key {_fk((table, columns, parent))} has no index: deleting or updating a "
                f"{parent} row scans {table}",
                f"CREATE INDEX {name} ON {_quote(table)} ({', '.join(map(_quote, columns))})",
            )
        )
    return flags
