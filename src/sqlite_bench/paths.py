"""One registry of write paths. Every runner and table iterates over it; nothing lists paths twice.

A path opens a Writer on an engine; the writer takes one chunk of row dicts at a time and writes it
as one committed transaction (insert or upsert). Converting the dicts to what the path needs (ORM
objects, tuples) happens inside the writer, so it is timed as part of the path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .schema import COLUMNS, INSERT_SQL, NATURAL_KEY, UPDATE_COLUMNS, UPSERT_SQL, BenchRow


class Writer(Protocol):
    def insert(self, rows: list[dict]) -> None: ...
    def upsert(self, rows: list[dict]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class WritePath:
    name: str
    description: str
    open: Callable[[Engine], Writer]


PATHS: dict[str, WritePath] = {}
ALIASES: dict[str, list[str]] = {"both": ["orm", "raw"]}


def register(name: str, description: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        PATHS[name] = WritePath(name, description, cls)
        return cls

    return add


def parse_paths(spec: str) -> list[str]:
    """'both', 'all', a path name, or a comma list of them, in registry order."""
    wanted: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "all":
            wanted.extend(PATHS)
        elif part in ALIASES:
            wanted.extend(ALIASES[part])
        elif part in PATHS:
            wanted.append(part)
        else:
            raise ValueError(f"unknown write path {part!r}; choose from {', '.join([*PATHS, *ALIASES, 'all'])}")
    if not wanted:
        raise ValueError("no write paths given")
    return [p for p in PATHS if p in wanted]


def variable_limit(dbapi_connection: sqlite3.Connection) -> int:
    """SQLite's bound-parameter limit as this connection's library was built (999 before 3.32)."""
    return dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


@register("orm", "SQLAlchemy ORM: bulk_save_objects; upsert via insert().on_conflict_do_update")
class OrmWriter:
    """The study's ORM path, with its upsert split so no statement exceeds the bound-parameter limit."""

    def __init__(self, engine: Engine) -> None:
        self.session = Session(engine)
        limit = variable_limit(self.session.connection().connection.dbapi_connection)
        self.rows_per_statement = max(1, limit // len(COLUMNS))
        self.session.rollback()

    def insert(self, rows: list[dict]) -> None:
        try:
            self.session.bulk_save_objects([BenchRow(**r) for r in rows])
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise

    def upsert(self, rows: list[dict]) -> None:
        step = self.rows_per_statement
        try:
            for i in range(0, len(rows), step):
                stmt = sqlite_insert(BenchRow).values(rows[i : i + step])
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(NATURAL_KEY),
                    set_={c: stmt.excluded[c] for c in UPDATE_COLUMNS},
                )
                self.session.execute(stmt)
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise

    def close(self) -> None:
        self.session.close()


def _stamp(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DateTime stores, so raw rows equal ORM rows byte for byte."""
    return None if value is None else value.isoformat(" ", "microseconds")


@register("raw", "sqlite3 executemany of tuples on the DBAPI connection (the study's fast path)")
class RawWriter:
    """Hand-written SQL and tuples, as in the study; one DBAPI connection held for the writer's life."""

    def __init__(self, engine: Engine) -> None:
        self.pooled = engine.raw_connection()
        self.dbapi = self.pooled.dbapi_connection

    def _write(self, sql: str, rows: list[dict]) -> None:
        params = [
            (r["row_id"], r["tenant_id"], r["entity_id"], r["sub_entity_id"], r["bucket_index"],
             r["measurement_x"], r["measurement_y"], r["measurement_z"], r["category_id"], r["weight"],
             r["status"], _stamp(r["created_at"]), _stamp(r["updated_at"]))
            for r in rows
        ]
        try:
            self.dbapi.executemany(sql, params)
            self.dbapi.commit()
        except BaseException:
            self.dbapi.rollback()
            raise

    def insert(self, rows: list[dict]) -> None:
        self._write(INSERT_SQL, rows)

    def upsert(self, rows: list[dict]) -> None:
        self._write(UPSERT_SQL, rows)

    def close(self) -> None:
        self.pooled.close()


def error_kind(exc: BaseException) -> str:
    """'locked', 'integrity' or 'other', looking through SQLAlchemy's wrapper to the driver's error."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.OperationalError) and any(w in str(orig).lower() for w in ("locked", "busy")):
        return "locked"
    if isinstance(orig, sqlite3.IntegrityError):
        return "integrity"
    return "other"
