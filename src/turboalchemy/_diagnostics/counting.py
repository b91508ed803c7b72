"""count_queries: how many statements a block ran, by kind, and how long they took."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from turboalchemy._diagnostics._hooks import engine_of, kind_of
from turboalchemy._targets import Target


@dataclass
class QueryCount:
    """Statements seen in a block. An executemany counts once, with its row count in `rows`."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    rows: int = 0
    statements: list[str] = field(default_factory=list)
    keep_statements: bool = False

    def __int__(self) -> int:
        return self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_kind": dict(self.by_kind),
            "seconds": round(self.seconds, 6),
            "rows": self.rows,
        }


@contextmanager
def count_queries(target: Target, *, keep_statements: bool = False) -> Iterator[QueryCount]:
    """Count the statements run on `target` (Engine, Connection or Session) inside the block.

    `with turboalchemy.count_queries(session) as q: ...` then `q.total`, `q.by_kind["select"]`, `q.seconds`.
    Statements on every connection of an Engine are counted, from any thread.
    """
    bind = engine_of(target, "count_queries")
    counted = QueryCount(keep_statements=keep_statements)
    starts: dict[int, float] = {}  # by cursor, so statements on several threads do not mix

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        starts[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        began = starts.pop(id(cursor), None)
        elapsed = time.perf_counter() - began if began is not None else 0.0
        counted.total += 1
        counted.by_kind[kind_of(statement)] += 1
        counted.seconds += elapsed
        counted.rows += len(parameters) if executemany and parameters is not None else 1
        if keep_statements:
            counted.statements.append(statement)

    event.listen(bind, "before_cursor_execute", before)
    event.listen(bind, "after_cursor_execute", after)
    try:
        yield counted
    finally:
        event.remove(bind, "before_cursor_execute", before)
        event.remove(bind, "after_cursor_execute", after)
