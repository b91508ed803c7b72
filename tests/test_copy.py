"""turboalchemy copy: SQLite -> PostgreSQL -> SQLite leaves identical data; interrupted copies resume."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

import turboalchemy
from turboalchemy._cli import main as cli
from turboalchemy._tools.copy import CopyError, copy_database

from .dbapi import SQLITE

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined DATETIME);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES authors(id),
                    title VARCHAR(200), score FLOAT, body BLOB, UNIQUE (author_id, title));
CREATE INDEX ix_posts_score ON posts (score);
"""


def blog(path) -> None:
    conn = SQLITE.connect(path)
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
    conn = SQLITE.connect(path)
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


DEFAULTS = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, tier TEXT NOT NULL DEFAULT 'basic', credit INTEGER DEFAULT 0,
                       since TEXT DEFAULT CURRENT_TIMESTAMP, token TEXT DEFAULT (hex(randomblob(4))));
"""


@pytest.mark.parametrize("through_postgresql", [False, True], ids=["sqlite", "via postgresql"])
def test_server_defaults_both_databases_read_alike_are_kept(tmp_path, request, through_postgresql):
    """A literal, a number and CURRENT_TIMESTAMP survive the copy (also SQLite -> PostgreSQL -> SQLite, where
    PostgreSQL reflects 'basic'::character varying); a function call of one dialect is left out."""
    conn = SQLITE.connect(tmp_path / "src.db")
    conn.executescript(DEFAULTS)
    conn.execute("INSERT INTO accounts (id) VALUES (1)")
    conn.commit()
    conn.close()
    source = create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    dest = create_engine(f"sqlite:///{tmp_path / 'dest.db'}")
    if through_postgresql:
        pg = create_engine(request.getfixturevalue("postgres_url"))
        with pg.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS accounts")
        copy_database(source, pg)
        source = pg
    copy_database(source, dest)
    with dest.begin() as c:
        c.exec_driver_sql("INSERT INTO accounts (id) VALUES (2)")
        tier, credit, since, token = c.exec_driver_sql(
            "SELECT tier, credit, since, token FROM accounts WHERE id = 2"
        ).one()
    assert (tier, credit, since is not None, token) == ("basic", 0, True, None)
    if through_postgresql:
        with source.begin() as c:
            c.exec_driver_sql("DROP TABLE accounts")
        source.dispose()
    dest.dispose()


def test_the_models_option_imports_from_the_folder_it_runs_in(tmp_path, monkeypatch):
    (tmp_path / "shopmodels.py").write_text(
        "from sqlalchemy import MetaData, Table, Column, Integer, String\n"
        "metadata = MetaData()\n"
        "Table('authors', metadata, Column('id', Integer, primary_key=True), Column('name', String(80)),"
        " Column('joined', String(40)))\n"
    )
    blog(tmp_path / "src.db")
    import subprocess
    import sys

    script = tmp_path / "bin-turboalchemy"  # run as the console script does: no cwd on sys.path
    script.write_text("import sys\nfrom turboalchemy._cli import main\nsys.exit(main())\n")
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            str(script),
            "copy",
            "src.db",
            "dest.db",
            "--models",
            "shopmodels:metadata",
            "--tables",
            "authors",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert rows(tmp_path / "dest.db", "authors") == rows(tmp_path / "src.db", "authors")


def test_a_source_that_does_not_exist_is_refused_and_no_file_is_created(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(CopyError, match="no database at"):
        copy_database(create_engine(f"sqlite:///{missing}"), create_engine(f"sqlite:///{tmp_path / 'd.db'}"))
    assert not missing.exists()
    assert cli(["copy", str(missing), str(tmp_path / "d2.db")]) == 2 and not missing.exists()


def test_resume_copies_the_rest_where_a_killed_run_stopped(tmp_path):
    """--resume restarted a partial table from zero; it now continues after the last key copied."""
    blog(tmp_path / "src.db")
    source = create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    dest = create_engine(f"sqlite:///{tmp_path / 'dest.db'}")
    copy_database(source, dest, chunk_size=100)
    with dest.begin() as c:  # what a run killed after 5 of its 10 committed chunks leaves
        c.exec_driver_sql("DELETE FROM posts WHERE id > 500")
        c.exec_driver_sql("UPDATE posts SET title = 'kept from the first run' WHERE id = 1")
    report = copy_database(source, dest, resume=True, chunk_size=100)
    posts = next(t for t in report.tables if t.name == "posts")
    assert posts.rows == 1_000 and not posts.skipped
    stored = rows(tmp_path / "dest.db", "posts")
    assert stored[0][2] == "kept from the first run"  # not emptied and copied again
    assert stored[1:] == rows(tmp_path / "src.db", "posts")[1:]


def test_a_finished_table_still_moves_its_sequence_on_postgresql(tmp_path, postgres_url):
    """A copy killed after a table's last chunk but before its sequence moved left it behind forever (the
    next run skipped the complete table): the next insert collided."""
    blog(tmp_path / "src.db")
    source = create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    pg = create_engine(postgres_url)
    with pg.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS posts, authors")
    try:
        copy_database(source, pg)
        with pg.begin() as c:  # as if killed just before the sequence step
            c.exec_driver_sql("SELECT setval(pg_get_serial_sequence('authors', 'id'), 1, false)")
        again = copy_database(source, pg)
        assert all(t.skipped for t in again.tables)
        with pg.begin() as c:
            new_id = c.exec_driver_sql("INSERT INTO authors (name) VALUES ('new') RETURNING id").scalar()
        assert new_id == 51
    finally:
        with pg.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS posts, authors")
        pg.dispose()
