"""turbolite: ORM models for correctness, raw-SQL speed for bulk writes on SQLite (and PostgreSQL)."""

from __future__ import annotations

from .advise import Advice, advise
from .bulk import bulk_insert, bulk_upsert
from .diagnostics import count_queries, explain, log_slow_queries, no_n_plus_one, pool_status, raiseload_all
from .errors import (BulkWriteError, NPlusOneError, NPlusOneWarning, ProfileError, QueryBudgetError,
                     SchemaMismatchError, TurboliteError, UnsupportedTargetError)
from .keys import uuid7, uuid7_bytes, uuid7_primary_key
from .profiles import Profile
from .repository import Repository

__version__ = "0.1.0"

__all__ = [
    "Advice", "BulkWriteError", "NPlusOneError", "NPlusOneWarning", "Profile", "ProfileError", "QueryBudgetError", "Repository",
    "SchemaMismatchError", "TurboliteError", "UnsupportedTargetError", "__version__", "bulk_insert", "bulk_upsert",
    "advise", "count_queries", "explain", "log_slow_queries", "no_n_plus_one", "pool_status", "raiseload_all", "uuid7",
    "uuid7_bytes", "uuid7_primary_key",
]
