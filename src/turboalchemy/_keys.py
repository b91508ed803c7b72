"""Time-ordered primary keys: RFC 9562 UUIDv7 from uuid-utils, as 36-character text or 16 bytes.

A random UUIDv4 key sends every insert to a random page of the key's B-tree; UUIDv7 values grow with
time, so new rows land at the right edge of the tree, as with an integer key.
"""

from __future__ import annotations

from typing import Any

import uuid_utils
from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import MappedColumn, mapped_column


def uuid7() -> str:
    """A new UUIDv7 in its canonical 36-character text form; later calls sort after earlier ones."""
    return str(uuid_utils.uuid7())


def uuid7_bytes() -> bytes:
    """A new UUIDv7 as 16 bytes (for BLOB keys: less than half the space of the text form)."""
    return uuid_utils.uuid7().bytes


def uuid7_primary_key(*, as_bytes: bool = False, **kwargs: Any) -> MappedColumn[Any]:
    """A primary-key column filled with uuid7() (TEXT(36)) or uuid7_bytes() (BLOB(16)) when not given.

    id: Mapped[str] = turboalchemy.uuid7_primary_key()
    """
    column_type = LargeBinary(16) if as_bytes else String(36)
    return mapped_column(column_type, primary_key=True, default=uuid7_bytes if as_bytes else uuid7, **kwargs)
