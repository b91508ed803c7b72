"""Every exception turboalchemy raises: one base class, small subclasses, the driver's error kept as __cause__.

Each refines the standard class an existing handler already catches, the way psycopg's `DiskFull` *is* an
`OperationalError`:

- the driver-level errors (a held lock, a full disk, a read-only or corrupt file) are also the SQLAlchemy
  class SQLAlchemy itself would have raised (`sqlalchemy.exc.OperationalError`, `DatabaseError`), so an
  application's `except sqlalchemy.exc.OperationalError` retry handler keeps working through
  `turboalchemy.create_engine`;
- bad arguments are also `ValueError` (`SchemaMismatchError`, `ProfileError`, `KeysetError`) or `TypeError`
  (`UnsupportedTargetError`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = [
    "BackupError",
    "BulkWriteError",
    "CommitLatencyError",
    "ConnectionLostError",
    "CopyError",
    "CorruptDatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "KeysetError",
    "MigrationError",
    "NPlusOneError",
    "NPlusOneWarning",
    "ProfileError",
    "QueryBudgetError",
    "QueueClosedError",
    "QueueFullError",
    "QueueReentryError",
    "ReadOnlyDatabaseError",
    "SQLiteLibraryConflictError",
    "SchemaMismatchError",
    "TurboAlchemyError",
    "UnsupportedTargetError",
    "WriterBusyError",
]


class TurboAlchemyError(Exception):
    """Base class of every error turboalchemy raises."""


class ProfileError(TurboAlchemyError, ValueError):
    """A PRAGMA profile is malformed, or a connection did not take its settings."""


class SchemaMismatchError(TurboAlchemyError, ValueError):
    """The rows do not fit the table (unknown keys, missing NOT NULL columns, no such conflict target).

    Raised before any SQL runs, so nothing was written."""


class UnsupportedTargetError(TurboAlchemyError, TypeError):
    """The target is not an Engine, Connection or Session of a database this version supports."""


class SQLiteLibraryConflictError(TurboAlchemyError, sa_exc.InvalidRequestError):
    """A database file is already open in this process through another SQLite library (the standard library's
    sqlite3 and pysqlite3 each carry their own): two copies of SQLite on one file in one process release each
    other's POSIX locks and can corrupt it (sqlite.org/howtocorrupt.html, section 2.2.1). Refused before the
    second library's connection is used."""


class KeysetError(TurboAlchemyError, ValueError):
    """A select cannot be paged by keyset: its ORDER BY is missing, not unique, mixed in direction, or unselected."""


class BulkWriteError(TurboAlchemyError):
    """A row of a bulk write was refused. Its chunk was rolled back whole.

    `row` is the row's 0-based position in the input stream, `column` the column at fault when it
    can be told, `committed` the rows committed before the failing chunk (Engine targets only;
    inside a caller's transaction nothing is committed by turboalchemy).
    """

    def __init__(
        self,
        message: str,
        *,
        table: str,
        row: int | None,
        column: str | None,
        value_type: str | None,
        committed: int | None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.row = row
        self.column = column
        self.value_type = value_type
        self.committed = committed


class QueryBudgetError(TurboAlchemyError, AssertionError):
    """More statements ran than a block allowed (assert_max_queries)."""


class NPlusOneError(TurboAlchemyError):
    """The same SELECT shape ran more times in a block than the guard allows: an N+1 query pattern."""


class NPlusOneWarning(UserWarning):
    """no_n_plus_one(..., action="warn") reports through this warning instead of raising."""


class _DriverError(TurboAlchemyError, sa_exc.DBAPIError):
    """A driver error with a name of its own; `orig` (and `__cause__`) is the driver's exception.

    `committed` is set by the bulk paths: the rows committed before the failure (None where nothing was
    committed by turboalchemy, e.g. inside the caller's transaction)."""

    def __init__(
        self,
        message: str,
        orig: BaseException | None = None,
        *,
        statement: str | None = None,
        params: Any = None,
        hide_parameters: bool = False,
        connection_invalidated: bool = False,
        ismulti: bool | None = None,
        committed: int | None = None,
    ) -> None:
        sa_exc.StatementError.__init__(
            self, message, statement, params, orig, hide_parameters=hide_parameters, ismulti=ismulti
        )
        self.connection_invalidated = connection_invalidated
        self.committed = committed

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in vars(self).items() if k not in ("orig",)}
        return self.__class__, (self.args[0], self.orig), state

    def _code_str(self) -> str:
        return ""  # the message says what to do; no link to SQLAlchemy's page for the generic class


class DatabaseLockedError(_DriverError, sa_exc.OperationalError):
    """Another connection held the write lock for longer than busy_timeout (SQLITE_BUSY / SQLITE_LOCKED)."""


class ConnectionLostError(_DriverError, sa_exc.OperationalError):
    """The connection to the PostgreSQL server was lost (terminated, shut down, the network gone): the chunk in
    flight was not committed; `committed` says how many rows were before it. Retry with a new connection."""


class DiskFullError(_DriverError, sa_exc.OperationalError):
    """The disk or quota is full (SQLITE_FULL): the write was rolled back and nothing was stored."""


class ReadOnlyDatabaseError(_DriverError, sa_exc.OperationalError):
    """A write was attempted on a read-only connection, file or filesystem (SQLITE_READONLY)."""


class CorruptDatabaseError(_DriverError, sa_exc.DatabaseError):
    """The file is not a database or is damaged (SQLITE_CORRUPT / SQLITE_NOTADB)."""


class WriterBusyError(TurboAlchemyError, sa_exc.TimeoutError):
    """The engine's one write connection could not be had: this thread already holds it (a second Session or
    Connection here would wait for itself), or another thread held it past writer_timeout."""


class CommitLatencyError(TurboAlchemyError):
    """A WriteQueue with refuse_above_ms refused a write: its recent commits are slower than that."""


class QueueClosedError(TurboAlchemyError):
    """Work was submitted to a WriteQueue after close() was called."""


class QueueReentryError(TurboAlchemyError, RuntimeError):
    """A function running inside a WriteQueue's transaction wrote through the same queue (it would wait for
    itself); it should write through the Connection it is given."""


class QueueFullError(TurboAlchemyError):
    """A WriteQueue already held max_pending items and none drained within the caller's timeout."""


class MigrationError(TurboAlchemyError):
    """A migration could not be applied (its transaction was rolled back), or the database is newer than the code."""


class BackupError(TurboAlchemyError):
    """A backup could not be completed, or its copy failed the integrity check (the copy was removed)."""


class CopyError(TurboAlchemyError):
    """A table could not be copied, or its copy does not hold the source's row count."""


# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xff) -> (error class, what to do).
_BY_CODE: dict[int, tuple[type[_DriverError], str]] = {
    5: (
        DatabaseLockedError,
        "another connection held the write lock past busy_timeout; send writes through one "
        "turboalchemy.WriteQueue, keep write transactions short, or raise busy_timeout",
    ),
    6: (
        DatabaseLockedError,
        "a table is locked by another statement on the same connection; finish or close open cursors before writing",
    ),
    8: (
        ReadOnlyDatabaseError,
        "check the file's and its directory's permissions (SQLite needs to create the "
        "-wal and -shm files next to it), or open a read-write connection",
    ),
    11: (CorruptDatabaseError, "restore from a backup; `turboalchemy doctor` runs quick_check"),
    13: (DiskFullError, "free disk space (the WAL and temporary files need room too), then retry"),
    26: (CorruptDatabaseError, "the file is not an SQLite database, or is encrypted"),
}


def connection_lost(exc: BaseException) -> bool:
    """Whether a psycopg error means the connection to the server is gone (SQLSTATE class 08, an administrator's
    or a crash shutdown, or psycopg's own "the connection is lost")."""
    if not type(exc).__module__.startswith("psycopg"):
        return False
    pgconn = getattr(exc, "pgconn", None)
    if pgconn is not None and getattr(pgconn, "status", 0) != 0:  # libpq's CONNECTION_OK is 0: the socket is gone
        return True
    state = getattr(exc, "sqlstate", None)
    if state is not None:  # the FATAL ones that end the session: admin/crash shutdown, idle timeouts
        return bool(state.startswith("08") or state in ("57P01", "57P02", "57P03", "57P04", "57P05", "25P03", "25P04"))
    text = str(exc)
    return type(exc).__name__ == "OperationalError" and ("connection is lost" in text or "connection is closed" in text)


def translate(exc: BaseException, context: Any = None) -> _DriverError | None:
    """The turboalchemy error for a driver error (sqlite3, pysqlite3; psycopg's lost connection), with its cause
    set; None when it has no better name.

    `context`: SQLAlchemy's ExceptionContext when there is one (the handle_error event), for the statement, its
    parameters and whether the engine hides them, as SQLAlchemy's own error would carry them."""
    if connection_lost(exc):
        lost = ConnectionLostError(
            f"{exc}: the connection to the server was lost and what was in flight was not committed; "
            "retry on a new connection",
            exc,
            connection_invalidated=True,
        )
        lost.__cause__ = exc
        return lost
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        text = str(exc).lower()
        code = 5 if "database is locked" in text else 13 if "database or disk is full" in text else None
    if code is None or (code & 0xFF) not in _BY_CODE:
        return None
    cls, advice = _BY_CODE[code & 0xFF]
    if context is None:
        error = cls(f"{exc}: {advice}", exc)
    else:
        execution = context.execution_context
        error = cls(
            f"{exc}: {advice}",
            exc,
            statement=context.statement,
            params=context.parameters,
            hide_parameters=context.engine is not None and context.engine.hide_parameters,
            connection_invalidated=bool(context.is_disconnect),
            ismulti=execution.executemany if execution is not None else None,
        )
    error.__cause__ = exc
    return error
