"""WriteQueue: one thread owns the only write connection and commits concurrent writers' work in batches.

Callers from any thread or asyncio task hand over a statement or a function. The writer takes every
pending item (up to `max_batch`) into one transaction, runs each in its own SAVEPOINT so a failing item
is undone and answered with its own exception while the others stay, then COMMITs once, and only then
answers the callers. One commit (and, with synchronous FULL, one fsync) serves the whole batch, and no
caller ever sees "database is locked" from its neighbours.

Only one thread writes at a time, on the queue's one connection. As in LevelDB's group commit, a
blocking `execute()` that finds the writer idle does the writing itself (its batch includes whatever
else is pending), which spares a lone writer two thread switches per write; otherwise the queue's own
thread writes, and is the only writer for `submit()` and `aexecute()` work.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, NamedTuple, TypeVar, overload

from sqlalchemy import TextClause, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.base import Executable

from turboalchemy import _driver
from turboalchemy._engine import dedicated_writer, profile_of
from turboalchemy._schema import Model, table_of
from turboalchemy._targets import ENGINE, classify
from turboalchemy.errors import (
    BulkWriteError,
    CommitLatencyError,
    QueueClosedError,
    QueueFullError,
    QueueReentryError,
    TurboAlchemyError,
    _DriverError,
    translate,
)

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
Work = Executable | str | Callable[[Connection], Any]
T = TypeVar("T")
_IN_CALLERS_TRANSACTION = (
    "the chunk was rolled back; the caller's transaction is still open and holds the earlier chunks"
)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_TRANSACTION_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


class WriteResult(NamedTuple):
    """What a statement sent through the queue did, known once its batch committed (lastrowid: SQLite's rowid
    of a single-row INSERT; None for executemany and on PostgreSQL). `rows`: what a statement with RETURNING
    returned, read inside its transaction (rowcount is then their number); None for other statements."""

    rowcount: int
    lastrowid: int | None
    rows: list[Row[Any]] | None = None


@dataclass
class QueueStats:
    """Counters since the queue started (how well writes are being grouped), and the latency of its recent
    commits: BEGIN to COMMIT of each batch, the last 1,000."""

    items: int = 0
    failed: int = 0
    batches: int = 0
    largest_batch: int = 0
    retried_batches: int = 0
    commits: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=1000), repr=False)

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def commit_ms(self, percentile: float, *, within_s: float | None = None) -> float | None:
        """The `percentile` (0-100) of the recent commits' latency in ms, over those of the last `within_s`
        seconds when given; None before any commit."""
        since = -math.inf if within_s is None else time.monotonic() - within_s
        samples = sorted(ms for at, ms in list(self.commits) if at >= since)
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(percentile / 100 * len(samples)))]


class _Item:
    """One write and how its caller hears back: a Future (submit) or a held lock it waits on (execute)."""

    __slots__ = ("work", "params", "future", "waiter", "finished", "ok", "value")

    def __init__(self, work: Work, params: Params, future: Future[Any] | None) -> None:
        self.work = work
        self.params = params
        self.future = future
        self.waiter: Any = None
        self.finished = False
        self.ok = False
        self.value: Any = None
        if future is None:
            self.waiter = threading.Lock()
            self.waiter.acquire()

    def finish(self, ok: bool, value: Any) -> None:
        self.ok, self.value, self.finished = ok, value, True
        if self.future is not None:
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)
        else:
            self.waiter.release()

    def result(self, timeout: float | None) -> Any:
        if not self.finished and not self.waiter.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the write was not committed within {timeout} s (it stays queued)")
        if not self.ok:
            raise self.value
        return self.value


class WriteQueue:
    """Group commit for one SQLite database: `execute`/`submit`/`aexecute` from any thread or task.

    `max_batch` items at most go in one transaction. When the previous batch held more than one item
    (writers are concurrent), the writer waits up to `max_wait_ms` until as many items are pending as
    that batch held, so writers answered together commit together again; a lone writer never waits.
    `max_pending` bounds the queue: `submit` then blocks until there is room, for at most `put_timeout`
    seconds (None: as long as it takes), then raises QueueFullError. `close()` answers everything already
    submitted, then stops the thread.

    `refuse_above_ms` fails fast when the database stalls: once the 99th percentile of the commits of the
    last `latency_window_s` seconds (at least 10 of them) passes it, new writes are refused with
    CommitLatencyError for that long instead of piling up behind the stall. `stats.commit_ms(99)` reads the
    same latencies for monitoring.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 1000,
        max_wait_ms: float = 2.0,
        max_pending: int = 100_000,
        put_timeout: float | None = None,
        refuse_above_ms: float | None = None,
        latency_window_s: float = 10.0,
    ) -> None:
        classify(engine, ENGINE, "WriteQueue")
        if refuse_above_ms is not None and refuse_above_ms <= 0 or latency_window_s <= 0:
            raise ValueError("refuse_above_ms and latency_window_s must be positive")
        self.refuse_above_ms = refuse_above_ms
        self.latency_window_s = latency_window_s
        self._refusing_until = 0.0
        self._committing: int | None = None  # the thread running a batch's transaction, while it does
        self._current: list[_Item] = []  # that batch
        self._release_on_exit = False  # close() timed out: the queue's thread releases the connection when done
        self._drained = False  # the queue's thread has answered everything and stopped
        if max_batch < 1 or max_pending < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_pending must be at least 1, max_wait_ms at least 0")
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_pending = max_pending
        self.put_timeout = put_timeout
        self.stats = QueueStats()
        self._pending: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._filled = threading.Condition(self._lock)  # a writer gathering a batch waits here
        self._fill_target = 0  # pending count that wakes it; 0 while nobody gathers
        self._last_batch = 0  # size of the last batch committed, by whichever thread
        self._closed = False
        self._full_waiters = 0
        self._writing = False  # a thread (the queue's own or a leading caller) holds the write connection
        child = dedicated_writer(engine) if profile_of(engine) is not None else engine
        self._own_engine = child if child is not engine else None  # ours to dispose (never the caller's engine)
        self._engine = child
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._begin_here = self._sqlite and self._own_engine is None  # turboalchemy engines begin IMMEDIATE themselves
        self._connection = self._engine.connect()  # opened here, so a bad database fails the constructor
        self._texts: dict[str, TextClause] = {}
        self._compiled: weakref.WeakKeyDictionary[TextClause, tuple[str, tuple[str, ...] | None, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._cursor = self._connection.connection.dbapi_connection.cursor() if self._sqlite else None  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._run, name="turboalchemy-writequeue", daemon=True)
        self._thread.start()

    # -- producers -----------------------------------------------------------------------------------

    @overload
    def submit(self, work: Executable | str, params: Params = None) -> Future[WriteResult]: ...
    @overload
    def submit(self, work: Callable[[Connection], T], params: Params = None) -> Future[T]: ...

    def submit(self, work: Work, params: Params = None) -> Future[Any]:
        """Queue a statement (SQLAlchemy executable or SQL text) with its parameters, or a function given the
        write Connection. The Future resolves after COMMIT: a WriteResult for a statement, the function's
        return value for a function, or the item's own exception."""
        future: Future[Any] = Future()
        self._enqueue(work, params, future, lead=False)
        return future

    def _enqueue(self, work: Work, params: Params, future: Future[Any] | None, *, lead: bool) -> tuple[_Item, bool]:
        """Append an item, waiting for room; with `lead`, also claim the writer if it is idle (returned)."""
        if isinstance(work, str):
            work = self._text(work)
        elif not isinstance(work, Executable) and not callable(work):
            raise TypeError(f"submit takes a SQLAlchemy statement, SQL text or a callable, not {type(work).__name__}")
        if isinstance(work, TextClause) and _TRANSACTION_CONTROL.match(work.text):
            raise ValueError(
                f"{work.text.split()[0].upper()} as a queued item would end or split the transaction its batch "
                "shares with other callers' writes; the queue begins and commits each batch itself"
            )
        if self._committing == threading.get_ident():
            raise QueueReentryError(
                "a function running inside this WriteQueue's transaction wrote through the same queue: it would "
                "wait for its own batch to commit; write through the Connection the function is given"
            )
        item = _Item(work, params, future)
        if self._refusing_until and time.monotonic() < self._refusing_until:
            raise CommitLatencyError(
                f"the 99th percentile of this queue's commits over the last {self.latency_window_s:g} s is "
                f"{self.stats.commit_ms(99, within_s=self.latency_window_s) or 0:,.0f} ms, over refuse_above_ms="
                f"{self.refuse_above_ms:g}: the database is not keeping up (a stalled disk, a reader holding "
                "back checkpoints, a long write); this write was not queued: retry later or shed load"
            )
        with self._lock:
            if self._closed:
                raise QueueClosedError("this WriteQueue is closed; create a new one to write again")
            if len(self._pending) >= self.max_pending:
                deadline = None if self.put_timeout is None else time.monotonic() + self.put_timeout
                while len(self._pending) >= self.max_pending and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise QueueFullError(
                            f"{self.max_pending} writes already pending for {self.put_timeout} s; "
                            "the database cannot keep up: raise max_pending or slow producers"
                        )
                    self._full_waiters += 1
                    try:
                        self._room.wait(remaining)
                    finally:
                        self._full_waiters -= 1
                if self._closed:
                    raise QueueClosedError("this WriteQueue was closed while waiting for room")
            self._pending.append(item)
            if self._writing:
                if self._fill_target and len(self._pending) >= self._fill_target:
                    self._filled.notify()
                return item, False
            if lead:
                self._writing = True
                return item, True
            self._arrived.notify()
        return item, False

    def _text(self, sql: str) -> TextClause:
        """text(sql), kept for reuse so that SQL passed as a string is compiled once, not on every write."""
        clause = self._texts.get(sql)
        if clause is None:
            if len(self._texts) >= 1024:
                self._texts.clear()
            clause = self._texts[sql] = text(sql)
        return clause

    @overload
    def execute(
        self, work: Executable | str, params: Params = None, *, timeout: float | None = None
    ) -> WriteResult: ...
    @overload
    def execute(self, work: Callable[[Connection], T], params: Params = None, *, timeout: float | None = None) -> T: ...

    def execute(self, work: Work, params: Params = None, *, timeout: float | None = None) -> Any:
        """submit() and wait: returns once the write is committed, or raises the item's own error.
        When the writer is idle, the calling thread commits the pending batch itself."""
        item, lead = self._enqueue(work, params, None, lead=True)
        if lead:
            batch: list[_Item] = []
            try:
                while not item.finished:
                    with self._lock:
                        batch = self._gather()
                    if not batch:
                        break
                    self._commit(batch)
            except BaseException as exc:  # a signal landed while this thread led a batch: nothing of it committed
                with self._lock:  # the other callers' writes go back to the queue, to be written and answered
                    self._pending.extendleft(reversed([i for i in batch if not i.finished and i is not item]))
                if not item.finished:
                    item.finish(False, exc)
                raise
            finally:
                with self._lock:
                    self._writing = False
                    if self._pending or self._closed:
                        self._arrived.notify()  # the queue's thread takes over what arrived meanwhile
        return item.result(timeout)

    @overload
    async def aexecute(self, work: Executable | str, params: Params = None) -> WriteResult: ...
    @overload
    async def aexecute(self, work: Callable[[Connection], T], params: Params = None) -> T: ...

    async def aexecute(self, work: Work, params: Params = None) -> Any:
        """execute() for asyncio: awaits the commit without blocking the event loop."""
        try:
            future = self._submit_nowait(work, params)
        except QueueFullError:
            future = await asyncio.get_running_loop().run_in_executor(None, self.submit, work, params)
        return await asyncio.wrap_future(future)

    def _submit_nowait(self, work: Work, params: Params) -> Future[Any]:
        with self._lock:
            full = len(self._pending) >= self.max_pending and not self._closed
        if full:
            raise QueueFullError("full")
        return self.submit(work, params)

    @overload
    def bulk_insert(
        self,
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
        self,
        model: Model,
        rows: Iterable[Any],
        *,
        chunk_size: int = ...,
        on_conflict: Literal["error", "ignore"] = ...,
        conflict: Sequence[str] | None = ...,
        returning: Any,
    ) -> list[Any]: ...

    def bulk_insert(
        self,
        model: Model,
        rows: Iterable[Any],
        *,
        chunk_size: int = 5000,
        on_conflict: Literal["error", "ignore"] = "error",
        conflict: Sequence[str] | None = None,
        returning: Any = None,
    ) -> int | list[Any]:
        """turboalchemy.bulk_insert through the queue: one chunk at a time is read, queued and committed (its
        own transaction, or one shared with other callers' writes), so memory holds one chunk and no commit
        holds more than one. Returns rows written. A failing chunk is rolled back and nothing after it is
        written; the error names the row in your stream and `committed`, the rows committed before it.
        `on_conflict`, `conflict` and `returning` as for turboalchemy.bulk_insert (with `returning`, the list)."""
        if on_conflict == "ignore":
            return self._bulk(model, rows, chunk_size, "upsert", tuple(conflict or ()), (), returning)
        if on_conflict != "error" or conflict is not None:
            raise ValueError("on_conflict must be 'error' or 'ignore'; conflict= goes with on_conflict='ignore'")
        return self._bulk(model, rows, chunk_size, "insert", (), None, returning)

    @overload
    def bulk_upsert(
        self,
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
        self,
        model: Model,
        rows: Iterable[Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = ...,
        chunk_size: int = ...,
        returning: Any,
    ) -> list[Any]: ...

    def bulk_upsert(
        self,
        model: Model,
        rows: Iterable[Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = None,
        chunk_size: int = 5000,
        returning: Any = None,
    ) -> int | list[Any]:
        """turboalchemy.bulk_upsert through the queue, chunk by chunk like bulk_insert."""
        changes = None if update is None else tuple(update)
        return self._bulk(model, rows, chunk_size, "upsert", tuple(conflict), changes, returning)

    def _bulk(
        self,
        model: Model,
        rows: Iterable[Any],
        chunk_size: int,
        kind: Literal["insert", "upsert"],
        conflict: tuple[str, ...],
        update: tuple[str, ...] | None,
        returning: Any = None,
    ) -> int | list[Any]:
        from turboalchemy._write.bulk import _take, _write, source_failed

        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        iterator = iter(rows)
        written = 0  # rows of the stream committed (the next chunk's position in it)
        related = 0  # rows of graphs' related objects written beside them
        answers: list[Any] = []
        while True:
            try:
                chunk = _take(iterator, chunk_size)
            except Exception as exc:
                source_failed(exc, f"WriteQueue.bulk_{kind} of {table_of(model).name!r}", written, written)
                raise
            if not chunk:
                break

            def one(conn: Connection, chunk: list[Any] = chunk, offset: int = written) -> Any:
                return _write(conn, model, chunk, kind, chunk_size, conflict, update, offset, returning)

            try:
                got: Any = self.submit(one).result()
                if returning is None:
                    related += got - len(chunk)
                else:
                    answers.extend(got)
                written += len(chunk)
            except (BulkWriteError, _DriverError, QueueFullError, QueueClosedError, CommitLatencyError) as exc:
                exc.committed = written  # type: ignore[union-attr]
                told = str(exc).replace(_IN_CALLERS_TRANSACTION, "the chunk was rolled back")
                told = told.replace("; the caller's transaction is still open", "")
                exc.args = (
                    f"{told}; through the WriteQueue: {written:,} rows were committed before it, nothing after it",
                )
                raise
        return written + related if returning is None else answers

    def close(self, timeout: float | None = None) -> int:
        """Stop taking work, answer everything already queued, then release the write connection.

        Returns how many submitted writes were still unanswered when `timeout` seconds ran out (0 when every
        one was answered); those go on in the queue's thread, which then releases the connection itself."""
        with self._lock:
            self._closed = True
            self._arrived.notify_all()
            self._room.notify_all()
            self._filled.notify_all()
        self._thread.join(timeout)
        with self._lock:
            if not self._drained:  # the thread is still answering: it releases the connection when it is done
                self._release_on_exit = True
                return len(self._pending) + sum(not item.finished for item in self._current)
        self._release()
        return 0

    def _release(self) -> None:
        self._connection.close()
        if self._own_engine is not None:
            self._own_engine.dispose()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> WriteQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------------------------

    def _pop(self) -> list[_Item]:
        """Up to max_batch pending items; the caller holds the lock."""
        batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
        if batch and self._full_waiters:
            self._room.notify_all()
        return batch

    def _gather(self) -> list[_Item]:
        """The next batch for the thread that claimed the writer; the caller holds the lock.

        When the last batch held several items, concurrent writers are about: the callers it answered are
        probably preparing their next write. Waiting (at most max_wait) until as many items are pending as
        the last batch held lets them join this commit instead of the next one, so batches stay as large as
        the number of writers instead of shrinking to whoever was already queued."""
        target = min(self._last_batch, self.max_batch)
        if target > 1 and self.max_wait and len(self._pending) < target and not self._closed:
            deadline = time.monotonic() + self.max_wait
            self._fill_target = target
            try:
                while len(self._pending) < target and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._filled.wait(left)
            finally:
                self._fill_target = 0
        return self._pop()

    def _take(self) -> list[_Item]:
        """The queue thread's next batch, once no caller is writing; empty when closed and drained."""
        with self._lock:
            while (not self._pending or self._writing) and not (
                self._closed and not self._pending and not self._writing
            ):
                self._arrived.wait()
            if not self._pending:
                return []
            self._writing = True  # claimed before _gather's wait releases the lock: no caller starts a batch
            return self._gather()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:  # closed and drained
                with self._lock:
                    self._drained = True
                    release = self._release_on_exit
                if release:
                    self._release()
                return
            try:
                self._commit(batch)
            except BaseException as exc:  # never let the writer thread die with callers unanswered
                for waiting in batch:
                    if not waiting.finished:
                        self._fail(waiting, exc)
            finally:
                with self._lock:
                    self._writing = False

    def _commit(self, batch: list[_Item], guarded: bool | None = None) -> None:
        """Run a batch in one transaction, each item in a savepoint; answer the callers after COMMIT.

        A batch of statements first runs without savepoints (two statements fewer per item); if any item
        fails, that attempt is rolled back whole and the batch runs again guarded, so each item's outcome is
        what it would have been in its own savepoint. Functions always run guarded: they run only once."""
        if guarded is None:
            guarded = not all(isinstance(item.work, Executable) for item in batch)
        conn = self._connection
        outcomes: list[tuple[bool, Any]] = []
        started = time.monotonic()
        self._committing = threading.get_ident()
        self._current = batch
        try:
            with conn.begin():
                if self._begin_here and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # an engine turboalchemy did not set up
                alone = len(batch) == 1  # nothing to protect from its failure: no savepoint needed
                protect = guarded and not alone
                for item in batch:
                    if protect:
                        self._savepoint(conn, "SAVEPOINT turboalchemy_item")
                    try:
                        value = self._run_item(conn, item)
                    except BaseException as exc:  # SystemExit from a function is its own answer, not the thread's end
                        if alone:
                            raise _Alone(exc) from exc
                        if not guarded:
                            raise _Guard() from None
                        if not self._undo(conn):
                            # SQLite rolled the whole transaction back: the others did nothing wrong; run them again
                            self._fail(item, exc)
                            self.stats.retried_batches += 1
                            rest = [i for i in batch if i is not item]
                            with self._lock:
                                self._pending.extendleft(reversed(rest))
                            raise _Abandoned() from None
                        outcomes.append((False, exc))
                    else:
                        if protect:
                            self._savepoint(conn, "RELEASE turboalchemy_item")
                        outcomes.append((True, value))
        except _Guard:  # rolled back: run the batch again, each item in its own savepoint
            self._commit(batch, guarded=True)
            return
        except _Abandoned:
            return
        except _Alone as failed:
            self.stats.batches += 1
            self.stats.items += 1
            self._fail(batch[0], failed.error)
            return
        except Exception as exc:  # BEGIN or COMMIT failed: nothing in the batch was stored
            for item in batch:
                self._fail(item, exc)
            return
        finally:
            self._committing = None
        self._record_commit(started)
        self.stats.batches += 1
        self._last_batch = len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.items += len(batch)
        interrupted: BaseException | None = None
        for item, (ok, value) in zip(batch, outcomes):  # committed: every caller hears, even through a signal
            try:
                if ok:
                    item.finish(True, value)
                else:
                    self._fail(item, value)
            except BaseException as exc:
                interrupted = exc
                if not item.finished:
                    item.finish(ok, value)
        if interrupted is not None:
            raise interrupted

    def _record_commit(self, started: float) -> None:
        now = time.monotonic()
        self.stats.commits.append((now, (now - started) * 1000))
        if self.refuse_above_ms is not None:
            recent = [ms for at, ms in self.stats.commits if at >= now - self.latency_window_s]
            if len(recent) >= 10:
                recent.sort()
                slow = recent[min(len(recent) - 1, int(0.99 * len(recent)))] > self.refuse_above_ms
                self._refusing_until = now + self.latency_window_s if slow else 0.0

    def _fail(self, item: _Item, exc: BaseException) -> None:
        self.stats.failed += 1
        if not isinstance(exc, TurboAlchemyError):  # a full disk or a held lock gets its own type on any engine
            exc = translate(getattr(exc, "orig", None) or exc) or exc
        item.finish(False, exc)

    def _run_item(self, conn: Connection, item: _Item) -> Any:
        work = item.work
        if isinstance(work, TextClause) and self._sqlite:
            names = self._names(work)
            if names is not None:
                return self._run_text(work, names, item.params)
        if isinstance(work, Executable):
            result = conn.execute(work, item.params)
            # psycopg has no lastrowid (PostgreSQL answers RETURNING instead)
            lastrowid = result.lastrowid if self._sqlite and not isinstance(item.params, (list, tuple)) else None
            if result.returns_rows:  # RETURNING: read now, inside the transaction; the caller hears after COMMIT
                rows = list(result.all())
                return WriteResult(len(rows), lastrowid, rows)
            return WriteResult(result.rowcount, lastrowid)
        assert callable(work)  # a str was compiled to text() on submit
        return work(conn)

    def _names(self, stmt: TextClause) -> tuple[str, ...] | None:
        """The positional parameter names of a plain text() statement, compiled once per statement object;
        None when a parameter needs SQLAlchemy (a typed or expanding bindparam), so it takes the full path."""
        try:
            return self._compiled[stmt][1]
        except KeyError:
            pass
        compiled = stmt.compile(dialect=self._engine.dialect)
        dialect = self._engine.dialect
        plain = all(
            not b.expanding and b.type.dialect_impl(dialect).bind_processor(dialect) is None
            for b in compiled.binds.values()
        )
        plain = plain and not _RETURNING.search(compiled.string)  # rows to read: SQLAlchemy's path reads them
        names = tuple(compiled.positiontup or ()) if plain else None
        getter = None
        if names:
            pick = itemgetter(*names)
            getter = (lambda p, _pick=pick: (_pick(p),)) if len(names) == 1 else pick  # a tuple either way
        self._compiled[stmt] = (compiled.string, names, getter)
        return names

    def _run_text(self, stmt: TextClause, names: tuple[str, ...], params: Params) -> WriteResult:
        """A plain text() statement straight on the driver's cursor: what SQLAlchemy would send, without its
        per-statement bookkeeping, which is most of a one-row write's cost. Errors are wrapped as SQLAlchemy's."""
        sql, _, getter = self._compiled[stmt]
        many = isinstance(params, (list, tuple))
        try:
            if many:
                values: Any = [getter(p) for p in params]  # type: ignore[union-attr]
            else:
                values = getter(params) if names else ()
        except (KeyError, TypeError) as exc:
            raise sa_exc.ArgumentError(
                f"a value is required for bind parameter {exc}; the statement needs "
                f"{', '.join(map(repr, dict.fromkeys(names)))}"
            ) from None
        cursor = self._cursor
        assert cursor is not None  # text() statements take this path on SQLite only
        try:
            if many:
                cursor.executemany(sql, values)
            else:
                cursor.execute(sql, values)
        except _driver.Error as exc:
            raise translate(exc) or sa_exc.DBAPIError.instance(sql, values, exc, _driver.error_base(exc)) from exc
        return WriteResult(cursor.rowcount, None if many else cursor.lastrowid)

    def _savepoint(self, conn: Connection, sql: str) -> None:
        if self._sqlite:  # straight to the driver: these two statements run for every item of a batch
            conn.connection.dbapi_connection.execute(sql)  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql(sql)

    def _undo(self, conn: Connection) -> bool:
        """Roll back to the item's savepoint; False when the enclosing transaction is already gone."""
        try:
            self._savepoint(conn, "ROLLBACK TO turboalchemy_item")
            self._savepoint(conn, "RELEASE turboalchemy_item")
        except Exception:
            return False
        return True


class _Alone(Exception):
    """Internal: the only item of a batch failed; the transaction is rolled back and the item answered."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Guard(Exception):
    """Internal: an item failed in an unguarded batch; it is rolled back and run again with savepoints."""


class _Abandoned(Exception):
    """Internal: the batch's transaction was lost; its surviving items went back to the queue."""
