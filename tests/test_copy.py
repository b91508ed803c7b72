"""turboalchemy copy: SQLite -> PostgreSQL -> SQLite leaves identical data; interrupted copies resume."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

import turboalchemy
from turboalchemy._tools.copy import CopyError, copy_database

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined DATETIME);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES authors(id),
                    title VARCHAR(200), score FLOAT, body BLOB, UNIQUE (author_id, title));
CREATE INDEX ix_posts_score ON posts (score);
"""


def blog(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO authors VALUES (?, ?, ?)",
        [(i, f"author {i} ✓", datetime(2024, 1, 1 + i % 28, 12, 0, 0, i).isoformat(" ")) for i in range(1, 51)],
    )
    conn.executemany(
        "INSERT INTO posts VALUES (?, ?, ?, ?, ?)",
        [(i, 1 + i % 50, f"post {i}", i / 7, bytes([i % 256]) * 3) for i in range(1, 1001)],
    )
    conn.commit()
    conn.close()


def rows(path, table) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        conn.close()


def test_sqlite_to_postgresql_and_back_leaves_identical_data(tmp_path, postgres_url):
    blog(tmp_path / "src.db")
    pg = turboalchemy.create_engine(postgres_url)
    try:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS posts, authors")
        there = copy_database(create_engine(f"sqlite:///{tmp_path / 'src.db'}"), pg)
        assert [(t.name, t.rows) for t in there.tables] == [("authors", 50), ("posts", 1000)]  # parents first
        with pg.begin() as conn:  # the serial key was moved past the copied ids
            assert conn.execute(text("INSERT INTO authors (name) VALUES ('new') RETURNING id")).scalar() == 51
            conn.execute(text("DELETE FROM authors WHERE id = 51"))
        back = copy_database(pg, create_engine(f"sqlite:///{tmp_path / 'back.db'}"))
        assert back.rows == 1050
        for table in ("authors", "posts"):
            assert rows(tmp_path / "back.db", table) == rows(tmp_path / "src.db", table)
    finally:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS posts, authors")
        pg.dispose()


def test_a_finished_table_is_skipped_and_a_partial_one_needs_resume(tmp_path):
    blog(tmp_path / "src.db")
    source = create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    dest = create_engine(f"sqlite:///{tmp_path / 'dest.db'}")
    copy_database(source, dest, tables=["authors"])  # as if a copy stopped after its first table
    assert copy_database(source, dest, tables=["authors"]).tables[0].skipped
    first = copy_database(source, dest, chunk_size=100)
    assert [t.skipped for t in first.tables] == [True, False]
    with dest.begin() as c:
        c.exec_driver_sql("DELETE FROM posts WHERE id > 500")
    with pytest.raises(CopyError, match="posts already holds 500 of the source's 1,000 rows"):
        copy_database(source, dest)
    again = copy_database(source, dest, resume=True)
    assert [t.skipped for t in again.tables] == [True, False]
    assert rows(tmp_path / "dest.db", "posts") == rows(tmp_path / "src.db", "posts")


def test_unknown_tables_are_refused(tmp_path):
    blog(tmp_path / "src.db")
    with pytest.raises(CopyError, match="no table"):
        copy_database(
            create_engine(f"sqlite:///{tmp_path / 'src.db'}"),
            create_engine(f"sqlite:///{tmp_path / 'd.db'}"),
            tables=["nope"],
        )
