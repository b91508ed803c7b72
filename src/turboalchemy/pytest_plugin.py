"""pytest fixtures shipped with turboalchemy (registered through the `pytest11` entry point).

def test_profile_page(assert_max_queries, session):
    with assert_max_queries(session, 3):
        render_profile(session, user_id=1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from turboalchemy._diagnostics import QueryCount, count_queries
from turboalchemy.errors import QueryBudgetError


@contextmanager
def _at_most(target: Any, limit: int) -> Iterator[QueryCount]:
    with count_queries(target, keep_statements=True) as counted:
        yield counted
    if counted.total > limit:
        listing = "\n".join(f"  {i + 1}. {s.strip()[:200]}" for i, s in enumerate(counted.statements))
        raise QueryBudgetError(f"{counted.total} statements ran, at most {limit} allowed:\n{listing}")


@pytest.fixture
def assert_max_queries() -> Callable[[Any, int], Any]:
    """`with assert_max_queries(engine_or_session, n): ...` fails the test if more than n statements run."""
    return _at_most
