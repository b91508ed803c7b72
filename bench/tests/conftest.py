"""Shared fixtures: real SQLite files in a temporary directory, read back through fresh connections."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sqlite_bench.configs import CONFIGS, BenchConfig, open_engine
from sqlite_bench.schema import COLUMNS, create_schema


@pytest.fixture
def bench_engine(tmp_path: Path) -> Iterator[callable]:
    """Make engines on fresh database files with the study's schema; dispose them afterwards."""
    made: list[Engine] = []

    def make(name: str = "bench", config: BenchConfig = CONFIGS["baseline"]) -> Engine:
        engine = open_engine(config, str(tmp_path / f"{name}.db"))
        create_schema(engine)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


def dump(db_path: str) -> list[tuple]:
    """Every stored value of bench_rows with its SQLite storage class, read by a fresh connection."""
    columns = ", ".join(f"{c}, typeof({c})" for c in COLUMNS)
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(f"SELECT {columns} FROM bench_rows ORDER BY row_id").fetchall()
    finally:
        conn.close()


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL server, dropped at the end of the run.

    Without a reachable server the tests that need it skip, saying why; under CI=true they fail instead.
    """
    try:
        import psycopg

        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=3
        )
    except Exception as exc:  # no driver, no server: both mean "cannot test PostgreSQL here"
        reason = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must have it (see .ci/run)")
        pytest.skip(reason)
    name = f"sqlite_bench_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
