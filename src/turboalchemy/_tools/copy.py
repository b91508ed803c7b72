"""copy_database: move every table from one database to another through the bulk fast paths.

The destination schema comes from the user's models (a MetaData) or from the source, reflected and
translated to generic types (a SQLite DATETIME becomes a PostgreSQL TIMESTAMP, and back). Tables go in
foreign-key order; each is streamed from the source in chunks and written with bulk_insert (COPY on
PostgreSQL, executemany on SQLite), then its row count is checked. A table whose count already matches
is skipped, so an interrupted copy resumes where it stopped; a partly copied table is refused unless
`resume=True`, which copies the rest after the last key copied (a table without a one-column primary key is
emptied and copied again).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, func, inspect, select, text
from sqlalchemy.schema import ForeignKeyConstraint, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.types import NullType

from turboalchemy._sqlite import quote
from turboalchemy._targets import ENGINE, classify
from turboalchemy._write.bulk import bulk_insert
from turboalchemy.errors import CopyError

Progress = Callable[[str, int, int], Any]  # (table, rows copied, rows in the source table)


@dataclass
class TableCopy:
    name: str
    rows: int
    seconds: float
    skipped: bool

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class CopyReport:
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables if not t.skipped)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.tables)

    def __str__(self) -> str:
        lines = [
            f"  {t.name:<30} {'already copied' if t.skipped else f'{t.rows:>12,} rows  {t.rows_per_s:>10,.0f} rows/s'}"
            for t in self.tables
        ]
        lines.append(
            f"copied {self.rows:,} rows in {self.seconds:.1f} s"
            + (f" ({self.rows / self.seconds:,.0f} rows/s)" if self.seconds else "")
        )
        return "\n".join(lines)


def portable_schema(source: Engine, tables: Sequence[str] | None = None) -> MetaData:
    """The source's tables, reflected, with generic types; server defaults kept where both databases read them
    alike (a literal, a number, CURRENT_TIMESTAMP/DATE/TIME, NULL, TRUE/FALSE), dropped where they are one
    dialect's SQL (a function call, a sequence)."""
    reflected = MetaData()
    if tables and (missing := sorted(set(tables) - set(inspect(source).get_table_names()))):
        raise CopyError(f"no table(s) {', '.join(missing)} in the source database")
    reflected.reflect(source, only=list(tables) if tables else None)
    portable = MetaData()
    for table in reflected.sorted_tables:
        columns = []
        for column in table.columns:
            if isinstance(column.type, NullType):  # no declared type, or one SQLAlchemy does not know
                raise CopyError(
                    f"table {table.name!r}, column {column.name!r}: its type ({_declared(source, table, column)}) "
                    "has no portable equivalent to create on the destination; pass your models (--models "
                    "module:Base, or metadata=) to say what it holds"
                )
            columns.append(
                Column(
                    column.name,
                    _generic(column.type),
                    primary_key=column.primary_key,
                    nullable=column.nullable,
                    autoincrement=column.autoincrement,
                    server_default=_portable_default(column.server_default),
                )
            )
        constraints: list[Any] = []
        for constraint in table.constraints:
            names = [c.name for c in constraint.columns] if hasattr(constraint, "columns") else []
            if isinstance(constraint, UniqueConstraint):
                constraints.append(UniqueConstraint(*names, name=constraint.name))
            elif isinstance(constraint, ForeignKeyConstraint):
                constraints.append(
                    ForeignKeyConstraint(names, [e.target_fullname for e in constraint.elements], name=constraint.name)
                )
            elif isinstance(constraint, PrimaryKeyConstraint):
                pass  # carried by primary_key=True above
        copy = Table(table.name, portable, *columns, *constraints)
        for index in table.indexes:
            if all(isinstance(e, Column) for e in index.expressions):
                Index(index.name, *(copy.c[c.name] for c in index.columns), unique=index.unique)
    return portable


_LITERAL = re.compile(
    r"""^(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?|CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|NULL|TRUE|FALSE)$""",
    re.IGNORECASE,
)
_CAST = re.compile(
    r"^('(?:[^']|'')*'|-?\d+(?:\.\d+)?)::[\w\s]+(?:\(\d+\))?$"
)  # PostgreSQL's 'basic'::character varying


def _portable_default(default: Any) -> Any:
    """The reflected server default as text both dialects read alike, or None to leave it out."""
    arg = getattr(default, "arg", None)
    text_ = str(getattr(arg, "text", arg) if arg is not None else "").strip()
    while text_.startswith("(") and text_.endswith(")"):
        text_ = text_[1:-1].strip()
    cast = _CAST.match(text_)
    if cast:
        text_ = cast.group(1)
    return text(text_) if text_ and _LITERAL.match(text_) else None


def _declared(source: Engine, table: Table, column: Column[Any]) -> str:
    """How the source declares a column's type (SQLite keeps any text, or none)."""
    if source.dialect.name != "sqlite":
        return "unknown"
    with source.connect() as conn:
        for row in conn.exec_driver_sql(f"PRAGMA table_info({quote(table.name)})"):
            if row[1] == column.name:
                return repr(row[2]) if row[2] else "none declared"
    return "unknown"


def _generic(type_: Any) -> Any:
    try:
        return type_.as_generic()
    except NotImplementedError:
        return type_


def copy_database(
    source: Engine,
    dest: Engine,
    *,
    metadata: MetaData | None = None,
    tables: Sequence[str] | None = None,
    chunk_size: int = 10_000,
    resume: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy tables from `source` to `dest` through the fast paths, in foreign-key order, checking row counts.

    Args:
        source: The Engine to read (SQLite or PostgreSQL).
        dest: The Engine to write; missing tables are created.
        metadata: The tables to create (your models' MetaData); default: the source's schema, reflected and
            made portable (server defaults it can reflect are kept).
        tables: Only these tables (default: all).
        chunk_size: Rows per chunk.
        resume: Copy the rest of tables that hold only part of the source's rows, from the last key copied
            (a table without a one-column primary key is emptied and copied again).
        progress: Called as progress(table, done, total).

    Returns:
        A CopyReport with per-table figures; PostgreSQL sequences end past the copied keys.

    Raises:
        CopyError: A missing source, a partly copied table without `resume`, or a row count that differs
            after the copy.
    """
    classify(source, ENGINE, "copy_database")
    classify(dest, ENGINE, "copy_database")
    if source.dialect.name == "sqlite" and source.url.database not in (None, "", ":memory:"):
        if not Path(source.url.database).exists():  # connecting would create an empty file, and copy nothing
            raise CopyError(f"no database at {source.url.database} to copy from")
    schema = metadata if metadata is not None else portable_schema(source, tables)
    wanted = [t for t in schema.sorted_tables if not tables or t.name in tables]
    if tables and (missing := sorted(set(tables) - {t.name for t in wanted})):
        raise CopyError(f"no table(s) {', '.join(missing)} in the schema")
    schema.create_all(dest, tables=wanted, checkfirst=True)
    existing = set(inspect(source).get_table_names())
    report = CopyReport()
    for table in wanted:
        if table.name not in existing:
            raise CopyError(f"table {table.name!r} is in the models but not in the source database")
        report.tables.append(_copy_table(source, dest, table, chunk_size, resume, progress))
    return report


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _copy_table(
    source: Engine, dest: Engine, table: Table, chunk_size: int, resume: bool, progress: Progress | None
) -> TableCopy:
    total = _count(source, table)
    already = _count(dest, table)
    if already == total and total > 0:
        _advance_sequences(dest, table)  # idempotent: a run killed before this step left the sequence behind
        if progress:
            progress(table.name, total, total)
        return TableCopy(table.name, total, 0.0, True)
    # One primary-key column: rows go in its order, each chunk committed, so what a killed run left is a
    # prefix, and resuming copies the rest. Otherwise a partial table is emptied and copied again.
    key = list(table.primary_key.columns)
    ordered = key[0] if len(key) == 1 else None
    after = None
    if already:
        if not resume:
            raise CopyError(
                f"{table.name} already holds {already:,} of the source's {total:,} rows in the destination; "
                "pass resume=True (--resume) to copy the rest"
            )
        if ordered is not None:
            with dest.connect() as conn:
                after = conn.execute(select(func.max(table.c[ordered.key]))).scalar_one()
        else:
            with dest.begin() as conn:
                conn.execute(table.delete())
            already = 0
    began = time.perf_counter()
    done = already

    def rows() -> Any:
        nonlocal done
        query = select(*table.columns)
        if ordered is not None:
            query = query.order_by(table.c[ordered.key])
            if after is not None:
                query = query.where(table.c[ordered.key] > after)
        with source.connect() as conn:
            result = conn.execution_options(yield_per=chunk_size).execute(query)
            for partition in result.partitions():
                for row in partition:
                    yield tuple(row)
                done += len(partition)
                if progress:
                    progress(table.name, done, total)

    written = already + bulk_insert(dest, table, rows(), chunk_size=chunk_size)
    seconds = time.perf_counter() - began
    stored = _count(dest, table)
    if stored != total or written != total:
        raise CopyError(
            f"{table.name}: the source has {total:,} rows, {written:,} were written and the destination "
            f"holds {stored:,}"
        )
    _advance_sequences(dest, table)
    return TableCopy(table.name, total, seconds, False)


def _advance_sequences(dest: Engine, table: Table) -> None:
    """On PostgreSQL, move a serial key's sequence past the copied keys, so the next insert does not collide."""
    if dest.dialect.name != "postgresql":
        return
    column = table.autoincrement_column
    if column is None:
        return
    with dest.begin() as conn:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), coalesce(max({dest.dialect.identifier_preparer.quote(column.name)}), 0) + 1, false) FROM {dest.dialect.identifier_preparer.format_table(table)}"
            ),
            {"t": dest.dialect.identifier_preparer.format_table(table), "c": column.name},
        )
