"""returning=: what a bulk write gives back, and how each returned row is matched to the row that made it.

RETURNING yields rows in no promised order (SQLite says so outright; PostgreSQL promises nothing for
INSERT ... SELECT), so order is never assumed. A returned row is matched to its input row by one of:

- "key": the values of a key every row supplies (the primary key for inserts, the conflict key for upserts),
  compared as sent and as returned, before any type processing;
- "sort": the autoincrement key the database fills, sorted: SQLite hands out max(rowid) + 1 row after row of
  one statement (and the run of keys is checked to be gap-free), PostgreSQL draws a sequence's values in the
  order of INSERT ... SELECT ... ORDER BY (the property SQLAlchemy's insertmanyvalues relies on too);
- "row": one statement per row, the answer by construction (the slow path, for tables neither fits, and for
  rows whose key holds NULL).

An insert whose rows supply every column asked for (keys made by the client, such as UUIDs, with nothing the
database fills asked for) needs no RETURNING at all: each row comes back as it was sent, provided the database
stores every such value unchanged. That is checked per chunk, value by value, against the column as the
database declares it (`echoed`; the kinds per column come from the backend's writer), and RETURNING answers
whenever it does not hold. SQLAlchemy's own RETURNING reports the very values this reads.

Several rows go in one statement on SQLite (multi-row VALUES, within the live bound-variable limit); on
PostgreSQL the rows go by COPY into a staging table and one INSERT ... SELECT ... RETURNING writes them.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import Column, Table, event, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute, Mapper, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from turboalchemy import _driver
from turboalchemy._schema import key_map, table_of
from turboalchemy._write.plan import (
    WritePlan,
    _aliased,
    _bind_name,
    _positional,
    _sets_anything,
    _upsert,
    staging_name,
    staging_source,
    staging_table,
)
from turboalchemy.errors import SchemaMismatchError

Match = Literal["key", "sort", "row"]
ROWS_PER_STATEMENT = 1000  # SQLite's multi-row VALUES: SQLAlchemy's insertmanyvalues page size too


@dataclass(frozen=True)
class Wanted:
    """What the caller asked for: column keys, and whether one scalar, a tuple or an instance per row."""

    columns: tuple[str, ...]
    shape: Literal["scalar", "tuple", "instance"]
    mapper: Mapper[Any] | None = None


def wanted(model: Any, table: Table, returning: Any) -> Wanted:
    """Resolve returning= (the mapped class, a column, or a sequence of columns) against the model's table."""
    if returning is model and not isinstance(model, Table):
        mapper = _mapper(model)
        return Wanted(tuple(c.key for c in table.columns), "instance", mapper)
    if isinstance(returning, (str, Column, InstrumentedAttribute)) or hasattr(returning, "__clause_element__"):
        return Wanted((_column_key(model, table, returning),), "scalar")
    if isinstance(returning, Sequence) and returning and not isinstance(returning, (str, bytes)):
        return Wanted(tuple(_column_key(model, table, r) for r in returning), "tuple")
    raise TypeError(
        f"returning= takes the model class, a column (attribute, Column or name) or a sequence of columns, "
        f"not {returning!r}"
    )


def _mapper(model: Any) -> Mapper[Any]:
    from sqlalchemy import inspect

    return inspect(model)  # type: ignore[no-any-return]


def _column_key(model: Any, table: Table, spec: Any) -> str:
    names = key_map(model, table)
    if isinstance(spec, str):
        if spec not in names:
            raise SchemaMismatchError(f"returning= names {spec!r}, which is not a column of table {table.name!r}")
        return names[spec]
    element = spec.__clause_element__() if hasattr(spec, "__clause_element__") else spec
    if not isinstance(element, Column) or element.table is not table:
        raise SchemaMismatchError(f"returning= names {spec!r}, which is not a column of table {table.name!r}")
    return str(element.key)


@dataclass(frozen=True)
class ReturningPlan:
    """How one write plan's rows come back: the RETURNING columns, the matching, and the statements."""

    plan: WritePlan
    fetch: tuple[str, ...]  # column keys RETURNING yields, in order
    match: Match
    key_params: tuple[int, ...]  # "key": positions in plan.params of the key's columns
    key_fetch: tuple[int, ...]  # ... and in fetch
    sort_fetch: int  # "sort": position in fetch of the autoincrement key
    updates: bool  # an upsert that updates: every occurrence of a key gets the row as stored
    skips: bool  # rows may come back with nothing (DO NOTHING)
    row_sql: str  # one row's statement, with RETURNING
    width: int  # parameters per row in a multi-row statement (onupdate values follow, once)
    head: str = ""  # SQLite: the statement up to VALUES, the one row's values, and what follows them
    values: str = ""
    tail: str = ""
    staged_sql: str = ""  # PostgreSQL: INSERT ... SELECT from the staging table ... RETURNING
    temp_name: str = ""
    dialect: Dialect | None = None
    key_param: Any = dataclasses.field(default=None, compare=False, hash=False)  # itemgetters of the key
    key_row: Any = dataclasses.field(default=None, compare=False, hash=False)
    echo: tuple[int, ...] = ()  # an insert whose rows supply every fetch column: their positions in plan.params

    def processors(self, type_codes: tuple[Any, ...]) -> tuple[Any, ...]:
        """The result processor per fetch column (None: the value as the driver gives it), for the types the
        driver reported (PostgreSQL's processors depend on the column's type OID)."""
        return _processors(self, type_codes)


@functools.lru_cache(maxsize=256)
def compile_returning(
    plan: WritePlan,
    dialect: Dialect,
    conflict: tuple[str, ...],
    update: tuple[str, ...] | None,
    asked: tuple[str, ...],
) -> ReturningPlan:
    """The returning plan for `plan`, fetching `asked` (column keys) plus what matching needs."""
    table, kind = plan.table, plan.kind
    in_params = {p.column.key: i for i, p in enumerate(plan.params) if not p.onupdate}
    match: Match = "row"
    key: tuple[str, ...] = ()
    skips = kind == "upsert" and not _sets_anything(table, plan.provided, conflict, update)
    updates = kind == "upsert" and not skips
    primary = tuple(c.key for c in table.primary_key.columns)
    auto = table.autoincrement_column
    if kind == "upsert" and (skips or not conflict or not all(k in in_params for k in conflict)):
        # DO NOTHING: a skipped row returns nothing, so a key the database stored converted (text '1' into an
        # integer column) would pass for another row's; and an upsert whose conflict key the rows leave to the
        # database has no key to match by, while a sort would not know updated rows from inserted ones.
        match = "row"
    elif kind == "upsert":
        match, key = "key", conflict
    elif primary and all(k in in_params for k in primary):
        match, key = "key", primary
    elif auto is not None and auto.key not in in_params:
        match = "sort"
    fetch = list(asked)
    for k in (*key, *((auto.key,) if match == "sort" and auto is not None else ())):
        if k not in fetch:
            fetch.append(k)
    columns = [table.columns[k] for k in fetch]

    positional = _positional(dialect)
    stmt: Any = insert(table) if kind == "insert" else _upsert(table, positional, plan.provided, conflict, update)[0]
    compiled = stmt.returning(*columns).compile(
        dialect=positional, column_keys=list(plan.provided), for_executemany=True
    )
    if list(compiled.positiontup or []) != [_bind_name(p) for p in plan.params]:
        raise SchemaMismatchError(f"table {table.name!r}: the RETURNING statement binds its values in another order")
    row_sql = _aliased(compiled.string, table, positional, kind)
    width = sum(not p.onupdate for p in plan.params)
    onupdate_last = all(p.onupdate for p in plan.params[width:])
    echo = tuple(in_params[k] for k in fetch) if kind == "insert" and all(k in in_params for k in fetch) else ()
    ret = ReturningPlan(
        plan,
        tuple(fetch),
        match,
        tuple(in_params[k] for k in key),
        tuple(fetch.index(k) for k in key),
        fetch.index(auto.key) if match == "sort" and auto is not None else -1,
        updates,
        skips,
        row_sql,
        width,
        dialect=dialect,
        key_param=itemgetter(*(in_params[k] for k in key)) if key else None,
        key_row=itemgetter(*(fetch.index(k) for k in key)) if key else None,
        echo=echo,
    )
    if match == "row" or not onupdate_last:
        return dataclasses.replace(ret, match="row")
    if dialect.name == "sqlite":
        many = getattr(compiled, "_insertmanyvalues", None)
        if many is None or any(not p.scalar for p in plan.params if p.onupdate):
            return dataclasses.replace(ret, match="row")
        values = f"({many.single_values_expr})"
        at = row_sql.find(f"VALUES {values}")
        if at < 0 or row_sql.find(f"VALUES {values}", at + 1) >= 0:
            return dataclasses.replace(ret, match="row")
        head, tail = row_sql[: at + len("VALUES ")], row_sql[at + len("VALUES ") + len(values) :]
        return dataclasses.replace(ret, head=head, values=values, tail=tail)
    if dialect.name == "postgresql" and plan.copy_columns:  # (no columns at all: one row at a time)
        staged_sql, temp_name = _staged(plan, dialect, conflict, update, columns)
        return dataclasses.replace(ret, staged_sql=staged_sql, temp_name=temp_name)
    return dataclasses.replace(ret, match="row")


def _staged(
    plan: WritePlan, dialect: Dialect, conflict: tuple[str, ...], update: tuple[str, ...] | None, columns: list[Any]
) -> tuple[str, str]:
    """PostgreSQL: the staging table (the COPY's columns and the arrival order) and the statement that writes it
    into the table in arrival order, returning `columns`."""
    table = plan.table
    copied = plan.copy_columns or ()
    name = staging_name(table, copied)
    temp = staging_table(plan, name)
    keys = [p.column.key for p in plan.params if not p.onupdate]
    source = staging_source(temp, keys)  # (an upsert's chunk with one key twice goes row by row instead)
    if plan.kind == "insert":
        stmt: Any = insert(table).from_select(keys, source)
    else:
        stmt = _upsert(table, dialect, plan.provided, conflict, update, source=(keys, source))[0]
    sql = _aliased(stmt.returning(*columns).compile(dialect=dialect).string, table, dialect, plan.kind)
    return sql, name


@functools.lru_cache(maxsize=256)
def _processors(ret: ReturningPlan, type_codes: tuple[Any, ...]) -> tuple[Any, ...]:
    dialect = ret.dialect
    assert dialect is not None
    columns = [ret.plan.table.columns[k] for k in ret.fetch]
    codes = type_codes if len(type_codes) == len(columns) else (None,) * len(columns)
    return tuple(c.type.dialect_impl(dialect).result_processor(dialect, code) for c, code in zip(columns, codes))


@dataclass(frozen=True)
class Stores:
    """What one column stores unchanged: values of exactly these Python types (bool is not int), and for
    text no longer than `longest` characters (None: any length)."""

    types: frozenset[type]
    longest: int | None = None


NOTHING = Stores(frozenset())


def echoed(ret: ReturningPlan, params: Sequence[Sequence[Any]], stores: Sequence[Stores]) -> list[Any] | None:
    """An insert's rows as RETURNING would give them (fetch order, before result processing), read from the
    values sent: when every value of every fetch column is one `stores` says its column keeps unchanged. None
    when any is not (or the plan cannot echo): RETURNING must then say what was stored."""
    if not ret.echo or not params:
        return None
    columns = []
    for at, kind in zip(ret.echo, stores, strict=True):
        values = list(map(itemgetter(at), params))
        seen = set(map(type, values))
        if not kind.types or not seen <= kind.types:
            return None
        if kind.longest is not None and max(map(len, values)) > kind.longest:
            return None
        if memoryview in seen:  # a blob as bound (sqlite3.Binary) comes back from the database as bytes
            values = [bytes(v) if type(v) is memoryview else v for v in values]
        columns.append(values)
    return list(zip(*columns))


class Uncorrelated(ValueError):
    """Internal: RETURNING gave rows that cannot be matched to the rows sent; the chunk is rolled back."""


def keys_of(ret: ReturningPlan, params: Sequence[Sequence[Any]]) -> list[Any] | None:
    """Each row's key as sent ("key" matching), computed once per chunk; None for the other matchings."""
    return list(map(ret.key_param, params)) if ret.match == "key" else None


def statements(ret: ReturningPlan, keys: list[Any] | None, n: int, limit: int) -> list[tuple[int, int]]:
    """SQLite: `n` rows cut into runs, one multi-row statement each, within `limit` bound variables; an upsert
    that updates starts a new statement where a key repeats (one statement must touch a row once)."""
    extra = len(ret.plan.params) - ret.width
    per = max(1, min(ROWS_PER_STATEMENT, (limit - extra) // max(1, ret.width)))
    if not ret.updates or keys is None or len(set(keys)) == len(keys):
        return [(start, min(n, start + per)) for start in range(0, n, per)]
    cuts: list[tuple[int, int]] = []
    start, seen = 0, set[Any]()
    for i, key in enumerate(keys):
        if key in seen or i - start == per:
            cuts.append((start, i))
            start, seen = i, set()
        seen.add(key)
    cuts.append((start, n))
    return cuts


def needs_rows(ret: ReturningPlan, params: Sequence[Sequence[Any]]) -> bool:
    """Whether this chunk must go a statement per row: a key that holds NULL matches nothing."""
    if ret.match == "row":
        return True
    if ret.match == "key":
        for i in ret.key_params:
            if None in map(itemgetter(i), params):
                return True
    return False


def per_row(ret: ReturningPlan, results: list[list[Any]]) -> list[Any]:
    """The answers of one statement per row: each row's returned row, or None where it came back with nothing."""
    out: list[Any] = []
    for rows in results:
        if len(rows) > 1:
            raise Uncorrelated(f"one row's statement returned {len(rows)} rows")
        out.append(rows[0] if rows else None)
    if not ret.skips and None in out:
        raise Uncorrelated("a row came back with nothing")
    return out


def correlate(
    ret: ReturningPlan,
    params: Sequence[Sequence[Any]],
    keys: list[Any] | None,
    segments: list[tuple[int, int, list[Any]]],
    gapless: bool,
) -> list[Any]:
    """The returned rows in the order of `params` (None where a row came back with nothing): `keys` as from
    keys_of; `segments` are (start, end, rows returned by the statement that wrote params[start:end])."""
    out: list[Any] = [None] * len(params)
    if ret.match == "sort":
        at = ret.sort_fetch
        for start, end, rows in segments:
            if len(rows) != end - start:
                raise Uncorrelated(f"{end - start} rows were sent and {len(rows)} came back")
            rows = sorted(rows, key=lambda r: r[at])
            if gapless and rows and rows[-1][at] - rows[0][at] != len(rows) - 1:
                raise Uncorrelated(
                    "the generated keys of one statement are not consecutive (a trigger inserting into the table, "
                    "or a key at its maximum), so they cannot be matched to the rows in order"
                )
            out[start:end] = rows
        return out
    assert keys is not None
    returned = [row for _start, _end, rows in segments for row in rows]
    index = dict(zip(keys, range(len(keys))))
    if len(index) == len(keys):  # every key once, the common case: C-level lookups
        where = list(map(index.get, map(ret.key_row, returned)))
        if None in where:
            raise _stranger(ret, returned, index)
        for i, row in zip(where, returned):
            out[i] = row  # type: ignore[index]
    else:
        positions: dict[Any, list[int]] = {}
        for i, key in enumerate(keys):
            positions.setdefault(key, []).append(i)
        for row in returned:
            found = positions.get(ret.key_row(row))
            if found is None:
                raise _stranger(ret, returned, index)
            if ret.updates:
                for i in found:
                    out[i] = row
            else:
                out[found[0]] = row
    if not ret.skips and any(r is None for r in out):
        raise Uncorrelated("a row came back with nothing")
    return out


def _stranger(ret: ReturningPlan, returned: list[Any], index: dict[Any, int]) -> Uncorrelated:
    key = next(k for k in map(ret.key_row, returned) if k not in index)
    return Uncorrelated(f"a returned key {key!r} equals no key as sent (the database stored a converted value)")


def variable_limit(dbapi_connection: Any) -> int:
    """The connection's live bound-variable limit; from the library version where the driver cannot say."""
    getlimit = getattr(dbapi_connection, "getlimit", None)
    if getlimit is not None:
        try:
            return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        except (*_driver.Error, AttributeError):  # type: ignore[misc]
            pass
    version = (
        getattr(dbapi_connection, "sqlite_version_info", None)
        or _driver.module_of(dbapi_connection).sqlite_version_info
    )
    return 32766 if tuple(version) >= (3, 32, 0) else 999


_WRITTEN: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def forget_on_rollback(owner: Any, objects: list[Any]) -> None:
    """When the transaction of `owner` (a Session, or a Connection) rolls back, make `objects` transient again,
    as a rollback leaves the objects add_all wrote (their attribute values stay, as the ORM leaves them); a commit
    settles them. One pair of listeners per owner, however many writes (a WriteQueue's connection lives long)."""
    written = _WRITTEN.get(owner)
    if written is None:
        written = _WRITTEN[owner] = []
        names = ("after_rollback", "after_commit") if hasattr(owner, "identity_map") else ("rollback", "commit")

        def rolled_back(*_args: Any, written: list[Any] = written) -> None:
            undone, written[:] = list(written), []
            for obj in undone:
                state = instance_state(obj)
                if state.key is not None or state.session_id is not None:
                    make_transient(obj)

        def committed(*_args: Any, written: list[Any] = written) -> None:
            written.clear()

        event.listen(owner, names[0], rolled_back)
        event.listen(owner, names[1], committed)
    written.extend(objects)


def _processed(procs: tuple[Any, ...], raw: list[Any]) -> list[Any]:
    """The returned rows with each column's result processor applied (column by column; None rows kept)."""
    if not any(procs):
        return raw
    present = [row for row in raw if row is not None]
    columns = list(zip(*present)) if present else []
    for i, p in enumerate(procs):
        if p is not None and columns:
            columns[i] = tuple(None if v is None else p(v) for v in columns[i])
    done = iter(list(zip(*columns)) if columns else [])
    return [None if row is None else next(done) for row in raw]


class Results:
    """Collects what the caller gets back, chunk by chunk, in input order. With `attach=False` (graphs of objects),
    written instances get their values at once but their identity only in attach(), once every level is written:
    attaching a parent to a Session earlier would cascade to its children while they are still new."""

    def __init__(self, want: Wanted, session: Any, model: Any, attach: bool = True, keep: bool = True) -> None:
        self.want = want
        self.keep = keep  # False: only fill the instances (a write of instances nobody asked anything back from)
        self.session = session
        self.model = model
        self.items: list[Any] = []
        self._attrs: dict[str, str] | None = None
        self._now = attach
        self._later: list[Any] = []
        self._filled: list[tuple[Sequence[Any], list[str], dict[int, list[str]]]] = []
        self.identified: list[Any] = []  # instances given an identity by this write

    def attributes(self, table: Table) -> dict[str, str]:
        """Column key -> attribute key, for setting values on instances."""
        if self._attrs is None:
            mapper = _mapper(self.model)
            self._attrs = {
                c.key: mapper.get_property_by_column(c).key
                for c in table.columns
                if c in mapper.columns.values() or mapper.columns.get(c.key) is not None
            }
        return self._attrs

    def add(self, ret: ReturningPlan, raw: list[Any], type_codes: tuple[Any, ...], rows: Sequence[Any] | None) -> None:
        """`raw`: returned rows (fetch order) or None, for the input `rows` (instances, or None for dicts/tuples);
        `type_codes`: the driver's type per returned column."""
        fetch = ret.fetch
        values = _processed(ret.processors(type_codes), raw)
        want = self.want
        if rows is not None:  # instances: each gets its key and what the database or a default filled in
            written = self._fill(ret, values, rows)
            if not self.keep:
                return
            if want.shape == "instance":
                self.items.extend(written)
                return
        elif want.shape == "instance":
            self.items.extend(self._build(ret, v) for v in values)
            return
        where = [fetch.index(k) for k in want.columns]
        pick = itemgetter(*where) if want.shape == "scalar" or len(where) > 1 else lambda v: (v[where[0]],)
        if None in values:
            self.items.extend(None if v is None else pick(v) for v in values)
        elif want.shape == "tuple" and where == list(range(len(fetch))):
            self.items.extend(values)
        else:
            self.items.extend(map(pick, values))

    def _fill(self, ret: ReturningPlan, values: list[Any], rows: Sequence[Any]) -> list[Any]:
        attrs = self.attributes(ret.plan.table)
        names = [attrs.get(k) for k in ret.fetch]
        out: list[Any] = []
        # What was set, for undo(): one list for the batch and the rows that differ from it (rows of one batch
        # supply the same attributes), not a list per object the garbage collector would visit on every pass.
        common: list[str] | None = None
        odd: dict[int, list[str]] = {}
        stored = ret.plan.kind == "upsert"
        for i, (obj, row) in enumerate(zip(rows, values)):
            if row is None:
                odd[i] = []
                out.append(None)
                continue
            state = vars(obj)
            # an insert keeps what the instance was given (as add_all does); an upsert shows the row as stored,
            # which for a conflicting row is the stored row with only the update= columns replaced
            filled = [name for name in names if name is not None and (stored or name not in state)]
            for name, value in zip(names, row):
                if name is not None and (stored or name not in state):
                    state[name] = value  # committed by make_transient_to_detached in _attach / identify
            if common is None:
                common = filled
            elif filled != common:
                odd[i] = filled
            out.append(self._attach(obj))
        if not self._now:
            self._filled.append((rows, common or [], odd))
        return out

    def _build(self, ret: ReturningPlan, row: Any) -> Any:
        if row is None:
            return None
        mapper = self.want.mapper
        assert mapper is not None
        attrs = self.attributes(ret.plan.table)
        obj = mapper.class_manager.new_instance()
        state = instance_state(obj)
        for key, value in zip(ret.fetch, row):
            name = attrs.get(key)
            if name is not None:
                state.dict[name] = value
        return self._attach(obj)

    def _attach(self, obj: Any) -> Any:
        """A written instance as the ORM leaves one after a flush: with its identity (detached), and persistent in
        the Session when the write ran in one (or that Session's own object for the row, refreshed)."""
        if not self._now:
            self._later.append(obj)
            return obj
        state = instance_state(obj)
        if state.key is None:
            make_transient_to_detached(obj)
            self.identified.append(obj)
        session = self.session
        if session is None:
            return obj
        held = session.identity_map.get(state.key)
        if held is None:
            # What session.add does with a keyed object, without walking its save-update cascade again: every
            # object that cascade reaches was written by this call and is attached here too, or is a stored
            # object a graph points to, which the graph's write adds with session.add_all. (Session._update_impl
            # is SQLAlchemy's private step behind add, there since 1.1; SQLAlchemy is pinned below
            # 2.2. The cascade walk it skips was a fifth of a 1.1M-object graph write into a Session.)
            session._update_impl(state)
            return obj
        if held is not obj:  # the Session's own object for this row: refreshed with the stored column values
            columns = set(self.attributes(table_of(self.model)).values())
            for name, value in state.dict.items():
                if name in columns:
                    set_committed_value(held, name, value)
            return held
        return obj

    def extend_from(self, table: Table, objects: Sequence[Any]) -> None:
        """What the caller asked for, read from written instances (a graph's: written level by level)."""
        if not self.keep:
            return
        if self.want.shape == "instance":
            self.items.extend(objects)
            return
        attrs = self.attributes(table)
        names = [attrs[k] for k in self.want.columns]
        for obj in objects:
            values = tuple(getattr(obj, name) for name in names)
            self.items.append(values[0] if self.want.shape == "scalar" else values)

    def identify(self) -> None:
        """Give the instances held back their identity, now that every level is written (all levels before any
        attach: attaching one to a Session cascades to the objects it relates to, which must have theirs)."""
        for obj in self._later:
            if instance_state(obj).key is None:
                make_transient_to_detached(obj)
                self.identified.append(obj)

    def attach(self) -> None:
        """Put the instances held back into the Session (after identify)."""
        self._now, later = True, self._later
        self._later, self._filled = [], []
        for obj in later:
            self._attach(obj)

    def undo(self) -> None:
        """The write was rolled back: take back the values set on instances, which stay new."""
        for rows, common, odd in self._filled:
            for i, obj in enumerate(rows):
                state = vars(obj)
                for name in odd.get(i, common):
                    state.pop(name, None)
        self._later, self._filled = [], []
