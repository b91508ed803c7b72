"""The study's 11 SQLite configurations: a turboalchemy profile ("study:<name>") plus chunk and pool sizes.

The PRAGMA values are taken from the study's published code (where its article and code disagree the code
wins: `aggressive` ran with cache_size -256000, not the article's -64000). They are the benchmark's, not the
library's: `aggressive` runs synchronous=OFF, which `turboalchemy doctor` rightly flags red.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
import weakref
from dataclasses import dataclass, replace
from types import ModuleType

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from turboalchemy import PROFILES, Profile, ProfileError

_MMAP_256M = 268_435_456


def _study(name: str, sync: str, cache: int, mmap: int) -> Profile:
    # the study's engine set WAL, busy_timeout 10000 and temp_store MEMORY on every configuration
    return Profile(
        f"study:{name}",
        {
            "journal_mode": "WAL",
            "synchronous": sync,
            "busy_timeout": 10_000,
            "cache_size": cache,
            "mmap_size": mmap,
            "temp_store": "MEMORY",
        },
    )


_TUNED = ("NORMAL", -64_000, _MMAP_256M)
STUDY_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        _study("baseline", "NORMAL", -4_096, 0),
        _study("optimized", *_TUNED),
        _study("aggressive", "OFF", -256_000, _MMAP_256M),  # the study's code ran -256000; its article says -64000
        *(_study(f"chunk_{n}", *_TUNED) for n in (1_000, 5_000, 10_000, 25_000, 50_000)),
        *(_study(f"pool_{n}", *_TUNED) for n in (3, 5, 8)),
    ]
}
# Every profile a benchmark may name: the library's (production, durable) and the study's
ALL_PROFILES: dict[str, Profile] = {**PROFILES, **STUDY_PROFILES}


@dataclass(frozen=True)
class BenchConfig:
    """One cell's SQLite set-up: PRAGMA profile, chunk (= transaction) size and connection pool."""

    name: str
    chunk_size: int
    pool_size: int
    profile: Profile
    max_overflow: int = 5
    writers: int = 1  # writer threads, each with its own session; only the pool sweep uses more than one


def _config(name: str, chunk: int, pool: int = 5, writers: int = 1) -> BenchConfig:
    return BenchConfig(name, chunk, pool, STUDY_PROFILES[f"study:{name}"], writers=writers)


CONFIGS: dict[str, BenchConfig] = {
    c.name: c
    for c in [
        _config("baseline", 5_000),
        _config("optimized", 10_000),
        _config("aggressive", 25_000),
        *(_config(f"chunk_{n}", n) for n in (1_000, 5_000, 10_000, 25_000, 50_000)),
        # The study's pool sweep used one session, so the pool size changed nothing; here each
        # pool config really runs as many writer threads as connections, each with its own session.
        *(_config(f"pool_{n}", 10_000, pool=n, writers=n) for n in (3, 5, 8)),
    ]
}
GROUPS: dict[str, list[str]] = {
    "presets": ["baseline", "optimized", "aggressive"],
    "chunks": [n for n in CONFIGS if n.startswith("chunk_")],
    "pools": [n for n in CONFIGS if n.startswith("pool_")],
    "all": list(CONFIGS),
}


def config_named(name: str) -> BenchConfig:
    """A configuration by name: one of the study's 11, or one of them with PRAGMAs added or overridden after
    '+' (e.g. `chunk_5000+wal_autocheckpoint=16384`), so a variant runs beside the study's set-up, never instead.
    The PRAGMAs are checked against turboalchemy's allow-list."""
    base, *extra = name.split("+")
    if base not in CONFIGS:
        known = ", ".join(CONFIGS)
        raise ValueError(f"unknown configuration {base!r}; choose from {known}, optionally followed by +PRAGMA=value")
    config = CONFIGS[base]
    if not extra:
        return config
    profile = _extended(config.profile, f"{config.profile.name}+" + "+".join(extra), extra)
    return replace(config, name=name, profile=profile)


def profile_named(name: str) -> Profile:
    """A profile by name (the library's or the study's), optionally with PRAGMAs added after '+'
    (e.g. `production+page_size=16384`), checked against the library's allow-list."""
    base, *extra = name.split("+")
    if base not in ALL_PROFILES:
        raise ValueError(f"unknown profile {base!r}; choose from {', '.join(ALL_PROFILES)}, optionally +PRAGMA=value")
    return _extended(ALL_PROFILES[base], name, extra) if extra else ALL_PROFILES[base]


def _extended(profile: Profile, name: str, extra: list[str]) -> Profile:
    """`profile` with the PRAGMA=value items of `extra` added or overriding, named `name`."""
    pragmas: dict[str, int | str] = {}
    for item in extra:
        key, _, value = item.partition("=")
        if not re.fullmatch(r"[a-z_]+", key) or not value:
            raise ValueError(f"{name!r}: {item!r} is not PRAGMA=value (e.g. wal_autocheckpoint=16384)")
        pragmas[key] = int(value) if re.fullmatch(r"-?[0-9]+", value) else value
    try:
        return profile.extend(name, **pragmas)
    except ProfileError as exc:
        raise ValueError(f"{name!r}: {exc}") from None


def parse_configs(spec: str) -> list[BenchConfig]:
    """'all', 'presets', 'chunks', 'pools' or a comma list of names and groups, in the study's order."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in GROUPS:
            names.extend(GROUPS[part])
        elif part.split("+")[0] in CONFIGS:
            names.append(part)
        else:
            known = ", ".join([*GROUPS, *CONFIGS])
            raise ValueError(f"unknown configuration {part!r}; choose from {known}")
    if not names:
        raise ValueError("no configurations given")
    return [config_named(n) for n in dict.fromkeys(names)]


# The SQLite DB-API modules a run can measure side by side (--sqlite): the standard library's, linked against the
# SQLite the Python build chose, and pysqlite3 (the same API with a recent SQLite bundled).
SQLITE_MODULES = ("stdlib", "pysqlite3")


def sqlite_module(name: str) -> ModuleType:
    """The DB-API module named by --sqlite."""
    if name == "stdlib":
        return sqlite3
    if name == "pysqlite3":
        try:
            return importlib.import_module("pysqlite3.dbapi2")
        except ImportError:
            raise ValueError(
                "--sqlite pysqlite3 needs the pysqlite3 module: pip install 'turboalchemy[sqlite]'"
            ) from None
    raise ValueError(f"--sqlite is a comma list of {', '.join(SQLITE_MODULES)}, not {name!r}")


def open_engine(config: BenchConfig, db_path: str, sqlite: str = "stdlib") -> Engine:
    """An engine on `db_path` with the config's pool, every connection set up by its profile, through the SQLite
    module `sqlite` names; on a PostgreSQL URL, the same pool through psycopg 3 (PRAGMA profiles are SQLite's; the
    server's settings apply)."""
    if "://" in db_path:
        return create_engine(db_path, pool_size=config.pool_size, max_overflow=config.max_overflow)
    engine = create_engine(
        f"sqlite:///{db_path}",
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        connect_args={"check_same_thread": False},  # the pool configs hand connections to writer threads
        module=sqlite_module(sqlite),
    )
    config.profile.install(engine)
    PROFILE_OF[engine] = config.profile
    return engine


# The profile each benchmark engine applies, for paths that open a second engine on the same file (turbo_async)
PROFILE_OF: weakref.WeakKeyDictionary[Engine, Profile] = weakref.WeakKeyDictionary()
