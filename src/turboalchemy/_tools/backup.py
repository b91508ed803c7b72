"""backup: a consistent copy of a live database, checked before it is put in place.

`online` uses SQLite's backup API in steps, so progress can be shown and the source is never locked for
long. A stepped backup restarts from the first page whenever another connection writes to the source
between steps, and under a steady writer it can restart forever. turboalchemy holds one read transaction on
the source for the whole copy instead: every step then reads the same snapshot, nothing restarts, and
the copy is exactly the database as of the moment the backup began. In WAL mode that read transaction
does not block writers (it only keeps the WAL from being checkpointed past it until the copy is done);
in rollback-journal mode writers wait for the copy.

`vacuum` runs `VACUUM INTO`: a compacted, defragmented copy, in one step.
Either way the copy is written next to `dest`, passes `PRAGMA integrity_check`, then replaces `dest`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from turboalchemy import _driver
from turboalchemy._sqlite import Target, database_path, open_file
from turboalchemy.errors import BackupError

Progress = Callable[[int, int], Any]  # (pages copied, total pages)


@dataclass(frozen=True)
class BackupReport:
    """What was copied where, how, and the copy's integrity check."""

    source: str
    dest: str
    method: str
    pages: int
    page_size: int
    steps: int
    restarts: int
    seconds: float
    integrity: str

    @property
    def bytes(self) -> int:
        return self.pages * self.page_size

    def __str__(self) -> str:
        return (
            f"{self.method} backup of {self.source} -> {self.dest}: {self.pages:,} pages "
            f"({self.bytes / 1e6:,.1f} MB) in {self.seconds:.2f} s, {self.steps} steps, "
            f"{self.restarts} restarts, integrity {self.integrity}"
        )


def backup(
    source: Target,
    dest: str | os.PathLike[str],
    *,
    method: Literal["online", "vacuum"] = "online",
    progress: Progress | None = None,
    pages_per_step: int = 1024,
    overwrite: bool = False,
    force: bool = False,
) -> BackupReport:
    """Copy the database at `source` to `dest`, check the copy, and return a report.

    Args:
        source: The database: a path or an Engine.
        dest: The file to write; it is replaced only once the copy has passed integrity_check.
        method: "online": SQLite's stepped backup, holding one read snapshot for the whole copy (so it never
            restarts under a busy writer, and in WAL mode writers are not blocked); "vacuum": VACUUM INTO, a
            compacted copy.
        progress: Called as progress(copied, total) after each step.
        pages_per_step: Pages copied per step of the online backup.
        overwrite: Replace an existing `dest` (refused otherwise). Only an SQLite database or an empty file is
            replaced, and not while a process (this one included) has it open: that process's next commits would
            go to the unlinked file and be lost.
        force: With `overwrite`, replace `dest` even while another process has it open.

    Returns:
        A BackupReport: pages, steps, restarts, seconds, and the integrity check's verdict.

    Raises:
        BackupError: An existing `dest` without `overwrite`, a destination that is the source or one of its
            WAL/journal files, a directory, a file that is not a database, a database another process has open
            (without `force`), or a copy that fails its check.
    """
    if method not in ("online", "vacuum"):
        raise ValueError(f"method must be 'online' or 'vacuum', not {method!r}")
    if pages_per_step < 1:
        raise ValueError("pages_per_step must be at least 1")
    src_path = database_path(source, "backup")
    if src_path is None:
        raise BackupError("backup copies a database file; an in-memory database has none")
    target = Path(dest)
    _refuse_destination(src_path, target, overwrite, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    _remove(partial)
    began = time.perf_counter()
    try:
        with open_file(src_path, read_only=False) as src:
            if method == "online":
                pages, page_size, steps, restarts = _online(src, partial, pages_per_step, progress)
            else:
                src.execute("VACUUM INTO ?", (str(partial),))
                pages, page_size, steps, restarts = *_size(partial), 1, 0
                if progress is not None:
                    progress(pages, pages)
        integrity = _check(partial)
    except BaseException as exc:
        _remove(partial)
        if isinstance(exc, BackupError):
            raise
        if isinstance(exc, _driver.Error):
            raise BackupError(f"backup of {src_path} failed: {exc}") from exc
        raise
    if integrity != "ok":
        _remove(partial)
        raise BackupError(
            f"the copy of {src_path} failed integrity_check ({integrity}); nothing was written to {target}"
        )
    for suffix in ("-wal", "-shm", "-journal"):  # an overwritten database's leftovers would corrupt the copy
        _remove_file(f"{target}{suffix}")
    os.replace(partial, target)
    return BackupReport(
        str(src_path),
        str(target),
        method,
        pages,
        page_size,
        steps,
        restarts,
        round(time.perf_counter() - began, 3),
        integrity,
    )


def _refuse_destination(source: Path, target: Path, overwrite: bool, force: bool = False) -> None:
    """Refuse, before anything is copied, a destination that is part of the source (the file itself under
    another name, its -wal, -shm or -journal), a directory, an existing file unless `overwrite`, a file that is
    not an SQLite database, and a database some process has open unless `force`."""
    parts = [source, *(Path(f"{source}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]
    resolved = target.resolve()
    for part in parts:
        same = resolved == part.resolve()
        if not same and target.exists() and part.exists():
            same = os.path.samefile(target, part)  # a hard link or another path to the same file
        if same:
            what = "the database itself" if part == source else f"the database's own {part.name[len(source.name) :]}"
            raise BackupError(f"the backup destination {target} is {what}; choose a path outside the database")
    if target.is_dir():
        raise BackupError(f"the backup destination {target} is a directory; give the path of the copy to write")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; pass overwrite=True (or --overwrite) to replace it")
    if not target.exists():
        return
    with open(target, "rb") as existing:
        header = existing.read(16)
    if header and header != b"SQLite format 3\x00":
        raise BackupError(f"{target} is not an SQLite database; a backup replaces only a database or an empty file")
    if _driver.holder(target) is not None:
        raise BackupError(
            f"{target} is open in this process (an engine or connection on it): its next commits would go to the "
            "replaced file and be lost; dispose of it first"
        )
    users = [] if force else _processes_with_open(target)
    if users:
        raise BackupError(
            f"{target} is open in {'this process' if users == [os.getpid()] else 'another process'} "
            f"(pid {', '.join(map(str, users[:5]))}): its next commits would go "
            "to the replaced file and be lost; stop it first, or pass force=True (--force) to replace it anyway"
        )


def _processes_with_open(path: Path) -> list[int]:
    """Other processes holding the database or its WAL/SHM open, read from /proc (Linux; elsewhere: none seen)."""
    wanted = set()
    for name in (str(path), f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            info = os.stat(name)
        except OSError:
            continue
        wanted.add((info.st_dev, info.st_ino))
    found = []  # this process too: a plain sqlite3.connect() here is not seen by the pool registry
    for entry in Path("/proc").glob("[0-9]*") if wanted and Path("/proc/self/fd").is_dir() else []:
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in descriptors:
            try:
                info = os.stat(fd)
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in wanted:
                found.append(int(entry.name))
                break
    return found


def _online(src: sqlite3.Connection, partial: Path, step: int, progress: Progress | None) -> tuple[int, int, int, int]:
    steps = restarts = 0
    last_remaining: int | None = None

    def on_step(_status: int, remaining: int, total: int) -> None:
        nonlocal steps, restarts, last_remaining
        steps += 1
        if last_remaining is not None and remaining > last_remaining:
            restarts += 1  # SQLite started over: the source changed under the copy
        last_remaining = remaining
        if progress is not None:
            progress(total - remaining, total)

    # One read transaction for the whole copy: every step reads the same snapshot, so nothing restarts.
    src.execute("BEGIN")
    try:
        src.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # a BEGIN alone takes no snapshot
        dst = _driver.module_of(src).connect(partial)  # backup() needs both of one module
        try:
            src.backup(dst, pages=step, progress=on_step)
        finally:
            dst.close()
    finally:
        src.execute("COMMIT")
    pages, page_size = _size(partial)
    return pages, page_size, steps, restarts


def _size(path: Path) -> tuple[int, int]:
    with open_file(path, read_only=True) as conn:
        return conn.execute("PRAGMA page_count").fetchone()[0], conn.execute("PRAGMA page_size").fetchone()[0]


def _check(path: Path) -> str:
    with open_file(path, read_only=False) as conn:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        _remove_file(f"{path}{suffix}")


def _remove_file(name: str) -> None:
    try:
        os.remove(name)
    except FileNotFoundError:
        pass
