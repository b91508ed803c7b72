"""turbolite: ORM models for correctness, raw-SQL speed for bulk writes on SQLite (and PostgreSQL)."""

from __future__ import annotations

from .advise import Advice, advise
from .abulk import abulk_insert, abulk_upsert
from .backup import BackupReport, backup
from .bulk import bulk_insert, bulk_upsert
from .copy import CopyError, CopyReport, copy_database
from .diagnostics import count_queries, explain, log_slow_queries, no_n_plus_one, pool_status, raiseload_all
from .engine import create_engine, reader
from .errors import (BackupError, BulkWriteError, CorruptDatabaseError, DatabaseLockedError, DiskFullError,
                     MigrationError, NPlusOneError, NPlusOneWarning, ProfileError, QueryBudgetError,
                     QueueClosedError, QueueFullError, ReadOnlyDatabaseError, SchemaMismatchError, TurboliteError,
                     UnsupportedTargetError)
from .health import HealthReport, health
from .keys import uuid7, uuid7_bytes, uuid7_primary_key
from .migrate import MigrationReport, migrate
from .reads import KeysetError, Page, akeyset_page, astream, keyset_page, stream
from .profiles import PROFILES, Profile
from .repository import Repository
from .writequeue import QueueStats, WriteQueue, WriteResult

__version__ = "0.1.0"

__all__ = [
    "abulk_insert", "abulk_upsert", "KeysetError", "Page", "akeyset_page", "astream", "keyset_page", "stream",
    "Advice", "BackupError", "BackupReport", "CopyError", "CopyReport", "copy_database", "HealthReport", "MigrationReport", "backup", "health", "migrate", "BulkWriteError", "CorruptDatabaseError", "DatabaseLockedError", "DiskFullError",
    "MigrationError", "NPlusOneError", "NPlusOneWarning", "PROFILES", "Profile", "ProfileError", "QueryBudgetError",
    "QueueClosedError", "QueueFullError", "QueueStats", "ReadOnlyDatabaseError", "Repository", "SchemaMismatchError",
    "TurboliteError", "UnsupportedTargetError", "WriteQueue", "WriteResult", "__version__", "advise", "bulk_insert",
    "bulk_upsert", "count_queries", "create_engine", "explain", "log_slow_queries", "no_n_plus_one", "pool_status",
    "raiseload_all", "reader", "uuid7", "uuid7_bytes", "uuid7_primary_key",
]
