"""Named PRAGMA sets, applied to every new SQLite connection and verified by reading them back.

A PRAGMA cannot take bound parameters, so names come from a fixed allow-list and values must be
integers or one of that PRAGMA's keywords; nothing a caller passes is formatted into SQL unchecked.
`page_size` and `auto_vacuum` only take effect on a database that has no pages yet, so a profile
applies them (first, before journal_mode) only there, and verifies them only where they were applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from turboalchemy.errors import ProfileError

# Keyword PRAGMAs: accepted spelling -> the value SQLite reports when read back.
_KEYWORDS: dict[str, dict[str, int | str]] = {
    "journal_mode": {m: m.lower() for m in ("DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF")},
    "synchronous": {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3},
    "temp_store": {"DEFAULT": 0, "FILE": 1, "MEMORY": 2},
    "auto_vacuum": {"NONE": 0, "FULL": 1, "INCREMENTAL": 2},
    "locking_mode": {"NORMAL": "normal", "EXCLUSIVE": "exclusive"},
}
_INTEGERS = frozenset(
    {
        "busy_timeout",
        "cache_size",
        "mmap_size",
        "wal_autocheckpoint",
        "page_size",
        "foreign_keys",
        "journal_size_limit",
        "trusted_schema",
        "cache_spill",
        "query_only",
    }
)
# Settings that only a database without pages takes; applied before anything else, and only there.
_NEW_DATABASE_ONLY = ("page_size", "auto_vacuum")

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
    raise ProfileError(f"PRAGMA {name!r} is not one turboalchemy knows how to set and verify")


@dataclass(frozen=True)
class Profile:
    """A named, ordered set of PRAGMAs; `apply` sets them on a DBAPI connection, `verify` reads them back."""

    name: str
    pragmas: Mapping[str, PragmaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.pragmas.items():
            _normalise(key, value)  # refuse a bad profile when it is defined, not on first connect

    def expected(self, *, new_database: bool = True) -> dict[str, int | str]:
        """The values SQLite should report for each PRAGMA once the profile is applied."""
        return {k: _normalise(k, v)[1] for k, v in self._ordered(new_database)}

    def extend(self, name: str, **pragmas: PragmaValue) -> Profile:
        """A new profile: this one's PRAGMAs with `pragmas` added or overriding."""
        return Profile(name, {**self.pragmas, **pragmas})

    def _ordered(self, new_database: bool) -> list[tuple[str, PragmaValue]]:
        first = [(k, self.pragmas[k]) for k in _NEW_DATABASE_ONLY if k in self.pragmas and new_database]
        return first + [(k, v) for k, v in self.pragmas.items() if k not in _NEW_DATABASE_ONLY]

    def apply(self, dbapi_connection: Any) -> bool:
        """Set every PRAGMA on a DBAPI (sqlite3) connection that has no open transaction.

        Returns whether the database was new (so page_size and auto_vacuum were applied too)."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA page_count")  # DBAPI style throughout: async adapters return no cursor here
            new = cursor.fetchone()[0] == 0
            for key, value in self._ordered(new):
                literal, _ = _normalise(key, value)
                cursor.execute(f"PRAGMA {key} = {literal}")
                cursor.fetchall()  # journal_mode answers with a row; drain it so the statement finishes
            return bool(new)
        finally:
            cursor.close()

    def install(self, engine: Engine) -> None:
        """Apply and verify this profile on every new DBAPI connection `engine` opens (for an engine made by
        sqlalchemy.create_engine; turboalchemy.create_engine installs its profile itself).

        Raises ProfileError on the first connection whose settings do not take effect."""

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            new = self.apply(dbapi_connection)
            self.verify(dbapi_connection, new_database=new)

    def read_back(self, dbapi_connection: Any) -> dict[str, int | str | None]:
        """Each of this profile's PRAGMAs as the connection reports it now."""
        cursor = dbapi_connection.cursor()
        try:
            out: dict[str, int | str | None] = {}
            for key in self.pragmas:
                cursor.execute(f"PRAGMA {key}")
                row = cursor.fetchone()
                out[key] = row[0] if row else None
            return out
        finally:
            cursor.close()

    def verify(self, dbapi_connection: Any, *, new_database: bool = True) -> dict[str, int | str | None]:
        """Read the PRAGMAs back; raise ProfileError naming every one that did not take effect.

        An in-memory database has no WAL and no file to map, so journal_mode and mmap_size are not held against it."""
        actual = self.read_back(dbapi_connection)
        in_memory = _in_memory(dbapi_connection)
        wrong = {
            k: (v, actual[k])
            for k, v in self.expected(new_database=new_database).items()
            if actual[k] != v and not (k in ("journal_mode", "mmap_size") and in_memory)
        }
        if wrong:
            detail = "; ".join(f"{k}: wanted {w!r}, connection reports {a!r}" for k, (w, a) in wrong.items())
            raise ProfileError(f"profile {self.name!r} did not take effect: {detail}")
        return actual


def _in_memory(dbapi_connection: Any) -> bool:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA database_list")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return not row or not row[2]


_MMAP_256M = 268_435_456
PRODUCTION = Profile(
    "production",
    {
        "page_size": 4096,  # measured against 8K and 16K: docs/results/page-size
        "auto_vacuum": "INCREMENTAL",  # new databases only
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "busy_timeout": 5000,
        "cache_size": -64_000,
        "mmap_size": _MMAP_256M,
        "temp_store": "MEMORY",
        "foreign_keys": 1,
        "wal_autocheckpoint": 1000,
    },
)
DURABLE = PRODUCTION.extend("durable", synchronous="FULL")


PROFILES: dict[str, Profile] = {p.name: p for p in (PRODUCTION, DURABLE)}

ProfileSpec = str | Profile | Mapping[str, PragmaValue] | Iterable["str | Profile | Mapping[str, PragmaValue]"]


def resolve(spec: ProfileSpec) -> Profile:
    """A Profile from a name ("production" or "durable"), a Profile, a mapping of
    PRAGMAs, or a list of those composed left to right (later ones override)."""
    if isinstance(spec, Profile):
        return spec
    if isinstance(spec, str):
        if spec not in PROFILES:
            raise ProfileError(f"no profile named {spec!r}; choose from {', '.join(PROFILES)}, or pass a Profile")
        return PROFILES[spec]
    if isinstance(spec, Mapping):
        return Profile("custom", dict(spec))
    parts = [resolve(part) for part in spec]
    if not parts:
        raise ProfileError("an empty list of profiles")
    merged: dict[str, PragmaValue] = {}
    for part in parts:
        merged.update(part.pragmas)
    return Profile("+".join(p.name for p in parts), merged)
