"""Process death during bulk loads, a full disk, and locks held by another process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, text

import turboalchemy
from turboalchemy import DatabaseLockedError, DiskFullError

from ..dbapi import SQLITE

CHUNK = 500
KILLS = 50

# Each loader imports, says so, and waits for "go" before it opens the file: the next one imports while the one
# before it runs (an import is most of a run's second), and only one loader has the file at a time.
LOADER = textwrap.dedent("""
    import sys
    import turboalchemy
    from sqlalchemy import Column, Integer, MetaData, String, Table, text
    print("imported", flush=True)
    sys.stdin.readline()
    meta = MetaData()
    t = Table("loaded", meta, Column("id", Integer, primary_key=True), Column("chunk", Integer, nullable=False),
              Column("pad", String, nullable=False))
    engine = turboalchemy.create_engine("sqlite:///" + sys.argv[1])
    meta.create_all(engine)
    with engine.connect() as conn:
        start = conn.execute(text("SELECT coalesce(max(chunk) + 1, 0) FROM loaded")).scalar()
    print("ready", flush=True)
    for chunk in range(start, start + 1000):
        rows = [{"id": chunk * %(size)d + i, "chunk": chunk, "pad": "x" * 200} for i in range(%(size)d)]
        turboalchemy.bulk_insert(engine, t, rows, chunk_size=%(size)d)
        print(chunk, flush=True)  # acknowledged: bulk_insert returned, so the chunk is committed
""") % {"size": CHUNK}


def test_sigkill_at_random_moments_leaves_whole_acknowledged_chunks(tmp_path):
    db = tmp_path / "load.db"
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    rng = random.Random(20261122)
    acknowledged: set[int] = set()
    faults = rows_checked = 0

    def loader() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    following: subprocess.Popen[str] | None = loader()
    try:
        for kill in range(KILLS):
            assert following is not None
            child, following = following, (loader() if kill + 1 < KILLS else None)
            assert child.stdin is not None and child.stdout is not None and child.stdout.readline() == "imported\n"
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "ready\n"  # the table made: chunks follow
            time.sleep(
                rng.uniform(0.01, 0.1)
            )  # chunks commit every few ms (the file grows by tens of MB a second, and each check reads it whole)
            os.kill(child.pid, signal.SIGKILL)
            # read through the same buffered reader as the lines above: it may already hold acknowledgements that
            # came in with "ready" (communicate() would read the pipe beneath it and miss them)
            out = child.stdout.read()
            child.wait()
            child.stdin.close()
            faults += 1
            acknowledged |= {int(line) for line in out.split()}
            conn = SQLITE.connect(db)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                per_chunk = dict(conn.execute("SELECT chunk, count(*) FROM loaded GROUP BY chunk"))
            finally:
                conn.close()
            assert set(per_chunk.values()) <= {CHUNK}, "a chunk is partly stored"
            assert acknowledged <= set(per_chunk), "an acknowledged chunk is missing"
            assert len(set(per_chunk) - acknowledged) <= 1, "more than one unacknowledged chunk survived"
            acknowledged |= set(per_chunk)  # the one in flight may have committed before the kill
            rows_checked += sum(per_chunk.values())
    finally:
        if following is not None:  # (a failed check leaves the next loader waiting)
            following.kill()
            following.communicate()
    assert faults == KILLS and len(acknowledged) > KILLS  # every run got some chunks in before its kill
    print(f"sigkill bulk load: {faults} kills, {len(acknowledged)} chunks, {rows_checked:,} rows checked, 0 lost")


meta = MetaData()
filled = Table("filled", meta, Column("id", Integer, primary_key=True), Column("pad", String, nullable=False))


def test_a_full_disk_is_a_typed_error_with_nothing_partial_and_writes_resume(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    meta.create_all(engine)
    limit = {"pages": 200}

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection, _record):  # stands in for a small filesystem (no mount needed)
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    engine.dispose()
    acknowledged = 0
    with pytest.raises(DiskFullError, match="free disk space") as caught:
        for chunk in range(1000):
            rows = [{"id": chunk * 100 + i, "pad": "y" * 300} for i in range(100)]
            acknowledged += turboalchemy.bulk_insert(engine, filled, rows, chunk_size=100)
    assert isinstance(caught.value, turboalchemy.TurboAlchemyError) and isinstance(caught.value.__cause__, SQLITE.Error)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filled")).scalar() == acknowledged > 0
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    limit["pages"] = 1_000_000  # space comes back
    engine.dispose()
    turboalchemy.bulk_insert(engine, filled, [{"id": 10**9, "pad": "z"}])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filled")).scalar() == acknowledged + 1


def test_a_full_disk_fails_a_queued_write_alone(tmp_path):
    from sqlalchemy import create_engine

    # a plain engine, so that the queue writes on a connection this test can cap
    engine = create_engine(f"sqlite:///{tmp_path / 'qfull.db'}", connect_args={"check_same_thread": False})
    meta.create_all(engine)

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA max_page_count = 40")

    engine.dispose()
    with turboalchemy.WriteQueue(engine) as queue:
        queue.execute(filled.insert(), {"id": 1, "pad": "small"})
        with pytest.raises(DiskFullError):
            queue.execute(filled.insert(), [{"id": i, "pad": "w" * 4000} for i in range(2, 200)])
        queue.execute(filled.insert(), {"id": 2, "pad": "fits again"})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filled")).scalar() == 2


HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
""")


def _hold(tmp_path, db, seconds):
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    child = subprocess.Popen([sys.executable, str(script), str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "holding"
    return child


def test_a_lock_held_by_another_process_past_busy_timeout_is_a_typed_error(tmp_path):
    db = tmp_path / "locked.db"
    engine = turboalchemy.create_engine(f"sqlite:///{db}", profile=["production", {"busy_timeout": 200}])
    meta.create_all(engine)
    holder = _hold(tmp_path, db, 3)
    try:
        began = time.monotonic()
        with pytest.raises(DatabaseLockedError, match="busy_timeout") as caught:
            turboalchemy.bulk_insert(engine, filled, [{"id": 1, "pad": "p"}])
        assert time.monotonic() - began < 2  # bounded by busy_timeout, not by the holder
        assert caught.value.committed == 0
        with turboalchemy.WriteQueue(engine) as queue:
            with pytest.raises(DatabaseLockedError):
                queue.execute(filled.insert(), {"id": 2, "pad": "q"})
    finally:
        holder.wait()
    turboalchemy.bulk_insert(engine, filled, [{"id": 3, "pad": "after"}])  # and it works once the lock is gone


def test_read_then_write_never_fails_with_busy_snapshot(tmp_path):
    """A deferred transaction that read before another connection committed fails at once with
    SQLITE_BUSY_SNAPSHOT when it then writes. turboalchemy's write transactions begin IMMEDIATE, so the other
    writer cannot commit under our snapshot: it is refused (busy_timeout 0 here) and our write succeeds."""
    db = tmp_path / "snap.db"
    engine = turboalchemy.create_engine(f"sqlite:///{db}")
    meta.create_all(engine)
    other = SQLITE.connect(db, isolation_level=None)
    other.execute("PRAGMA busy_timeout = 0")
    for n in range(20):
        with engine.begin() as conn:
            seen = conn.execute(text("SELECT count(*) FROM filled")).scalar()
            with pytest.raises(SQLITE.OperationalError, match="locked"):
                other.execute(f"INSERT INTO filled VALUES ({10_000 + n}, 'other')")
            conn.execute(filled.insert(), {"id": n, "pad": f"after reading {seen}"})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filled")).scalar() == 20

    # the same steps on a deferred transaction: the failure the IMMEDIATE begin prevents
    plain = SQLITE.connect(db, isolation_level=None)
    plain.execute("BEGIN")
    plain.execute("SELECT count(*) FROM filled").fetchone()
    other.execute("INSERT INTO filled VALUES (99999, 'slipped in')")
    with pytest.raises(SQLITE.OperationalError, match="locked"):
        plain.execute("INSERT INTO filled VALUES (99998, 'too late')")
    plain.execute("ROLLBACK")
