"""migrate: numbered files in order, each with its version in one transaction, whatever happens mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import turboalchemy
from turboalchemy import _sqlite
from turboalchemy._cli import main as cli
from turboalchemy._tools.migrate import discover, statements, status

from .dbapi import SQLITE


def write(folder, files: dict[str, str]):
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(textwrap.dedent(sql))
    return folder


def version_and_tables(path):
    conn = SQLITE.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = sorted(
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            if r[0] != "turboalchemy_migrations"
        )
        return version, tables
    finally:
        conn.close()


BASIC = {
    "0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    "0002_email.sql": """
        -- a comment; with a semicolon
        ALTER TABLE users ADD COLUMN email TEXT;
        CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN
            UPDATE users SET name = name WHERE id = NEW.id AND 0;
        END;
    """,
    "0003_posts.sql": "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
    "README.md": "not a migration",
}


@pytest.mark.parametrize("target_kind", ["path", "engine"])
def test_pending_files_apply_in_order_and_set_user_version(tmp_path, target_kind):
    folder = write(tmp_path / "migrations", BASIC)
    db = tmp_path / "app.db"
    target = db if target_kind == "path" else turboalchemy.create_engine(f"sqlite:///{db}")
    report = turboalchemy.migrate(target, folder)
    assert [m.version for m in report.applied] == [1, 2, 3] and (report.before, report.after) == (0, 3)
    assert version_and_tables(db) == (3, ["posts", "users"])
    again = turboalchemy.migrate(target, folder)
    assert again.applied == [] and "up to date" in str(again)
    assert report.quick_check == "ok" and "quick_check: ok" in str(report)  # checked after applying
    assert again.quick_check is None  # nothing applied, nothing to check


def test_the_check_after_migrating_can_be_skipped(tmp_path):
    report = turboalchemy.migrate(tmp_path / "app.db", write(tmp_path / "m", BASIC), check=False)
    assert report.after == 3 and report.quick_check is None
    assert cli(["migrate", str(tmp_path / "b.db"), str(tmp_path / "m"), "--no-check"]) == 0


def test_a_failing_file_rolls_back_whole_and_keeps_the_earlier_ones(tmp_path):
    folder = write(tmp_path / "m", {**BASIC, "0004_bad.sql": "CREATE TABLE half (x);\nINSERT INTO nowhere VALUES (1);"})
    db = tmp_path / "app.db"
    with pytest.raises(turboalchemy.MigrationError, match=r"0004_bad.sql line 2: no such table: nowhere"):
        turboalchemy.migrate(db, folder)
    assert version_and_tables(db) == (3, ["posts", "users"])  # 'half' was rolled back with its file


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    db = tmp_path / "app.db"
    conn = SQLITE.connect(db)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    with pytest.raises(turboalchemy.MigrationError, match="version 9 .* only up to 3: this code is older"):
        turboalchemy.migrate(db, write(tmp_path / "m", BASIC))


def test_dry_run_checks_the_sql_and_changes_nothing(tmp_path):
    folder = write(tmp_path / "m", BASIC)
    db = tmp_path / "app.db"
    report = turboalchemy.migrate(db, folder, dry_run=True)
    assert report.after == 3 and len(report.applied) == 3 and "would apply 0001 users" in str(report)
    assert version_and_tables(db) == (0, [])


def test_to_stops_at_a_version(tmp_path):
    report = turboalchemy.migrate(tmp_path / "app.db", write(tmp_path / "m", BASIC), to=2)
    assert report.after == 2 and [m.version for m in report.pending] == [3]


@pytest.mark.parametrize(
    "files, message",
    [
        ({"0001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;"}, "both claim version 1"),
        ({"0000_a.sql": "SELECT 1;"}, "versions start at 1"),
    ],
)
def test_ambiguous_folders_are_refused(tmp_path, files, message):
    with pytest.raises(turboalchemy.MigrationError, match=message):
        discover(write(tmp_path / "m", files))


def test_transaction_control_inside_a_file_is_refused(tmp_path):
    folder = write(tmp_path / "m", {"0001_a.sql": "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;"})
    with pytest.raises(turboalchemy.MigrationError, match="line 1: transaction control"):
        turboalchemy.migrate(tmp_path / "app.db", folder)


def test_statements_split_like_sqlite_reads_them():
    sql = "CREATE TABLE a (x);\n-- c;\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n SELECT 1;\nEND;\nINSERT INTO a VALUES (';');\n"
    assert [line for line, _ in statements(sql)] == [1, 2, 6]


def test_sigkill_while_migrating_leaves_schema_and_version_agreeing(tmp_path):
    """Kill the process inside a long migration: the file's work and its version bump vanish together."""
    folder = write(
        tmp_path / "m",
        {
            "0001_base.sql": "CREATE TABLE base (x);",
            "0002_slow.sql": """
            CREATE TABLE big (n INTEGER, pad TEXT);
            WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000)
            INSERT INTO big SELECT n, hex(randomblob(64)) FROM c;
            CREATE INDEX big_pad ON big (pad);
        """,
        },
    )
    db = tmp_path / "app.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "turboalchemy", "migrate", str(db), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until 0001 is committed and 0002 is under way
        if os.path.exists(f"{db}-journal") or (
            db.exists() and version_and_tables(db)[0] == 1 and os.path.getsize(db) + _size(f"{db}-journal") > 1_000_000
        ):
            break
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    version, tables = version_and_tables(db)  # opening it rolls back the hot journal
    assert (version, tables) in [(1, ["base"]), (2, ["base", "big"])]
    assert version == 1, "the kill should land inside 0002 (it runs for seconds)"
    assert SQLITE.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    turboalchemy.migrate(db, folder)  # and the next run finishes the job
    assert version_and_tables(db) == (2, ["base", "big"])


def _size(name: str) -> int:
    return os.path.getsize(name) if os.path.exists(name) else 0


def test_the_cli_lists_and_migrates(tmp_path, capsys):
    folder = write(tmp_path / "m", BASIC)
    db = tmp_path / "app.db"
    assert cli(["migrate", str(db), str(folder), "--list"]) == 0
    assert "pending 0003 posts" in capsys.readouterr().out
    assert cli(["migrate", str(db), str(folder)]) == 0
    assert "version 0 -> 3" in capsys.readouterr().out
    assert cli(["migrate", str(db), str(tmp_path / "nowhere")]) == 2
    assert "no such migrations directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, message",
    [
        ("20240101000001_users.sql", "does not fit in PRAGMA user_version"),  # timestamp-numbered: stored as 0
        ("0002add_b.sql", "a migration is named NUMBER_name.sql"),  # no separator: was skipped without a word
        ("add_b.sql", "a migration is named NUMBER_name.sql"),
    ],
)
def test_a_file_that_would_drift_is_refused_before_anything_runs(tmp_path, name, message):
    folder = write(tmp_path / "m", {**BASIC, name: "CREATE TABLE b (x);"})
    with pytest.raises(turboalchemy.MigrationError, match=message):
        turboalchemy.migrate(tmp_path / "app.db", folder)
    assert not (tmp_path / "app.db").exists() or version_and_tables(tmp_path / "app.db") == (0, [])
    assert cli(["migrate", str(tmp_path / "app.db"), str(folder)]) == 2  # one line on stderr, no traceback


def test_a_held_write_lock_is_a_typed_error_and_one_line_from_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 100)  # the lock outlives any wait: no need to wait 5 s, twice
    folder = write(tmp_path / "m", BASIC)
    db = tmp_path / "app.db"
    SQLITE.connect(db).close()
    holder = SQLITE.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(turboalchemy.DatabaseLockedError, match=f"migrate {db}"):
            turboalchemy.migrate(db, folder)
        assert cli(["migrate", str(db), str(folder)]) == 2
        err = capsys.readouterr().err
        assert "database is locked" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def applied_record(path) -> list[tuple[int, str, str | None]]:
    conn = SQLITE.connect(path)
    try:
        return conn.execute("SELECT version, name, note FROM turboalchemy_migrations ORDER BY version").fetchall()
    finally:
        conn.close()


def test_each_applied_file_is_recorded_in_the_same_transaction(tmp_path):
    folder = write(tmp_path / "migrations", BASIC)
    turboalchemy.migrate(tmp_path / "app.db", folder)
    assert applied_record(tmp_path / "app.db") == [
        (1, "0001_users.sql", ""),
        (2, "0002_email.sql", ""),
        (3, "0003_posts.sql", ""),
    ]
    write(folder, {"0004_bad.sql": "CREATE TABLE users (x);"})  # fails: nothing of it, its record included, stays
    with pytest.raises(turboalchemy.MigrationError):
        turboalchemy.migrate(tmp_path / "app.db", folder)
    assert [r[0] for r in applied_record(tmp_path / "app.db")] == [1, 2, 3]


def test_a_file_numbered_below_the_version_and_never_applied_is_refused_and_listed(tmp_path, capsys):
    """A branch merged late adds 0002 to a database already at 3: applied now it would run after 0003, and
    skipped (as user_version alone would) it would be lost without a word."""
    folder = write(tmp_path / "migrations", {k: v for k, v in BASIC.items() if not k.startswith("0002")})
    db = tmp_path / "app.db"
    turboalchemy.migrate(db, folder)
    write(folder, {"0002_email.sql": BASIC["0002_email.sql"], "0004_tags.sql": "CREATE TABLE tags (x);"})
    with pytest.raises(turboalchemy.MigrationError, match="0002_email.sql was never applied"):
        turboalchemy.migrate(db, folder)
    assert version_and_tables(db) == (3, ["posts", "users"])  # refused before anything ran: 0004 did not either
    assert "NEVER APPLIED, numbered below the version: 0002_email.sql" in str(status(db, folder))
    assert cli(["migrate", str(db), str(folder)]) == 2
    assert "0002_email.sql was never applied" in capsys.readouterr().err


def test_a_database_migrated_before_the_record_existed_keeps_its_history(tmp_path):
    """user_version 2 and no record table (an older turboalchemy): files 1 and 2 count as applied, and the
    record starts from there."""
    folder = write(tmp_path / "migrations", BASIC)
    db = tmp_path / "app.db"
    conn = SQLITE.connect(db)
    conn.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT); PRAGMA user_version = 2;"
    )
    conn.close()
    report = turboalchemy.migrate(db, folder)
    assert [m.version for m in report.applied] == [3]
    assert applied_record(db) == [
        (1, "0001_users.sql", "recorded from user_version"),
        (2, "0002_email.sql", "recorded from user_version"),
        (3, "0003_posts.sql", ""),
    ]
