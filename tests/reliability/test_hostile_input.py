"""Hostile identifiers and files: names are quoted or refused, never executed; damaged files are reported."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, create_engine, select, text
from sqlalchemy.exc import SQLAlchemyError

import turboalchemy
from turboalchemy import SchemaMismatchError
from turboalchemy._sqlite import reading

from ..dbapi import SQLITE

HOSTILE = [
    'a"b',
    '"; DROP TABLE canary; --',
    "x'); DROP TABLE canary; --",
    "тест名前",
    "with space",
    "select",
    "n" * 5_000,
    "n" * 10_000,
]


def _canary(engine) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM canary ORDER BY id")))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'hostile.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    made = create_engine(url)
    with made.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS canary")
        conn.exec_driver_sql("CREATE TABLE canary (id INTEGER PRIMARY KEY, v TEXT)")
        conn.exec_driver_sql("INSERT INTO canary VALUES (1, 'alive')")
    yield made
    with made.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS canary")
    made.dispose()


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: n[:20])
def test_hostile_table_and_column_names_are_quoted_through_every_write_path(engine, name):
    if len(name.encode()) > engine.dialect.max_identifier_length:  # 63 bytes on PostgreSQL, 9,999 on SQLite
        with pytest.raises(SQLAlchemyError, match="exceeds maximum length"):
            Table(name, MetaData(), Column("id", Integer, primary_key=True)).create(engine)
        assert _canary(engine) == [(1, "alive")]
        return
    meta = MetaData()
    table = Table(
        name,
        meta,
        Column("id", Integer, primary_key=True),
        Column(name, String),
        Column("k", Integer),
        UniqueConstraint("k", name="uq_k"),
    )
    meta.create_all(engine)
    try:
        rows = [{"id": i, name: f"value {i} {name[:5]}", "k": i} for i in range(50)]
        assert turboalchemy.bulk_insert(engine, table, rows, chunk_size=20) == 50
        assert turboalchemy.bulk_upsert(engine, table, [{"id": 100, name: "up", "k": 3}], conflict=["k"]) == 1
        with turboalchemy.WriteQueue(engine) as queue:
            queue.execute(table.insert(), {"id": 200, name: "queued", "k": 200})
        with engine.connect() as conn:
            stored = dict(conn.execute(select(table.c.k, table.c[name])).all())
        assert stored[3] == "up" and stored[200] == "queued" and len(stored) == 51
        if engine.dialect.name == "sqlite":
            found = turboalchemy.advise(engine)  # reads the odd schema without error
            assert all(isinstance(a, turboalchemy.Advice) and a.rule and a.fix for a in found), found
        assert _canary(engine) == [(1, "alive")]
    finally:
        meta.drop_all(engine)


@pytest.mark.parametrize("bad", ['"; DROP TABLE canary; --', "k\x00", "", "nope"])
def test_hostile_names_in_conflict_and_update_lists_are_refused_before_any_sql(engine, bad):
    meta = MetaData()
    table = Table("plain", meta, Column("id", Integer, primary_key=True), Column("k", Integer, unique=True))
    meta.create_all(engine)
    try:
        with pytest.raises(SchemaMismatchError):
            turboalchemy.bulk_upsert(engine, table, [{"id": 1, "k": 1}], conflict=[bad])
        with pytest.raises(SchemaMismatchError):
            turboalchemy.bulk_upsert(engine, table, [{"id": 1, "k": 1}], conflict=["k"], update=[bad])
        with pytest.raises(SchemaMismatchError):
            turboalchemy.bulk_insert(engine, table, [{"id": 1, bad: 1}])
        assert _canary(engine) == [(1, "alive")]
    finally:
        meta.drop_all(engine)


def test_names_sqlite_keeps_for_itself_and_nul_are_refused(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'reserved.db'}")
    with pytest.raises(SQLAlchemyError, match="reserved for internal use"):
        Table("sqlite_master", MetaData(), Column("id", Integer, primary_key=True)).create(engine)
    with pytest.raises((SQLAlchemyError, ValueError), match="null character|NUL"):
        Table("nul\x00name", MetaData(), Column("id", Integer, primary_key=True)).create(engine)


def test_doctor_reports_a_damaged_copy_and_does_not_crash(tmp_path):
    db = tmp_path / "good.db"
    conn = SQLITE.connect(db)
    conn.executescript(
        "PRAGMA journal_mode = DELETE; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);CREATE INDEX t_v ON t (v);"
    )
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i:05d}" * 10,) for i in range(3000)])
    conn.commit()
    root, page_size = (
        conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 't_v'").fetchone()[0],
        conn.execute("PRAGMA page_size").fetchone()[0],
    )
    conn.close()
    damaged = tmp_path / "damaged.db"
    shutil.copy(db, damaged)
    with open(damaged, "r+b") as f:
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xfe" * 200)
    out = subprocess.run([sys.executable, "-m", "turboalchemy", "doctor", str(damaged)], capture_output=True, text=True)
    assert out.returncode == 1 and "quick_check failed" in out.stdout and "Traceback" not in out.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    out = subprocess.run([sys.executable, "-m", "turboalchemy", "doctor", str(garbage)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not a database" in out.stderr


def test_untrusted_files_are_opened_with_trusted_schema_off(tmp_path):
    db = tmp_path / "untrusted.db"
    SQLITE.connect(db).close()
    with reading(db, "health") as conn:
        assert conn.execute("PRAGMA trusted_schema").fetchone()[0] == 0
        with pytest.raises(SQLITE.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE x (y)")
