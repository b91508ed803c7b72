"""From a Table to a cached write plan: the INSERT or UPSERT text for one dialect and column set,
and for every bound parameter where its value comes from (a row's key or a Python-side default)
and which bind processor it needs. Compiled once per (table, columns, dialect, kind) and reused.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, methodcaller
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    DateTime,
    MetaData,
    Table,
    bindparam,
    exc,
    exists,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import Column
from sqlalchemy.types import TypeDecorator

from turboalchemy._schema import unique_keys
from turboalchemy.errors import SchemaMismatchError

Kind = Literal["insert", "upsert"]
_RESERVED = "_turboalchemy_"  # no user column may start so: staging columns and parameter names do
_ONUPDATE = _RESERVED + "onupdate_"
ARRIVAL = _RESERVED + "ord"  # the staging table's arrival-order column


@dataclass(frozen=True)
class Param:
    """One bound parameter: its column, where its value comes from, and how it is processed."""

    column: Column[Any]
    source: int | None  # index into the row's provided values, or None for a generated value
    generate: Callable[[Any], Any] | None  # a Python-side default or onupdate, called with a context
    scalar: bool  # `generate` ignores the row: compute once per chunk
    process: Callable[[Any], Any] | None  # the type's bind processor for this dialect, if any
    process_column: Callable[[Sequence[Any]], Sequence[Any]] | None = None  # the same, a whole column at once
    onupdate: bool = False  # an upsert's SET value from a Python-side onupdate, not an inserted value


@dataclass(frozen=True)
class WritePlan:
    table: Table
    kind: Kind
    sql: str
    provided: tuple[str, ...]  # column keys the rows supply, in the order rows are read
    params: tuple[Param, ...]  # in the statement's parameter order
    check_nan: tuple[int, ...]  # provided positions whose type is floating point
    # PostgreSQL: the columns a COPY fills, in params order (None: use executemany), and for upserts the
    # temporary table's name and the INSERT ... SELECT ... ON CONFLICT that merges it into the table
    copy_columns: tuple[str, ...] | None = None
    temp_name: str = ""
    merge_sql: str = ""
    merge_binds: tuple[tuple[str, Param], ...] = ()
    # ... and the query that finds duplicate conflict keys in the staging table by the columns' equality, where the
    # merge updates rows ("" where it does nothing on conflict, which takes duplicates as executemany does); asked
    # before a merge that would leave a trace when refused (see _write.postgresql)
    duplicates_sql: str = ""
    # ... and whether the merge's SET computes a value in SQL (an onupdate SQL expression), which may draw sequence
    # values that a refused merge would leave drawn
    sql_onupdate: bool = False
    # PostgreSQL COPY: parameter positions of naive DateTime columns (an aware value must become the session's
    # local time, as the server converts a bound timestamptz; COPY's text would drop the offset instead)
    naive_datetimes: tuple[int, ...] = ()
    # PostgreSQL COPY: for each COPY column, the SQL type SQLAlchemy's statement casts its parameter to ("" for none,
    # then the server converts the value from the type psycopg binds it as); the column's text COPY stores what the
    # statement stores only for some pairs of value and types (see _write.postgresql._copyable)
    copy_casts: tuple[str, ...] = ()
    # SQLite: the statement cut around its one row's VALUES (head, as INSERT OR FAIL; the row's values; tail), so that
    # a chunk goes as multi-row statements (see _write.sqlite); None where it goes by executemany
    many: tuple[str, str, str] | None = None

    def merge_params(self) -> dict[str, Any]:
        """Values for the merge statement's onupdate parameters, computed once per chunk."""
        return {name: param.generate(None) for name, param in self.merge_binds}  # type: ignore[misc]

    @property
    def passthrough(self) -> bool:
        """True when the rows' value tuples can go to the driver untouched."""
        return all(p.source == i and p.process is None for i, p in enumerate(self.params)) and len(self.params) == len(
            self.provided
        )


def _needs_value(column: Column[Any], table: Table) -> bool:
    """A NOT NULL column the database cannot fill by itself."""
    return not (
        column.nullable
        or column.default is not None
        or column.server_default is not None
        or column is table.autoincrement_column
    )


def _generator(default: Any) -> tuple[Callable[[Any], Any] | None, bool]:
    """(callable taking a context, is it row-independent) for a Python-side default or onupdate."""
    if default is None or getattr(default, "is_clause_element", False) or getattr(default, "is_sequence", False):
        return None, True  # the compiler renders SQL defaults inline; nothing to bind
    if default.is_scalar:
        value = default.arg
        return (lambda _ctx: value), True
    return default.arg, False


@functools.lru_cache(maxsize=256)
def compile_plan(
    table: Table,
    dialect: Dialect,
    kind: Kind,
    provided: tuple[str, ...],
    conflict: tuple[str, ...] = (),
    update: tuple[str, ...] | None = None,
) -> WritePlan:
    """The plan for writing rows that supply `provided` (column keys) into `table`.

    Raises SchemaMismatchError, before any SQL runs, for unknown columns, NOT NULL columns that
    nothing fills, or an upsert conflict target that is not exactly a unique key of the table.
    """
    columns = table.columns
    unknown = [k for k in provided if k not in columns]
    if unknown:
        raise SchemaMismatchError(f"table {table.name!r} has no column(s) {', '.join(map(repr, unknown))}")
    ours = [c.name for c in columns if c.name.lower().startswith(_RESERVED)]
    if ours:
        raise SchemaMismatchError(
            f"table {table.name!r}: column {ours[0]!r} uses the prefix {_RESERVED!r}, which turboalchemy keeps for "
            "its own staging columns and parameters; rename the column"
        )
    missing = [c.key for c in columns if c.key not in provided and _needs_value(c, table)]
    if missing:
        raise SchemaMismatchError(
            f"table {table.name!r}: NOT NULL column(s) {', '.join(map(repr, missing))} have no value in the rows "
            "and no default"
        )

    named = dialect  # the engine's own: bind processors may need its DBAPI module (LargeBinary's does)
    dialect = _positional(dialect)
    stmt: Any = insert(table)
    onupdate: list[Column[Any]] = []
    if kind == "upsert":
        stmt, onupdate = _upsert(table, dialect, provided, conflict, update)
    compiled = stmt.compile(dialect=dialect, column_keys=list(provided))
    order = compiled.positiontup or []

    params = []
    for name in order:
        if name.startswith(_ONUPDATE):
            column = columns[name[len(_ONUPDATE) :]]
            generate, scalar = _generator(column.onupdate)
            params.append(dataclasses.replace(_param(column, None, generate, scalar, named), onupdate=True))
            continue
        if name not in columns:  # a parameter of the statement's own SQL, a type's bind_expression's say
            raise SchemaMismatchError(
                f"table {table.name!r}: the statement binds a value of its own, {name!r} (a SQL expression's: a column "
                "default such as func.abs(-5), or a column type's bind_expression); the fast path cannot send it yet, "
                "write these rows with SQLAlchemy's insert"
            )
        column = columns[name]
        if name in provided:
            params.append(_param(column, provided.index(name), None, True, named))
        else:
            generate, scalar = _generator(column.default)
            if generate is None:
                raise SchemaMismatchError(f"column {table.name}.{name} needs a value the rows do not supply")
            params.append(_param(column, None, generate, scalar, named))
    # SQLite stores NaN as NULL in any column, so the fast path refuses it there wherever a float can arrive: a
    # column whose bind processor refuses floats anyway (DateTime, Date, Time, Uuid, LargeBinary, ...) needs no
    # look. PostgreSQL stores NaN, as the ORM would.
    by_column = {p.column.key: p for p in params if p.source is not None}
    floating = (
        tuple(i for i, k in enumerate(provided) if _float_may_reach(columns[k], by_column[k].process, dialect))
        if dialect.name == "sqlite"
        else ()
    )
    plan = WritePlan(table, kind, _aliased(compiled.string, table, dialect, kind), provided, tuple(params), floating)
    if dialect.name == "sqlite":
        plan = dataclasses.replace(plan, many=_multi_row(stmt, plan, dialect))
    if dialect.name == "postgresql":
        plan = _copy_plan(plan, named, conflict, update)
        if plan.copy_columns is not None:
            impls = [_impl(p.column.type, named) for p in plan.params]
            naive = tuple(
                i
                for i, (p, impl) in enumerate(zip(plan.params, impls))
                if isinstance(impl, DateTime) and not impl.timezone and not p.onupdate
            )
            plan = dataclasses.replace(plan, naive_datetimes=naive)
    return plan


_FORMAT_TWINS: dict[type[Dialect], Dialect] = {}


def _multi_row(stmt: Any, plan: WritePlan, dialect: Dialect) -> tuple[str, str, str] | None:
    """The plan's statement cut where its one row's values stand, as SQLAlchemy's insertmanyvalues cuts it, for
    writing many rows per statement. None where rows cannot share one: an upsert's SET binds a value the ORM
    computes per row (a Python onupdate that is called, not a constant), or the values do not stand once where
    the statement is cut."""
    width = sum(not p.onupdate for p in plan.params)
    if not all(p.onupdate and p.scalar for p in plan.params[width:]):
        return None
    try:
        compiled = stmt.returning(*plan.table.columns).compile(
            dialect=dialect, column_keys=list(plan.provided), for_executemany=True
        )
    except exc.CompileError:
        return None
    many = getattr(compiled, "_insertmanyvalues", None)
    if many is None or list(compiled.positiontup or []) != [_bind_name(p) for p in plan.params]:
        return None
    values = f"({many.single_values_expr})"
    if values != "(" + ", ".join(["?"] * width) + ")":
        return None  # SQL in the values (a SQL default): evaluated for every row before any is written, if it reads the table
    at = plan.sql.find(f"VALUES {values}")
    if at < 0 or plan.sql.find(f"VALUES {values}", at + 1) >= 0:
        return None
    cut = at + len("VALUES ")
    if not plan.sql.startswith("INSERT INTO "):
        return None
    # OR FAIL: no statement journal (see _write.sqlite.SqliteChunkWriter._write_rows)
    return "INSERT OR FAIL INTO " + plan.sql[len("INSERT INTO ") : cut], values, plan.sql[cut + len(values) :]


def _bind_name(param: Param) -> str:
    """The name a parameter has in the compiled statement."""
    return _ONUPDATE + param.column.key if param.onupdate else str(param.column.key)


def _positional(dialect: Dialect) -> Dialect:
    """The dialect itself when it binds by position (SQLite), else a 'format' (%s) twin (psycopg), so that
    each chunk's rows can go to the driver as plain tuples in the statement's order."""
    if dialect.positional:
        return dialect
    cls = type(dialect)
    twin = _FORMAT_TWINS.get(cls)
    if twin is None:
        twin = _FORMAT_TWINS[cls] = cls(paramstyle="format")  # type: ignore[call-arg]  # DefaultDialect takes it
    return twin


def _copy_plan(
    plan: WritePlan, dialect: Dialect, conflict: tuple[str, ...], update: tuple[str, ...] | None
) -> WritePlan:
    """Add what PostgreSQL's COPY path needs, or leave the plan to executemany where COPY cannot do
    what the INSERT does (a SQL-expression default, or an onupdate that differs row by row)."""
    table = plan.table
    given = {p.column.key for p in plan.params if not p.onupdate}
    for column in table.columns:
        default = column.default
        if (
            column.key not in given
            and default is not None
            and (getattr(default, "is_clause_element", False) or getattr(default, "is_sequence", False))
        ):
            return plan
    inserted = tuple(p for p in plan.params if not p.onupdate)
    columns = tuple(p.column.name for p in inserted)
    casts = tuple(_rendered_cast(p.column.type, dialect) for p in inserted)
    if plan.kind == "insert":
        return dataclasses.replace(plan, copy_columns=columns, copy_casts=casts)
    if any(not p.scalar for p in plan.params if p.onupdate):
        return plan
    if inserted != plan.params[: len(inserted)]:
        return plan  # onupdate parameters must follow the inserted ones for the rows to be sliced
    if any(k not in {p.column.key for p in inserted} for k in conflict):
        return plan  # a conflict key the server completes (a default): the staged chunk cannot be checked by it
    temp_name = staging_name(table, columns)
    temp = staging_table(plan, temp_name)
    keys = [p.column.key for p in inserted]
    # Every staged row in arrival order, as executemany would send them. A chunk holding one key twice does not
    # take this merge where it updates (ON CONFLICT DO UPDATE may not touch a row twice in one statement): it goes
    # row by row, see duplicates_sql and _write.postgresql.
    source = staging_source(temp, keys)
    stmt, _ = _upsert(table, dialect, plan.provided, conflict, update, source=(keys, source))
    compiled = stmt.compile(dialect=dialect)
    duplicates = ""
    if _updates(table, plan, conflict, update):
        grouped: Any = select(literal_column("1")).select_from(temp).group_by(*(temp.c[k] for k in conflict))
        duplicates = str(select(exists(grouped.having(func.count() > literal_column("1")))).compile(dialect=dialect))
    binds = tuple(
        (name, p)
        for name in compiled.binds
        if name.startswith(_ONUPDATE)
        for p in plan.params
        if p.onupdate and p.column.key == name[len(_ONUPDATE) :]
    )
    merge = _aliased(compiled.string, table, dialect, "upsert")
    return dataclasses.replace(
        plan,
        copy_columns=columns,
        copy_casts=casts,
        temp_name=temp_name,
        merge_sql=merge,
        merge_binds=binds,
        duplicates_sql=duplicates,
        sql_onupdate=any(
            c.onupdate is not None and _generator(c.onupdate)[0] is None and c.key not in plan.provided
            for c in table.columns
        ),
    )


def _rendered_cast(type_: Any, dialect: Dialect) -> str:
    """The SQL type SQLAlchemy's statement casts a parameter of this type to, as its compiler renders it (psycopg
    renders `%(x)s::INTEGER` for an Integer, nothing for a Numeric), or "": a plain type name, a collation dropped
    (it changes no value); "?" for anything else, a type modifier such as `INTERVAL (0)` say, which the statement
    applies and COPY would not."""
    rendered = str(bindparam("x", type_=type_).compile(dialect=dialect))
    if not rendered.startswith("%(x)s"):
        return "?"  # the parameter inside SQL of the type's (a bind_expression), which COPY would not apply
    cast = re.sub(r' COLLATE "[^"]*"$', "", rendered.removeprefix("%(x)s").removeprefix("::"))
    if re.match(r"INTERVAL .", cast):
        return "?"  # fields (INTERVAL HOUR): a type modifier to_regtype would drop
    return cast if not cast or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ ]*(\[\])*", cast) else "?"


def _impl(type_: Any, dialect: Dialect) -> Any:
    """The type the dialect binds with: a variant for it chosen, TypeDecorators' own implementations for it."""
    type_ = type_.dialect_impl(dialect)
    while isinstance(type_, TypeDecorator):
        type_ = type_.load_dialect_impl(dialect).dialect_impl(dialect)
    return type_


def staging_name(table: Table, columns: tuple[str, ...]) -> str:
    """One staging table per target table (schema included) and column set, so two tables, or two column sets
    of one table, never share one inside a transaction; it holds only the columns the rows supply."""
    digest = hashlib.sha1(f"{table.schema}.{table.name}:{','.join(columns)}".encode()).hexdigest()[:12]
    return f"{_RESERVED}{table.name[:30]}_{digest}"


def staging_table(plan: WritePlan, name: str) -> Table:
    """The staging table's shape: the columns the COPY fills, typed as the target's, and the arrival order."""
    inserted = [p.column for p in plan.params if not p.onupdate]
    return Table(name, MetaData(), *(Column(c.name, c.type, key=c.key) for c in inserted), Column(ARRIVAL, BigInteger))


def staging_source(temp: Table, keys: list[str]) -> Any:
    """The SELECT that feeds the staging table's rows to a merge: every row, in arrival order (as executemany would
    send them). An upsert whose chunk holds one key twice goes row by row instead (see _write.postgresql)."""
    return select(*(temp.c[k] for k in keys)).order_by(temp.c[ARRIVAL])


def _updates(table: Table, plan: WritePlan, conflict: tuple[str, ...], update: tuple[str, ...] | None) -> bool:
    """Whether the merge updates rows on conflict (ON CONFLICT DO UPDATE may not touch a row twice in one
    statement, where DO NOTHING takes a key twice as executemany does)."""
    return any(p.onupdate for p in plan.params) or _sets_anything(table, plan.provided, conflict, update)


def _param(
    column: Column[Any], source: int | None, generate: Callable[[Any], Any] | None, scalar: bool, dialect: Dialect
) -> Param:
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return Param(column, source, generate, scalar, None, None)
    if _python_type(column) is datetime:
        fast = _fast_datetime(process)
        if fast is not None and fast is not process:
            return Param(column, source, generate, scalar, fast, _datetime_column(fast))
    return Param(column, source, generate, scalar, process, lambda values: list(map(process, values)))


def _datetime_column(per_value: Callable[[Any], Any]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Format a column of naive datetimes (and None) with C-level calls; anything else value by value."""
    iso = methodcaller("isoformat", " ", "microseconds")
    tzinfo = attrgetter("tzinfo")

    def process(values: Sequence[Any]) -> Sequence[Any]:
        kinds = set(map(type, values))
        if kinds == {type(None)}:
            return values
        if kinds <= {datetime, type(None)}:
            present = [v for v in values if v is not None] if type(None) in kinds else values
            if not any(map(tzinfo, present)):
                if len(present) == len(values):
                    return list(map(iso, values))
                return [None if v is None else iso(v) for v in values]
        return list(map(per_value, values))

    return process


_PROBES = (datetime(2001, 2, 3, 4, 5, 6, 7), datetime(1999, 12, 31, 23, 59, 59))


def _fast_datetime(process: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """SQLite's DateTime processor builds its text with %-formatting; where it provably yields what
    datetime.isoformat(" ", "microseconds") yields, use that (several times faster) for naive datetimes."""
    if process is None or any(process(p) != p.isoformat(" ", "microseconds") for p in _PROBES):
        return process

    def fast(value: Any, _datetime: type[datetime] = datetime, _slow: Callable[[Any], Any] = process) -> Any:
        if value is None:
            return None
        if value.__class__ is _datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return _slow(value)

    fast.inline_datetime = process  # type: ignore[attr-defined]  # lets generated converters inline it
    return fast


def _python_type(column: Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _float_may_reach(column: Column[Any], process: Callable[[Any], Any] | None, dialect: Dialect) -> bool:
    """Whether a float NaN given for `column` would reach SQLite (and be stored as NULL): the column has no bind
    processor, or one that passes floats on (Float, Numeric)."""
    if process is None or _is_floating(column) or _python_type(column) is Decimal:
        return True
    try:
        process(float("nan"))
    except Exception:
        return False  # refused already, with the row and column named
    return True


def _is_floating(column: Column[Any]) -> bool:
    return _python_type(column) is float


def _upsert(
    table: Table,
    dialect: Dialect,
    provided: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[str, ...] | None,
    source: tuple[list[str], Any] | None = None,
) -> tuple[Any, list[Column[Any]]]:
    columns = table.columns
    if not conflict and update != ():
        raise SchemaMismatchError("an upsert needs a conflict target: conflict=('col', ...)")
    unknown = [k for k in conflict if k not in columns]
    if unknown:
        raise SchemaMismatchError(f"conflict target names unknown column(s) {', '.join(map(repr, unknown))}")
    if conflict and frozenset(conflict) not in unique_keys(table):
        raise SchemaMismatchError(
            f"conflict target ({', '.join(conflict)}) is not a primary key, unique constraint or unique index "
            f"of table {table.name!r}; the database would refuse ON CONFLICT on it"
        )
    primary = {c.key for c in table.primary_key.columns}
    if update is None:
        targets = [
            c.key
            for c in columns
            if c.key not in conflict and c.key not in primary and (c.key in provided or c.onupdate is not None)
        ]
    else:
        bad = [k for k in update if k not in columns]
        if bad:
            raise SchemaMismatchError(f"update names unknown column(s) {', '.join(map(repr, bad))}")
        absent = [k for k in update if k not in provided and columns[k].onupdate is None]
        if absent:
            raise SchemaMismatchError(
                f"update= names {absent[0]!r}, which the rows do not supply: the stored value would be replaced by "
                f"the column's default; supply it in every row or leave it out of update="
            )
        targets = list(update)
    module = {"sqlite": "sqlalchemy.dialects.sqlite", "postgresql": "sqlalchemy.dialects.postgresql"}.get(dialect.name)
    if module is None:
        raise SchemaMismatchError(f"upsert is not supported on {dialect.name}")
    dialect_insert = __import__(module, fromlist=["insert"]).insert
    stmt = dialect_insert(table)
    if source is not None:
        stmt = stmt.from_select(*source)
    onupdate = []
    sets: dict[str, Any] = {}
    for key in targets:
        column = columns[key]
        if key not in provided and column.onupdate is not None and _generator(column.onupdate)[0] is not None:
            sets[key] = bindparam(_ONUPDATE + key, type_=column.type)
            onupdate.append(column)
        elif key not in provided and column.onupdate is not None:
            sets[key] = column.onupdate.arg  # type: ignore[attr-defined]  # a SQL expression onupdate, rendered inline
        else:
            sets[key] = stmt.excluded[key]
    if sets:
        stmt = stmt.on_conflict_do_update(index_elements=list(conflict), set_=sets)
    else:  # update=(): insert, skipping rows that conflict on `conflict` (or on any unique key when none is named)
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict) or None)
    return stmt, onupdate


def _aliased(statement: str, table: Table, dialect: Dialect, kind: Kind) -> str:
    """An upsert into a table named `excluded` with the target aliased, so that `excluded.col` in its SET clause
    means the proposed row, as it does for any other table (SQLite would read the target's own value, PostgreSQL
    refuse the name as ambiguous). Any other statement as compiled."""
    if kind != "upsert" or table.name.lower() != "excluded":
        return statement
    head = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
    if not statement.startswith(head):
        raise SchemaMismatchError(f"cannot alias the upsert target {table.name!r} in: {statement[:80]}")
    return head + f"AS {_RESERVED}target " + statement[len(head) :]


def _sets_anything(
    table: Table, provided: tuple[str, ...], conflict: tuple[str, ...], update: tuple[str, ...] | None
) -> bool:
    """Whether an upsert updates (DO UPDATE) rather than skipping conflicting rows (DO NOTHING)."""
    if update is not None:
        return bool(update)
    primary = {c.key for c in table.primary_key.columns}
    return any(c.key not in conflict and c.key not in primary and c.key in provided for c in table.columns)


def nan_position(values: Sequence[Any]) -> int:
    """Index of the first NaN in `values`, or -1. C-level passes keep the common cases cheap: a sum for
    numbers, the set of types for anything else (only a float or a Decimal can be NaN)."""
    try:
        total = sum(filter(None, values), 0.0)
        if total == total:
            return -1
    except (TypeError, OverflowError):
        if not any(issubclass(kind, (float, Decimal)) for kind in set(map(type, values))):
            return -1
    for i, value in enumerate(values):
        if value != value:
            return i
    return -1
