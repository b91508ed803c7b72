"""Named PRAGMA sets, applied to every new SQLite connection and verified by reading them back.

A PRAGMA cannot take bound parameters, so names come from a fixed allow-list and values must be
integers or one of that PRAGMA's keywords; nothing a caller passes is formatted into SQL unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .errors import ProfileError

# Keyword PRAGMAs: accepted spelling -> the value SQLite reports when read back.
_KEYWORDS: dict[str, dict[str, int | str]] = {
    "journal_mode": {m: m.lower() for m in ("DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF")},
    "synchronous": {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3},
    "temp_store": {"DEFAULT": 0, "FILE": 1, "MEMORY": 2},
    "auto_vacuum": {"NONE": 0, "FULL": 1, "INCREMENTAL": 2},
    "locking_mode": {"NORMAL": "normal", "EXCLUSIVE": "exclusive"},
}
_INTEGERS = frozenset(
    {"busy_timeout", "cache_size", "mmap_size", "wal_autocheckpoint", "page_size",
     "foreign_keys", "journal_size_limit", "trusted_schema", "cache_spill"}
)

PragmaValue = int | str


def _normalise(name: str, value: PragmaValue) -> tuple[str, int | str]:
    """Return (SQL literal, expected read-back) for one PRAGMA, or raise ProfileError."""
    if name in _KEYWORDS:
        if isinstance(value, str) and value.upper() in _KEYWORDS[name]:
            return value.upper(), _KEYWORDS[name][value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in _KEYWORDS[name].values():
            return str(value), value
        allowed = ", ".join(_KEYWORDS[name])
        raise ProfileError(f"PRAGMA {name} = {value!r} is not valid; use one of {allowed}")
    if name in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"PRAGMA {name} takes an integer, got {type(value).__name__} {value!r}")
        return str(value), value
    raise ProfileError(f"PRAGMA {name!r} is not one turbolite knows how to set and verify")


@dataclass(frozen=True)
class Profile:
    """A named, ordered set of PRAGMAs; `apply` sets them on a DBAPI connection, `verify` reads them back."""

    name: str
    pragmas: Mapping[str, PragmaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.pragmas.items():
            _normalise(key, value)  # refuse a bad profile when it is defined, not on first connect

    def expected(self) -> dict[str, int | str]:
        """The values SQLite should report for each PRAGMA once the profile is applied."""
        return {k: _normalise(k, v)[1] for k, v in self.pragmas.items()}

    def apply(self, dbapi_connection: Any) -> None:
        """Set every PRAGMA on a DBAPI (sqlite3) connection that has no open transaction."""
        cursor = dbapi_connection.cursor()
        try:
            for key, value in self.pragmas.items():
                literal, _ = _normalise(key, value)
                cursor.execute(f"PRAGMA {key} = {literal}")
                cursor.fetchall()  # journal_mode answers with a row; drain it so the statement finishes
        finally:
            cursor.close()

    def read_back(self, dbapi_connection: Any) -> dict[str, int | str]:
        """Each of this profile's PRAGMAs as the connection reports it now."""
        cursor = dbapi_connection.cursor()
        try:
            out: dict[str, int | str] = {}
            for key in self.pragmas:
                row = cursor.execute(f"PRAGMA {key}").fetchone()
                out[key] = row[0] if row else None
            return out
        finally:
            cursor.close()

    def verify(self, dbapi_connection: Any) -> dict[str, int | str]:
        """Read the PRAGMAs back; raise ProfileError naming every one that did not take effect."""
        actual = self.read_back(dbapi_connection)
        wrong = {k: (v, actual[k]) for k, v in self.expected().items() if actual[k] != v}
        if wrong:
            detail = "; ".join(f"{k}: wanted {w!r}, connection reports {a!r}" for k, (w, a) in wrong.items())
            raise ProfileError(f"profile {self.name!r} did not take effect: {detail}")
        return actual


def install(engine: Engine, profile: Profile) -> None:
    """Apply and verify `profile` on every new DBAPI connection `engine` opens."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        profile.apply(dbapi_connection)
        profile.verify(dbapi_connection)
