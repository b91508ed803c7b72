"""The study's 11 SQLite configurations: a turbolite profile ("study:<name>") plus chunk and pool sizes.

The PRAGMA values live in turbolite.profiles, taken from the study's published code (where its article
and code disagree the code wins: `aggressive` ran with cache_size -256000, not the article's -64000).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from turbolite.profiles import PROFILES, Profile, install


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
    return BenchConfig(name, chunk, pool, PROFILES[f"study:{name}"], writers=writers)


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


def parse_configs(spec: str) -> list[BenchConfig]:
    """'all', 'presets', 'chunks', 'pools' or a comma list of names and groups, in the study's order."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in GROUPS:
            names.extend(GROUPS[part])
        elif part in CONFIGS:
            names.append(part)
        else:
            known = ", ".join([*GROUPS, *CONFIGS])
            raise ValueError(f"unknown configuration {part!r}; choose from {known}")
    if not names:
        raise ValueError("no configurations given")
    return [CONFIGS[n] for n in dict.fromkeys(names)]


def open_engine(config: BenchConfig, db_path: str) -> Engine:
    """An engine on `db_path` with the config's pool, every connection set up by its profile; on a
    PostgreSQL URL, the same pool through psycopg 3 (PRAGMA profiles are SQLite's; the server's settings apply)."""
    if "://" in db_path:
        return create_engine(db_path, pool_size=config.pool_size, max_overflow=config.max_overflow)
    engine = create_engine(
        f"sqlite:///{db_path}",
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        connect_args={"check_same_thread": False},  # the pool configs hand connections to writer threads
    )
    install(engine, config.profile)
    PROFILE_OF[engine] = config.profile
    return engine


# The profile each benchmark engine applies, for paths that open a second engine on the same file (turbo_async)
PROFILE_OF: weakref.WeakKeyDictionary[Engine, Profile] = weakref.WeakKeyDictionary()
