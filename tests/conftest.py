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


# A database as CREATE DATABASE makes it from template1, again: every schema a test made dropped (with what is
# in it: tables, types, sequences, functions, collations, operators), the public schema made anew as PostgreSQL 15
# makes it, and any connection a test left open closed first, so that nothing holds a lock on what is dropped.
_RESET = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid();
DO $$ DECLARE s name; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_%'
  LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP;
END $$;
CREATE SCHEMA public AUTHORIZATION pg_database_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;
"""


class _Databases:
    """Throwaway databases on the server, made once and emptied for each test that takes one (an emptied database
    costs about 5 ms, a new one about 0.35 s to create and drop; the PostgreSQL twins made two per test)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.free: list[str] = []
        self.made: list[str] = []

    def url(self, name: str) -> str:
        return self.base.rsplit("/", 1)[0] + "/" + name

    def _run(self, name: str, statement: str) -> None:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name, autocommit=True) as conn:
            conn.execute(statement.encode())  # (bytes: no placeholders to look for)

    def take(self) -> str:
        if self.free:
            name = self.free.pop()
            self._run(name, _RESET)
            return name
        name = f"twin_{uuid.uuid4().hex[:10]}"
        self._run("postgres", f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return name

    def give_back(self, name: str) -> None:
        self.free.append(name)

    def drop_all(self) -> None:
        for name in self.made:
            self._run("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _databases(postgres_url) -> Iterator[_Databases]:
    databases = _Databases(postgres_url)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(request, tmp_path):
    """Two empty databases of one backend: ours (the fast path writes) and theirs (SQLAlchemy writes)."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'ours.db'}", f"sqlite:///{tmp_path / 'theirs.db'}"]
        names: list[str] = []
    else:
        databases = request.getfixturevalue("_databases")
        names = [databases.take(), databases.take()]
        urls = [databases.url(n) for n in names]
    engines = [create_engine(u) for u in urls]
    for engine in engines:
        Shop.metadata.create_all(engine)
    yield engines
    for engine in engines:
        engine.dispose()
    for name in names:
        databases.give_back(name)
