"""A WriteQueue whose process is killed with work queued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from ..dbapi import SQLITE

PRODUCER = textwrap.dedent("""
    import sys, threading
    import turboalchemy
    from sqlalchemy import text
    engine = turboalchemy.create_engine("sqlite:///" + sys.argv[1])
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS q (producer INTEGER, seq INTEGER, PRIMARY KEY (producer, seq))")
    queue = turboalchemy.WriteQueue(engine)
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
    complete = out[: out.rfind("\n") + 1]  # the kill can cut the last line mid-flush: only whole lines count
    acked = {tuple(map(int, line.split())) for line in complete.splitlines() if line.strip()}
    conn = SQLITE.connect(db)
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
