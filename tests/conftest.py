"""Shared fixtures: a throwaway database on the local PostgreSQL server, and twin databases of either backend
for differential tests (SQLite tests use files in tmp_path)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from .dbapi import NAME, SQLITE
from .shop import Shop

# SQLAlchemy's own SQLite engines (the reference side of every differential test) use this run's module too
SQLiteDialect_pysqlite.import_dbapi = classmethod(lambda cls: SQLITE)  # type: ignore[method-assign,assignment]


def pytest_report_header() -> str:
    return f"sqlite: {NAME} {SQLITE.sqlite_version} (TURBOALCHEMY_SQLITE_DRIVER={os.environ.get('TURBOALCHEMY_SQLITE_DRIVER', '')})"


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
    name = f"turboalchemy_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(request, tmp_path):
    """Two empty databases of one backend: ours (the fast path writes) and theirs (SQLAlchemy writes)."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'ours.db'}", f"sqlite:///{tmp_path / 'theirs.db'}"]
        engines = [create_engine(u) for u in urls]
    else:
        base = request.getfixturevalue("postgres_url")
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        names = [f"twin_{uuid.uuid4().hex[:10]}" for _ in range(2)]
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engines = [create_engine(base.rsplit("/", 1)[0] + "/" + n) for n in names]
    for engine in engines:
        Shop.metadata.create_all(engine)
    yield engines
    for engine in engines:
        engine.dispose()
    if request.param == "postgresql":
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
