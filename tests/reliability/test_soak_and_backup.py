"""A soak of the WriteQueue under mixed reads and writes, and a backup racing a writer in another process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time

from sqlalchemy import text

import turboalchemy

from ..dbapi import SQLITE

SOAK_SECONDS = float(os.environ.get("TURBOALCHEMY_SOAK_SECONDS", "4"))  # minutes for a real soak; seconds in CI


def test_the_write_queue_under_mixed_reads_and_writes_reconciles(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'soak.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        conn.exec_driver_sql("CREATE TABLE ledger (id INTEGER PRIMARY KEY, account INTEGER, amount INTEGER)")
        conn.execute(text("INSERT INTO accounts VALUES (:id, 1000)"), [{"id": i} for i in range(20)])
    reads = turboalchemy.reader(engine)
    deadline = time.monotonic() + SOAK_SECONDS
    counts = {"transfers": 0, "refused": 0, "reads": 0}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def transfer(conn, a, b, amount):  # a function item: both legs or neither, in its own savepoint
        balance = conn.execute(text("SELECT balance FROM accounts WHERE id = :a"), {"a": a}).scalar()
        if balance < amount:
            raise ValueError("insufficient funds")
        conn.execute(text("UPDATE accounts SET balance = balance - :x WHERE id = :a"), {"x": amount, "a": a})
        conn.execute(text("UPDATE accounts SET balance = balance + :x WHERE id = :b"), {"x": amount, "b": b})
        conn.execute(
            text("INSERT INTO ledger (account, amount) VALUES (:a, :m), (:b, :x)"),
            {"a": a, "m": -amount, "b": b, "x": amount},
        )

    def writer(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            a, b = rng.sample(range(20), 2)
            try:
                queue.execute(lambda conn, a=a, b=b: transfer(conn, a, b, rng.randint(1, 300)))
                key = "transfers"
            except ValueError:
                key = "refused"
            with lock:
                counts[key] += 1

    def reader():
        while time.monotonic() < deadline:
            with reads.connect() as conn:
                with conn.begin():  # one snapshot: money is neither created nor destroyed
                    total = conn.execute(text("SELECT sum(balance) FROM accounts")).scalar()
                    ledger = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger")).scalar()
            if total != 20_000 or ledger != 0:
                errors.append(AssertionError(f"snapshot saw total {total}, ledger {ledger}"))
                return
            with lock:
                counts["reads"] += 1

    with turboalchemy.WriteQueue(engine) as queue:
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(balance) FROM accounts")).scalar() == 20_000
        assert conn.execute(text("SELECT count(*) FROM ledger")).scalar() == 2 * counts["transfers"]
        assert conn.execute(text("SELECT min(balance) FROM accounts")).scalar() >= 0
    assert queue.stats.items == counts["transfers"] + counts["refused"] and counts["reads"] > 0
    print(
        f"soak {SOAK_SECONDS:.0f} s: {counts['transfers']:,} transfers, {counts['refused']:,} refused alone, "
        f"{counts['reads']:,} consistent snapshots, {queue.stats.batches:,} commits"
    )


WRITER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    batch = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (batch, pad) VALUES (?, ?)", [(batch, "x" * 200)] * 100)
        conn.execute("COMMIT")
        print(batch, flush=True)
        batch += 1
""")


def test_a_backup_racing_a_writer_process_finishes_whole(tmp_path):
    db = tmp_path / "live.db"
    conn = SQLITE.connect(db)
    conn.executescript("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER, pad TEXT);")
    conn.executemany("INSERT INTO t (batch, pad) VALUES (?, ?)", [(-1, "y" * 200)] * 20_000)
    conn.commit()
    conn.close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "0"
        began = time.monotonic()
        report = turboalchemy.backup(
            db, tmp_path / "copy.db", pages_per_step=16, progress=lambda done, total: time.sleep(0.001)
        )
        assert time.monotonic() - began < 30  # a deadline: no livelock
    finally:
        child.kill()
        child.wait()
    assert report.restarts == 0 and report.integrity == "ok" and report.steps > 20
    copy = SQLITE.connect(tmp_path / "copy.db")
    per_batch = dict(copy.execute("SELECT batch, count(*) FROM t WHERE batch >= 0 GROUP BY batch"))
    copy.close()
    assert set(per_batch.values()) <= {100}  # whole committed batches only
