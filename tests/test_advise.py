"""turboalchemy.advise and `turboalchemy doctor`: each rule fires on a schema built for it, silent on the fix."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine

import turboalchemy

from .dbapi import SQLITE


def make_db(path, schema: str, rows: int = 0, key=None, cache_kib: int | None = None):
    conn = SQLITE.connect(path)
    conn.executescript(schema)
    if rows:
        conn.executemany(
            "INSERT INTO t (id, a, b, c, d) VALUES (?, ?, ?, ?, ?)",
            [(key(i), i % 97, i % 13, i, -i) for i in range(rows)],
        )
    conn.commit()
    conn.close()
    return str(path)


TABLE = "CREATE TABLE t (id TEXT PRIMARY KEY, a INTEGER, b INTEGER, c INTEGER, d INTEGER);"


def rules(found) -> list[tuple[str, str | None]]:
    return [(a.rule, a.table) for a in found]


@pytest.mark.parametrize(
    "key, fires",
    [(lambda i: str(uuid.uuid4()), True), (lambda i: turboalchemy.uuid7(), False)],
    ids=["uuid4 fires", "uuid7 silent"],
)
def test_random_text_primary_keys(tmp_path, key, fires):
    db = make_db(tmp_path / "k.db", TABLE, rows=3_000, key=key)
    found = [a for a in turboalchemy.advise(db) if a.rule == "random_primary_key"]
    assert bool(found) is fires
    if fires:
        assert found[0].table == "t" and "t.id" in found[0].message and "uuid7_primary_key" in found[0].fix


def test_an_integer_primary_key_is_never_random(tmp_path):
    db = make_db(tmp_path / "i.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c, d);")
    conn = SQLITE.connect(db)
    conn.executemany("INSERT INTO t (id) VALUES (?)", [(i * 7919 % 10007,) for i in range(3000)])
    conn.commit()
    conn.close()
    assert turboalchemy.advise(db) == []


@pytest.mark.parametrize(
    "extra, fires",
    [
        ("CREATE INDEX ix_a ON t (a); CREATE UNIQUE INDEX ux_ab ON t (a, b);", "ix_a"),
        ("CREATE INDEX ix_ab ON t (a, b); CREATE INDEX ix_abc ON t (a, b, c);", "ix_ab"),
        ("CREATE UNIQUE INDEX ux_ab ON t (a, b);", None),
        ("CREATE INDEX ix_b ON t (b); CREATE INDEX ix_ab ON t (a, b);", None),
    ],
    ids=["prefix of a unique index", "prefix of a longer index", "alone", "not a prefix"],
)
def test_indexes_that_are_a_prefix_of_another(tmp_path, extra, fires):
    db = make_db(tmp_path / "r.db", TABLE + extra)
    found = [a for a in turboalchemy.advise(db) if a.rule == "redundant_index"]
    assert [a.fix for a in found] == ([f'DROP INDEX "{fires}"'] if fires else [])


def test_indexes_no_seen_statement_uses(tmp_path):
    db = make_db(tmp_path / "u.db", TABLE + "CREATE INDEX ix_c ON t (c); CREATE INDEX ix_d ON t (d);")
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn, turboalchemy.count_queries(engine, keep_statements=True) as seen:
        conn.exec_driver_sql("SELECT * FROM t WHERE c = ?", (5,))
        conn.exec_driver_sql("SELECT * FROM t WHERE a = ?", (5,))
    found = turboalchemy.advise(engine, statements=seen.statements)
    assert [a.fix for a in found if a.rule == "unused_index"] == ['DROP INDEX "ix_d"']
    with engine.connect() as conn, turboalchemy.count_queries(engine, keep_statements=True) as seen:
        conn.exec_driver_sql("SELECT * FROM t WHERE c = ?", (5,))
        conn.exec_driver_sql("SELECT * FROM t WHERE d = ?", (5,))
    assert [a for a in turboalchemy.advise(engine, statements=seen.statements) if a.rule == "unused_index"] == []
    engine.dispose()


@pytest.mark.parametrize(
    "indexes, cache_kib, fires",
    [(3, 64, True), (1, 64, False), (3, 65_536, False)],
    ids=["3 indexes, small cache", "1 index", "3 indexes, cache holds the file"],
)
def test_many_indexes_on_a_database_larger_than_the_cache(tmp_path, indexes, cache_kib, fires):
    schema = TABLE + "".join(f"CREATE INDEX ix_{c} ON t ({c});" for c in "abc"[:indexes])
    db = make_db(tmp_path / "m.db", schema, rows=20_000, key=lambda i: f"{i:08d}")
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA cache_size = -{cache_kib}")  # the file is about 1.5 MiB
        found = [a for a in turboalchemy.advise(conn) if a.rule == "many_indexes_over_cache"]
    engine.dispose()
    assert bool(found) is fires
    if fires:
        assert found[0].fix.startswith("PRAGMA cache_size = -")


@pytest.mark.parametrize("rows, fires", [(100, True), (5_000, False)])
def test_transactions_too_small_for_the_write_volume(tmp_path, rows, fires):
    db = make_db(tmp_path / "s.db", TABLE)
    found = turboalchemy.advise(db, rows_per_transaction=rows)
    assert ([a.rule for a in found] == ["small_transactions"]) is fires


def test_doctor_says_so_when_there_is_no_database(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(tmp_path / "none.db")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "no database at" in out.stderr


@pytest.mark.parametrize(
    "columns, fires",
    [("entity, sub", True), ("sub, entity", False)],
    ids=["fastest-changing column first fires", "arrival order silent"],
)
def test_an_index_whose_column_order_scatters_arriving_rows(tmp_path, columns, fires):
    db = tmp_path / "o.db"
    conn = SQLITE.connect(db)
    conn.execute(f"CREATE TABLE r (id INTEGER PRIMARY KEY, entity INTEGER, sub INTEGER, UNIQUE ({columns}))")
    conn.executemany("INSERT INTO r (entity, sub) VALUES (?, ?)", [(n % 100, n // 100) for n in range(5_000)])
    conn.commit()
    conn.close()
    found = [a for a in turboalchemy.advise(str(db)) if a.rule == "scattering_index_order"]
    assert bool(found) is fires
    if fires:
        assert "UniqueConstraint('sub', 'entity')" in found[0].fix and found[0].table == "r"


def test_small_transactions_are_read_from_a_write_queues_statistics(tmp_path):
    import turboalchemy

    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER)")
    with turboalchemy.WriteQueue(engine) as queue:
        for n in range(150):  # one writer: every commit carries one row
            queue.execute("INSERT INTO t (x) VALUES (:x)", {"x": n})
        found = [a.rule for a in turboalchemy.advise(engine, queue=queue)]
    assert "small_transactions" in found
