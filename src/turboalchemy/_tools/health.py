"""health: the facts about an SQLite database that decide whether it is safe and fast, and the red flags.

Read-only: it opens the file read-only (or borrows an Engine's connection, so that engine's per-connection
settings such as synchronous are what it reports) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Connection

from turboalchemy import _driver
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


# SQLite's WAL-reset bug (sqlite.org/wal.html#walresetbug): two connections writing or checkpointing at
# nearly the same time can corrupt a WAL database. In 3.7.0 up to 3.51.2; fixed in 3.51.3, 3.50.7, 3.44.6.
_WAL_RESET_FIXED = ((3, 44, 6), (3, 50, 7), (3, 51, 3))
# The page size the production profile gives a new database; 16 KiB only for bulk-written ones
# (measured in docs/results/page-size: faster bulk inserts, slower single-row commits and keyset pages)
RECOMMENDED_PAGE_SIZE = 4096
BULK_PAGE_SIZE = 16384
STRICT_SAMPLE = 1_000_000  # rows per table read to count the values STRICT would refuse


def wal_reset_affected(version: tuple[int, int, int]) -> bool:
    """Whether this SQLite version has the WAL-reset bug."""
    if version < (3, 7, 0) or version >= (3, 51, 3):
        return False
    return not any(version[:2] == fixed[:2] and version >= fixed for fixed in _WAL_RESET_FIXED)


@dataclass(frozen=True)
class TableFacts:
    """What the checklist reads of one table."""

    name: str
    strict: bool
    refused_by_strict: int  # stored values whose type a STRICT table would refuse (in its first STRICT_SAMPLE rows)
    integer_key_without_autoincrement: bool  # an INTEGER PRIMARY KEY (rowid) without AUTOINCREMENT
    has_id_gaps: bool  # max(rowid) > count(*): rows were deleted (or ids given with gaps)


@dataclass(frozen=True)
class Check:
    """One item of the production checklist: `ok`, `advice` (worth a look) or `red` (a red flag)."""

    item: str
    verdict: Literal["ok", "advice", "red"]
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        mark = {"ok": "ok    ", "advice": "advice", "red": "RED   "}[self.verdict]
        return f"[{mark}] {self.item}: {self.detail}" + (f"\n           fix: {self.fix}" if self.fix else "")


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
    sqlite_version: str = ""
    sqlite_module: str = "sqlite3"
    cache_size: int | None = None  # per-connection settings: known only through an Engine or Connection
    busy_timeout: int | None = None
    tables: list[TableFacts] = field(default_factory=list)
    checklist: list[Check] = field(default_factory=list)
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
        lines.append(f"sqlite        {self.sqlite_version} through {self.sqlite_module}")
        lines.append("\nproduction checklist:")
        lines += [f"  {check}" for check in self.checklist]
        red = [f for f in self.flags if f.level == "red"]
        lines.append(f"\nhealth: {'OK' if not red else f'{len(red)} red flag(s)'}")
        lines += [f"  {flag}" for flag in self.flags]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for `turboalchemy doctor --format json`."""
        out = dataclasses.asdict(self)
        out["ok"] = self.ok
        return out


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
    except _driver.DatabaseError as exc:  # damage bad enough that the check itself cannot run
        return f"could not run: {exc}"


def health(target: FileTarget | Connection) -> HealthReport:
    """Inspect the database at `target` and flag what needs attention.

    Args:
        target: A path (opened read-only), an Engine (read through its reader pool; its connection settings
            are then readable too) or a Connection.

    Returns:
        A HealthReport: sizes, settings, quick_check, the SQLite version and module, and the production
        checklist item by item (ok, advice or RED, each with its fix); `report.ok` is False on a red flag.
    """
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
            sqlite_version=conn.execute("SELECT sqlite_version()").fetchone()[0],
            sqlite_module=_driver.name(_driver.module_of(conn)),
            cache_size=pragma("cache_size") if borrowed else None,
            busy_timeout=pragma("busy_timeout") if borrowed else None,
            tables=_table_facts(conn),
        )
    report.checklist = _checklist(report)
    report.flags = _flags(report)
    return report


_STRICT_ALLOWS = {"INTEGER": ("integer", "null"), "REAL": ("real", "integer", "null"), "TEXT": ("text", "null")}


def _affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (sqlite.org/datatype3.html, 3.1)."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not kind or "BLOB" in kind:
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _table_facts(conn: sqlite3.Connection) -> list[TableFacts]:
    out = []
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for name, sql in rows:
        strict = bool(re.search(r"\)\s*(WITHOUT\s+ROWID\s*,\s*)?STRICT\b[^)]*$", sql or "", re.IGNORECASE))
        columns = conn.execute(f"PRAGMA table_info({_quote(name)})").fetchall()  # cid, name, type, notnull, dflt, pk
        refused = 0
        if not strict:
            tests = [
                f"(typeof({_quote(c[1])}) NOT IN ({', '.join(map(repr, _STRICT_ALLOWS[_affinity(c[2])]))}))"
                for c in columns
                if _affinity(c[2]) in _STRICT_ALLOWS
            ]
            if tests:
                refused = conn.execute(
                    f"SELECT coalesce(sum({' + '.join(tests)}), 0) FROM "
                    f"(SELECT * FROM {_quote(name)} LIMIT {STRICT_SAMPLE})"
                ).fetchone()[0]
        keys = [c for c in columns if c[5]]
        rowid_key = len(keys) == 1 and keys[0][2].upper() == "INTEGER" and "WITHOUT ROWID" not in (sql or "").upper()
        plain_key = rowid_key and "AUTOINCREMENT" not in (sql or "").upper()
        gaps = False
        if plain_key:
            largest, count = conn.execute(f"SELECT max(rowid), count(*) FROM {_quote(name)}").fetchone()
            gaps = bool(largest) and largest > count
        out.append(TableFacts(name, strict, int(refused), plain_key, gaps))
    return out


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = ([int(p) for p in re.findall(r"\d+", text)[:3]] + [0, 0, 0])[:3]
    return major, minor, patch


def _checklist(r: HealthReport) -> list[Check]:
    """The production checklist of python-and-sqlite-in-the-real-world, item by item, from the report's facts."""
    per_connection = "a per-connection setting, not stored in the file: pass the application's Engine to check it"
    checks: list[Check] = []
    add = checks.append
    if r.journal_mode == "wal":
        add(Check("journal mode", "ok", "WAL"))
    elif r.journal_mode in ("delete", "truncate", "persist"):
        add(
            Check(
                "journal mode",
                "red",
                f"journal_mode is {r.journal_mode.upper()}: every reader blocks writers and commits cost more fsyncs",
                "PRAGMA journal_mode = WAL (persistent; turboalchemy's production profile sets it)",
            )
        )
    else:
        add(
            Check(
                "journal mode",
                "red",
                f"journal_mode is {r.journal_mode.upper()}: a crash mid-transaction can corrupt the file",
                "PRAGMA journal_mode = WAL",
            )
        )
    version = _version(r.sqlite_version)
    if wal_reset_affected(version) and r.journal_mode == "wal":
        add(
            Check(
                "SQLite version",
                "red",
                f"SQLite {r.sqlite_version} (through {r.sqlite_module}) has the WAL-reset bug: two connections writing "
                "or checkpointing at nearly the same time can corrupt a WAL database (sqlite.org/wal.html#walresetbug)",
                "pip install 'turboalchemy[sqlite]' (create_engine then uses pysqlite3, which bundles a current SQLite), "
                "or use SQLite 3.51.3 or later (or 3.50.7, 3.44.6) another way; until then keep to a single connection",
            )
        )
    else:
        add(Check("SQLite version", "ok", f"SQLite {r.sqlite_version} (through {r.sqlite_module})"))
    if r.synchronous is None:
        add(Check("synchronous", "advice", per_connection, "turboalchemy's production profile sets NORMAL"))
    elif r.synchronous == "OFF":
        add(
            Check(
                "synchronous",
                "red",
                "synchronous is OFF: a power loss or OS crash can corrupt the database",
                "PRAGMA synchronous = NORMAL (WAL: durable against application crashes) or FULL (profile 'durable')",
            )
        )
    else:
        add(Check("synchronous", "ok", r.synchronous))
    if r.cache_size is None:
        add(Check("cache size", "advice", per_connection, "at least 64 MB: PRAGMA cache_size = -64000"))
    else:
        cache = -r.cache_size * 1024 if r.cache_size < 0 else r.cache_size * r.page_size
        verdict: Literal["ok", "advice"] = "ok" if cache >= 64_000 * 1024 else "advice"
        add(
            Check(
                "cache size",
                verdict,
                f"{cache / 2**20:,.0f} MiB",
                "" if verdict == "ok" else "PRAGMA cache_size = -64000",
            )
        )
    if r.busy_timeout is None:
        add(Check("busy timeout", "advice", per_connection, "at least 5000 ms: PRAGMA busy_timeout = 5000"))
    else:
        verdict = "ok" if r.busy_timeout >= 5000 else "advice"
        add(
            Check(
                "busy timeout",
                verdict,
                f"{r.busy_timeout:,} ms",
                "" if verdict == "ok" else "PRAGMA busy_timeout = 5000",
            )
        )
    loose = [t for t in r.tables if not t.strict]
    if not loose:
        add(Check("STRICT tables", "ok", f"all {len(r.tables)} table(s) are STRICT" if r.tables else "no tables"))
    else:
        refused = sum(t.refused_by_strict for t in loose)
        names = ", ".join(t.name for t in loose[:5]) + (", ..." if len(loose) > 5 else "")
        detail = (
            f"{len(loose)} of {len(r.tables)} table(s) are not STRICT ({names}); {refused:,} stored value(s) have "
            "a type their column's STRICT declaration would have refused"
        )
        add(
            Check(
                "STRICT tables",
                "advice",
                detail,
                "create tables STRICT: turboalchemy.strict_tables(Base.metadata) before create_all "
                "(existing tables: create the STRICT table, copy the rows over, swap the names)",
            )
        )
    reused = [t.name for t in r.tables if t.integer_key_without_autoincrement and t.has_id_gaps]
    if reused:
        add(
            Check(
                "AUTOINCREMENT",
                "advice",
                f"{', '.join(reused)}: INTEGER PRIMARY KEY without AUTOINCREMENT and with gaps in the ids (rows were "
                "deleted): the ids of the newest deleted rows can be handed out again",
                "if ids leave this database (URLs, other systems, caches), declare AUTOINCREMENT "
                "(sqlite_autoincrement=True on the Table); it costs a write to sqlite_sequence per insert",
            )
        )
    else:
        add(Check("AUTOINCREMENT", "ok", "no table hands out the ids of deleted rows again"))
    if r.page_size == RECOMMENDED_PAGE_SIZE:
        add(Check("page size", "ok", f"{r.page_size:,} bytes, the production default"))
    elif r.page_size == BULK_PAGE_SIZE:
        add(
            Check(
                "page size",
                "advice",
                f"{r.page_size:,} bytes: measured, bulk inserts run 1.1-1.5x as fast as at 4,096, but single-row "
                "commits with one writer at 0.56-0.75x (docs/results/page-size)",
                "keep it for a database written in bulk; for many small commits: PRAGMA page_size = 4096 "
                "then VACUUM (rewrites the file)",
            )
        )
    else:
        add(
            Check(
                "page size",
                "advice",
                f"{r.page_size:,} bytes: measured, no size beats 4,096 for both bulk writes and small commits "
                "(docs/results/page-size)",
                "PRAGMA page_size = 4096 (16384 for a database written only in bulk) then VACUUM (rewrites the file)",
            )
        )
    if r.quick_check == "ok":
        add(Check("integrity", "ok", "quick_check ok"))
    else:
        add(
            Check(
                "integrity",
                "red",
                f"quick_check failed: {r.quick_check}",
                "restore the latest backup; copy out what you can with `sqlite3 DB .recover`",
            )
        )
    if r.filesystem in NETWORK_FILESYSTEMS:
        add(
            Check(
                "filesystem",
                "red",
                f"a network filesystem ({r.filesystem}): its locks are not reliable and WAL needs shared memory "
                "between processes on one host",
                "move the file to a local disk; serve it to other hosts through your application",
            )
        )
    else:
        add(Check("filesystem", "ok", r.filesystem or "unknown (not a known network filesystem)"))
    if r.journal_mode == "wal":
        expected = max(r.wal_autocheckpoint or 1000, 1000) * r.page_size
        if r.wal_bytes > max(WAL_FLOOR, 4 * expected):
            add(
                Check(
                    "WAL size",
                    "red",
                    f"{r.wal_bytes / 2**20:,.0f} MiB, over 4x what automatic checkpoints let it reach: a long-lived "
                    "reader or a disabled autocheckpoint is stopping checkpoints",
                    "find the reader that never finishes its transaction; then `turboalchemy checkpoint DB` "
                    "(PRAGMA wal_checkpoint(TRUNCATE))",
                )
            )
        else:
            add(Check("WAL size", "ok", f"{r.wal_bytes / 2**20:,.1f} MiB"))
    if r.freelist_share > FREELIST_LIMIT:
        fix = (
            "PRAGMA incremental_vacuum"
            if r.auto_vacuum == "INCREMENTAL"
            else "VACUUM (or `turboalchemy backup DB COPY --method vacuum` for a compacted copy)"
        )
        add(Check("free pages", "red", f"{r.freelist_share:.0%} of the file is free pages ({r.freelist_count:,})", fix))
    else:
        add(Check("free pages", "ok", f"{r.freelist_share:.1%} of the file"))
    if r.unindexed_foreign_keys:
        add(
            Check(
                "foreign-key indexes",
                "advice",
                ", ".join(map(_fk, r.unindexed_foreign_keys)) + " have no index",
                "the CREATE INDEX statements in the flags below",
            )
        )
    else:
        add(Check("foreign-key indexes", "ok", "every foreign key has an index"))
    return checks


def _flags(r: HealthReport) -> list[Flag]:
    """The red flags (the checklist's red items) and a warning per foreign key without an index."""
    flags = [Flag("red", f"{c.item}: {c.detail}", c.fix) for c in r.checklist if c.verdict == "red"]
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
