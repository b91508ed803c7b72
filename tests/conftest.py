"""Shared fixtures: real SQLite files in a temporary directory, read back through fresh connections."""

from __future__ import annotations

import sqlite3
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
