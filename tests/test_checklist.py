"""`doctor`/health() report the seed's production checklist item by item, each with the verdict the database
earns: a database made the way the seed's example makes it, and one made through turboalchemy's production
profile with STRICT models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import turboalchemy
from turboalchemy._tools.health import RECOMMENDED_PAGE_SIZE, wal_reset_affected

from .dbapi import SQLITE

AFFECTED = wal_reset_affected(SQLITE.sqlite_version_info)


def configure_connection(conn: SQLITE.Connection) -> None:
    """The seed's own function, verbatim (its page_size comes after journal_mode = WAL, so it cannot apply)."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -64000")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA mmap_size = 268435456")
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA busy_timeout = 5000")


def seed_database(path) -> None:
    conn = SQLITE.connect(path, isolation_level=None)
    configure_connection(conn)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")  # the seed's footgun, not STRICT
    conn.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), n INTEGER)")
    conn.execute("INSERT INTO users (id, name) VALUES (1, 'Alice'), (2, 12345), (3, 'Carol')")
    conn.execute("INSERT INTO visits (user_id, n) VALUES (1, 10), (2, 'abc'), (3, 'x1')")  # text kept in INTEGER
    conn.execute("DELETE FROM users WHERE id = 2")  # a gap in the ids: this table sees deletes
    conn.close()


def verdicts(report) -> dict[str, str]:
    return {check.item: check.verdict for check in report.checklist}


EVERY_ITEM = [
    "journal mode",
    "SQLite version",
    "synchronous",
    "cache size",
    "busy timeout",
    "STRICT tables",
    "AUTOINCREMENT",
    "page size",
    "integrity",
    "filesystem",
    "WAL size",
    "free pages",
    "foreign-key indexes",
]


def test_the_seeds_database_read_from_its_file(tmp_path):
    seed_database(tmp_path / "seed.db")
    report = turboalchemy.health(tmp_path / "seed.db")
    assert list(verdicts(report)) == EVERY_ITEM
    assert verdicts(report) == {
        "journal mode": "ok",
        "SQLite version": "red" if AFFECTED else "ok",
        "synchronous": "advice",
        "cache size": "advice",
        "busy timeout": "advice",  # per connection: not in a file
        "STRICT tables": "advice",
        "AUTOINCREMENT": "advice",
        "page size": "ok" if RECOMMENDED_PAGE_SIZE == 4096 else "advice",  # the seed's 8192 never applied
        "integrity": "ok",
        "filesystem": "ok",
        "WAL size": "ok",
        "free pages": "ok",
        "foreign-key indexes": "advice",
    }
    strict = next(c for c in report.checklist if c.item == "STRICT tables")
    assert "2 of 2 table(s) are not STRICT" in strict.detail and "2 stored value(s)" in strict.detail  # 'abc', 'x1'
    assert next(c for c in report.checklist if c.item == "AUTOINCREMENT").detail.startswith("users:")
    assert report.page_size == 4096


def test_the_seeds_database_through_an_engine_shows_its_connection_settings(tmp_path):
    seed_database(tmp_path / "seed.db")
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'seed.db'}")
    got = verdicts(turboalchemy.health(engine))
    assert (got["synchronous"], got["cache size"], got["busy timeout"]) == ("ok", "ok", "ok")
    engine.dispose()
    small = turboalchemy.create_engine(
        f"sqlite:///{tmp_path / 'seed.db'}",
        profile=["production", {"cache_size": -2000, "busy_timeout": 100, "synchronous": "OFF"}],
    )
    got = verdicts(turboalchemy.health(small))
    assert (got["synchronous"], got["cache size"], got["busy timeout"]) == ("red", "advice", "advice")
    small.dispose()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    n: Mapped[int] = mapped_column(Integer)


def test_a_database_made_through_the_production_profile_with_strict_models(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    turboalchemy.strict_tables(Base).create_all(engine)
    turboalchemy.bulk_insert(engine, User, [{"id": i, "name": f"u{i}"} for i in range(1, 4)])
    turboalchemy.bulk_insert(engine, Visit, [{"id": i, "user_id": 1 + i % 3, "n": i} for i in range(1, 10)])
    report = turboalchemy.health(engine)
    expected = dict.fromkeys(EVERY_ITEM, "ok")
    expected["SQLite version"] = "red" if AFFECTED else "ok"
    expected["page size"] = "ok" if RECOMMENDED_PAGE_SIZE == report.page_size else "advice"
    assert verdicts(report) == expected
    # what STRICT buys: the value a plain table would have stored as text is refused, naming row and column
    with pytest.raises(turboalchemy.BulkWriteError) as caught:
        turboalchemy.bulk_insert(
            engine, Visit, [{"id": 20, "user_id": 1, "n": 1}, {"id": 21, "user_id": 1, "n": "abc"}]
        )
    assert (caught.value.row, caught.value.column) == (1, "n") and "cannot store TEXT value in INTEGER column" in str(
        caught.value
    )
    engine.dispose()


def test_a_plain_table_stores_the_bad_value_strict_refuses(tmp_path):
    """The same write into the same shape of table without strict_tables: stored as text, as the ORM stores it;
    the checklist counts it."""
    import sqlalchemy

    plain = sqlalchemy.Table(
        "visits",
        sqlalchemy.MetaData(),
        sqlalchemy.Column("id", Integer, primary_key=True),
        sqlalchemy.Column("n", Integer),
    )
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    plain.metadata.create_all(engine)
    turboalchemy.bulk_insert(engine, plain, [{"id": 21, "n": "abc"}])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT typeof(n) FROM visits").scalar() == "text"
    strict = next(c for c in turboalchemy.health(engine).checklist if c.item == "STRICT tables")
    assert strict.verdict == "advice" and "1 stored value(s)" in strict.detail
    engine.dispose()


@pytest.mark.parametrize(
    "version, affected",
    [
        ((3, 40, 1), True),
        ((3, 44, 5), True),
        ((3, 44, 6), False),
        ((3, 50, 6), True),
        ((3, 50, 7), False),
        ((3, 51, 2), True),
        ((3, 51, 3), False),
        ((3, 53, 4), False),
        ((3, 6, 23), False),
    ],
)
def test_the_wal_reset_versions(version, affected):
    assert wal_reset_affected(version) is affected


def test_doctor_prints_every_item_and_its_json_form(tmp_path):
    seed_database(tmp_path / "seed.db")
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(tmp_path / "seed.db")], capture_output=True, text=True
    )
    assert "production checklist:" in out.stdout
    assert all(f"] {item}:" in out.stdout for item in EVERY_ITEM)
    assert out.returncode == (1 if AFFECTED else 0)
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", "--format", "json", str(tmp_path / "seed.db")],
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    assert [c["item"] for c in data["health"]["checklist"]] == EVERY_ITEM and data["health"]["ok"] is not AFFECTED
    assert {a["rule"] for a in data["advice"]} <= {
        "random_primary_key",
        "redundant_index",
        "scattering_index_order",
        "unused_index",
        "many_indexes_over_cache",
        "small_transactions",
    }


@pytest.mark.parametrize(
    "size, verdict, says",
    [(4096, "ok", "production default"), (16384, "advice", "bulk inserts"), (8192, "advice", "no size beats 4,096")],
)
def test_the_page_size_verdict_follows_the_measurement(tmp_path, size, verdict, says):
    conn = SQLITE.connect(tmp_path / "p.db", isolation_level=None)
    conn.execute(f"PRAGMA page_size = {size}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    check = next(c for c in turboalchemy.health(tmp_path / "p.db").checklist if c.item == "page size")
    assert (check.verdict, says in check.detail) == (verdict, True)
