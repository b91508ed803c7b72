"""One chunk on SQLite: multi-row statements (executemany where rows cannot share one) inside BEGIN IMMEDIATE
(Engine targets) or a SAVEPOINT (inside a caller's transaction), rolled back whole on failure, then a row-by-row
probe to name the bad row."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from itertools import chain
from typing import Any, TypeVar

from turboalchemy import _driver
from turboalchemy._sqlite import quote
from turboalchemy._write.plan import WritePlan
from turboalchemy._write.returning import (
    NOTHING,
    ReturningPlan,
    Stores,
    Uncorrelated,
    correlate,
    echoed,
    keys_of,
    needs_rows,
    per_row,
    statements,
    variable_limit,
)

_INT64 = (-(2**63), 2**63 - 1)
_BINDING = re.compile(r"parameter (\d+)")
_PLACEHOLDERS = re.compile(r"\(\?(?:, \?)*\)")
# A column default SQLite stores as it is written: NULL, a boolean, a number, a string or a blob literal
_LITERAL = re.compile(
    r"NULL|TRUE|FALSE|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+|'(?:[^']|'')*'|[xX]'[0-9a-fA-F]*'",
    re.I,
)
_SAVEPOINT = "turboalchemy_chunk"
_PROBE = "turboalchemy_probe"
_TOGETHER = "turboalchemy_rows"


class ChunkFailed(Exception):
    """Internal: a chunk was rolled back; carries what the probe learnt for the caller's error."""

    def __init__(self, cause: BaseException, index: int | None, param: int | None, whole_transaction: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.index = index  # position in the chunk of the first row that fails alone
        self.param = param  # position in the statement's parameters of the value at fault, if known
        self.whole_transaction = whole_transaction  # SQLite itself rolled back the enclosing transaction


class Unconverted(Exception):
    """Internal: a chunk whose parameters were converted as they were sent (see bulk._Pending) held a row the
    fast conversion cannot take; the writer has undone the chunk, which is to be read again row by row and column
    by column (which names the row at fault, or splits the chunk where its rows' keys differ)."""


def _row_specific(exc: BaseException) -> bool:
    if isinstance(exc, _driver.OperationalError):
        return False  # locks, I/O, a full disk: not any one row's fault
    return isinstance(exc, (*_driver.Error, OverflowError, ValueError, TypeError))


def _param_at_fault(exc: BaseException, plan: WritePlan, row: Sequence[Any]) -> int | None:
    message = str(exc)
    if isinstance(exc, OverflowError):
        for i, value in enumerate(row):
            if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                return i
    match = _BINDING.search(message)
    if match and isinstance(exc, _driver.BindingError):
        # Python 3.11's sqlite3 counts from 1 ("parameter 2: type 'list' is not supported"); pysqlite3, like the
        # sqlite3 of Python 3.10 and before, from 0 ("parameter 1 - probably unsupported type.")
        position = int(match.group(1)) + (1 if "probably unsupported type" in message else 0)
        return position - 1 if 0 < position <= len(row) else None
    table = plan.table.name
    for i, param in enumerate(plan.params):
        # SQLite names columns as table.column in constraint and STRICT type errors
        if re.search(re.escape(f"{table}.{param.column.name}") + r"(?:$|[,\s])", message):
            return i
    if "too big" in message:  # SQLITE_TOOBIG names no column: blame the longest text or blob
        sizes = [(len(v), i) for i, v in enumerate(row) if isinstance(v, (str, bytes))]
        return max(sizes)[1] if sizes else None
    return None


def _affinity(declared: str) -> Stores:
    """What a column of this declared type stores unchanged, by SQLite's affinity rules (datatype3.html, 3.1):
    INTEGER and NUMERIC keep ints, TEXT keeps str, BLOB (or none) keeps str, int and bytes (bound as bytes or
    as sqlite3.Binary). Floats are never echoed (NUMERIC turns 3.0 into 3, REAL stores NaN as NULL), nor
    anything else."""
    upper = declared.upper()
    if "INT" in upper:
        return Stores(frozenset({int}))
    if "CHAR" in upper or "CLOB" in upper or "TEXT" in upper:
        return Stores(frozenset({str}))
    if "BLOB" in upper or not upper:
        return Stores(frozenset({str, int, bytes, memoryview}))
    if "REAL" in upper or "FLOA" in upper or "DOUB" in upper:
        return NOTHING
    return Stores(frozenset({int}))


# Rows per multi-row statement of a plain write. Measured on the study's table (13 columns), upserts of prebuilt
# tuples into a 300K-row file, interleaved: executemany ran at 0.59-0.66 of SQLite alone, 10 rows a statement at
# 0.71-0.75, 100-500 at 0.77-0.84, 2,500 at 0.76-0.80 (both modules). Each row of executemany runs the statement's
# program again (its cursors opened on every index); one statement of many rows opens them once.
ROWS_PER_WRITE = 256

# Whether a chunk's rows are converted a statement ahead, on a helper thread, while SQLite writes the statement
# before (see _ahead): with a second core to run on and a chunk of at least AHEAD_STATEMENTS statements.
AHEAD = True
AHEAD_STATEMENTS = 3
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

_T = TypeVar("_T")


def _ahead(make: Callable[[int], _T], starts: Sequence[int]) -> Generator[_T, None, None]:
    """make(start) for each start, in order, each made on a helper thread while the caller uses the one before.

    SQLite lets go of the GIL while it steps a statement, so converting the next statement's rows (Python) overlaps
    writing this one's (C). At most two are made ahead. What make raises is raised here, in the caller's thread, in
    its turn; when the caller stops early (an error, an interrupt) the helper stops within a moment, even if the
    caller is interrupted again while stopping it. Where no thread can be started, each is made here in its turn.
    Use it in a `closing()` block, so that the helper is stopped even while a traceback holds the generator."""
    made: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def give(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                made.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for start in starts:
                if stop.is_set() or not give((True, make(start))):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            give((False, exc))

    helper = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="turboalchemy-convert")
    helper.daemon = True
    try:
        helper.start()
    except RuntimeError:  # no thread to be had: the same work, in the caller's thread
        for start in starts:
            yield make(start)
        return
    try:
        for _ in starts:
            ok, item = made.get()
            if not ok:
                raise item
            yield item
    finally:
        stop.set()
        while helper.is_alive():  # free its place in the queue should it be waiting to put one more
            try:
                made.get(timeout=0.01)
            except queue.Empty:
                pass
        helper.join()


@functools.lru_cache(maxsize=512)
def _many(head: str, values: str, tail: str, rows: int) -> str:
    """The statement writing `rows` rows with one multi-row VALUES."""
    return head + ", ".join([values] * rows) + tail


def _flat(part: Sequence[Sequence[Any]], width: int, whole: bool) -> list[Any]:
    """The parameters of one multi-row statement: each row's first `width` values (all of them when `whole`), then
    the upsert's onupdate values once, which are the same in every row of a chunk."""
    if whole:
        return list(chain.from_iterable(part))
    flat = list(chain.from_iterable(row[:width] for row in part))
    flat.extend(part[0][width:])
    return flat


class _AsyncAdapted:
    """SQLAlchemy's aiosqlite adapter, plus the `in_transaction` it does not expose (read from aiosqlite)."""

    def __init__(self, adapted: Any) -> None:
        self._adapted = adapted
        self.cursor = adapted.cursor
        self.commit = adapted.commit
        self.rollback = adapted.rollback

    @property
    def in_transaction(self) -> bool:
        return bool(self._adapted.driver_connection.in_transaction)


class ChunkWriter:
    """What both backends' chunk writers share: a chunk whose returned rows cannot be matched is written again
    one statement per row, and RETURNING rows are read noting the driver's type per column. A backend
    provides `_write_once`."""

    type_codes: tuple[Any, ...] = ()

    def _write_once(self, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan | None) -> list[Any] | None:
        raise NotImplementedError

    def write(self, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan | None = None) -> list[Any] | None:
        """Write one chunk; with `ret`, the rows RETURNING gave, in the order of `params`. When returned rows
        cannot be matched to the rows sent (the database stored a key converted, a trigger took keys between
        ours), the chunk is rolled back and written again one statement per row, where each answer is its own."""
        try:
            return self._write_once(plan, params, ret)
        except ChunkFailed as failed:
            if ret is None or ret.match == "row" or not isinstance(failed.cause, Uncorrelated):
                raise
        return self._write_once(plan, params, dataclasses.replace(ret, match="row"))

    def _fetch(self, cursor: Any) -> list[Any]:
        """The rows a RETURNING statement gave; notes the driver's type per column for result processing."""
        if cursor.description is None:
            return []
        self.type_codes = tuple(d[1] for d in cursor.description)
        return list(cursor.fetchall())


class SqliteChunkWriter(ChunkWriter):
    """Writes chunks on one DBAPI connection, each its own transaction or savepoint."""

    def __init__(self, dbapi_connection: Any, own_transactions: bool) -> None:
        # Under SQLAlchemy's asyncio extension (run in its greenlet) the connection is an adapter over aiosqlite
        adapted = not isinstance(dbapi_connection, _driver.Connection) and hasattr(
            dbapi_connection, "driver_connection"
        )
        self.dbapi: Any = _AsyncAdapted(dbapi_connection) if adapted else dbapi_connection
        self.own = own_transactions
        self._limit: int | None = None
        self._stores: dict[Any, list[Stores]] = {}  # per table and echoed columns, read once on this connection

    def _write_once(self, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan | None) -> list[Any] | None:
        cursor = self.dbapi.cursor()
        returned = None
        try:
            if self.own:
                try:
                    cursor.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting up to busy_timeout
                except _driver.OperationalError as exc:  # locked past busy_timeout: nothing began
                    raise ChunkFailed(exc, None, None, False) from exc
                try:
                    returned = self._execute(cursor, plan, params, ret)
                    self.dbapi.commit()
                except BaseException as exc:
                    self.dbapi.rollback()
                    if isinstance(exc, Unconverted):
                        raise  # undone: the caller reads the chunk again
                    raise self._diagnose(cursor, plan, params, exc, whole=False) from exc
            else:
                if not self.dbapi.in_transaction:
                    cursor.execute("BEGIN")  # so the savepoint nests in a transaction the caller commits
                cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    returned = self._execute(cursor, plan, params, ret)
                except BaseException as exc:
                    whole = not self._undo(cursor, _SAVEPOINT)
                    if isinstance(exc, Unconverted) and not whole:
                        raise  # undone: the caller reads the chunk again
                    raise self._diagnose(cursor, plan, params, exc, whole=whole) from exc
                cursor.execute(f"RELEASE {_SAVEPOINT}")
        finally:
            cursor.close()
        return returned

    def _execute(
        self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]], ret: ReturningPlan | None
    ) -> list[Any] | None:
        if ret is None:
            if plan.many is None or len(params) < 2 or not self._rows_share_statements(cursor, plan):
                # converted here, whole, not as the driver iterates them (aiosqlite would on its own thread)
                cursor.executemany(plan.sql, params if isinstance(params, list) else list(params))
            else:
                self._write_rows(cursor, plan, params)
            return None
        if ret.echo:
            rows = echoed(ret, params, self._stores_of(cursor, plan, ret))
            if rows is not None:  # every value stored as sent: the plain executemany, and the rows as sent
                cursor.executemany(plan.sql, params)
                self.type_codes = ()
                return rows
        if needs_rows(ret, params) or (len(params) > 1 and not self._rows_share_statements(cursor, plan, ret.values)):
            results = []
            for row in params:
                cursor.execute(ret.row_sql, row)
                results.append(self._fetch(cursor))
            return per_row(ret, results)
        if self._limit is None:
            self._limit = variable_limit(getattr(self.dbapi, "_adapted", self.dbapi))
        width = ret.width
        whole = width == len(plan.params)
        segments = []
        keys = keys_of(ret, params)
        head = ret.head
        if head.startswith("INSERT INTO ") and self._plain(cursor, plan):
            head = "INSERT OR FAIL INTO " + head[len("INSERT INTO ") :]  # no statement journal, as _write_rows
        for start, end in statements(ret, keys, len(params), self._limit):
            part = params[start:end]
            cursor.execute(_many(head, ret.values, ret.tail, end - start), _flat(part, width, whole))
            segments.append((start, end, self._fetch(cursor)))
        return correlate(ret, params, keys, segments, gapless=True)

    def _write_rows(self, cursor: Any, plan: WritePlan, params: list[Sequence[Any]]) -> None:
        """The chunk as multi-row statements of up to ROWS_PER_WRITE rows, in order: SQLite applies a statement's
        rows one after another, as executemany does (a key twice: the second row updates the first's). An upsert's
        onupdate values are the same in every row of a chunk and are bound once per statement.

        The statements are INSERT OR FAIL: a statement of several rows that may abort keeps a statement journal, a
        copy of every page it changes, so that it can undo itself alone; that made inserts of the study's table
        0.82-0.84x executemany. FAIL keeps the rows before a failing one instead, and the chunk is undone whole
        anyway (its transaction or savepoint), so what is stored is the same. FAIL would override a conflict clause
        of the table's own or one in a trigger's body, so such tables go by executemany (see _rows_share_statements)."""
        head, values, tail = plan.many  # type: ignore[misc]
        if self._limit is None:
            self._limit = variable_limit(getattr(self.dbapi, "_adapted", self.dbapi))
        width = sum(not p.onupdate for p in plan.params)
        extra = len(plan.params) - width
        per = max(1, min(ROWS_PER_WRITE, (self._limit - extra) // max(1, width)))
        starts = range(0, len(params), per)

        if (
            AHEAD
            and _CORES > 1
            and len(starts) >= AHEAD_STATEMENTS
            and getattr(params, "threadable", False)
            and not isinstance(self.dbapi, _AsyncAdapted)
        ):
            # converted on the helper thread; checked here (the NaN check may call the values' own methods)
            def converted(start: int) -> tuple[Any, list[Any]]:
                part = params.unchecked(start, start + per)  # type: ignore[attr-defined]
                return part, _flat(part, width, not extra)

            with closing(_ahead(converted, starts)) as made:
                for part, flat in made:
                    params.check(part)  # type: ignore[attr-defined]
                    cursor.execute(_many(head, values, tail, len(part)), flat)
            return
        for start in starts:
            part = params[start : start + per]  # converted and checked here, if still pending
            cursor.execute(_many(head, values, tail, len(part)), _flat(part, width, not extra))

    def _plain(self, cursor: Any, plan: WritePlan) -> bool:
        """Whether the table is one table and only that, as the statement names it: no trigger on it, no temp
        table of its name, no conflict clause in its definition (ON CONFLICT REPLACE, IGNORE, ...; the word
        CONFLICT anywhere in it counts, so that no comment or spacing hides one)."""
        table = plan.table
        cursor.execute(
            f"SELECT type, sql FROM {quote(table.schema or 'main')}.sqlite_master WHERE tbl_name = ?1 COLLATE NOCASE "
            "AND type IN ('table', 'trigger') UNION ALL SELECT type, sql FROM sqlite_temp_master "
            "WHERE tbl_name = ?1 COLLATE NOCASE AND type IN ('table', 'trigger')",
            (table.name,),
        )
        found = cursor.fetchall()
        definitions = [text for kind, text in found if kind == "table"]
        return (
            len(definitions) == len(found) == 1
            and definitions[0] is not None
            and "CONFLICT" not in definitions[0].upper()
        )

    def _rows_share_statements(self, cursor: Any, plan: WritePlan, values: str | None = None) -> bool:
        """Whether this chunk's rows may go several to a statement, storing what a statement per row stores; asked
        inside the chunk's transaction. Not where SQLite would treat the rows of one statement together:
        - for the INSERT OR FAIL of a plain write (`values` None), a trigger or a conflict clause of the table's
          own (OR FAIL would override them: see _write_rows);
        - SQL in a RETURNING statement's `values` (a SQL default): evaluated for every row before any is written,
          where it reads the table (a plain write's plan has none: plan._multi_row);
        - foreign keys enforced on a table that has or is the target of one: SQLite counts a statement's broken
          references and checks the count when the statement ends, so a child row before its parent passes;
        - a column the statement leaves to a default that is not a literal (CURRENT_TIMESTAMP, an expression):
          evaluated once per statement where it reads the clock, before any row is written where it reads the
          table."""
        if values is None:
            if not self._plain(cursor, plan):
                return False
        elif _PLACEHOLDERS.fullmatch(values) is None:
            return False
        table = plan.table
        schema = quote(table.schema or "main")
        written = {p.column.name for p in plan.params}
        cursor.execute(
            "SELECT name, dflt_value, hidden FROM pragma_table_xinfo(?, ?)", (table.name, table.schema or "main")
        )
        for name, default, hidden in cursor.fetchall():
            if name not in written and not hidden and default is not None and not _LITERAL.fullmatch(default):
                return False
        cursor.execute("PRAGMA foreign_keys")
        if cursor.fetchone()[0]:
            cursor.execute(
                f"SELECT 1 FROM {schema}.sqlite_master AS m, pragma_foreign_key_list(m.name, ?2) AS f "
                "WHERE m.type = 'table' AND (m.name = ?1 COLLATE NOCASE OR f.\"table\" = ?1 COLLATE NOCASE) LIMIT 1",
                (table.name, table.schema or "main"),
            )
            if cursor.fetchone() is not None:
                return False
        return True

    def _stores_of(self, cursor: Any, plan: WritePlan, ret: ReturningPlan) -> list[Stores]:
        """What each echoed column stores unchanged, from its type as the database declares it (not as the
        model does). Nothing at all where a row could be stored otherwise than sent, or not at all: a trigger on
        the table (RAISE(IGNORE) drops a row), an ON CONFLICT clause in its definition (IGNORE, REPLACE), a temp
        table of the same name; nothing for a type whose values the driver adapts on the way in (a registered
        adapter) or converts on the way out (a converter for the declared type, a text_factory other than str)."""
        table = plan.table
        key = (table.schema, table.name, tuple(plan.params[at].column.name for at in ret.echo))
        if key not in self._stores:
            plain = self._plain(cursor, plan)
            cursor.execute("SELECT name, type FROM pragma_table_xinfo(?, ?)", (table.name, table.schema or "main"))
            declared: dict[str, str] = dict(cursor.fetchall())
            dbapi = getattr(self.dbapi, "_adapted", self.dbapi)
            driver = getattr(dbapi, "driver_connection", dbapi)
            module = _driver.module_of(driver)
            converters = getattr(module, "converters", {})
            adapted = {
                t
                for t in (str, int, bytes, memoryview)
                if (t, getattr(module, "PrepareProtocol", None)) in module.adapters
            }
            if getattr(driver, "text_factory", str) is not str:
                adapted.add(str)
            stores = []
            for at in ret.echo:
                kind = declared.get(plan.params[at].column.name)
                if not plain or kind is None or re.split(r"[\s(]", kind.upper(), maxsplit=1)[0] in converters:
                    stores.append(NOTHING)
                    continue
                stores.append(Stores(_affinity(kind).types - adapted))
            self._stores[key] = stores
        return self._stores[key]

    @contextmanager
    def together(self) -> Iterator[None]:
        """Make the writes inside one unit: one transaction (Engine targets) or one savepoint, undone whole
        when any of them fails."""
        cursor = self.dbapi.cursor()
        own = self.own
        try:
            if own:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                except _driver.OperationalError as exc:
                    raise ChunkFailed(exc, None, None, False) from exc
            elif not self.dbapi.in_transaction:
                cursor.execute("BEGIN")
            cursor.execute(f"SAVEPOINT {_TOGETHER}")
            self.own = False  # each write takes a savepoint inside this unit
            try:
                yield
            except BaseException:
                if own:
                    self.dbapi.rollback()
                else:
                    self._undo(cursor, _TOGETHER)
                raise
            cursor.execute(f"RELEASE {_TOGETHER}")
            if own:
                self.dbapi.commit()
        finally:
            self.own = own
            cursor.close()

    def _undo(self, cursor: sqlite3.Cursor, name: str) -> bool:
        """Roll back to a savepoint; False when SQLite had already rolled back the whole transaction."""
        if not self.dbapi.in_transaction:
            return False
        try:
            cursor.execute(f"ROLLBACK TO {name}")
            cursor.execute(f"RELEASE {name}")
        except _driver.OperationalError:
            return False
        return True

    def _diagnose(
        self, cursor: sqlite3.Cursor, plan: WritePlan, params: list[Sequence[Any]], exc: BaseException, whole: bool
    ) -> ChunkFailed:
        """Replay the chunk row by row in a transaction that is always undone, to find the first bad row."""
        if whole or not _row_specific(exc):
            return ChunkFailed(exc, None, None, whole)
        began = not self.dbapi.in_transaction
        try:
            cursor.execute("BEGIN" if began else f"SAVEPOINT {_PROBE}")
            for index, row in enumerate(params):
                try:
                    cursor.execute(plan.sql, row)
                except Exception as failure:
                    return ChunkFailed(failure, index, _param_at_fault(failure, plan, row), whole)
            return ChunkFailed(exc, None, _param_at_fault(exc, plan, params[0]) if params else None, whole)
        except _driver.Error:
            return ChunkFailed(exc, None, None, whole)
        finally:
            if began:
                self.dbapi.rollback()
            else:
                self._undo(cursor, _PROBE)
