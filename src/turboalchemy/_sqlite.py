"""Where a target (Engine, path) lives on disk, and a plain sqlite3 connection to it, for the file-level tools."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from turboalchemy.errors import UnsupportedTargetError

Target = Engine | str | os.PathLike[str]


def quote(name: str) -> str:
    """An SQLite identifier, double-quoted (for PRAGMA arguments and advice text, which cannot be bound)."""
    return '"' + name.replace('"', '""') + '"'


def database_path(target: Any) -> Path | None:
    """The file behind an Engine or a path; None for an in-memory database."""
    if isinstance(target, Engine):
        if target.dialect.name != "sqlite":
            raise UnsupportedTargetError(f"this tool works on SQLite files, not {target.dialect.name}")
        database = target.url.database
        return None if database in (None, "", ":memory:") else Path(database)
    if isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if text.startswith("sqlite:"):
            database = text.split(":///", 1)[1] if ":///" in text else ""
            return Path(database) if database and database != ":memory:" else None
        return Path(text)
    raise UnsupportedTargetError(f"expected an Engine or a path to an SQLite file, not {type(target).__name__}")


@contextmanager
def open_file(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    """An autocommit sqlite3 connection to an existing file (read-only opens never create one)."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(
        _uri(path, "ro" if read_only else "rw"), uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        yield conn
    finally:
        conn.close()


def _uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri().replace('file://', 'file:', 1)}?mode={mode}"


@contextmanager
def reading(target: Any) -> Iterator[sqlite3.Connection]:
    """A DBAPI connection to read from: the engine's own (so its PRAGMAs apply) or a read-only one on a path."""
    if isinstance(target, Connection):
        yield target.connection.dbapi_connection  # type: ignore[misc]
    elif isinstance(target, Engine):
        if target.dialect.name != "sqlite":
            raise UnsupportedTargetError(f"this tool reads SQLite databases, not {target.dialect.name}")
        pooled = target.raw_connection()
        try:
            yield pooled.dbapi_connection  # type: ignore[misc]
        finally:
            pooled.close()
    else:
        path = database_path(target)
        if path is None:
            raise UnsupportedTargetError("an in-memory database has no file to open; pass its Engine")
        with open_file(path, read_only=True) as conn:
            conn.execute("PRAGMA trusted_schema = OFF")  # the file may not be ours: run none of its schema's code
            yield conn
