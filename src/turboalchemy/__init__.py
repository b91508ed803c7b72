"""turboalchemy: keep your SQLAlchemy models, get raw-SQL speed for bulk writes on SQLite and PostgreSQL.

The public API is what this module exports (`__all__`); every other module is private. Exceptions live in
`turboalchemy.errors` and are exported here too.
"""

from __future__ import annotations

from turboalchemy import _driver
from turboalchemy._diagnostics import (
    Finding,
    NPlusOneReport,
    QueryCount,
    QueryPlan,
    SlowQueryLog,
    count_queries,
    explain,
    log_slow_queries,
    no_n_plus_one,
    pool_status,
    raiseload_all,
)
from turboalchemy._engine import create_engine, reader
from turboalchemy._keys import uuid7, uuid7_bytes, uuid7_primary_key
from turboalchemy._profiles import PROFILES, PragmaValue, Profile, ProfileSpec
from turboalchemy._reads import Page, akeyset_page, astream, keyset_page, stream
from turboalchemy._repository import Repository
from turboalchemy._schema import Model
from turboalchemy._strict import strict_tables
from turboalchemy._targets import AsyncTarget, FileTarget, Target
from turboalchemy._tools.advise import Advice, advise
from turboalchemy._tools.backup import BackupReport, backup
from turboalchemy._tools.copy import CopyReport, TableCopy, copy_database
from turboalchemy._tools.health import Check, Flag, HealthReport, TableFacts, health
from turboalchemy._tools.migrate import Migration, MigrationReport, migrate
from turboalchemy._write.aio import abulk_insert, abulk_upsert
from turboalchemy._write.bulk import bulk_insert, bulk_upsert
from turboalchemy._writequeue import QueueStats, WriteQueue, WriteResult
from turboalchemy.errors import (
    BackupError,
    BulkWriteError,
    CommitLatencyError,
    ConnectionLostError,
    CopyError,
    CorruptDatabaseError,
    DatabaseLockedError,
    DiskFullError,
    KeysetError,
    MigrationError,
    NPlusOneError,
    NPlusOneWarning,
    ProfileError,
    QueryBudgetError,
    QueueClosedError,
    QueueFullError,
    QueueReentryError,
    ReadOnlyDatabaseError,
    SchemaMismatchError,
    SQLiteLibraryConflictError,
    TurboAlchemyError,
    UnsupportedTargetError,
    WriterBusyError,
)

__version__ = "0.1.0"

# One SQLite library per database file in this process: record the SQLite connections every SQLAlchemy pool opens,
# so that a connection through the other module (stdlib sqlite3 or pysqlite3) to an open file is refused.
_driver.watch_pools()

__all__ = [
    "Advice",
    "AsyncTarget",
    "BackupError",
    "BackupReport",
    "BulkWriteError",
    "Check",
    "CommitLatencyError",
    "ConnectionLostError",
    "CopyError",
    "CopyReport",
    "CorruptDatabaseError",
    "DatabaseLockedError",
    "DiskFullError",
    "FileTarget",
    "Finding",
    "Flag",
    "HealthReport",
    "KeysetError",
    "Migration",
    "MigrationError",
    "MigrationReport",
    "Model",
    "NPlusOneError",
    "NPlusOneReport",
    "NPlusOneWarning",
    "PROFILES",
    "Page",
    "PragmaValue",
    "Profile",
    "ProfileError",
    "ProfileSpec",
    "QueryBudgetError",
    "QueryCount",
    "QueryPlan",
    "QueueClosedError",
    "QueueFullError",
    "QueueReentryError",
    "QueueStats",
    "ReadOnlyDatabaseError",
    "Repository",
    "SQLiteLibraryConflictError",
    "SchemaMismatchError",
    "SlowQueryLog",
    "TableCopy",
    "TableFacts",
    "Target",
    "TurboAlchemyError",
    "UnsupportedTargetError",
    "WriteQueue",
    "WriteResult",
    "WriterBusyError",
    "__version__",
    "abulk_insert",
    "abulk_upsert",
    "advise",
    "akeyset_page",
    "astream",
    "backup",
    "bulk_insert",
    "bulk_upsert",
    "copy_database",
    "count_queries",
    "create_engine",
    "explain",
    "health",
    "keyset_page",
    "log_slow_queries",
    "migrate",
    "no_n_plus_one",
    "pool_status",
    "raiseload_all",
    "reader",
    "stream",
    "strict_tables",
    "uuid7",
    "uuid7_bytes",
    "uuid7_primary_key",
]
