"""turbolite: ORM models for correctness, raw-SQL speed for bulk writes on SQLite (and PostgreSQL)."""

from __future__ import annotations

from .errors import ProfileError, TurboliteError
from .profiles import Profile

__version__ = "0.1.0"

__all__ = ["Profile", "ProfileError", "TurboliteError", "__version__"]
