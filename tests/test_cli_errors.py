"""Every CLI command given what a user gets wrong: a one-line message naming the problem and exit code 2 (1 for a
database that is unhealthy), never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"

CASES = {
    "doctor: no such file": (["doctor", "missing.db"], "no database at"),
    "doctor: not a database": (["doctor", "notes.txt"], "not a database"),
    "doctor: a directory": (["doctor", "folder"], ""),
    "backup: no such source": (["backup", "missing.db", "out.db"], "no database at"),
    "backup: not a database": (["backup", "notes.txt", "out.db"], "not a database"),
    "backup: onto itself": (["backup", "typed.db", "typed.db"], "is the database itself"),
    "backup: into a directory": (["backup", "typed.db", "folder"], "is a directory"),
    "backup: over a file that is not a database": (["backup", "typed.db", "notes.txt", "--overwrite"], "not an SQLite"),
    "backup: where no folder can be made": (["backup", "typed.db", "/proc/nowhere/x.db"], ""),
    "migrate: not a database": (["migrate", "notes.txt", "migrations"], "not a database"),
    "migrate: no such folder": (["migrate", "typed.db", "nowhere"], "no such migrations directory"),
    "migrate: a bad file name": (["migrate", "typed.db", "badly_named"], "NUMBER_name.sql"),
    "checkpoint: no such file": (["checkpoint", "missing.db"], "no database at"),
    "checkpoint: not a database": (["checkpoint", "notes.txt"], "not a database"),
    "copy: no such source": (["copy", "missing.db", PG], "no database at"),
    "copy: not a database": (["copy", "notes.txt", PG], "not a database"),
    "copy: a column with no type": (["copy", "untyped.db", PG], "table 't', column 'x'"),
    "copy: a server that is not there": (["copy", "typed.db", UNREACHABLE], "OperationalError"),
    "copy: models that do not import": (["copy", "typed.db", PG, "--models", "no_such_module:Base"], "--models"),
}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "badly_named").mkdir()
    (tmp_path / "badly_named" / "0002add_b.sql").write_text("CREATE TABLE b (x INTEGER);")
    for name, column in (("typed.db", "x TEXT"), ("untyped.db", "x")):
        conn = sqlite3.connect(tmp_path / name)
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {column})")
        conn.execute("INSERT INTO t (id, x) VALUES (1, 'a')")
        conn.commit()
        conn.close()
    return tmp_path


@pytest.mark.parametrize("case", list(CASES))
def test_a_cli_mistake_is_one_line_and_an_exit_code(folder, case):
    args, words = CASES[case]
    # -W: on an SQLite with the WAL-reset bug, create_engine's one-time RuntimeWarning is not the error message
    command = [sys.executable, "-W", "ignore::RuntimeWarning", "-m", "turboalchemy", *args]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode in (1, 2), done.stdout + done.stderr
    message = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and message[0].startswith(f"turboalchemy {args[0]}: "), done.stderr
    assert words in message[0]
