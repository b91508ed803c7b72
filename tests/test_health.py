"""health and `turboalchemy doctor`: each red flag fires on a database built to raise it and not on a healthy one."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import turboalchemy
from turboalchemy._tools.health import filesystem_type, wal_reset_affected

from .dbapi import SQLITE

health_module = importlib.import_module("turboalchemy._tools.health")


def fresh(path, *, journal="WAL", rows=200):
    conn = SQLITE.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (pad) VALUES (?)", [("x" * 500,)] * rows)
    conn.execute("COMMIT")
    return conn


def flags(report, level="red"):
    return [f.what for f in report.flags if f.level == level]


VERSION_FLAG = "SQLite version:"  # red on this machine's SQLite if it has the WAL-reset bug (test_checklist)


def healthy(report) -> bool:
    """No red flag but, on an affected SQLite, the one for its version (a fact of the library, not the file)."""
    others = [f for f in report.flags if f.level == "red" and not f.what.startswith(VERSION_FLAG)]
    return not others and report.ok is (
        not wal_reset_affected(SQLITE.sqlite_version_info) or report.journal_mode != "wal"
    )


def test_a_healthy_database_reports_ok(tmp_path):
    fresh(tmp_path / "ok.db").close()
    report = turboalchemy.health(tmp_path / "ok.db")
    assert healthy(report) and [f for f in report.flags if not f.what.startswith(VERSION_FLAG)] == []
    assert report.journal_mode == "wal" and report.quick_check == "ok" and report.page_count > 1
    assert report.synchronous is None  # a per-connection setting: not readable from the file
    assert ("health: OK" in str(report)) is report.ok


def test_delete_journal_mode_is_a_red_flag(tmp_path):
    fresh(tmp_path / "d.db", journal="DELETE").close()
    report = turboalchemy.health(tmp_path / "d.db")
    assert any("journal_mode is DELETE" in w for w in flags(report)) and not report.ok
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(tmp_path / "d.db")], capture_output=True, text=True
    )
    assert out.returncode == 1 and "PRAGMA journal_mode = WAL" in out.stdout


def test_a_mostly_free_file_is_a_red_flag_until_vacuumed(tmp_path):
    conn = fresh(tmp_path / "f.db", rows=2_000)
    conn.execute("DELETE FROM t WHERE id > 100")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert any("free pages" in w for w in flags(turboalchemy.health(tmp_path / "f.db")))
    conn.execute("VACUUM")
    conn.close()
    assert healthy(turboalchemy.health(tmp_path / "f.db"))


def test_synchronous_off_on_an_engine_is_a_red_flag(tmp_path):
    engine = turboalchemy.create_engine(
        f"sqlite:///{tmp_path / 's.db'}", profile=["production", {"synchronous": "OFF"}]
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    report = turboalchemy.health(engine)
    assert report.synchronous == "OFF" and any("synchronous is OFF" in w for w in flags(report))
    assert healthy(turboalchemy.health(turboalchemy.create_engine(f"sqlite:///{tmp_path / 's.db'}")))


def test_a_wal_that_checkpoints_cannot_shrink_is_a_red_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(health_module, "WAL_FLOOR", 0)
    conn = fresh(tmp_path / "w.db")
    reader = SQLITE.connect(tmp_path / "w.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a reader that never finishes pins the WAL
    for _ in range(20):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t (pad) VALUES (?)", [("y" * 1000,)] * 1000)
        conn.execute("COMMIT")
    assert any("stopping checkpoints" in w for w in flags(turboalchemy.health(tmp_path / "w.db")))
    reader.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert healthy(turboalchemy.health(tmp_path / "w.db"))


def test_a_network_filesystem_is_a_red_flag(tmp_path, monkeypatch):
    fresh(tmp_path / "n.db").close()
    monkeypatch.setattr(health_module, "filesystem_type", lambda _path: "nfs4")
    report = turboalchemy.health(tmp_path / "n.db")
    assert report.filesystem == "nfs4" and any("network filesystem" in w for w in flags(report))


def test_the_filesystem_is_read_from_the_mount_table(tmp_path):
    assert filesystem_type(tmp_path) not in (None, "")


def test_an_unindexed_foreign_key_is_flagged_with_the_index_that_fixes_it(tmp_path):
    conn = fresh(tmp_path / "k.db")
    conn.execute('CREATE TABLE "child rows" (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))')
    report = turboalchemy.health(tmp_path / "k.db")
    assert healthy(report)  # a warning, not a red flag
    [warning] = [f for f in report.flags if f.level == "warn"]
    assert "child rows(parent_id) -> parent" in warning.what
    conn.execute(warning.advice)
    assert [f for f in turboalchemy.health(tmp_path / "k.db").flags if not f.what.startswith(VERSION_FLAG)] == []


def test_a_damaged_file_fails_quick_check(tmp_path):
    conn = fresh(tmp_path / "c.db", journal="DELETE", rows=2_000)
    conn.execute("CREATE INDEX t_pad ON t (pad)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 't_pad'").fetchone()[0]
    conn.close()
    with open(tmp_path / "c.db", "r+b") as f:
        f.seek((root - 1) * page_size + 8)  # scribble over the index's root page, past its header
        f.write(b"\xff" * 64)
    report = turboalchemy.health(tmp_path / "c.db")
    assert report.quick_check != "ok" and any("quick_check failed" in w for w in flags(report))


def test_doctor_exits_2_when_it_cannot_read(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(tmp_path / "none.db")], capture_output=True, text=True
    )
    assert out.returncode == 2


@pytest.mark.parametrize("mode", ["passive", "truncate"])
def test_checkpoint_command_empties_the_wal(tmp_path, mode):
    conn = fresh(tmp_path / "w.db", rows=500)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.executemany("INSERT INTO t (pad) VALUES (?)", [("z" * 100,)] * 100)
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "checkpoint", str(tmp_path / "w.db"), "--mode", mode],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "WAL frames copied" in out.stdout
    if mode == "truncate":
        assert (tmp_path / "w.db-wal").stat().st_size == 0


def test_health_of_an_engine_reads_through_its_reader_pool_not_its_one_writer(tmp_path):
    """quick_check can take long on a big file; on the writer connection it stalled every write meanwhile."""
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'h.db'}", writer_timeout=0.5)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    with engine.connect() as writer:  # hold the one write connection, as a long write would
        writer.exec_driver_sql("SELECT 1")
        report = turboalchemy.health(engine)  # would wait writer_timeout for the writer, then fail
    assert report.quick_check == "ok" and report.synchronous == "NORMAL"
    engine.dispose()
