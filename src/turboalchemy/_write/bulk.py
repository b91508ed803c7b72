"""bulk_insert and bulk_upsert: rows in, chunks out, each chunk one transaction or savepoint (its statements:
_write.sqlite and _write.postgresql).

The per-row path is what a hand-written loader would do: a comprehension generated once per plan builds
each row's tuple, calling a type's bind processor only for the columns that have one. Rows that need
per-row defaults, and model instances, take a column-wise path that does the same work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby, islice
from operator import itemgetter
from typing import Any, Literal, TypeAlias, TypeVar, overload

from sqlalchemy import JSON, Table, TypeDecorator, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import object_session
from sqlalchemy.orm.attributes import instance_state

from turboalchemy._schema import Model, key_map, table_of
from turboalchemy._targets import Target, bound
from turboalchemy._write.graph import Level, fill_foreign_keys, holds_new_objects, levels, unfill_foreign_keys
from turboalchemy._write.plan import Kind, WritePlan, compile_plan, nan_position
from turboalchemy._write.returning import Results, Wanted, compile_returning, forget_on_rollback, wanted
from turboalchemy._write.sqlite import ChunkFailed, SqliteChunkWriter, Unconverted
from turboalchemy.errors import (
    BulkWriteError,
    SchemaMismatchError,
    TurboAlchemyError,
    UnsupportedTargetError,
    translate,
)

M = TypeVar("M")
Returning: TypeAlias = Any
"""returning=: the mapped class (instances back), a column (attribute, Column or name: scalars back) or a
sequence of columns (tuples back)."""


@overload
def bulk_insert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: None = ...,
) -> int: ...
@overload
def bulk_insert(
    target: Target,
    model: type[M],
    rows: Iterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: type[M],
) -> list[M]: ...
@overload
def bulk_insert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: Returning,
) -> list[Any]: ...


def bulk_insert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    chunk_size: int = 5000,
    on_conflict: Literal["error", "ignore"] = "error",
    conflict: Sequence[str] | None = None,
    returning: Returning = None,
) -> int | list[Any]:
    """Insert `rows` into `model`'s table at executemany speed (COPY on PostgreSQL), storing what the ORM would.

    Args:
        target: An Engine (each chunk commits on its own), or a Connection or Session (the caller's
            transaction: each chunk runs in a SAVEPOINT, and the caller commits).
        model: A mapped class or a Core Table.
        rows: Any iterable, read `chunk_size` rows at a time: dicts keyed by attribute or column name (rows may
            leave different keys out: a missing key means the column's default), model instances (with new
            related objects, written level by level as `add_all` would), or tuples in the table's column order.
        chunk_size: Rows per statement batch and, on an Engine, per transaction.
        on_conflict: "ignore" skips rows that conflict with a stored row or an earlier row of the call
            (`ON CONFLICT DO NOTHING`, the first row wins).
        conflict: With `on_conflict="ignore"`, the unique key to skip on (None: any unique key).
        returning: The model class, a column (attribute, Column or name) or a sequence of columns: give back
            one item per row, in input order, as `session.scalars(insert(Model).returning(...), rows)` would.
            A row skipped by `on_conflict="ignore"` gives None. Rows given as instances get their keys and server
            values and become persistent in a Session target (detached otherwise), with or without `returning`.

    Returns:
        The number of rows written (related rows of a graph included; with `on_conflict="ignore"`, the rows
        sent), or with `returning` the list of what each row gave back.

    Raises:
        SchemaMismatchError: Before any SQL runs, for unknown keys, NOT NULL columns nothing fills, a conflict
            key that is not unique, or a graph the unit of work would write some other way.
        BulkWriteError: A value or row the database refused, naming the table, row, column and value type,
            with `committed` rows before the failing chunk (Engine targets); that chunk is rolled back whole.
        DatabaseLockedError: The write lock was not had within busy_timeout (likewise DiskFullError,
            ReadOnlyDatabaseError, CorruptDatabaseError: failures that are no row's fault).
    """
    if on_conflict == "ignore":
        return _write(target, model, rows, "upsert", chunk_size, tuple(conflict or ()), (), returning=returning)
    if on_conflict != "error":
        raise ValueError(f"on_conflict must be 'error' or 'ignore', not {on_conflict!r} (to update, use bulk_upsert)")
    if conflict is not None:
        raise ValueError("conflict= names the key for on_conflict='ignore'; to update on it, use bulk_upsert")
    return _write(target, model, rows, "insert", chunk_size, (), None, returning=returning)


@overload
def bulk_upsert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: None = ...,
) -> int: ...
@overload
def bulk_upsert(
    target: Target,
    model: type[M],
    rows: Iterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: type[M],
) -> list[M]: ...
@overload
def bulk_upsert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: Returning,
) -> list[Any]: ...


def bulk_upsert(
    target: Target,
    model: Model,
    rows: Iterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    chunk_size: int = 5000,
    returning: Returning = None,
) -> int | list[Any]:
    """Insert `rows`, updating the stored row where `conflict` (a unique key) matches.

    Args:
        target: As for bulk_insert: an Engine, Connection or Session.
        model: A mapped class or a Core Table.
        rows: As for bulk_insert (instances holding related objects are refused: add_all has no upsert).
        conflict: The conflict target: exactly the columns of a primary key, unique constraint or unique index.
        update: The columns to overwrite on conflict. None: every column outside the conflict target and the
            primary key that the rows supply, plus columns with an `onupdate`. `()`: none (insert, skipping
            conflicting rows). A listed column the rows do not supply is refused before any SQL.
        chunk_size: Rows per statement batch and, on an Engine, per transaction.
        returning: As for bulk_insert; each row gives the row as its upsert stored it (of duplicates of a key
            within the call, the last gives the row as stored after the call); with `update=()`, a skipped row
            gives None.

    Returns:
        The number of rows sent, or with `returning` the list of what each row gave back.

    Raises:
        SchemaMismatchError: Before any SQL runs (see bulk_insert).
        BulkWriteError: A value or row the database refused, naming the row and column. Duplicates of one key
            within a call are not an error: they apply in order, the first inserting and each later one updating
            it (as executemany would); rows whose key holds NULL never conflict.
    """
    changes = None if update is None else tuple(update)
    return _write(target, model, rows, "upsert", chunk_size, tuple(conflict), changes, returning=returning)


class _Context:
    """What a context-sensitive column default reads: the current row's parameters."""

    __slots__ = ("provided", "values")

    def __init__(self, provided: tuple[str, ...]) -> None:
        self.provided = provided
        self.values: Sequence[Any] = ()

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        return dict(zip(self.provided, self.values))

    @property
    def current_parameters(self) -> dict[str, Any]:
        return self.get_current_parameters()


class _Reader:
    """Reads value tuples, in the plan's `provided` order, from rows of one shape."""

    def __init__(self, model: Any, table: Table, first: Any, at: int = 0) -> None:
        names = key_map(model, table)
        self.table = table
        self.names = names
        self.model = model
        if isinstance(first, dict):
            self.shape = "dict"
            keys = list(first)
        elif isinstance(first, (tuple, list)):
            self.shape = "tuple"
            keys = []
            if len(first) != len(table.columns):
                raise SchemaMismatchError(
                    f"row {at} has {len(first)} values; table {table.name!r} has {len(table.columns)} columns "
                    "(tuples must follow the table's column order)"
                )
            self.provided = tuple(c.key for c in table.columns)
        elif hasattr(first, "__dict__") and not isinstance(model, Table) and isinstance(first, model):
            self.shape = "instance"
            keys = [k for k in vars(first) if k in names]  # related objects: refused per row in _batches
        else:
            raise SchemaMismatchError(
                f"row {at} is a {type(first).__name__}; rows must be dicts, tuples or {getattr(model, '__name__', 'model')} instances"
            )
        if self.shape != "tuple":
            unknown = [k for k in keys if k not in names]
            if unknown:
                raise SchemaMismatchError(
                    f"row {at} has key(s) {', '.join(map(repr, unknown))} that are not columns of table {table.name!r}"
                )
            self.provided = tuple(names[k] for k in keys)
            if len(set(self.provided)) != len(self.provided):
                raise SchemaMismatchError(f"row {at} names the same column twice (by attribute and by column name)")
        self.keys = keys
        self.width = len(keys) if self.shape != "tuple" else len(self.provided)
        getter = itemgetter(*keys) if keys else (lambda _r: ())
        self.get = (lambda r: (getter(r),)) if len(keys) == 1 else getter

    def values(self, chunk: list[Any], start: int) -> list[Sequence[Any]]:
        try:
            if self.shape == "tuple":
                values = [tuple(r) for r in chunk]
            elif self.shape == "dict":
                values = list(map(self.get, chunk))
            else:
                values = [self.get(vars(r)) for r in chunk]
        except (KeyError, TypeError, AttributeError):
            values = None
        if values is None or set(map(len, chunk if self.shape != "instance" else values)) != {self.width}:
            if self.shape == "dict" and all(r.__class__ is dict for r in chunk):
                raise _Mixed  # dicts supplying different keys: the caller writes them a run of one key set at a time
            raise self._shape_error(chunk, start)
        return values  # type: ignore[return-value]  # tuples: the Sequence the callers index

    def _shape_error(self, chunk: list[Any], start: int) -> BulkWriteError:
        for i, row in enumerate(chunk):
            if self.shape == "instance":
                row = vars(row) if hasattr(row, "__dict__") else row
            if self.shape in ("dict", "instance") and isinstance(row, dict):
                missing = [k for k in self.keys if k not in row]
                extra = [k for k in row if k not in self.keys and (self.shape == "dict" or not k.startswith("_sa"))]
                if missing or (self.shape == "dict" and extra):
                    what = f"lacks key {missing[0]!r}" if missing else f"has key {extra[0]!r}"
                    return _row_error(
                        self.table,
                        start + i,
                        (missing or extra)[0],
                        None,
                        f"row {start + i} {what} that row 0 does not; every row must supply the same keys",
                    )
            elif self.shape == "tuple" and (not isinstance(row, (tuple, list)) or len(row) != self.width):
                return _row_error(
                    self.table,
                    start + i,
                    None,
                    type(row).__name__,
                    f"row {start + i} is not a tuple of {self.width} values",
                )
            elif not isinstance(row, (dict, tuple, list)):
                return _row_error(
                    self.table,
                    start + i,
                    None,
                    type(row).__name__,
                    f"row {start + i} is a {type(row).__name__}, unlike row 0",
                )
        return _row_error(self.table, start, None, None, "rows changed shape within the chunk")


class _Mixed(Exception):
    """Internal: the chunk's dicts supply different keys."""


@functools.lru_cache(maxsize=256)
def _relationship_keys(model: Any) -> tuple[str, ...]:
    """The model's relationship attributes, looked up once per model, not once per row."""
    return tuple(relationship.key for relationship in inspect(model).relationships)


def _refuse_pending_relationships(model: Any, instance: Any, at: int) -> None:
    """Refuse an instance holding related objects: add_all would write them (and fill the foreign keys);
    the fast path writes this table's columns only, so it would silently drop them."""
    state = vars(instance)
    for key in _relationship_keys(model):
        value = state.get(key)
        if value is not None and value != []:
            raise SchemaMismatchError(
                f"row {at} sets relationship {model.__name__}.{key}; bulk writes store this table's "
                "columns only, so its related objects (and the foreign keys the ORM would fill from them) would "
                "be lost: write the related rows with their own bulk call and set the foreign-key columns, or "
                "use session.add_all for object graphs"
            )


@dataclass
class _Batch:
    """Rows of one key set within a chunk, ready for the driver: where they start in the chunk, their plan,
    parameters, and the raw values (for naming a failing value's type)."""

    offset: int
    size: int
    plan: WritePlan
    params: list[Sequence[Any]]
    values: Any


def _batches(
    chunk: list[Any],
    reader: _Reader,
    start: int,
    plan_for: Callable[[_Reader], WritePlan],
    graph: bool = False,
    pending: bool = False,
) -> list[_Batch]:
    """The chunk as runs of rows that supply the same keys, in order, each with its own plan. A key a row
    leaves out means the column's default (Python-side applied, server-side left to the database), as
    SQLAlchemy's ORM bulk INSERT does. One run, the common case, costs no per-row check for dicts."""
    if reader.shape != "instance":  # instances are read one by one below: a later one may set more attributes
        plan = plan_for(reader)
        try:
            params, values = _params(plan, reader, chunk, start, pending)
            return [_Batch(0, len(chunk), plan, params, values)]
        except _Mixed:
            pass
    if reader.shape == "instance" and not all(isinstance(r, reader.model) for r in chunk):
        raise reader._shape_error(chunk, start)
    names = reader.names
    if reader.shape == "dict":
        key_of: Callable[[Any], Any] = frozenset
    else:
        columns = names.keys()

        def key_of(row: Any) -> Any:
            return frozenset(vars(row).keys() & columns)

    batches: list[_Batch] = []
    readers: dict[Any, _Reader] = {}
    position = 0
    for keys, run in groupby(chunk, key=key_of):
        rows = list(run)
        at = start + position
        if reader.shape == "instance" and not graph:  # a graph's levels are written in order by write_graph
            for i, row in enumerate(rows):
                _refuse_pending_relationships(type(row), row, at + i)  # its own class: a subclass may add some
        found = readers.get(keys)
        if found is None:
            unknown = [k for k in key_of(rows[0]) if k not in names]
            if unknown:
                raise _row_error(
                    reader.table,
                    at,
                    unknown[0],
                    None,
                    f"row {at} has key {unknown[0]!r}, which is not a column of table {reader.table.name!r}",
                )
            found = readers[keys] = _Reader(reader.model, reader.table, rows[0], at)
        plan = plan_for(found)
        params, values = _params(plan, found, rows, at)
        batches.append(_Batch(position, len(rows), plan, params, values))
        position += len(rows)
    return batches


def _row_error(
    table: Table,
    row: int | None,
    column: str | None,
    value_type: str | None,
    message: str,
    committed: int | None = None,
) -> BulkWriteError:
    return BulkWriteError(
        f"table {table.name!r}: {message}",
        table=table.name,
        row=row,
        column=column,
        value_type=value_type,
        committed=committed,
    )


@functools.lru_cache(maxsize=256)
def _row_converter(
    plan: WritePlan, shape: str, keys: tuple[Any, ...]
) -> Callable[[list[Any]], list[tuple[Any, ...]]] | None:
    """A list comprehension built for this plan and key order, the same shape as hand-written code:
    `[(r[k0], p1(r[k1]), ...) for r in rows]`. Keys and processors are bound as default arguments, so
    no caller-supplied text ever becomes source code. None when a parameter is generated per row."""
    if shape not in ("dict", "tuple") or any(p.source is None for p in plan.params):
        return None
    names: dict[str, Any] = {"_datetime": datetime}
    items = []
    for i, param in enumerate(plan.params):
        key = keys[param.source] if shape == "dict" else param.source  # type: ignore[index]
        names[f"k{i}"] = key
        item = f"r[k{i}]"
        slow = getattr(param.process, "inline_datetime", None)
        if slow is not None:
            # the fast DateTime processor, inlined to save a call per value; other values take the full one
            names[f"p{i}"] = slow
            item = (
                f"(None if (v{i} := r[k{i}]) is None else v{i}.isoformat(' ', 'microseconds') "
                f"if v{i}.__class__ is _datetime and v{i}.tzinfo is None else p{i}(v{i}))"
            )
        elif param.process is not None:
            names[f"p{i}"] = param.process
            item = f"p{i}({item})"
        items.append(item)
    arguments = ", ".join(f"{name}={name}" for name in names)
    source = f"def convert(rows, {arguments}):\n    return [({', '.join(items)},) for r in rows]\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<turboalchemy row converter for {plan.table.name}>", "exec"), names, namespace)
    return namespace["convert"]  # type: ignore[no-any-return]


# Whether chunks are converted as they are sent, by PostgreSQL's COPY or SQLite's statements (see _Pending)
_PENDING = True


class _Pending(Sequence[Sequence[Any]]):
    """A chunk's parameter tuples, converted as they are read: a slice at a time by a writer that sends slices
    while the database works on the ones before (PostgreSQL's COPY; SQLite's statements, converted on a helper
    thread where `threadable`), so that the conversion overlaps the database's work; whole on any other read. A row
    the conversion cannot take, or one `refuse` finds fault with (a NaN SQLite would store as NULL), raises
    Unconverted: the writer undoes the chunk, and the careful path reads it again and names the row."""

    def __init__(
        self,
        convert: Callable[[list[Any]], list[tuple[Any, ...]]],
        chunk: list[Any],
        refuse: Callable[[list[tuple[Any, ...]]], bool] | None = None,
        threadable: bool = False,
    ) -> None:
        self._convert, self._chunk, self._refuse = convert, chunk, refuse
        self._rows: list[tuple[Any, ...]] | None = None
        self.threadable = threadable

    def __len__(self) -> int:
        return len(self._chunk)

    def unchecked(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """Rows start..stop-1 converted, not yet checked (see check)."""
        return self._unchecked(self._chunk[start:stop])

    def check(self, params: list[tuple[Any, ...]]) -> None:
        """Raise Unconverted where `refuse` finds fault with converted rows."""
        if self._refuse is not None and self._refuse(params):
            raise Unconverted

    def _unchecked(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._convert(rows)
        except Exception as exc:  # a key a row lacks, a value a processor refuses: the careful path names it
            raise Unconverted from exc

    def _converted(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        params = self._unchecked(rows)
        self.check(params)
        return params

    def _all(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = self._converted(self._chunk)
        return self._rows

    @overload
    def __getitem__(self, index: int) -> Sequence[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sequence[Any]]: ...
    def __getitem__(self, index: int | slice) -> Sequence[Any] | list[Sequence[Any]]:
        if isinstance(index, slice) and self._rows is None:
            return self._converted(self._chunk[index])
        return self._all()[index]

    def __iter__(self) -> Iterator[Sequence[Any]]:
        return iter(self._all())


def _params(
    plan: WritePlan, reader: _Reader, chunk: list[Any], start: int, pending: bool = False
) -> tuple[list[Sequence[Any]], list[Sequence[Any]]]:
    """The chunk's parameter tuples in statement order, and the raw value tuples they came from; `pending`: as a
    _Pending, converted as the writer reads them, where the fast conversion applies."""
    convert = _row_converter(plan, reader.shape, tuple(reader.keys) if reader.shape == "dict" else ())
    if convert is not None:
        try:
            if set(map(len, chunk)) == {reader.width}:
                if pending:
                    refuse = functools.partial(_holds_nan, plan) if plan.check_nan else None
                    pending_params = _Pending(convert, chunk, refuse, _threadable(plan, chunk))
                    return pending_params, _LazyValues(reader, chunk, start)  # type: ignore[return-value]
                params = convert(chunk)
                if plan.check_nan:
                    _refuse_nan(plan, params, start)
                return params, _LazyValues(reader, chunk, start)  # type: ignore[return-value]
        except BulkWriteError:
            raise
        except Exception:
            pass  # a missing key or a value the processor refuses: the column-wise path names it
    values = reader.values(chunk, start)
    columns: list[Sequence[Any]] | None = None
    if plan.check_nan:
        columns = list(zip(*values))
        for i in plan.check_nan:
            at = nan_position(columns[i])
            if at >= 0:
                key = plan.provided[i]
                raise _row_error(
                    plan.table,
                    start + at,
                    key,
                    "float",
                    f"row {start + at}, column {key!r}: NaN would be stored as NULL; pass None if NULL is meant",
                )
    if plan.passthrough:
        return values, values
    if columns is None:
        columns = list(zip(*values))
    n = len(values)
    context = _Context(plan.provided)
    out = []
    for param in plan.params:
        if param.source is not None:
            column: Sequence[Any] = columns[param.source]
        elif param.scalar:
            column = [param.generate(context)] * n  # type: ignore[misc]
        else:
            column = []
            for row_values in values:
                context.values = row_values
                column.append(param.generate(context))  # type: ignore[misc]
        if param.process_column is not None:
            try:
                column = param.process_column(column)
            except Exception as exc:
                at = next(i for i, v in enumerate(column) if _fails(param.process, v))
                raise _row_error(
                    plan.table,
                    start + at,
                    param.column.key,
                    type(column[at]).__name__,
                    f"row {start + at}, column {param.column.key!r}: {type(column[at]).__name__} value "
                    f"{column[at]!r:.80} is not valid for {param.column.type}: {exc}",
                ) from exc
        out.append(column)
    return list(zip(*out)), values


def _take(iterator: Iterator[Any], size: int) -> list[Any]:
    """The next chunk of rows, each dict or list copied as it is taken: a generator may yield one object again
    and again with new values, and each row must keep its own."""
    return [r.copy() if r.__class__ is dict or r.__class__ is list else r for r in islice(iterator, size)]


def _slice(iterator: Iterator[Any], size: int) -> list[Any]:
    return list(islice(iterator, size))


def source_failed(exc: BaseException, what: str, read: int, committed: int | None) -> None:
    """Tell the caller, on the exception the rows' own source raised (a generator, a file reader: its type is
    kept so their handlers still match), how far the write got: `exc.committed` and a note."""
    if isinstance(exc, TurboAlchemyError):
        return
    try:
        exc.committed = committed  # type: ignore[attr-defined]
    except AttributeError:  # an exception class with __slots__
        pass
    done = (
        f"{committed:,} rows of this call were committed before it"
        if committed is not None
        else "nothing was committed: the rows written so far are in the caller's transaction, which is still open"
    )
    exc.add_note(f"turboalchemy {what}: the rows' source raised after {read:,} rows had been written; {done}")


def _threadable(plan: WritePlan, chunk: list[Any]) -> bool:
    """Whether converting the chunk runs none of the caller's code, so that it may run on a helper thread: rows
    that are plain dicts or tuples, and values taken as they are or through the processor of a type SQLAlchemy
    defines (not a TypeDecorator, not JSON, whose serializer may be the caller's; not a subclass of the caller's)."""
    return set(map(type, chunk)) <= {dict, tuple} and all(
        p.process is None or _sqlalchemys_own(p.column.type) for p in plan.params
    )


def _sqlalchemys_own(kind: Any) -> bool:
    """A type SQLAlchemy defines, with no variant (with_variant may name a TypeDecorator for this dialect)."""
    return (
        type(kind).__module__.startswith("sqlalchemy.")
        and not isinstance(kind, (TypeDecorator, JSON))
        and not getattr(kind, "_variant_mapping", None)
    )


def _first_nan(plan: WritePlan, params: list[tuple[Any, ...]]) -> tuple[int, int] | None:
    """(row, parameter) of the first NaN in a column that is checked for it, column by column; C-level passes."""
    for i, p in enumerate(plan.params):
        if p.source in plan.check_nan:
            at = nan_position(list(map(itemgetter(i), params)))
            if at >= 0:
                return at, i
    return None


def _holds_nan(plan: WritePlan, params: list[tuple[Any, ...]]) -> bool:
    return _first_nan(plan, params) is not None


def _refuse_nan(plan: WritePlan, params: list[tuple[Any, ...]], start: int) -> None:
    """Raise if a column holds NaN (SQLite would store NULL)."""
    found = _first_nan(plan, params)
    if found is not None:
        at, i = found
        key = plan.params[i].column.key
        raise _row_error(
            plan.table,
            start + at,
            key,
            "float",
            f"row {start + at}, column {key!r}: NaN would be stored as NULL; pass None if NULL is meant",
        )


class _LazyValues:
    """The raw value tuples, read only if a failure needs them to report a value's type."""

    def __init__(self, reader: _Reader, chunk: list[Any], start: int) -> None:
        self.reader, self.chunk, self.start = reader, chunk, start
        self._values: list[Sequence[Any]] | None = None

    def __getitem__(self, index: int) -> Sequence[Any]:
        if self._values is None:
            self._values = self.reader.values(self.chunk, self.start)
        return self._values[index]


def _fails(process: Any, value: Any) -> bool:
    try:
        process(value)
    except Exception:
        return True
    return False


@contextmanager
def _chunk_writer(target: Target, what: str) -> Iterator[tuple[Any, Dialect, bool, Any, Any]]:
    """A chunk writer on the target's DBAPI connection: (writer, dialect, commits each chunk, the Session if
    any, the SQLAlchemy Connection).

    An Engine target's chunks commit on their own; a Connection's or Session's join the caller's transaction."""
    with bound(target, what) as on:
        dialect = on.connection.dialect
        writer_class = _backend(dialect)
        if on.session is not None:
            on.session.flush()  # pending ORM objects first, so rows may refer to them
        elif not on.opened and not on.connection.in_transaction():
            on.connection.begin()  # autobegin, as Connection.execute would; the caller commits
        dbapi_connection = on.connection.connection.dbapi_connection
        yield writer_class(dbapi_connection, own_transactions=on.opened), dialect, on.opened, on.session, on.connection


def _backend(dialect: Any) -> Any:
    if dialect.name == "sqlite":
        return SqliteChunkWriter
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        from turboalchemy._write.postgresql import PostgresChunkWriter

        return PostgresChunkWriter
    raise UnsupportedTargetError(
        f"turboalchemy's bulk paths support SQLite and PostgreSQL through psycopg 3, not "
        f"{dialect.name}+{dialect.driver}; use a postgresql+psycopg:// URL"
    )


def _write(
    target: Target,
    model: Any,
    rows: Iterable[Any],
    kind: Kind,
    chunk_size: int,
    conflict: tuple[str, ...],
    update: tuple[str, ...] | None,
    offset: int = 0,
    returning: Any = None,
) -> int | list[Any]:
    """Write `rows` chunk by chunk; `offset`: rows of the same stream written by earlier calls (abulk), so that
    row positions and committed counts in errors are the stream's. Returns the count, or with `returning`
    the list of what each row gave back."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    table = table_of(model)
    names = key_map(model, table)
    conflict = tuple(names.get(c, c) for c in conflict)
    update = None if update is None else tuple(names.get(c, c) for c in update)
    want = None if returning is None else wanted(model, table, returning)
    iterator = iter(rows)
    # Rows from a list or tuple are read where they lie; rows from an iterator are copied as they are taken (a
    # generator may yield one dict again and again with new values, and each row must keep its own).
    pull = _slice if isinstance(rows, (list, tuple)) else _take
    commits: bool | None = None  # whether each chunk commits: known once the target is bound (nothing before)

    def take(iterator: Iterator[Any], size: int) -> list[Any]:
        try:
            return pull(iterator, size)
        except Exception as exc:
            committed = written - offset if commits or commits is None else None
            source_failed(exc, f"bulk {kind} of {table.name!r}", written - offset, committed)
            raise

    written = offset
    chunk = take(iterator, chunk_size)
    if not chunk:
        return 0 if want is None else []
    reader = _Reader(model, table, chunk[0])
    with _chunk_writer(target, f"bulk_{kind}") as (writer, dialect, committing, session, connection):
        commits = committing  # (take() reads it too)
        # Instances end as add_all leaves them, asked or not: with their keys, defaults and server values (every
        # column comes back), persistent in a Session target. Other rows give back only what was asked.
        every = tuple(c.key for c in table.columns)
        old_sqlite = dialect.name == "sqlite" and tuple(getattr(dialect.dbapi, "sqlite_version_info", (3, 99))) < (
            3,
            35,
        )
        if want is not None and old_sqlite:
            raise UnsupportedTargetError(
                f"returning= needs SQLite 3.35 or later (RETURNING); this SQLite is "
                f"{'.'.join(map(str, dialect.dbapi.sqlite_version_info))}"  # type: ignore[union-attr]
            )
        # the columns the caller asked for (none to fetch when it asked for the instances themselves)
        user = () if want is None or want.shape == "instance" else want.columns
        if want is None and reader.shape == "instance" and not old_sqlite:
            want = Wanted(every, "tuple")
        results = None if want is None else Results(want, session, model, keep=returning is not None)
        asked = () if want is None else every if reader.shape == "instance" else want.columns

        def plan_for(reader: _Reader) -> WritePlan:  # compiled once per column set (compile_plan caches)
            return compile_plan(table, dialect, kind, reader.provided, conflict, update)

        def returning_for(plan: WritePlan) -> Any:
            if want is None:
                return None
            if kind == "insert" and reader.shape == "instance":  # what the caller asked, and what the rows lack
                return compile_returning(plan, dialect, conflict, update, _unsupplied(plan, user))
            return compile_returning(plan, dialect, conflict, update, asked)

        def failed_chunk(failed: ChunkFailed, batch: _Batch, size: int) -> Exception:
            typed = translate(failed.cause) if failed.index is None else None
            if typed is not None:  # a full disk, a lock held too long: not any row's fault, so its own type
                where = (
                    f"{written - offset:,} rows of this call were committed before it"
                    if commits
                    else "the caller's transaction is still open"
                )
                typed.args = (f"bulk {kind} of {table.name!r}: {typed}; the chunk was rolled back; {where}",)
                typed.committed = written if commits else None
                return typed
            return _failure(batch, failed, written, size, commits)

        def write_graph(chunk: list[Any]) -> int:
            """A chunk of instances holding new related objects: every level in one transaction (or savepoint),
            parents first; returns how many related rows were written beside the chunk's own."""
            steps, pointed_to = levels(model, chunk)  # refusals come before any SQL
            if session is not None:
                _joinable(session, pointed_to)  # ... and what session.add_all would refuse of them, too
            held = [
                Results(
                    Wanted(tuple(c.key for c in table_of(s.model).columns), "tuple"),
                    session,
                    s.model,
                    attach=False,
                    keep=False,
                )
                for s in steps
            ]
            batch: _Batch | None = None
            filled: list[Level] = []
            try:
                with writer.together():
                    for step, kept in zip(steps, held):
                        filled.append(step)
                        fill_foreign_keys(step)
                        top = step.model is model
                        into = table_of(step.model)
                        first = _Reader(step.model, into, step.objects[0], written if top else 0)
                        for batch in _batches(
                            step.objects,
                            first,
                            written if top else 0,
                            lambda r, into=into: compile_plan(into, dialect, "insert", r.provided),  # type: ignore[misc]
                            graph=True,
                        ):
                            ret = compile_returning(batch.plan, dialect, (), None, _unsupplied(batch.plan))
                            returned = writer.write(batch.plan, batch.params, ret)
                            objects = step.objects[batch.offset : batch.offset + batch.size]
                            kept.add(ret, returned, writer.type_codes, objects)
            except BaseException as exc:
                for kept in held:
                    kept.undo()
                for step in filled:  # the objects stay new, as before the call
                    unfill_foreign_keys(step)
                if isinstance(exc, ChunkFailed) and batch is not None:
                    raise failed_chunk(exc, batch, batch.size) from exc.cause
                raise
            for kept in held:
                kept.identify()
            for kept in held:
                kept.attach()
                if results is not None:
                    results.identified.extend(kept.identified)
            if session is not None:  # what add_all's cascade would take into the Session beside the new objects
                session.add_all(pointed_to)
            if results is not None:  # in input order, from the instances (each now holds its row's values)
                results.extend_from(table, chunk)
            return sum(len(step.objects) for step in steps) - len(chunk)

        related = 0
        pending_ok = _PENDING and dialect.name in ("postgresql", "sqlite") and want is None
        try:
            while chunk:
                graph = kind == "insert" and reader.shape == "instance" and holds_new_objects(model, chunk)
                if graph and old_sqlite:
                    raise UnsupportedTargetError(
                        "a graph of objects needs SQLite 3.35 or later (its levels get their keys through RETURNING); "
                        "write each table with its own call and set the foreign keys, or use session.add_all"
                    )
                if graph:
                    related += write_graph(chunk)
                    written += len(chunk)
                    chunk = take(iterator, chunk_size)
                    continue
                # Converted as it is sent (COPY, SQLite statements) where the chunk goes without RETURNING; should a
                # row defeat the fast conversion, the writer undoes the chunk and it is read again the careful way.
                for pending in (True, False) if pending_ok else (False,):
                    try:
                        batches = _batches(chunk, reader, written, plan_for, pending=pending)
                    except (BulkWriteError, SchemaMismatchError) as refused:  # found before any SQL of this chunk ran
                        if commits and isinstance(refused, BulkWriteError):
                            refused.committed = written
                            refused.args = (
                                f"{refused}; nothing of this chunk was written; {written:,} rows were committed "
                                "before it",
                            )
                        raise
                    batch = batches[0]
                    answers = []
                    try:
                        if len(batches) == 1:
                            ret = returning_for(batch.plan)
                            answers.append((ret, batch, writer.write(batch.plan, batch.params, ret), writer.type_codes))
                        else:
                            with writer.together():  # one chunk, one transaction, however many key sets it holds
                                for batch in batches:
                                    ret = returning_for(batch.plan)
                                    answers.append(
                                        (ret, batch, writer.write(batch.plan, batch.params, ret), writer.type_codes)
                                    )
                    except ChunkFailed as failed:
                        raise failed_chunk(failed, batch, len(chunk)) from failed.cause
                    except Unconverted:
                        continue
                    break
                else:  # the careful read never raises Unconverted; were it to, the chunk was not written
                    raise AssertionError(f"turboalchemy: a chunk of {table.name!r} was neither written nor refused")
                if results is not None:
                    for ret, done, returned, codes in answers:
                        objects = chunk[done.offset : done.offset + done.size] if reader.shape == "instance" else None
                        results.add(ret, returned, codes, objects)
                written += len(chunk)
                chunk = take(iterator, chunk_size)
        finally:
            if results is not None and results.identified and not commits:
                # Written in the caller's transaction: if it rolls back, the instances must be new again (as
                # add_all's are), not keep an identity whose row is gone (a graph would then point at rows never
                # written); also those of earlier chunks when a later one fails and the caller then rolls back.
                forget_on_rollback(session if session is not None else connection, results.identified)
    if results is None or returning is None:
        return written - offset + related
    return results.items


def _joinable(session: Any, stored: list[Any]) -> None:
    """Raise, before any SQL, what session.add_all would raise for the stored objects a graph points to, which
    join the Session after the write: one that belongs to another Session, or whose row this Session holds as
    another object (SQLAlchemy's own InvalidRequestError, as add_all raises it)."""
    for obj in stored:
        other = object_session(obj)
        if other is not None and other is not session:
            raise InvalidRequestError(
                f"{type(obj).__name__} object {instance_state(obj).key!r} is attached to another Session; "
                "session.add_all would refuse it too: merge it into this Session first (session.merge), or "
                "close the other"
            )
        held = session.identity_map.get(instance_state(obj).key)
        if held is not None and held is not obj:
            raise InvalidRequestError(
                f"can't attach {type(obj).__name__} object {instance_state(obj).key!r}: this Session already holds "
                "another object for that row (session.add_all would refuse it too); point the new objects at "
                "the Session's own object, or merge this one (session.merge)"
            )


def _unsupplied(plan: WritePlan, asked: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What an insert of instances fetches back: the columns the instances did not supply (keys, defaults,
    server values), plus `asked`. A supplied attribute keeps the value the instance was given, as after a flush,
    so reading it back would only cost time."""
    supplied = set(plan.provided)
    return tuple(c.key for c in plan.table.columns if c.key in asked or c.key not in supplied)


def _failure(batch: _Batch, failed: ChunkFailed, committed: int, size: int, commits: bool) -> BulkWriteError:
    """The error for a chunk the database refused; `committed`: rows committed before the chunk."""
    plan, values, start = batch.plan, batch.values, committed + batch.offset
    if failed.index is None:  # not one row's fault: the whole chunk
        start, size = committed, size
    row = None if failed.index is None else start + failed.index
    param = None if failed.param is None else plan.params[failed.param]
    column = param.column.key if param is not None else None
    value_type = None
    if param is not None and param.source is not None and failed.index is not None:
        value_type = type(values[failed.index][param.source]).__name__
    where = f"row {row}" if row is not None else f"rows {start}..{start + size - 1}"
    if column:
        where += f", column {column!r}" + (f" ({value_type})" if value_type else "")
    if commits:
        after = f"the chunk was rolled back; {committed:,} rows were committed before it"
    elif failed.whole_transaction:
        after = "SQLite rolled back the whole enclosing transaction"
    else:
        after = "the chunk was rolled back; the caller's transaction is still open and holds the earlier chunks"
    cause = failed.cause
    return _row_error(
        plan.table,
        row,
        column,
        value_type,
        f"bulk {plan.kind} failed at {where}: {type(cause).__name__}: {cause}; {after}",
        committed=committed if commits else None,
    )
