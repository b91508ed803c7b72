"""turbolite: ORM models for correctness, raw-SQL speed for bulk writes on SQLite (and PostgreSQL)."""

from __future__ import annotations

from .bulk import bulk_insert, bulk_upsert
from .errors import (BulkWriteError, ProfileError, SchemaMismatchError, TurboliteError,
                     UnsupportedTargetError)
from .profiles import Profile
from .repository import Repository

__version__ = "0.1.0"

__all__ = [
    "BulkWriteError", "Profile", "ProfileError", "Repository", "SchemaMismatchError", "TurboliteError",
    "UnsupportedTargetError", "bulk_insert", "bulk_upsert", "__version__",
]
