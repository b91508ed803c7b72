"""One chunk on PostgreSQL (psycopg 3): COPY for inserts, COPY into a temporary table plus one
INSERT ... SELECT ... ON CONFLICT for upserts, each chunk its own transaction (Engine targets) or
SAVEPOINT (inside a caller's transaction), rolled back whole on failure; then the row at fault is found
from the server's error (COPY reports the line) or by replaying the chunk row by row, always undone.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from operator import attrgetter, is_not, itemgetter
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import Binary, sql

from turboalchemy._sqlite import quote
from turboalchemy._write.plan import ARRIVAL, WritePlan
from turboalchemy._write.returning import (
    NOTHING,
    ReturningPlan,
    Stores,
    correlate,
    echoed,
    keys_of,
    needs_rows,
    per_row,
)
from turboalchemy._write.sqlite import ChunkFailed, ChunkWriter, Unconverted
from turboalchemy.errors import connection_lost

_SAVEPOINT = sql.SQL("turboalchemy_chunk")
_PROBE = sql.SQL("turboalchemy_probe")
_TOGETHER = sql.SQL("turboalchemy_rows")
_LINE = re.compile(r"^COPY [^,]+, line (\d+)(?:, column ([^:]+))?", re.MULTILINE)
_KEY = re.compile(r"Key \(([^)]*)\)=")
_VARCHAR = 1043
_STORES = {  # server type OID -> the Python values COPY stores unchanged (and RETURNING gives back as such)
    25: Stores(frozenset({str})),  # text
    _VARCHAR: Stores(frozenset({str})),  # varchar (length checked per chunk)
    21: Stores(frozenset({int})),  # int2
    23: Stores(frozenset({int})),  # int4
    20: Stores(frozenset({int})),  # int8
    2950: Stores(frozenset({UUID})),  # uuid
    17: Stores(frozenset({bytes})),  # bytea
}


def _default_adapters(connection: Any, oid: int, types: frozenset[type]) -> bool:
    """Whether this connection dumps `types` and loads `oid` as psycopg does by default (an application may
    register its own, which would change what is stored or what RETURNING gives back)."""
    import psycopg
    from psycopg.adapt import PyFormat
    from psycopg.pq import Format

    mine, default = connection.adapters, _pristine_adapters()
    try:
        return mine.get_loader(oid, Format.TEXT) is default.get_loader(oid, Format.TEXT) and all(
            mine.get_dumper(t, PyFormat.TEXT) is default.get_dumper(t, PyFormat.TEXT) for t in types
        )
    except psycopg.ProgrammingError:
        return False


def _default_dumpers(connection: Any, kinds: set[type]) -> bool:
    """Whether this connection dumps these Python types, for statements (AUTO) and for text COPY (TEXT), with
    psycopg's default dumpers, which _TEXT_KINDS takes as given (an application's own dumper for str may bind it
    as text rather than unknown, say)."""
    import psycopg
    from psycopg.adapt import PyFormat

    mine, default = connection.adapters, _pristine_adapters()
    try:
        return all(
            mine.get_dumper(t, f) is default.get_dumper(t, f)
            for t in kinds
            if t is not _NONE
            for f in (PyFormat.AUTO, PyFormat.TEXT)
        )
    except psycopg.ProgrammingError:
        return False


@functools.cache
def _pristine_adapters() -> Any:
    """psycopg's default adapters, as no application changed them (psycopg.adapters itself may have been)."""
    from psycopg import dbapi20, postgres
    from psycopg.adapt import AdaptersMap
    from psycopg.types import array

    adapters = AdaptersMap(types=postgres.types)
    postgres.register_default_adapters(adapters)  # as psycopg's own __init__ makes psycopg.adapters
    dbapi20.register_dbapi20_adapters(adapters)
    array.register_all_arrays(adapters)
    return adapters


def _default_binary(connection: Any, oid: int, types: frozenset[type]) -> bool:
    """Whether this connection dumps `types` (as statements and text COPY take them) and `oid` in binary (as binary
    COPY by set_types does) with psycopg's default dumpers."""
    import psycopg
    from psycopg.pq import Format

    mine, default = connection.adapters, _pristine_adapters()
    try:
        binary = mine.get_dumper_by_oid(oid, Format.BINARY) is default.get_dumper_by_oid(oid, Format.BINARY)
    except psycopg.ProgrammingError:
        return False
    return binary and _default_dumpers(connection, set(types))


def _row_specific(exc: BaseException) -> bool:
    import psycopg.errors as e

    if isinstance(exc, (e.OperationalError, e.InternalError)) and not isinstance(exc, e.DataError):
        return False  # connection lost, lock timeouts, a full disk: not any one row's fault
    return isinstance(exc, (e.Error, OverflowError, ValueError, TypeError))


class PostgresChunkWriter(ChunkWriter):
    """Writes chunks on one psycopg connection, each its own transaction or savepoint."""

    def __init__(self, dbapi_connection: Any, own_transactions: bool) -> None:
        self.dbapi = dbapi_connection
        self.own = own_transactions
        self._temp: dict[str, sql.Composed] = {}
        self._types: dict[Any, list[str] | None] = {}  # COPY column types for binary, per table and column set
        self._columns: dict[Any, tuple[tuple[int, int, int], ...] | None] = {}  # COPY columns' base, own type, typmod
        self._stores: dict[Any, list[Stores]] = {}  # what echoed columns store unchanged, per table and columns
        self._codes: dict[Any, tuple[int, ...]] = {}  # ... and their type OIDs
        self._plain: dict[Any, bool] = {}  # whether COPY into the table stores what INSERT does, per column set
        self._traces: dict[Any, bool] = {}  # whether a refused merge into the table leaves a trace, per table
        self._zone: ZoneInfo | None = None  # the session's TimeZone, read when an aware datetime first needs it
        # Under SQLAlchemy's asyncio extension the connection adapts psycopg's AsyncConnection; its cursors
        # have no COPY, so COPY goes to the driver connection, awaited from SQLAlchemy's greenlet.
        driver = getattr(dbapi_connection, "driver_connection", None)
        self.async_driver = driver if driver is not None and type(driver).__name__ == "AsyncConnection" else None

    def _write_once(self, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan | None) -> list[Any] | None:
        cursor = self.dbapi.cursor()
        returned = None
        try:
            if not self.own:
                cursor.execute(sql.SQL("SAVEPOINT {}").format(_SAVEPOINT))
            try:
                if ret is None:
                    self._write(cursor, plan, params)
                else:
                    returned = self._returning(cursor, plan, params, ret)
            except BaseException as exc:
                if connection_lost(exc):  # the server dropped the transaction with the connection
                    raise ChunkFailed(exc, None, None, True) from exc
                if self.own:
                    self.dbapi.rollback()
                else:
                    cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_SAVEPOINT))
                    cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_SAVEPOINT))
                if isinstance(exc, Unconverted):
                    raise  # undone: the caller reads the chunk again
                raise self._diagnose(cursor, plan, params, exc) from exc
            if self.own:
                self.dbapi.commit()
            else:
                cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_SAVEPOINT))
        except BaseException as exc:
            if connection_lost(exc):  # at the SAVEPOINT, or the COMMIT (whose outcome is then unknown)
                raise ChunkFailed(exc, None, None, True) from exc
            raise
        finally:
            cursor.close()
        return returned

    @contextmanager
    def together(self) -> Iterator[None]:
        """Make the writes inside one unit: one transaction (Engine targets) or one savepoint, undone whole
        when any of them fails."""
        cursor = self.dbapi.cursor()
        own = self.own
        try:
            cursor.execute(sql.SQL("SAVEPOINT {}").format(_TOGETHER))
            self.own = False  # each write takes a savepoint inside this unit
            try:
                yield
            except BaseException as exc:
                if isinstance(exc, ChunkFailed) and connection_lost(exc.cause):
                    raise  # nothing to roll back: the server dropped the transaction with the connection
                if own:
                    self.dbapi.rollback()
                else:
                    cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_TOGETHER))
                    cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_TOGETHER))
                raise
            cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_TOGETHER))
            if own:
                self.dbapi.commit()
        finally:
            self.own = own
            cursor.close()

    # -- the fast paths --------------------------------------------------------------------------------

    def _write(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]]) -> None:
        if plan.copy_columns is None:
            cursor.executemany(plan.sql, params)
            return
        if plan.kind == "insert":
            self._copy_types(cursor, plan)  # (one round trip, with what the next two lines ask)
        if plan.kind == "insert" and not self._copies_as_insert(cursor, plan):
            # the statement itself, pipelined: what SQLAlchemy's stores, whatever the values and the table
            cursor.executemany(plan.sql, self._local_times(cursor, plan, params))
            return
        # A chunk of more than one slice is checked a slice at a time while the server reads the slices before it
        # (the checks cost about a tenth of what the server spends on the rows): the first slice chooses the route,
        # and a later one that would go another way undoes the COPY, sent whole, then, as one slice. Not where a
        # COPY undone part way leaves a trace (values drawn from a sequence for the columns the rows leave out,
        # say): there the chunk is checked whole first. A staging table has no defaults or triggers.
        if (
            len(params) > _SLICE
            and self.async_driver is None
            and (plan.kind != "insert" or not self._table_leaves_traces(cursor, plan))
        ):
            try:
                self._copy_chunk(cursor, plan, params, _SLICE)
                return
            except _Rerouted:
                self._undo(cursor)
        self._copy_chunk(cursor, plan, params, len(params))

    def _copy_chunk(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], size: int) -> None:
        """The chunk by COPY, checked `size` rows at a time; or as the statement where its first slice may not
        go by COPY."""
        slices = self._slices(cursor, plan, params, size)
        sent, first = next(slices)
        if first is None:
            # the statement itself, pipelined: what SQLAlchemy's stores, whatever the values and the table
            cursor.executemany(plan.sql, sent if len(sent) == len(params) else self._local_times(cursor, plan, params))
            return
        if plan.kind == "insert":
            self._copy(cursor, _table(plan), plan, first, slices, ordinal=False)
            return
        temp = self._temp_table(cursor, plan, plan.temp_name)
        every = list(sent)  # the chunk as sent, for row by row if it holds one key twice
        self._copy(cursor, temp, plan, first, slices, ordinal=True, sent=every)
        if self._twice(cursor, plan, lambda: cursor.execute(plan.merge_sql, plan.merge_params())):
            cursor.executemany(plan.sql, every)

    def _slices(
        self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], size: int
    ) -> Iterator[tuple[list[Sequence[Any]], Copied | None]]:
        """The chunk `size` rows at a time: each slice's rows as the statement would bind them (aware datetimes
        for naive columns made local), and as COPY may carry them (see _copyable)."""
        width = len(plan.copy_columns or ())
        # the first slice small: the server has nothing to read until it is checked
        starts = [0, *range(min(_FIRST_SLICE, size), len(params), size)] if size < len(params) else [0]
        for start, stop in zip(starts, [*starts[1:], len(params)]):
            part = params if size >= len(params) else params[start:stop]
            if plan.naive_datetimes:
                part = self._local_times(cursor, plan, part, copying=start > 0)
            staged = part if width == len(plan.params) else [row[:width] for row in part]
            yield part, self._copyable(cursor, plan, staged)

    def _returning(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan) -> list[Any]:
        """COPY into the staging table, then one INSERT ... SELECT ... RETURNING in arrival order; or, where that
        cannot be matched row for row, one statement per row (psycopg's executemany, pipelined). An insert whose
        rows supply every column asked for, each value one the server stores unchanged, is the plain COPY."""
        if ret.echo:
            rows = echoed(ret, params, self._stores_of(cursor, plan, ret))
            if rows is not None:  # (type_codes: the columns' type OIDs, as RETURNING would report them)
                self._write(cursor, plan, params)
                return rows
        if not ret.staged_sql or needs_rows(ret, params):
            return self._row_by_row(cursor, ret, params)
        sent = self._local_times(cursor, plan, params) if plan.naive_datetimes else params
        width = len(plan.copy_columns or ())
        copied = self._copyable(cursor, plan, [row[:width] for row in sent] if width != len(plan.params) else sent)
        if copied is None:
            return self._row_by_row(cursor, ret, params)
        keys = keys_of(ret, sent)
        temp = self._temp_table(cursor, plan, ret.temp_name)
        self._copy(cursor, temp, plan, copied, ordinal=True)
        if self._twice(cursor, plan, lambda: cursor.execute(ret.staged_sql, plan.merge_params())):
            # row by row, as _write does; each row is given its key's row as stored, which is what the key's last
            # statement returned
            assert keys is not None  # an upsert that updates matches its rows by the conflict key
            last = dict(zip(keys, self._row_by_row(cursor, ret, params)))
            return [last[key] for key in keys]
        return correlate(ret, sent, keys, [(0, len(sent), self._fetch(cursor))], gapless=False)

    def _twice(self, cursor: Any, plan: WritePlan, merge: Callable[[], object]) -> bool:
        """Run the staged chunk's merge, unless the chunk holds one key twice: then True, nothing written, and the
        chunk is to go row by row, as the ORM's executemany, so the first row inserts and each later one updates
        it (columns the update leaves keep the first's values, server defaults are drawn per row).

        The server refuses the merge of such a chunk where it updates (SQLSTATE 21000, ON CONFLICT DO UPDATE met
        one row twice), comparing keys as the arbiter index does: under the index's collation, after BEFORE
        triggers. Where a refused merge would leave a trace its rollback cannot undo (see _leaves_traces), the
        staged keys are compared first, by the columns' equality, and a refusal then fails the chunk: sending it
        row by row after that would store ids the ORM would not."""
        if not plan.duplicates_sql:
            merge()  # DO NOTHING takes a key twice as executemany does
            return False
        traces = self._leaves_traces(cursor, plan)
        if traces and self._has_duplicates(cursor, plan):
            return True
        try:
            merge()
        except Exception as exc:
            if not _touched_twice(exc):
                raise
            if traces:
                raise KeysEqualToTheIndex(_EQUAL_TO_THE_INDEX) from exc
            self._undo(cursor)
            return True
        return False

    def _has_duplicates(self, cursor: Any, plan: WritePlan) -> bool:
        """Whether the staged chunk holds one conflict key twice, by the columns' equality."""
        cursor.execute(plan.duplicates_sql)
        return bool(cursor.fetchone()[0])

    def _leaves_traces(self, cursor: Any, plan: WritePlan) -> bool:
        """Whether a merge the server refuses part way may leave a trace its rollback cannot undo: values drawn from
        a sequence, or whatever else a user's function does. Said of anything but a plain table (a view may write
        to a table that draws them, a partition may have triggers of its own); of a table with a trigger (constraint
        triggers aside), an identity column, a default calling nextval, a column of a domain with a default; of a
        table whose defaults, CHECK constraints, column types' constraints, policies or indexes use a user's
        function or operator (all evaluated for a proposed row before the server refuses it); and of a merge whose
        SET computes a value in SQL (an onupdate expression). Asked once per table on this connection."""
        return plan.sql_onupdate or self._table_leaves_traces(cursor, plan)

    def _table_leaves_traces(self, cursor: Any, plan: WritePlan) -> bool:
        """Whether a write into the table undone part way may leave a trace (see _leaves_traces)."""
        key = (plan.table.schema, plan.table.name)
        traces = self._traces.get(key)
        if traces is None:
            cursor.execute(_TRACES_SQL, {"t": _regclass(plan)})
            traces = self._traces[key] = bool(cursor.fetchone()[0])
        return traces

    def _undo(self, cursor: Any) -> None:
        """Undo what this chunk has done so far (its transaction, or back to its savepoint), to send it again."""
        if self.own:
            self.dbapi.rollback()
        else:
            cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_SAVEPOINT))

    def _row_by_row(self, cursor: Any, ret: ReturningPlan, params: list[Sequence[Any]]) -> list[Any]:
        """One statement per row (psycopg's executemany, pipelined), each row's returned row kept."""
        if self.async_driver is not None:  # the asyncio adapter's executemany keeps no result sets
            results = []
            for row in params:
                cursor.execute(ret.row_sql, row)
                results.append(self._fetch(cursor))
            return per_row(ret, results)
        cursor.executemany(ret.row_sql, params, returning=True)
        results = []
        while True:
            results.append(self._fetch(cursor))
            if not cursor.nextset():
                break
        return per_row(ret, results)

    def _local_times(
        self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], *, copying: bool = False
    ) -> list[Sequence[Any]]:
        """Aware datetimes bound for naive DateTime columns, as the session's local time without an offset: what
        the server stores for a bound value (timestamptz -> timestamp in the session's TimeZone), where COPY's
        text input would keep the wall time and drop the offset. The session's TimeZone cannot be asked while a
        COPY is `copying`: then, if not known yet, _Rerouted."""
        aware = [i for i in plan.naive_datetimes if _any_aware(list(map(itemgetter(i), params)))]
        if not aware:
            return params
        if self._zone is None and copying:
            raise _Rerouted
        if self._zone is None:
            cursor.execute("SHOW TimeZone")
            name = cursor.fetchone()[0]
            try:
                self._zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"the session's TimeZone {name!r} is not an IANA zone name, so an aware datetime cannot be "
                    "stored as the server would; pass naive datetimes, or set the session TimeZone to a zone name"
                ) from exc
        zone = self._zone
        out = [list(row) for row in params]
        for row in out:
            for i in aware:
                value = row[i]
                if getattr(value, "tzinfo", None) is not None:
                    row[i] = value.astimezone(zone).replace(tzinfo=None)
        return out  # type: ignore[return-value]

    def _copy(
        self,
        cursor: Any,
        target: sql.Composable,
        plan: WritePlan,
        first: Copied,
        rest: Iterator[tuple[list[Sequence[Any]], Copied | None]] | None = None,
        *,
        ordinal: bool,
        sent: list[Sequence[Any]] | None = None,
    ) -> None:
        """COPY the chunk's slices, `first` choosing the format; raises _Rerouted, inside the COPY (so that the
        server drops it), where a later slice may not go by COPY, or not in that format. `sent` gathers each
        slice's rows as the statement would bind them."""
        columns = plan.copy_columns or ()
        names = [*columns, ARRIVAL] if ordinal else list(columns)
        # Binary where every value of the chunk is one the server stores alike from either format (checked per
        # column, see _binary_safe); else text, as psycopg dumps each Python value, which _copyable has checked the
        # server stores as it does the statement's parameter. (Unchecked, binary would truncate an int past int4
        # and refuse an int for text, where the ORM stores the first and converts the second.) Measured on 5K-row
        # chunks of the study's table, binary took 3 ms a chunk less than text straight into the table (turbo at
        # 0.90 of binary COPY of prebuilt tuples, against 0.85 as text), and binary staging made upserts 1.10x.
        types = self._binary_types(cursor, plan) if self.async_driver is None else None
        binary = types is not None and _binary_safe(types, first)

        def checked() -> Iterator[Copied]:
            yield first
            for part, copied in rest or ():
                if copied is None or (binary and not _binary_safe(types or [], copied)):
                    raise _Rerouted
                if sent is not None:
                    sent.extend(part)
                yield copied

        def batches() -> Iterator[Sequence[Sequence[Any]]]:
            at = 0
            for copied in checked():
                if ordinal:  # arrival order, for last-wins
                    yield [(*row, i) for i, row in enumerate(copied.rows, at)]
                    at += len(copied.rows)
                else:
                    yield copied.rows

        form = sql.SQL(" (FORMAT BINARY)" if binary else "")
        statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            target, sql.SQL(", ").join(map(sql.Identifier, names)), form
        )
        if self.async_driver is not None:
            from sqlalchemy.util import await_only

            await_only(_copy_async(self.async_driver, statement, [row for rows in batches() for row in rows]))
            return
        with cursor.copy(statement) as copy:
            if binary:
                copy.set_types([_OID_OF[t] for t in types or ()] + ([_OID_OF["int8"]] if ordinal else []))
            write = copy.write_row
            for rows in batches():
                for row in rows:
                    write(row)

    def _copyable(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]]) -> Copied | None:
        """The chunk as COPY may carry it: None where the text of some value would not be stored as SQLAlchemy's
        statement stores that value, and the chunk is to go as the statement. The statement binds each value as
        the type psycopg dumps its Python type to (str as unknown), casts it to the type SQLAlchemy renders for
        the column, if any, and the server converts that to the column's type; COPY's text goes through the
        column type's input alone. The two agree where the rendered cast is to the column's own type (or its
        domain's) and each value is of a kind in _TEXT_KINDS for it. Floats into numeric and real are first
        turned into what the server's conversion from float8 gives (see _AS_BOUND), and LargeBinary's wrappers into
        their bytes."""
        types = self._copy_types(cursor, plan)
        if types is None:
            return None
        columns: list[Sequence[Any]] = list(zip(*params))
        kinds_of = []
        sent: set[type] = set(
            _CONVERTED
        )  # every Python type that will be dumped, for one look at the connection's dumpers
        changed = False
        for i, (base, _, mod) in enumerate(types):
            values = columns[i] if columns else ()
            kinds = set(map(type, values))  # None's included
            sent |= kinds
            allowed = _TEXT_KINDS.get(base, _STR)
            if mod != -1 and base not in _TYPMOD_ALIKE:
                allowed = allowed - {str}  # read under the column's modifier by COPY, without it by the statement
            if not kinds <= allowed:
                converted = _as_bound(base, kinds - allowed, values)
                if converted is None:
                    return None
                kinds = set(map(type, converted))
                columns[i] = converted
                changed = True
            kinds_of.append(kinds)
        if not _default_dumpers(self.async_driver or self.dbapi, sent):
            return None
        return Copied(list(zip(*columns)) if changed else params, columns, kinds_of)

    def _copy_types(self, cursor: Any, plan: WritePlan) -> tuple[tuple[int, int, int], ...] | None:
        """Each COPY column's type (a domain's base type) and own type, by OID, and its type modifier; None when
        SQLAlchemy's statement casts some column's parameter to another type (a String model over an integer
        column, say), where the statement's conversion is not the column's text input. Asked once per table, column
        set and casts in a call."""
        key = (plan.table.schema, plan.table.name, plan.copy_columns, plan.copy_casts)
        if key not in self._columns:
            if "?" in plan.copy_casts:  # a cast COPY cannot be checked against (a type modifier, say)
                self._columns[key] = None
                return None
            # For an insert, what _copies_as_insert and _table_leaves_traces ask rides along: one round trip
            plain_key, traces_key = (plan.table.schema, plan.table.name, plan.copy_columns), key[:2]
            along = plan.kind == "insert" and (plain_key not in self._plain or traces_key not in self._traces)
            cursor.execute(
                "SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, t.oid, "
                "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, "
                "coalesce(to_regtype(nullif(c.rendered, ''))::oid, 0)"
                + (f", ({_PLAIN_SQL}), ({_TRACES_SQL}) " if along else " ")
                + "FROM unnest(%(names)s::text[], %(casts)s::text[]) WITH ORDINALITY AS c(name, rendered, ord) "
                "JOIN pg_attribute a ON a.attrelid = %(t)s::regclass AND a.attname = c.name AND NOT a.attisdropped "
                "JOIN pg_type t ON t.oid = a.atttypid ORDER BY c.ord",
                {"t": _regclass(plan), "names": list(plan.copy_columns or ()), "casts": list(plan.copy_casts)},
            )
            fetched = cursor.fetchall()
            if along and fetched:
                self._plain[plain_key] = bool(fetched[0][4])
                self._traces[traces_key] = bool(fetched[0][5])
            found = [(int(row[0]), int(row[1]), int(row[2]), int(row[3])) for row in fetched]
            same = len(found) == len(plan.copy_casts) and all(
                not rendered or cast in (oid, base) or {cast, base} <= _TEXTS
                for rendered, (base, oid, _, cast) in zip(plan.copy_casts, found)
            )
            self._columns[key] = tuple((base, oid, mod) for base, oid, mod, _ in found) if same else None
        return self._columns[key]

    def _copies_as_insert(self, cursor: Any, plan: WritePlan) -> bool:
        """Whether COPY straight into the table stores what INSERT stores. Not into a view or a foreign table
        (COPY refuses a view that INSERT writes through), nor a table whose row-level security applies to this
        user (COPY refuses it, INSERT applies the policies), nor a table with an INSERT rule (COPY does not apply
        rules), nor when the rows give a value for a GENERATED ALWAYS identity column (INSERT refuses it, COPY
        stores it). (Upserts and returning= reach the table through INSERT ... SELECT, which does all of that.)
        Asked once per table and column set in a call."""
        key = (plan.table.schema, plan.table.name, plan.copy_columns)
        plain = self._plain.get(key)
        if plain is None:
            cursor.execute(_PLAIN_SQL, {"t": _regclass(plan), "names": list(plan.copy_columns or ())})
            plain = self._plain[key] = bool(cursor.fetchone()[0])
        return plain

    def _binary_types(self, cursor: Any, plan: WritePlan) -> list[str] | None:
        """The server's type of each COPY column, where binary COPY of checked values is safe; None when any
        column's type is not one of those (JSON, enums, arrays, intervals, char(n), domains...), known by OID, so
        that no type of a built-in's name in another schema passes for it; and None when this connection dumps
        those Python types, or those server types in binary, otherwise than psycopg does by default (an
        application's own dumper, which text COPY and SQLAlchemy's statements go through, while binary COPY would
        not)."""
        key = (plan.table.schema, plan.table.name, plan.copy_columns)
        if key not in self._types:
            columns = self._copy_types(cursor, plan) or ()
            oids = [oid for _, oid, _ in columns]
            types = [_BINARY_OIDS.get(oid, "") for oid in oids]
            safe = bool(types) and all(types)
            safe = safe and all(_default_binary(self.dbapi, oid, BINARY_KINDS[t]) for oid, t in zip(oids, types))
            self._types[key] = types if safe else None
        return self._types[key]

    def _stores_of(self, cursor: Any, plan: WritePlan, ret: ReturningPlan) -> list[Stores]:
        """What each echoed column stores unchanged, by its server type (by OID, so no type of that name in
        another schema passes for it): text keeps str, varchar(n) str of at most n characters (longer ones of
        trailing spaces are cut), int2/int4/int8 keep int, uuid keeps UUID, bytea bytes; and the type OIDs
        RETURNING would have reported, for result processing. Nothing at all where the write would not store
        the rows as sent: where COPY would not store what INSERT does (`_copies_as_insert`), nor where anything
        may change a row on its way in (row-level security, an INSERT rule or any trigger on the table or a
        partition of it); nor for text unless the client encoding is UTF-8; nor for a Python type or server type
        whose dumper or loader this connection changed. Asked once per table and column set in a call."""
        names = tuple(plan.params[at].column.name for at in ret.echo)
        key = (plan.table.schema, plan.table.name, names)
        if key not in self._stores:
            table = _regclass(plan)
            cursor.execute(
                "WITH RECURSIVE tree(oid) AS (SELECT %(t)s::regclass::oid UNION "
                "SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
                "SELECT NOT c.relrowsecurity "
                "AND NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN tree ON g.tgrelid = tree.oid "
                "WHERE NOT g.tgisinternal OR g.tgconstraint = 0) "
                "AND NOT EXISTS (SELECT 1 FROM pg_rewrite r JOIN tree ON r.ev_class = tree.oid WHERE r.ev_type = '3') "
                "FROM pg_class c WHERE c.oid = %(t)s::regclass",
                {"t": table},
            )
            plain = bool(cursor.fetchone()[0]) and self._copies_as_insert(cursor, plan)
            cursor.execute(
                "SELECT attname, atttypid, atttypmod FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            found = {name: (int(oid), mod) for name, oid, mod in cursor.fetchall()}
            connection = self.async_driver or self.dbapi
            stores, codes = [], []
            for name in names:
                oid, mod = found.get(name, (0, -1))
                kind = _STORES.get(oid, NOTHING) if plain else NOTHING
                if kind.types and not _default_adapters(connection, oid, kind.types):
                    kind = NOTHING
                if oid == _VARCHAR and mod > 0:
                    kind = Stores(kind.types, mod - 4)
                if str in kind.types and connection.info.encoding != "utf-8":
                    kind = NOTHING
                stores.append(kind)
                codes.append(oid)
            self._stores[key] = stores
            self._codes[key] = tuple(codes)
        self.type_codes = self._codes[key]
        return self._stores[key]

    def _temp_table(self, cursor: Any, plan: WritePlan, temp_name: str) -> sql.Composable:
        """A session-private table of the columns the rows supply, typed as the target's but with none of its
        constraints or defaults (the server fills what the rows leave out when the merge inserts), plus the
        arrival order; emptied for each chunk, dropped at commit."""
        name = sql.Identifier(temp_name)
        columns = sql.SQL(", ").join(map(sql.Identifier, plan.copy_columns or ()))
        cursor.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DROP AS SELECT {}, NULL::bigint AS {} FROM {} WITH NO DATA"
            ).format(name, columns, sql.Identifier(ARRIVAL), _table(plan))
        )
        cursor.execute(sql.SQL("TRUNCATE {}").format(name))
        return name

    # -- naming the row at fault ---------------------------------------------------------------------

    def _diagnose(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], exc: BaseException) -> ChunkFailed:
        if not _row_specific(exc):
            return ChunkFailed(exc, None, None, False)
        import psycopg

        if not isinstance(exc, psycopg.Error) or exc.sqlstate is None:  # refused by psycopg: the replay names the row
            return self._probe(cursor, plan, params, exc)
        diag = exc.diag
        match = _LINE.search(diag.context or "")
        if match:
            index = int(match.group(1)) - 1
            column = (match.group(2) or "").strip() or diag.column_name or _key_column(diag.message_detail)
            return ChunkFailed(exc, index if 0 <= index < len(params) else None, _param_of(plan, column), False)
        return self._probe(cursor, plan, params, exc)

    def _probe(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], exc: BaseException) -> ChunkFailed:
        """Replay the chunk row by row with the plain statement, inside a savepoint that is always undone."""
        import psycopg

        opened = self.own
        try:
            cursor.execute(sql.SQL("SAVEPOINT {}").format(_PROBE))
            for index, row in enumerate(params):
                try:
                    cursor.execute(plan.sql, row)
                except psycopg.Error as failure:
                    column = failure.diag.column_name or _key_column(failure.diag.message_detail)
                    at = _param_of(plan, column)
                    return ChunkFailed(
                        failure, index, at if at is not None else _param_at_fault(failure, plan, row, cursor), False
                    )
                except Exception as failure:
                    return ChunkFailed(failure, index, _param_at_fault(failure, plan, row, cursor), False)
            diag = getattr(exc, "diag", None)  # not every failure is the server's (a returned row matching none)
            column = (diag.column_name or _key_column(diag.message_detail)) if diag is not None else None
            return ChunkFailed(exc, None, _param_of(plan, column), False)
        except psycopg.Error:
            return ChunkFailed(exc, None, None, False)
        finally:
            if opened:
                self.dbapi.rollback()
            else:
                try:
                    cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_PROBE))
                    cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_PROBE))
                except psycopg.Error:
                    pass


class Copied(NamedTuple):
    """A chunk as COPY carries it: its rows, the same values column by column, and each column's Python types."""

    rows: list[Sequence[Any]]
    columns: list[Sequence[Any]]
    kinds: list[set[type]]


def _float8_numeric(values: Sequence[Any]) -> list[Any] | None:
    """Floats as the server converts a float8 into numeric (float8_numeric: 15 significant digits, "%.15g"), the
    other values as they are; None for an infinity (older servers refuse it, newer ones store it)."""
    if any(map(math.isinf, (v for v in values if type(v) is float))):
        return None
    return [format(v, ".15g") if type(v) is float else v for v in values]


def _float8_float4(values: Sequence[Any]) -> list[Any] | None:
    """Floats rounded to float4 as the server casts a float8 (to nearest, ties to even), the other values as they
    are: the text of a float8 read as real may round the other way (1 + 2**-24 is a tie, and its text is not). A
    value not 0 but rounding to 0, which the cast refuses, is left for the column's input, which refuses it too;
    one that rounds past real's range is left for the statement (None), which refuses it, where the column's input
    would round it back to real's largest."""
    out = []
    for v in values:
        if type(v) is float and math.isfinite(v):
            try:
                r = _FLOAT4.unpack(_FLOAT4.pack(v))[0]
            except OverflowError:
                return None
            if math.isinf(r):
                return None
            v = v if r == 0.0 and v != 0.0 else r
        out.append(v)
    return out


_FLOAT4 = struct.Struct("f")
# Column types whose modifier a str's text is read the same under, by COPY (the column's input with the modifier) or
# by the statement (the input without it, then the modifier applied): lengths, scales, fractional seconds
_TYPMOD_ALIKE = frozenset({25, 1043, 1700, 1114, 1184, 1083})
_CONVERTED = frozenset({str, bytes})  # what _AS_BOUND's conversions make, dumped too
_TEXTS = frozenset({25, _VARCHAR})  # text and varchar: one representation, no conversion between them
_NONE = type(None)
# psycopg binds str as unknown, which the server reads by the column's input, as COPY does
_STR: frozenset[type] = frozenset({str, _NONE})
# Per column type (by OID, a domain's base type), the Python types whose text COPY stores what SQLAlchemy's
# statement stores: psycopg binds them as the column's type, or as one whose cast into it is exact or converts as
# the column's text input does (int into numeric or double precision, say). Others go as the statement, but floats
# into numeric and real, which are converted as the server converts a float8 (_AS_BOUND).
_TEXT_KINDS: dict[int, frozenset[type]] = {
    21: _STR | {int},
    23: _STR | {int},
    20: _STR | {int},
    1700: _STR | {int, Decimal},
    700: _STR | {int},
    701: _STR | {int, float},
    16: _STR | {bool},
    1082: _STR | {date},
    1114: _STR | {datetime},
    1184: _STR | {datetime},
    1083: _STR | {time},
    1186: _STR | {timedelta},
    2950: _STR | {UUID},
    17: frozenset({bytes, _NONE}),  # (SQLAlchemy refuses a str for LargeBinary)
}


def _unwrapped(values: Sequence[Any]) -> list[Any] | None:
    """psycopg's Binary wrappers (what SQLAlchemy's LargeBinary binds) as the bytes they hold, which COPY stores as
    the wrapper's dumper would; None where one holds anything else (a str, which the statement refuses)."""
    out = [v.obj if type(v) is Binary else v for v in values]
    return out if all(type(v) is bytes for v in out if v is not None) else None


def _as_bound(base: int, kinds: set[type], values: Sequence[Any]) -> list[Any] | None:
    """A column's values with those of `kinds` converted by _AS_BOUND for the column's type; None where one of
    them has no conversion, or one refuses."""
    out: list[Any] | None = list(values)
    for kind in kinds:
        convert = _AS_BOUND.get((base, kind))
        out = None if convert is None or out is None else convert(out)
    return out


# Per (column type, Python type) outside _TEXT_KINDS: the column's values, those of that type as COPY must carry them
# for the server to store what it stores from the statement (None: it cannot)
_AS_BOUND: dict[tuple[int, type], Callable[[Sequence[Any]], list[Any] | None]] = {
    (1700, float): _float8_numeric,
    (700, float): _float8_float4,
    (17, Binary): _unwrapped,
}


# The server types binary COPY may carry, and the Python types (exact: a datetime is not a date here) whose binary
# form the server stores exactly as it would the same value bound in a statement (a bool into an integer column is
# no such value: it goes as the statement, see _TEXT_KINDS).
BINARY_KINDS: dict[str, frozenset[type]] = {
    "int2": frozenset({int}),
    "int4": frozenset({int}),
    "int8": frozenset({int}),
    "float8": frozenset({float}),
    "numeric": frozenset({Decimal}),
    "text": frozenset({str}),
    "varchar": frozenset({str}),
    "bool": frozenset({bool}),
    "date": frozenset({date}),
    "timestamp": frozenset({datetime}),
    "uuid": frozenset({UUID}),
    "bytea": frozenset({bytes}),
}
_BINARY_OIDS = {  # the built-in types of BINARY_KINDS by OID (pg_type.h), which no user's type can share
    21: "int2",
    23: "int4",
    20: "int8",
    701: "float8",
    1700: "numeric",
    25: "text",
    _VARCHAR: "varchar",
    16: "bool",
    1082: "date",
    1114: "timestamp",
    2950: "uuid",
    17: "bytea",
}
_OID_OF = {name: oid for oid, name in _BINARY_OIDS.items()}
_INT_RANGE = {"int2": (-(2**15), 2**15 - 1), "int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}


def _binary_safe(types: list[str], copied: Copied) -> bool:
    """Whether every value of the chunk may go in binary: of an allowed Python type for its column, an int within
    its column's range, a datetime for a timestamp column naive (C-level passes over each column)."""
    for name, values, kinds in zip(types, copied.columns, copied.kinds):
        if _NONE in kinds:
            kinds = kinds - {_NONE}
            if not kinds:
                continue
            values = tuple(filter(partial(is_not, None), values))
        if not kinds <= BINARY_KINDS[name]:
            return False
        if name in _INT_RANGE:
            low, high = _INT_RANGE[name]
            if min(values) < low or max(values) > high:
                return False
        elif name == "timestamp" and any(map(attrgetter("tzinfo"), values)):
            return False
        elif name == "numeric" and not all(map(Decimal.is_finite, values)):
            return False  # binary makes -NaN, sNaN and NaN with a payload NaN; as text the server refuses them
    return True


# Whether COPY into the table stores what INSERT does (see PostgresChunkWriter._copies_as_insert)
_PLAIN_SQL = (
    "SELECT c.relkind IN ('r', 'p') AND NOT row_security_active(c.oid) "
    "AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type = '3') "
    "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attidentity = 'a' "
    "AND NOT a.attisdropped AND a.attname = ANY(%(names)s)) "
    "FROM pg_class c WHERE c.oid = %(t)s::regclass"
)

# Whether a refused merge into the table may leave a trace (see PostgresChunkWriter._leaves_traces). Built-in
# functions and operators are pinned, so pg_depend records only a user's (an extension's included).
_TRACES_SQL = (
    "SELECT c.relkind <> 'r' "
    "OR EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND (NOT g.tgisinternal OR g.tgconstraint = 0)) "
    "OR EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND (a.attidentity <> '' "
    "OR t.typdefaultbin IS NOT NULL OR pg_get_expr(d.adbin, d.adrelid) LIKE '%%nextval(%%')) "
    "OR EXISTS (SELECT 1 FROM pg_depend p WHERE p.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass) AND ("
    "(p.classid = 'pg_attrdef'::regclass AND p.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = c.oid)) "
    "OR (p.classid = 'pg_constraint'::regclass AND p.objid IN (SELECT o.oid FROM pg_constraint o "
    "WHERE o.conrelid = c.oid OR o.contypid IN (SELECT atttypid FROM pg_attribute WHERE attrelid = c.oid))) "
    "OR (p.classid = 'pg_policy'::regclass AND p.objid IN (SELECT oid FROM pg_policy WHERE polrelid = c.oid)) "
    "OR (p.classid = 'pg_class'::regclass AND p.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = c.oid)))) "
    "FROM pg_class c WHERE c.oid = %(t)s::regclass"
)


class _Rerouted(Exception):
    """A later slice of a chunk may not go as its first did: the chunk is undone and sent again, as one slice."""


# Rows a chunk is checked at a time while the server reads the ones before (see PostgresChunkWriter._write)
_SLICE = 500
_FIRST_SLICE = 100


class KeysEqualToTheIndex(Exception):
    """A chunk's upsert keys differ as their columns compare them but not as the unique index does."""


_EQUAL_TO_THE_INDEX = (
    "two rows of the chunk have conflict keys that differ as the columns compare them but are equal as the unique "
    "index compares them (after the table's BEFORE triggers, under the index's collation), so the server refused "
    "to merge them; sent row by row now, they might not be stored as the ORM stores them, since the refused merge "
    "may have drawn values (from a sequence, say) that cannot be given back. Make such keys equal in the rows "
    "before the write, or pass chunk_size=1"
)


def _touched_twice(exc: BaseException) -> bool:
    """Whether a merge failed because ON CONFLICT DO UPDATE met one row twice: SQLSTATE 21000 raised by the server's
    ExecOnConflictUpdate (the function's name, unlike the message, is the same in every server language). The chunk
    holds one key twice as the server compares keys (by the arbiter index's collation, after BEFORE triggers)."""
    if getattr(exc, "sqlstate", None) != "21000":  # (also a scalar subquery of more than one row)
        return False
    return getattr(getattr(exc, "diag", None), "source_function", None) == "ExecOnConflictUpdate"


def _any_aware(values: list[Any]) -> bool:
    """Whether a column's values hold an aware datetime: C-level passes for datetimes and None (the common case),
    a look at each value otherwise."""
    try:
        return any(map(attrgetter("tzinfo"), filter(None, values)))
    except AttributeError:  # not only datetimes: the driver decides what they are
        return any(getattr(v, "tzinfo", None) is not None for v in values)


async def _copy_async(connection: Any, statement: sql.Composable, rows: Sequence[Sequence[Any]]) -> None:
    async with connection.cursor() as cursor:
        async with cursor.copy(statement) as copy:
            for row in rows:
                await copy.write_row(row)


def _regclass(plan: WritePlan) -> str:
    """The table's name as regclass input, quoted (composed without a connection: the asyncio adapter's cursors
    cannot quote)."""
    table = plan.table
    parts = [table.schema, table.name] if table.schema else [table.name]
    return ".".join(map(quote, parts))


def _table(plan: WritePlan) -> sql.Composable:
    table = plan.table
    if table.schema:
        return sql.Identifier(table.schema, table.name)
    return sql.Identifier(table.name)


def _key_column(detail: str | None) -> str | None:
    match = _KEY.search(detail or "")
    return match.group(1).split(",")[0].strip().strip('"') if match else None


def _param_of(plan: WritePlan, column: str | None) -> int | None:
    if not column:
        return None
    for i, param in enumerate(plan.params):
        if param.column.name == column:
            return i
    return None


def _param_at_fault(exc: BaseException, plan: WritePlan, row: Sequence[Any], cursor: Any = None) -> int | None:
    """For a value psycopg could not send: the first one of a type it has no dumper for, out of range, or that
    its dumper refuses (a NUL in text, a JSON value that does not serialise), found by dumping each alone."""
    message = str(exc)
    for i, value in enumerate(row):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            return i
        if type(value).__name__ in message:
            return i
    if cursor is not None:
        for i, value in enumerate(row):
            try:
                sql.Literal(value).as_string(cursor)
            except Exception:
                return i
    return None
