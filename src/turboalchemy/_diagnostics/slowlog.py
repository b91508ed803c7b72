"""log_slow_queries: a structured log record for every statement slower than a threshold."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event

from turboalchemy._diagnostics._hooks import caller, engine_of, kind_of, parameter_count
from turboalchemy._targets import Target

LOGGER = logging.getLogger("turboalchemy.slow_queries")
_SQL_LIMIT = 1000


class SlowQueryLog:
    """A live slow-query hook; `remove()` (or leaving its `with` block) takes it off the engine."""

    def __init__(self, target: Target, threshold_ms: float, logger: logging.Logger) -> None:
        self.bind = engine_of(target, "log_slow_queries")
        self.threshold_s = threshold_ms / 1000
        self.logger = logger
        self._starts: dict[int, float] = {}
        event.listen(self.bind, "before_cursor_execute", self._before)
        event.listen(self.bind, "after_cursor_execute", self._after)
        self.active = True

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        self._starts[id(cursor)] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        began = self._starts.pop(id(cursor), None)
        if began is None:
            return
        elapsed = time.perf_counter() - began
        if elapsed < self.threshold_s:
            return
        sql = statement if len(statement) <= _SQL_LIMIT else statement[:_SQL_LIMIT] + "…"
        record = {
            "sql": sql,
            "duration_ms": round(elapsed * 1000, 3),
            "kind": kind_of(statement),
            "parameter_count": parameter_count(parameters, executemany),
            "executemany": executemany,
            "caller": caller(),
        }
        self.logger.warning(
            "slow query (%.1f ms): %s", record["duration_ms"], sql[:200], extra={"turboalchemy": record}
        )

    def remove(self) -> None:
        if self.active:
            event.remove(self.bind, "before_cursor_execute", self._before)
            event.remove(self.bind, "after_cursor_execute", self._after)
            self.active = False

    def __enter__(self) -> SlowQueryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def log_slow_queries(target: Target, threshold_ms: float = 500, logger: logging.Logger | None = None) -> SlowQueryLog:
    """Log every statement on `target` slower than `threshold_ms` until `.remove()` is called.

    Each record carries `record.turboalchemy`: sql (truncated at 1,000 characters), duration_ms, kind,
    parameter_count, executemany and caller (the first line of your code on the stack).
    """
    return SlowQueryLog(target, threshold_ms, logger or LOGGER)
