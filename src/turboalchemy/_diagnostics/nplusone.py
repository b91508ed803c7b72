"""no_n_plus_one: catch the same SELECT running once per parent row, and raiseload_all for tests."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import raiseload
from sqlalchemy.sql.base import Executable

from turboalchemy._diagnostics._hooks import caller, engine_of, kind_of, shape_of
from turboalchemy._targets import Target
from turboalchemy.errors import NPlusOneError, NPlusOneWarning


@dataclass
class NPlusOneReport:
    """Each SELECT shape seen in the block, how often it ran, and where it was first repeated."""

    threshold: int
    counts: Counter[str] = field(default_factory=Counter)
    callers: dict[str, str] = field(default_factory=dict)

    @property
    def offenders(self) -> list[tuple[str, int, str]]:
        return [
            (shape, n, self.callers.get(shape, "<unknown>"))
            for shape, n in self.counts.most_common()
            if n > self.threshold
        ]

    def message(self) -> str:
        lines = []
        for shape, n, where in self.offenders:
            lines.append(
                f"the same SELECT ran {n} times (threshold {self.threshold}), first repeated at {where}:\n"
                f"    {shape[:300]}"
            )
        return (
            "N+1 query pattern: " + "\n".join(lines) + "\nLoad the relationship up front with "
            "options(selectinload(Parent.children)) (or joinedload for a many-to-one), or raise the threshold "
            "if the repetition is intended."
        )


@contextmanager
def no_n_plus_one(
    target: Target, *, threshold: int = 5, action: Literal["raise", "warn"] = "raise"
) -> Iterator[NPlusOneReport]:
    """Fail (or warn) at the end of the block if any SELECT shape ran more than `threshold` times.

    Shapes ignore parameter values, so `SELECT ... WHERE posts.user_id = ?` for 50 users is one shape
    run 50 times. The error names the statement and the line of your code that repeated it.
    """
    if action not in ("raise", "warn"):
        raise ValueError("action must be 'raise' or 'warn'")
    bind = engine_of(target, "no_n_plus_one")
    report = NPlusOneReport(threshold)

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if executemany or kind_of(statement) != "select":
            return
        shape = shape_of(statement)
        report.counts[shape] += 1
        if report.counts[shape] == 2:
            report.callers[shape] = caller()  # the loop's line: where the shape first repeated

    event.listen(bind, "before_cursor_execute", seen)
    try:
        yield report
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    if report.offenders:
        if action == "raise":
            raise NPlusOneError(report.message())
        warnings.warn(report.message(), NPlusOneWarning, stacklevel=3)


S = TypeVar("S", bound=Executable)


def raiseload_all(statement: S) -> S:
    """The statement with raiseload('*'): any relationship not loaded up front raises instead of querying.
    For tests that pin a query's loading strategy."""
    return statement.options(raiseload("*"))
