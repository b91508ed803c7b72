"""backup: finishes under a busy writer, copies one consistent snapshot, and checks it before placing it."""

from __future__ import annotations

import threading
import time

import pytest

import turboalchemy
from turboalchemy._cli import main as cli

from .dbapi import SQLITE

BATCH = 100


def make_db(path, batches: int = 50):
    engine = turboalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, pad TEXT)")
        conn.exec_driver_sql("CREATE INDEX t_batch ON t (batch)")
    for b in range(batches):
        with engine.begin() as conn:
            conn.exec_driver_sql(  # generate_series is not in every build: pysqlite3's lacks it
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?) "
                "INSERT INTO t (batch, pad) SELECT ?, hex(randomblob(100)) FROM c",
                (BATCH, b),
            )
    return engine


class Writer(threading.Thread):
    """Commits batches of BATCH rows as fast as it can until stopped."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.stop, self.batches = path, threading.Event(), 0

    def run(self):
        conn = SQLITE.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        while not self.stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO t (batch, pad) VALUES (?, ?)", [(10_000 + self.batches, "x" * 200)] * BATCH)
            conn.execute("COMMIT")
            self.batches += 1
        conn.close()


def batches_in(path) -> list[int]:
    conn = SQLITE.connect(path)
    try:
        return [n for (n,) in conn.execute("SELECT count(*) FROM t GROUP BY batch")]
    finally:
        conn.close()


def test_an_online_backup_under_continuous_writes_finishes_whole_and_consistent(tmp_path):
    src = tmp_path / "live.db"
    make_db(src)
    writer = Writer(src)
    writer.start()
    time.sleep(0.3)
    steps = []
    started = writer.batches
    report = turboalchemy.backup(
        src,
        tmp_path / "copy.db",
        pages_per_step=8,
        progress=lambda done, total: (steps.append((done, total)), time.sleep(0.001)),
    )
    writer.stop.set()
    writer.join()
    assert writer.batches > started, "the writer must have committed during the backup"
    assert report.restarts == 0 and report.integrity == "ok" and report.steps == len(steps) > 10
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)  # progress only moves forward
    counts = batches_in(tmp_path / "copy.db")
    assert set(counts) == {BATCH}  # every batch in the copy is whole: a committed snapshot


def test_a_plain_stepped_backup_restarts_under_the_same_writer(tmp_path):
    """What the snapshot prevents: SQLite's stepped backup starts over each time another connection writes."""
    src = tmp_path / "live.db"
    make_db(src)
    writer = Writer(src)
    writer.start()
    time.sleep(0.2)
    remaining: list[int] = []

    def step(_status, left, _total):
        remaining.append(left)
        time.sleep(0.002)
        if len(remaining) > 400:
            raise RuntimeError("gave up")

    source, dest = SQLITE.connect(src), SQLITE.connect(tmp_path / "naive.db")
    with pytest.raises(RuntimeError, match="gave up"):  # the progress callback's own error, passed through
        source.backup(dest, pages=8, progress=step)
    writer.stop.set()
    writer.join()
    assert any(b > a for a, b in zip(remaining, remaining[1:])), "it restarted"


def test_vacuum_backup_compacts(tmp_path):
    src = tmp_path / "live.db"
    engine = make_db(src)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM t WHERE batch % 2 = 0")
    online = turboalchemy.backup(engine, tmp_path / "online.db")
    vacuum = turboalchemy.backup(engine, tmp_path / "vacuum.db", method="vacuum")
    assert vacuum.pages < online.pages and vacuum.integrity == "ok"
    assert batches_in(tmp_path / "vacuum.db") == batches_in(src)


def test_an_existing_destination_is_kept_unless_overwrite(tmp_path):
    src = tmp_path / "live.db"
    make_db(src, batches=2)
    dest = tmp_path / "copy.db"
    old = SQLITE.connect(dest)
    old.execute("CREATE TABLE precious (x)")
    old.close()
    with pytest.raises(turboalchemy.BackupError, match="exists; pass overwrite=True"):
        turboalchemy.backup(src, dest)
    assert sqlite_tables(dest) == ["precious"]
    turboalchemy.backup(src, dest, overwrite=True)
    assert batches_in(dest) == [BATCH, BATCH]
    assert not list(tmp_path.glob(".*partial*"))


def sqlite_tables(path) -> list[str]:
    conn = SQLITE.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


def test_a_destination_that_is_not_a_database_is_never_overwritten(tmp_path):
    src = tmp_path / "live.db"
    make_db(src, batches=1)
    dest = tmp_path / "notes.txt"
    dest.write_bytes(b"precious, and not a database")
    with pytest.raises(turboalchemy.BackupError, match="is not an SQLite database"):
        turboalchemy.backup(src, dest, overwrite=True)
    assert dest.read_bytes() == b"precious, and not a database"
    assert not list(tmp_path.glob(".*partial*"))


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("CREATE TABLE IF NOT EXISTS mine (x)")
conn.execute("INSERT INTO mine VALUES (1)")
print("open", flush=True)
time.sleep(60)
"""


def test_a_destination_another_process_has_open_is_refused_unless_forced(tmp_path):
    """Replacing a database under a live process sends its next commits to an unlinked file: refused."""
    import subprocess
    import sys

    src = tmp_path / "live.db"
    make_db(src, batches=1)
    dest = tmp_path / "their.db"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "open"
        with pytest.raises(turboalchemy.BackupError, match=f"open in another process \\(pid {child.pid}\\)"):
            turboalchemy.backup(src, dest, overwrite=True)
        assert sqlite_tables(dest) == ["mine"]
        assert cli(["backup", str(src), str(dest), "--overwrite"]) == 2  # the CLI: one line, exit 2
        report = turboalchemy.backup(src, dest, overwrite=True, force=True)
        assert report.integrity == "ok" and batches_in(dest) == [BATCH]
    finally:
        child.kill()
        child.wait()


def test_a_destination_this_process_has_open_is_refused(tmp_path):
    src = tmp_path / "live.db"
    make_db(src, batches=1)
    dest_engine = make_db(tmp_path / "other.db", batches=1)
    with dest_engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        with pytest.raises(turboalchemy.BackupError, match="open in this process"):
            turboalchemy.backup(src, tmp_path / "other.db", overwrite=True, force=True)
    dest_engine.dispose()
    assert turboalchemy.backup(src, tmp_path / "other.db", overwrite=True).integrity == "ok"


@pytest.mark.parametrize("bad, message", [("missing.db", "no database at"), ("same", "is the database itself")])
def test_bad_sources_are_refused(tmp_path, bad, message):
    src = tmp_path / "live.db"
    make_db(src, batches=1)
    with pytest.raises((turboalchemy.BackupError, FileNotFoundError), match=message):
        turboalchemy.backup(tmp_path / bad if bad != "same" else src, src if bad == "same" else tmp_path / "c.db")


def test_the_cli_backs_up(tmp_path, capsys):
    src = tmp_path / "live.db"
    make_db(src, batches=3)
    assert cli(["backup", str(src), str(tmp_path / "b.db")]) == 0
    assert "integrity ok" in capsys.readouterr().out
    assert cli(["backup", str(src), str(tmp_path / "b.db")]) == 2


@pytest.mark.parametrize("part", ["-wal", "-shm", "hardlink", "same"])
def test_a_destination_that_is_part_of_the_source_is_refused_and_nothing_is_touched(tmp_path, part):
    """backup(src, 'src.db-wal', overwrite=True) used to overwrite the source's own WAL: its committed rows gone."""
    import os

    src = tmp_path / "src.db"
    make_db(src)
    keeper = SQLITE.connect(src)  # holds the WAL open, as a live application would
    keeper.execute("PRAGMA journal_mode = WAL")
    keeper.execute("CREATE TABLE extra (x)")
    keeper.execute("INSERT INTO extra VALUES (1)")
    keeper.commit()
    dest = {"-wal": f"{src}-wal", "-shm": f"{src}-shm", "same": str(tmp_path / "." / "src.db")}.get(part)
    if part == "hardlink":
        dest = str(tmp_path / "link.db")
        os.link(src, dest)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(turboalchemy.BackupError, match="is (the database itself|the database's own)"):
        turboalchemy.backup(src, dest, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert keeper.execute("SELECT count(*) FROM extra").fetchone()[0] == 1
    keeper.close()


def test_a_directory_destination_is_refused_before_anything_is_copied(tmp_path):
    make_db(tmp_path / "src.db")
    (tmp_path / "out").mkdir()
    with pytest.raises(turboalchemy.BackupError, match="is a directory"):
        turboalchemy.backup(tmp_path / "src.db", tmp_path / "out", overwrite=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [] and not list(tmp_path.glob(".*partial"))
