"""turbolite's exceptions: one base class, small subclasses, the driver's error kept as __cause__."""

from __future__ import annotations


class TurboliteError(Exception):
    """Base class of every error turbolite raises."""


class ProfileError(TurboliteError):
    """A PRAGMA profile is malformed, or a connection did not take its settings."""


class SchemaMismatchError(TurboliteError):
    """The rows do not fit the table (unknown keys, missing NOT NULL columns, no such conflict target).

    Raised before any SQL runs, so nothing was written."""


class UnsupportedTargetError(TurboliteError):
    """The target is not an Engine, Connection or Session of a database this version supports."""


class BulkWriteError(TurboliteError):
    """A row of a bulk write was refused. Its chunk was rolled back whole.

    `row` is the row's 0-based position in the input stream, `column` the column at fault when it
    can be told, `committed` the rows committed before the failing chunk (Engine targets only;
    inside a caller's transaction nothing is committed by turbolite).
    """

    def __init__(self, message: str, *, table: str, row: int | None, column: str | None,
                 value_type: str | None, committed: int | None) -> None:
        super().__init__(message)
        self.table = table
        self.row = row
        self.column = column
        self.value_type = value_type
        self.committed = committed


class QueryBudgetError(TurboliteError, AssertionError):
    """More statements ran than a block allowed (assert_max_queries)."""


class NPlusOneError(TurboliteError):
    """The same SELECT shape ran more times in a block than the guard allows: an N+1 query pattern."""


class NPlusOneWarning(UserWarning):
    """no_n_plus_one(..., action="warn") reports through this warning instead of raising."""
