"""Where a target (Engine, path) lives on disk, and a plain sqlite3 connection to it, for the file-level tools."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from turboalchemy import _driver
from turboalchemy._targets import TargetKind, classify
from turboalchemy.errors import UnsupportedTargetError, translate

Target = Engine | str | os.PathLike[str]


def quote(name: str) -> str:
    """An identifier, double-quoted as SQLite and PostgreSQL both read it (for PRAGMA arguments, catalog lookups
    and advice text, which cannot be bound)."""
    return '"' + name.replace('"', '""') + '"'


FILE_KINDS: tuple[TargetKind, ...] = ("engine", "path")  # the file tools: an Engine or a path
WITH_CONNECTION: tuple[TargetKind, ...] = ("engine", "connection", "path")  # readers that may borrow a connection


def database_path(target: Any, what: str, accept: tuple[TargetKind, ...] = FILE_KINDS) -> Path | None:
    """The file behind an Engine, a Connection or a path; None for an in-memory database."""
    if classify(target, accept, what) == "path":
        text = os.fspath(target)
        if text.startswith("sqlite:"):
            database = text.split(":///", 1)[1] if ":///" in text else ""
            return Path(database) if database and database != ":memory:" else None
        return Path(text)
    database = _driver.file_of_url(_sqlite_engine(target, what).url)
    return None if database is None else Path(database)


def _sqlite_engine(target: Engine | Connection, what: str) -> Engine:
    engine = target.engine
    if engine.dialect.name != "sqlite":
        raise UnsupportedTargetError(f"{what} works on SQLite databases, not {engine.dialect.name}")
    return engine


# How long a file opened by the tools (migrate, backup, checkpoint, doctor) waits for another connection's lock
BUSY_TIMEOUT_MS = 5000


@contextmanager
def open_file(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    """An autocommit sqlite3 connection to an existing file (read-only opens never create one)."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    # through the module this process already has the file open with (one SQLite library per file), else auto's
    module = _driver.for_file(path)
    _driver.refuse_mixing(path, _driver.name(module))
    conn = module.connect(
        _uri(path, "ro" if read_only else "rw"), uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        _driver.claim(conn)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        yield conn
    finally:
        _driver.release(conn)
        conn.close()


def _uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri().replace('file://', 'file:', 1)}?mode={mode}"


@contextmanager
def reading(target: Any, what: str, accept: tuple[TargetKind, ...] = FILE_KINDS) -> Iterator[sqlite3.Connection]:
    """A DBAPI connection to read from: the Connection's or the Engine's own (so its PRAGMAs apply), or a
    read-only one on a path."""
    kind = classify(target, accept, what)
    if kind == "path":
        path = database_path(target, what, accept)
        if path is None:
            raise UnsupportedTargetError("an in-memory database has no file to open; pass its Engine")
        with open_file(path, read_only=True) as conn:
            try:
                conn.execute("PRAGMA trusted_schema = OFF")  # the file may not be ours: run none of its schema's code
                yield conn
            except _driver.Error as exc:  # not a database, damaged, locked: our typed error where there is one
                typed = translate(exc)
                if typed is None:
                    raise
                typed.args = (f"{what} {path}: {typed}",)
                raise typed from exc
        return
    engine = _sqlite_engine(target, what)
    if kind == "connection":
        yield target.connection.dbapi_connection
        return
    from turboalchemy._engine import reader

    # a turboalchemy engine's reader pool (same profile, read-only): a long check never holds the one writer
    pooled = reader(engine).raw_connection()
    try:
        yield pooled.dbapi_connection  # type: ignore[misc]
    finally:
        pooled.close()
