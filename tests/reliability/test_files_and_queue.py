"""Results files that cannot be written, and a WriteQueue whose process is killed with work queued."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

WRITER = textwrap.dedent("""
    import resource, signal, sys
    from sqlite_bench import results
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        results.write_atomic(sys.argv[1], {"big": "x" * 100_000})
    except OSError as exc:
        print("refused:", exc.errno)
""")


def test_a_results_file_that_cannot_be_written_leaves_the_previous_one_intact(tmp_path):
    from sqlite_bench import results

    target = tmp_path / "results.json"
    results.write_atomic(target, {"generation": 1})
    before = target.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out = subprocess.run([sys.executable, str(script), str(target)], capture_output=True, text=True)
    assert out.stdout.startswith("refused: 27"), out.stdout + out.stderr  # EFBIG
    assert target.read_bytes() == before and json.loads(before)["generation"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # no half-written temporary left


def test_a_results_file_on_a_full_device_is_refused_whole(tmp_path):
    from sqlite_bench import results

    target = tmp_path / "results.json"
    results.write_atomic(target, {"generation": 1})
    before = target.read_bytes()
    real_fsync = os.fsync

    def full(fd):  # what /dev/full does to a write: ENOSPC at the point the data must reach the device
        raise OSError(28, "No space left on device")

    os.fsync = full
    try:
        try:
            results.write_atomic(target, {"generation": 2})
        except OSError as exc:
            assert exc.errno == 28
        else:
            raise AssertionError("the write should have failed")
    finally:
        os.fsync = real_fsync
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


PRODUCER = textwrap.dedent("""
    import sys, threading
    import turbolite
    from sqlalchemy import text
    engine = turbolite.create_engine("sqlite:///" + sys.argv[1])
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS q (producer INTEGER, seq INTEGER, PRIMARY KEY (producer, seq))")
    queue = turbolite.WriteQueue(engine)
    insert = text("INSERT INTO q VALUES (:p, :s)")
    lock = threading.Lock()

    def produce(p):
        for s in range(100_000):
            queue.execute(insert, {"p": p, "s": s})
            with lock:
                print(p, s, flush=True)  # acknowledged: committed

    for p in range(4):
        threading.Thread(target=produce, args=(p,), daemon=True).start()
    threading.Event().wait()
""")


def test_sigkill_with_writes_queued_loses_only_unacknowledged_ones(tmp_path):
    db = tmp_path / "queue.db"
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    child = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate()
    complete = out[:out.rfind("\n") + 1]  # the kill can cut the last line mid-flush: only whole lines count
    acked = {tuple(map(int, line.split())) for line in complete.splitlines() if line.strip()}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = set(conn.execute("SELECT producer, seq FROM q"))
    finally:
        conn.close()
    assert acked and acked <= stored  # every acknowledged write survived
    for p in range(4):  # what survived beyond the acknowledged is at most one batch in flight, in order
        seqs = sorted(s for q, s in stored if q == p)
        assert seqs == list(range(len(seqs)))
    assert len(stored - acked) <= 4  # at most each producer's one in-flight write
