"""One registry of write paths. Every runner and table iterates over it; nothing lists paths twice.

A path opens a Writer on an engine; the writer takes one chunk of row dicts at a time and writes it
as one committed transaction (insert or upsert). Converting the dicts to what the path needs (ORM
objects, tuples) happens inside the writer, so it is timed as part of the path; only the limit paths
(`engine`, `prebuilt`) do theirs in `prepare`, untimed, to show what is left without it.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import turboalchemy

from .schema import COLUMNS, INSERT_SQL, NATURAL_KEY, TABLE, UPDATE_COLUMNS, UPSERT_SQL, BenchRow


class Writer(Protocol):
    """Writes one chunk per call as one committed transaction. A writer may also define
    `prepare(phase, rows)`: work done before the timed write and excluded from it, like generation."""

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
SERVER_ONLY = ("copy_binary", "adbc")  # PostgreSQL's peers: named explicitly, never part of "all"


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
            wanted.extend(p for p in PATHS if p not in SERVER_ONLY)
        elif part in ALIASES:
            wanted.extend(ALIASES[part])
        elif part in PATHS:
            wanted.append(part)
        else:
            raise ValueError(f"unknown write path {part!r}; choose from {', '.join([*PATHS, *ALIASES, 'all'])}")
    if not wanted:
        raise ValueError("no write paths given")
    return [p for p in PATHS if p in wanted]


def variable_limit(dbapi_connection: Any) -> int:
    """SQLite's bound-parameter limit as this connection's library was built (999 before 3.32; pysqlite3 has no
    getlimit, and bundles 3.53); PostgreSQL's wire protocol allows 65,535 per statement."""
    module = type(dbapi_connection).__module__
    if not module.startswith(("sqlite3", "pysqlite3")):
        return 65_535
    if hasattr(dbapi_connection, "getlimit"):
        return int(dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    version = sys.modules[module].sqlite_version_info
    return 32_766 if version >= (3, 32, 0) else 999


def dialect_insert(engine: Engine):  # type: ignore[no-untyped-def]
    """The INSERT construct with ON CONFLICT for the engine's database."""
    return postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert


def server_only(engine: Engine) -> bool:
    return engine.dialect.name != "sqlite"


_NAMES = ", ".join(f'"{c}"' for c in COLUMNS)
_ON_CONFLICT = UPSERT_SQL[UPSERT_SQL.index(" ON CONFLICT") :]
# PostgreSQL: a session's staging table shaped like the benchmark's, and the merge of it into the table
PG_STAGING = "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE bench_rows)"
PG_MERGE = f"INSERT INTO bench_rows ({_NAMES}) SELECT {_NAMES} FROM staging" + _ON_CONFLICT


@contextmanager
def committed(dbapi_connection: Any) -> Iterator[None]:
    """One chunk as one transaction on a DBAPI connection: committed, or rolled back whole on any failure."""
    try:
        yield
        dbapi_connection.commit()
    except BaseException:
        dbapi_connection.rollback()
        raise


@register("orm", "SQLAlchemy ORM: bulk_save_objects; upsert via insert().on_conflict_do_update")
class OrmWriter:
    """The study's ORM path, with its upsert split so no statement exceeds the bound-parameter limit."""

    def __init__(self, engine: Engine) -> None:
        self.session = Session(engine)
        limit = variable_limit(self.session.connection().connection.dbapi_connection)
        self.rows_per_statement = max(1, limit // len(COLUMNS))
        self.session.rollback()
        self.dialect_insert = dialect_insert(engine)

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
                stmt = self.dialect_insert(BenchRow).values(rows[i : i + step])
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


@register("raw", "DBAPI executemany of tuples: sqlite3 (the study's fast path) or psycopg 3 on PostgreSQL")
class RawWriter:
    """Hand-written SQL and tuples, as in the study; one DBAPI connection held for the writer's life.
    On PostgreSQL the same SQL with %s placeholders, datetimes passed as they are (psycopg adapts them)."""

    def __init__(self, engine: Engine) -> None:
        self.pooled = engine.raw_connection()
        self.dbapi = self.pooled.dbapi_connection
        self.sqlite = not server_only(engine)
        self.insert_sql, self.upsert_sql = (
            (INSERT_SQL, UPSERT_SQL) if self.sqlite else (INSERT_SQL.replace("?", "%s"), UPSERT_SQL.replace("?", "%s"))
        )

    def tuples(self, rows: list[dict]) -> list[tuple]:
        """The chunk as the driver takes it: one tuple per row in COLUMNS order."""
        stamp = _stamp if self.sqlite else _same
        return [
            (
                r["row_id"],
                r["tenant_id"],
                r["entity_id"],
                r["sub_entity_id"],
                r["bucket_index"],
                r["measurement_x"],
                r["measurement_y"],
                r["measurement_z"],
                r["category_id"],
                r["weight"],
                r["status"],
                stamp(r["created_at"]),
                stamp(r["updated_at"]),
            )
            for r in rows
        ]

    def _write(self, sql: str, rows: list[dict]) -> None:
        self.send(sql, self.tuples(rows))

    def send(self, sql: str, params: list[tuple]) -> None:
        """One executemany of ready tuples, committed as one transaction."""
        with committed(self.dbapi):
            cursor = self.dbapi.cursor()
            cursor.executemany(sql, params)
            cursor.close()

    def insert(self, rows: list[dict]) -> None:
        self._write(self.insert_sql, rows)

    def upsert(self, rows: list[dict]) -> None:
        self._write(self.upsert_sql, rows)

    def close(self) -> None:
        self.pooled.close()


def _same(value: datetime | None) -> datetime | None:
    return value


def _upsert_statement(target: object, engine: Engine) -> object:
    """INSERT ... ON CONFLICT (natural key) DO UPDATE SET payload = excluded.payload, for executemany."""
    stmt = dialect_insert(engine)(target)
    return stmt.on_conflict_do_update(
        index_elements=list(NATURAL_KEY), set_={c: stmt.excluded[c] for c in UPDATE_COLUMNS}
    )


@register("orm_bulk", "SQLAlchemy 2.x ORM-enabled insert(Model) executed with a list of dicts")
class OrmBulkWriter:
    def __init__(self, engine: Engine) -> None:
        self.session = Session(engine)
        self.insert_stmt = insert(BenchRow)
        self.upsert_stmt = _upsert_statement(BenchRow, engine)

    def _run(self, stmt: object, rows: list[dict]) -> None:
        try:
            self.session.execute(stmt, rows)  # type: ignore[arg-type]
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise

    def insert(self, rows: list[dict]) -> None:
        self._run(self.insert_stmt, rows)

    def upsert(self, rows: list[dict]) -> None:
        self._run(self.upsert_stmt, rows)

    def close(self) -> None:
        self.session.close()


@register("core", "SQLAlchemy Core table.insert() executed with a list of dicts")
class CoreWriter:
    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect()
        self.insert_stmt = TABLE.insert()
        self.upsert_stmt = _upsert_statement(TABLE, engine)

    def _run(self, stmt: object, rows: list[dict]) -> None:
        with self.connection.begin():  # commits, or rolls back on error
            self.connection.execute(stmt, rows)  # type: ignore[arg-type]

    def insert(self, rows: list[dict]) -> None:
        self._run(self.insert_stmt, rows)

    def upsert(self, rows: list[dict]) -> None:
        self._run(self.upsert_stmt, rows)

    def close(self) -> None:
        self.connection.close()


@register("turbo", "turboalchemy.bulk_insert / bulk_upsert on the Engine: SQL and conversion compiled from the model")
class TurboWriter:
    """The public API, nothing private: each call writes one chunk as one committed transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, rows: list[dict]) -> None:
        turboalchemy.bulk_insert(self.engine, BenchRow, rows, chunk_size=len(rows))

    def upsert(self, rows: list[dict]) -> None:
        turboalchemy.bulk_upsert(
            self.engine, BenchRow, rows, conflict=NATURAL_KEY, update=UPDATE_COLUMNS, chunk_size=len(rows)
        )

    def close(self) -> None:
        pass


@register(
    "turbo_returning",
    "turbo with returning= the primary key: bulk_insert / bulk_upsert giving back each row's row_id, in input order",
)
class TurboReturningWriter(TurboWriter):
    def insert(self, rows: list[dict]) -> None:
        ids = turboalchemy.bulk_insert(self.engine, BenchRow, rows, chunk_size=len(rows), returning=BenchRow.row_id)
        assert len(ids) == len(rows)

    def upsert(self, rows: list[dict]) -> None:
        ids = turboalchemy.bulk_upsert(
            self.engine,
            BenchRow,
            rows,
            conflict=NATURAL_KEY,
            update=UPDATE_COLUMNS,
            chunk_size=len(rows),
            returning=BenchRow.row_id,
        )
        assert len(ids) == len(rows)


@register(
    "core_returning",
    "SQLAlchemy's own RETURNING: insert(table).returning(row_id, sort_by_parameter_order=True) with a list of dicts",
)
class CoreReturningWriter(CoreWriter):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.insert_stmt = self.insert_stmt.returning(TABLE.c.row_id, sort_by_parameter_order=True)
        self.upsert_stmt = self.upsert_stmt.returning(TABLE.c.row_id, sort_by_parameter_order=True)  # type: ignore[attr-defined]

    def _run(self, stmt: object, rows: list[dict]) -> None:
        with self.connection.begin():
            ids = self.connection.execute(stmt, rows).scalars().all()  # type: ignore[call-overload]
        assert len(ids) == len(rows)


@register(
    "turbo_async", "turboalchemy.abulk_insert / abulk_upsert on an AsyncEngine (aiosqlite, or psycopg async + COPY)"
)
class TurboAsyncWriter:
    """The asyncio fast path, each chunk awaited on one event loop the writer keeps for its life."""

    def __init__(self, engine: Engine) -> None:
        import asyncio

        from sqlalchemy.ext.asyncio import create_async_engine

        from .configs import PROFILE_OF

        url = engine.url.set(drivername="sqlite+aiosqlite") if engine.dialect.name == "sqlite" else engine.url
        self.loop = asyncio.new_event_loop()
        self.engine = create_async_engine(url)
        profile = PROFILE_OF.get(engine)
        if profile is not None and engine.dialect.name == "sqlite":
            profile.install(self.engine.sync_engine)

    def insert(self, rows: list[dict]) -> None:
        self.loop.run_until_complete(turboalchemy.abulk_insert(self.engine, BenchRow, rows, chunk_size=len(rows)))

    def upsert(self, rows: list[dict]) -> None:
        self.loop.run_until_complete(
            turboalchemy.abulk_upsert(
                self.engine, BenchRow, rows, conflict=NATURAL_KEY, update=UPDATE_COLUMNS, chunk_size=len(rows)
            )
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


@register(
    "copy_binary",
    "PostgreSQL's client limit: psycopg binary COPY of the chunk's tuples (built as raw builds them), typed by "
    "set_types; upserts COPY into a staging table and merge with INSERT ... SELECT ... ON CONFLICT",
)
class BinaryCopyWriter:
    """What the client can do at best here: no checks, no conversions beyond building the tuples raw builds."""

    def __init__(self, engine: Engine) -> None:
        if not server_only(engine):
            raise ValueError("copy_binary is a PostgreSQL path (--db postgresql+psycopg://...)")
        self.raw = RawWriter(engine)
        self.dbapi = self.raw.dbapi
        with committed(self.dbapi), self.dbapi.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = 'bench_rows'::regclass AND a.attnum > 0"
            )
            found = dict(cursor.fetchall())
            cursor.execute(PG_STAGING)
        self.types = [found[c] for c in COLUMNS]
        self.insert_copy = f"COPY bench_rows ({_NAMES}) FROM STDIN (FORMAT BINARY)"
        self.staging_copy = f"COPY staging ({_NAMES}) FROM STDIN (FORMAT BINARY)"

    def _copy(self, cursor: Any, statement: str, rows: list[dict]) -> None:
        with cursor.copy(statement) as copy:
            copy.set_types(self.types)
            for row in self.raw.tuples(rows):
                copy.write_row(row)

    def insert(self, rows: list[dict]) -> None:
        with committed(self.dbapi), self.dbapi.cursor() as cursor:
            self._copy(cursor, self.insert_copy, rows)

    def upsert(self, rows: list[dict]) -> None:
        with committed(self.dbapi), self.dbapi.cursor() as cursor:
            cursor.execute("TRUNCATE staging")
            self._copy(cursor, self.staging_copy, rows)
            cursor.execute(PG_MERGE)

    def close(self) -> None:
        self.raw.close()


@register(
    "adbc",
    "ADBC's PostgreSQL driver: adbc_ingest of an Arrow table built from the chunk (binary COPY underneath); "
    "upserts ingest into a staging table and merge (pip install sqlite-bench[compare])",
)
class AdbcWriter:
    """Arrow's database connectivity, the other columnar way in: the chunk becomes an Arrow table in the timed
    write, as raw builds its tuples."""

    def __init__(self, engine: Engine) -> None:
        if not server_only(engine):
            raise ValueError("adbc is a PostgreSQL path (--db postgresql+psycopg://...)")
        from adbc_driver_postgresql import dbapi as adbc

        url = engine.url.set(drivername="postgresql")
        self.conn = adbc.connect(url.render_as_string(hide_password=False))
        with committed(self.conn), self.conn.cursor() as cursor:
            cursor.execute(PG_STAGING)

    def _arrow(self, rows: list[dict]) -> Any:
        import pyarrow as pa

        return pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=_arrow_schema())

    def insert(self, rows: list[dict]) -> None:
        with committed(self.conn), self.conn.cursor() as cursor:
            cursor.adbc_ingest("bench_rows", self._arrow(rows), mode="append")

    def upsert(self, rows: list[dict]) -> None:
        with committed(self.conn), self.conn.cursor() as cursor:
            cursor.execute("TRUNCATE staging")
            cursor.adbc_ingest("staging", self._arrow(rows), mode="append", temporary=True)
            cursor.execute(PG_MERGE)

    def close(self) -> None:
        self.conn.close()


def _arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {"String": pa.string(), "Integer": pa.int32(), "Float": pa.float64(), "DateTime": pa.timestamp("us")}
    return pa.schema([(c, kinds[type(TABLE.c[c].type).__name__]) for c in COLUMNS])


@register(
    "engine", "the database alone: INSERT ... SELECT from a staging table already holding the chunk (no Python per row)"
)
class EngineLimitWriter:
    """The database engine's own limit for the same rows: `prepare` loads the chunk into a TEMP table
    (untimed: executemany into memory on SQLite, COPY on PostgreSQL); the timed write is one INSERT ... SELECT
    (with the same ON CONFLICT for upserts), so no client code runs per row. Every client path's rate can
    be read against it: what remains between the two is the client's per-row cost."""

    def __init__(self, engine: Engine) -> None:
        self.raw = RawWriter(engine)
        self.dbapi = self.raw.dbapi
        self.sqlite = self.raw.sqlite
        if self.sqlite:
            self.dbapi.execute("CREATE TEMP TABLE IF NOT EXISTS staging AS SELECT * FROM main.bench_rows WHERE 0")
            self.dbapi.execute("PRAGMA temp_store = MEMORY")
            self.insert_sql = f"INSERT INTO main.bench_rows ({_NAMES}) SELECT {_NAMES} FROM temp.staging"
            # WHERE true: SQLite's grammar needs it to read ON CONFLICT after INSERT ... SELECT
            self.upsert_sql = self.insert_sql + " WHERE true" + _ON_CONFLICT
        else:
            with committed(self.dbapi), self.dbapi.cursor() as cursor:
                cursor.execute(PG_STAGING)
            self.insert_sql, self.upsert_sql = PG_MERGE[: -len(_ON_CONFLICT)], PG_MERGE
            self.copy_sql = f"COPY staging ({_NAMES}) FROM STDIN"

    def prepare(self, phase: str, rows: list[dict]) -> None:
        if self.sqlite:
            self.dbapi.execute("DELETE FROM temp.staging")
            self.raw._write(INSERT_SQL.replace('INSERT INTO "bench_rows"', "INSERT INTO temp.staging"), rows)
            return
        with self.dbapi.cursor() as cursor:
            cursor.execute("TRUNCATE staging")
            with cursor.copy(self.copy_sql) as copy:
                for row in self.raw.tuples(rows):
                    copy.write_row(row)
        self.dbapi.commit()

    def _run(self, sql: str) -> None:
        with committed(self.dbapi):
            if self.sqlite:
                self.dbapi.execute("BEGIN")
                self.dbapi.execute(sql)
            else:
                with self.dbapi.cursor() as cursor:
                    cursor.execute(sql)

    def insert(self, rows: list[dict]) -> None:
        self._run(self.insert_sql)

    def upsert(self, rows: list[dict]) -> None:
        self._run(self.upsert_sql)

    def close(self) -> None:
        self.raw.close()


def error_kind(exc: BaseException) -> str:
    """'locked', 'integrity' or 'other', looking through SQLAlchemy's wrapper to the driver's error."""
    orig = getattr(exc, "orig", None) or exc.__cause__ or exc
    if type(orig).__name__ == "OperationalError" and any(w in str(orig).lower() for w in ("locked", "busy")):
        return "locked"
    if type(orig).__name__ == "IntegrityError" or "NOT NULL constraint" in str(exc):
        return "integrity"
    kind = type(orig).__name__
    if kind in ("DeadlockDetected", "LockNotAvailable", "SerializationFailure"):
        return "locked"
    if kind in ("UniqueViolation", "NotNullViolation", "IntegrityError", "ForeignKeyViolation", "CheckViolation"):
        return "integrity"
    return "other"


@register(
    "prebuilt",
    "raw's executemany of tuples built before the clock starts: the DB-API alone, no Python per row timed "
    "(the ceiling for any client that binds rows one by one; with one writer)",
)
class PrebuiltWriter:
    """Raw executemany with the chunk's tuples made in `prepare` (untimed, as the engine path's staging load), so
    the timed write is the driver binding and stepping each row and nothing else. Between it and `engine` lies
    what binding rows one at a time costs; between `raw` and it, what turning row dicts into tuples costs."""

    def __init__(self, engine: Engine) -> None:
        self.raw = RawWriter(engine)
        self.rows: list[dict] | None = None
        self.params: list[tuple] = []

    def prepare(self, phase: str, rows: list[dict]) -> None:
        self.rows, self.params = rows, self.raw.tuples(rows)

    def _send(self, sql: str, rows: list[dict]) -> None:
        kept = self.rows  # until the next prepare(), so a retried chunk sends the same tuples
        if kept is None or len(kept) != len(rows) or (rows and (rows[0] is not kept[0] or rows[-1] is not kept[-1])):
            raise RuntimeError("prebuilt writes the chunk its prepare() was last given")
        self.send(sql, self.params)

    def send(self, sql: str, params: list[tuple]) -> None:
        """The ready tuples, timed: raw's executemany."""
        self.raw.send(sql, params)

    def insert(self, rows: list[dict]) -> None:
        self._send(self.raw.insert_sql, rows)

    def upsert(self, rows: list[dict]) -> None:
        self._send(self.raw.upsert_sql, rows)

    def close(self) -> None:
        self.raw.close()


ROWS_PER_STATEMENT = 256  # as turboalchemy's SQLite writer (_write.sqlite.ROWS_PER_WRITE)


@register(
    "prebuilt_multi",
    "prebuilt's tuples sent as turbo sends a SQLite chunk: multi-row INSERT OR FAIL ... VALUES statements of up to "
    "256 rows (plain multi-row on PostgreSQL); the ceiling for turbo's statement shape, no Python per row timed",
)
class PrebuiltMultiWriter(PrebuiltWriter):
    """`prebuilt` with the chunk's tuples bound many rows to a statement, the statement shape turbo uses on SQLite,
    so that turbo ÷ prebuilt_multi is what turbo's own per-row work (reading dicts, converting values, checks)
    costs, and prebuilt_multi ÷ engine what is left to any client that binds its rows."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        sql = self.raw.insert_sql
        self.values = sql[sql.index(" VALUES ") + len(" VALUES ") :]
        self.per = max(1, min(ROWS_PER_STATEMENT, variable_limit(self.raw.dbapi) // len(COLUMNS)))

    def _statement(self, sql: str, rows: int) -> str:
        head, _, tail = sql.partition(" VALUES " + self.values)
        if self.raw.sqlite:
            head = head.replace("INSERT INTO", "INSERT OR FAIL INTO", 1)
        return f"{head} VALUES {', '.join([self.values] * rows)}{tail}"

    def send(self, sql: str, params: list[tuple]) -> None:
        with committed(self.raw.dbapi):
            cursor = self.raw.dbapi.cursor()
            full = self._statement(sql, self.per)
            for start in range(0, len(params), self.per):
                part = params[start : start + self.per]
                cursor.execute(
                    full if len(part) == self.per else self._statement(sql, len(part)), list(chain.from_iterable(part))
                )
            cursor.close()
