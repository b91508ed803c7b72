"""turboalchemy: ORM models for correctness, raw-SQL speed for bulk writes on SQLite (and PostgreSQL)."""

from __future__ import annotations

from turboalchemy._diagnostics import (
    count_queries,
    explain,
    log_slow_queries,
    no_n_plus_one,
    pool_status,
    raiseload_all,
)
from turboalchemy._engine import create_engine, reader
from turboalchemy._keys import uuid7, uuid7_bytes, uuid7_primary_key
from turboalchemy._profiles import PROFILES, Profile
from turboalchemy._reads import KeysetError, Page, akeyset_page, astream, keyset_page, stream
from turboalchemy._repository import Repository
from turboalchemy._tools.advise import Advice, advise
from turboalchemy._tools.backup import BackupReport, backup
from turboalchemy._tools.copy import CopyError, CopyReport, copy_database
from turboalchemy._tools.health import HealthReport, health
from turboalchemy._tools.migrate import MigrationReport, migrate
from turboalchemy._write.aio import abulk_insert, abulk_upsert
from turboalchemy._write.bulk import bulk_insert, bulk_upsert
from turboalchemy._writequeue import QueueStats, WriteQueue, WriteResult
from turboalchemy.errors import (
    BackupError,
    BulkWriteError,
    CorruptDatabaseError,
    DatabaseLockedError,
    DiskFullError,
    MigrationError,
    NPlusOneError,
    NPlusOneWarning,
    ProfileError,
    QueryBudgetError,
    QueueClosedError,
    QueueFullError,
    ReadOnlyDatabaseError,
    SchemaMismatchError,
    TurboAlchemyError,
    UnsupportedTargetError,
)

__version__ = "0.1.0"

__all__ = [
    "abulk_insert",
    "abulk_upsert",
    "KeysetError",
    "Page",
    "akeyset_page",
    "astream",
    "keyset_page",
    "stream",
    "Advice",
    "BackupError",
    "BackupReport",
    "CopyError",
    "CopyReport",
    "copy_database",
    "HealthReport",
    "MigrationReport",
    "backup",
    "health",
    "migrate",
    "BulkWriteError",
    "CorruptDatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "MigrationError",
    "NPlusOneError",
    "NPlusOneWarning",
    "PROFILES",
    "Profile",
    "ProfileError",
    "QueryBudgetError",
    "QueueClosedError",
    "QueueFullError",
    "QueueStats",
    "ReadOnlyDatabaseError",
    "Repository",
    "SchemaMismatchError",
    "TurboAlchemyError",
    "UnsupportedTargetError",
    "WriteQueue",
    "WriteResult",
    "__version__",
    "advise",
    "bulk_insert",
    "bulk_upsert",
    "count_queries",
    "create_engine",
    "explain",
    "log_slow_queries",
    "no_n_plus_one",
    "pool_status",
    "raiseload_all",
    "reader",
    "uuid7",
    "uuid7_bytes",
    "uuid7_primary_key",
]
