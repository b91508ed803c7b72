"""WriteQueue: everything submitted is committed exactly once, answered after COMMIT, failures stay alone."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime

import pytest
import sqlalchemy
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, insert, text
from sqlalchemy import exc as sa_exc

import turboalchemy
from turboalchemy import PROFILES

from .dbapi import SQLITE

metadata = MetaData()
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("producer", String, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", DateTime),
)
INSERT = text("INSERT INTO events (producer, seq) VALUES (:producer, :seq)")


@pytest.fixture(params=["turboalchemy", "sqlalchemy"])
def engine(request, tmp_path):
    """The queue on a turboalchemy engine, and on a plain SQLAlchemy engine with the same profile."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    if request.param == "turboalchemy":
        made = turboalchemy.create_engine(url)
    else:
        made = sqlalchemy.create_engine(url, connect_args={"check_same_thread": False})
        PROFILES["production"].install(made)
    metadata.create_all(made)
    yield made
    made.dispose()


def stored(engine) -> list[tuple[str, int]]:
    conn = SQLITE.connect(engine.url.database)
    try:
        return conn.execute("SELECT producer, seq FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def hold(queue: turboalchemy.WriteQueue) -> threading.Event:
    """Keep the writer busy inside a batch until the returned event is set, so later items pile up."""
    release, inside = threading.Event(), threading.Event()

    def wait(_conn):
        inside.set()
        release.wait(10)

    queue.submit(wait)
    assert inside.wait(5)
    return release


def until(condition, timeout: float = 5.0) -> None:
    """Wait for a state of the queue (polled), failing the test if it does not come within `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the queue never reached the expected state"
        time.sleep(0.001)


def test_threads_and_asyncio_tasks_lose_nothing(engine):
    threads, tasks, writes = 8, 8, 150
    with turboalchemy.WriteQueue(engine, max_batch=64) as queue:

        def produce(name):
            for seq in range(writes):
                queue.execute(INSERT, {"producer": name, "seq": seq})

        async def produce_async(name):
            for seq in range(writes):
                await queue.aexecute(INSERT, {"producer": name, "seq": seq})

        async def all_tasks():
            await asyncio.gather(*(produce_async(f"task{n}") for n in range(tasks)))

        workers = [threading.Thread(target=produce, args=(f"thread{n}",)) for n in range(threads)]
        workers.append(threading.Thread(target=lambda: asyncio.run(all_tasks())))
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    rows = stored(engine)
    assert len(rows) == (threads + tasks) * writes
    by_producer: dict[str, list[int]] = {}
    for producer, seq in rows:
        by_producer.setdefault(producer, []).append(seq)
    assert all(seqs == list(range(writes)) for seqs in by_producer.values())  # complete and in order
    assert len(by_producer) == threads + tasks
    assert queue.stats.items == len(rows) + 0 and queue.stats.failed == 0


def test_a_caller_is_answered_only_after_commit(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        result = queue.execute(INSERT, {"producer": "a", "seq": 1})
        assert stored(engine) == [("a", 1)]  # another connection sees it: committed
        assert result.rowcount == 1 and result.lastrowid == 1


def test_one_bad_item_in_a_batch_fails_alone(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        queue.execute(text("CREATE UNIQUE INDEX ux ON events (producer, seq)"))
        release = hold(queue)
        futures = [queue.submit(INSERT, {"producer": "p", "seq": n}) for n in range(5)]
        bad = queue.submit(INSERT, {"producer": "p", "seq": 2})  # duplicates an item of the same batch
        futures += [queue.submit(INSERT, {"producer": "p", "seq": n}) for n in range(5, 9)]
        release.set()
        with pytest.raises(sa_exc.IntegrityError, match="UNIQUE"):
            bad.result(5)
        assert [f.result(5).rowcount for f in futures] == [1] * 9
        assert queue.stats.largest_batch >= 10
    assert sorted(seq for _, seq in stored(engine)) == list(range(9))


def test_an_item_that_rolls_back_the_whole_transaction_does_not_take_the_others_with_it(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        queue.execute(text("CREATE UNIQUE INDEX ux ON events (producer, seq)"))
        queue.execute(INSERT, {"producer": "p", "seq": 0})
        release = hold(queue)
        before = queue.submit(INSERT, {"producer": "p", "seq": 1})
        bad = queue.submit(text("INSERT OR ROLLBACK INTO events (producer, seq) VALUES ('p', 0)"))
        after = queue.submit(INSERT, {"producer": "p", "seq": 2})
        release.set()
        with pytest.raises(sa_exc.IntegrityError):
            bad.result(5)
        assert before.result(5).rowcount == after.result(5).rowcount == 1
        assert queue.stats.retried_batches == 1
    assert sorted(seq for _, seq in stored(engine)) == [0, 1, 2]


def test_close_drains_pending_work_then_refuses_more(engine):
    queue = turboalchemy.WriteQueue(engine)
    release = hold(queue)
    futures = [queue.submit(INSERT, {"producer": "p", "seq": n}) for n in range(100)]
    threading.Timer(0.2, release.set).start()
    queue.close()
    assert all(f.done() and f.result().rowcount == 1 for f in futures)
    assert len(stored(engine)) == 100
    with pytest.raises(turboalchemy.QueueClosedError, match="closed"):
        queue.submit(INSERT, {"producer": "p", "seq": 100})


def test_a_full_queue_pushes_back_then_times_out(engine):
    with turboalchemy.WriteQueue(engine, max_pending=3, put_timeout=0.2) as queue:
        release = hold(queue)
        for n in range(3):
            queue.submit(INSERT, {"producer": "p", "seq": n})
        began = time.monotonic()
        with pytest.raises(turboalchemy.QueueFullError, match="3 writes already pending"):
            queue.submit(INSERT, {"producer": "p", "seq": 3})
        assert time.monotonic() - began >= 0.2
        threading.Timer(0.1, release.set).start()
        queue.execute(INSERT, {"producer": "p", "seq": 3})  # blocks until there is room, then commits
    assert len(stored(engine)) == 4


def test_functions_get_the_write_connection_and_their_return_value_back(engine):
    with turboalchemy.WriteQueue(engine) as queue:

        def transfer(conn):
            conn.execute(INSERT, {"producer": "f", "seq": 1})
            return conn.execute(text("SELECT count(*) FROM events")).scalar()

        assert queue.execute(transfer) == 1
        assert queue.submit(transfer).result(5) == 2


@pytest.mark.parametrize(
    "statement, params",
    [
        (insert(events), {"producer": "core", "seq": 1, "at": datetime(2026, 1, 2, 3, 4, 5)}),
        (
            text("INSERT INTO events (producer, seq, at) VALUES (:p, :s, :at)").bindparams(
                bindparam("at", type_=DateTime)
            ),
            {"p": "typed", "s": 1, "at": datetime(2026, 1, 2, 3, 4, 5)},
        ),
        ("INSERT INTO events (producer, seq) VALUES (:p, :s)", {"p": "string", "s": 1}),
    ],
)
def test_statements_of_every_kind_store_what_sqlalchemy_would(engine, statement, params):
    with turboalchemy.WriteQueue(engine) as queue:
        result = queue.execute(statement, params)
    assert result.rowcount == 1 and result.lastrowid == 1
    conn = SQLITE.connect(engine.url.database)
    at = conn.execute("SELECT at FROM events").fetchone()[0]
    assert at in (None, "2026-01-02 03:04:05.000000")


def test_executemany_through_the_queue(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        result = queue.execute(INSERT, [{"producer": "m", "seq": n} for n in range(10)])
    assert result.rowcount == 10 and len(stored(engine)) == 10


def test_a_missing_parameter_is_named(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        with pytest.raises(sa_exc.ArgumentError, match="'seq'"):
            queue.execute(INSERT, {"producer": "x"})


def test_bulk_insert_goes_through_the_queue_in_chunks(engine):
    rows = [{"producer": "bulk", "seq": n} for n in range(2_500)]
    with turboalchemy.WriteQueue(engine) as queue:
        assert queue.bulk_insert(events, rows, chunk_size=1000) == 2_500
        assert queue.stats.items == 3
        assert queue.bulk_upsert(events, [{"id": 1, "producer": "bulk", "seq": -1}], conflict=["id"]) == 1
    assert len(stored(engine)) == 2_500 and stored(engine)[0] == ("bulk", -1)


def test_a_lone_writer_commits_on_its_own_thread(engine):
    """No thread switch for a lone writer: the caller runs its batch itself when the writer is idle."""
    with turboalchemy.WriteQueue(engine) as queue:
        seen = queue.execute(lambda conn: threading.current_thread().name)
    assert seen == threading.current_thread().name


def test_concurrent_callers_are_gathered_into_one_commit(engine):
    """After a batch of 4, a caller who finds the writer idle waits (up to max_wait_ms) for as many writes as
    that batch held, so writers answered together commit together again instead of one at a time."""
    with turboalchemy.WriteQueue(engine, max_wait_ms=10_000) as queue:
        release = hold(queue)
        first = [queue.submit(INSERT, {"producer": "first", "seq": n}) for n in range(4)]
        release.set()
        for f in first:
            f.result(5)
        assert queue.stats.largest_batch == 4
        before, answered = queue.stats.batches, queue.stats.items
        callers = [
            threading.Thread(target=queue.execute, args=(INSERT, {"producer": "second", "seq": n})) for n in range(4)
        ]
        for n, c in enumerate(callers):  # one by one: each starts once the previous write is queued or committed
            c.start()
            until(lambda n=n: len(queue._pending) + queue.stats.items - answered > n)
        for c in callers:
            c.join(10)
        assert queue.stats.batches == before + 1
    assert sorted(stored(engine)).count(("second", 3)) == 1


def test_a_gathering_writer_stops_waiting_when_the_queue_closes(engine):
    queue = turboalchemy.WriteQueue(engine, max_wait_ms=60_000)
    release = hold(queue)
    pending = [queue.submit(INSERT, {"producer": "p", "seq": n}) for n in range(3)]
    release.set()
    for f in pending:
        f.result(5)
    lone = queue.submit(INSERT, {"producer": "p", "seq": 3})  # the writer now waits for two more
    until(lambda: queue._fill_target == 3)  # the writer is gathering
    began = time.monotonic()
    queue.close()
    assert lone.result(5).rowcount == 1
    assert time.monotonic() - began < 30


def test_submit_refuses_what_it_cannot_run(engine):
    with turboalchemy.WriteQueue(engine) as queue:
        with pytest.raises(TypeError, match="callable"):
            queue.submit(42)


def test_the_queue_runs_on_postgresql_too(postgres_url):
    engine = turboalchemy.create_engine(postgres_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        with turboalchemy.WriteQueue(engine) as queue:
            queue.execute(text("CREATE UNIQUE INDEX ux ON events (producer, seq)"))
            release = hold(queue)
            good = [queue.submit(INSERT, {"producer": "pg", "seq": n}) for n in range(20)]
            bad = queue.submit(INSERT, {"producer": "pg", "seq": 3})
            release.set()
            with pytest.raises(sa_exc.IntegrityError):
                bad.result(5)
            assert all(f.result(5).rowcount == 1 for f in good)
            threads = [
                threading.Thread(
                    target=lambda n=n: [queue.execute(INSERT, {"producer": f"t{n}", "seq": s}) for s in range(50)]
                )
                for n in range(4)
            ]
            [t.start() for t in threads]
            [t.join() for t in threads]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 220
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_an_in_memory_database_works_and_closing_the_queue_leaves_the_engine_usable():
    engine = turboalchemy.create_engine("sqlite://")
    metadata.create_all(engine)
    with turboalchemy.WriteQueue(engine) as queue:
        queue.execute(INSERT, {"producer": "m", "seq": 1})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1


def test_a_statement_with_returning_gives_its_rows_and_their_count(engine):
    queue = turboalchemy.WriteQueue(engine)
    try:
        core = queue.execute(insert(events).returning(events.c.seq), {"producer": "r", "seq": 41})
        raw = queue.execute(
            text("INSERT INTO events (producer, seq) VALUES (:p, :s) RETURNING seq"), {"p": "r", "s": 42}
        )
        plain = queue.execute(text("INSERT INTO events (producer, seq) VALUES (:p, :s)"), {"p": "r", "s": 43})
    finally:
        queue.close()
    assert (core.rowcount, [tuple(r) for r in core.rows]) == (1, [(41,)])
    assert (raw.rowcount, [tuple(r) for r in raw.rows]) == (1, [(42,)])
    assert plain.rows is None and plain.rowcount == 1


def test_commit_latencies_are_kept_for_monitoring(engine):
    queue = turboalchemy.WriteQueue(engine)
    try:
        for seq in range(20):
            queue.execute(INSERT, {"producer": "lat", "seq": seq})
    finally:
        queue.close()
    p50, p99 = queue.stats.commit_ms(50), queue.stats.commit_ms(99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert len(queue.stats.commits) == queue.stats.batches == 20


def test_a_queue_refuses_new_writes_while_its_commits_are_slower_than_the_threshold(engine):
    """Commits made slow on purpose (each batch holds its transaction 30 ms): past refuse_above_ms, a write
    is refused at once with a typed error; once the window has passed, writes are taken again."""
    queue = turboalchemy.WriteQueue(engine, refuse_above_ms=10, latency_window_s=0.5)

    def slow(conn, seq):
        time.sleep(0.03)  # the stall being measured, not a wait for another thread
        conn.execute(INSERT, {"producer": "slow", "seq": seq})

    try:
        for seq in range(10):
            queue.execute(lambda conn, seq=seq: slow(conn, seq))
        with pytest.raises(turboalchemy.CommitLatencyError, match="over refuse_above_ms=10"):
            queue.execute(INSERT, {"producer": "refused", "seq": 0})
        deadline = time.monotonic() + 5
        while True:  # the window passes: the queue takes writes again
            try:
                queue.execute(INSERT, {"producer": "later", "seq": 0})
                break
            except turboalchemy.CommitLatencyError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        queue.close()
    with engine.connect() as conn:
        producers = [r[0] for r in conn.execute(text("SELECT DISTINCT producer FROM events ORDER BY 1"))]
    assert producers == ["later", "slow"]


@pytest.mark.parametrize("statement", ["ROLLBACK", "commit", "  BEGIN IMMEDIATE", "SAVEPOINT x", "RELEASE x", "END"])
def test_transaction_control_as_an_item_is_refused_before_it_runs(engine, statement):
    """A ROLLBACK item would be answered OK and silently undo its batch neighbours' acknowledged writes."""
    queue = turboalchemy.WriteQueue(engine)
    try:
        with pytest.raises(ValueError, match="the queue begins and commits each batch itself"):
            queue.execute(statement)
        with pytest.raises(ValueError):
            queue.submit(text(statement))
        assert queue.execute(INSERT, {"producer": "after", "seq": 1}).rowcount == 1
    finally:
        queue.close()


def test_a_function_that_writes_through_its_own_queue_is_refused_not_deadlocked(engine):
    queue = turboalchemy.WriteQueue(engine)

    def reenter(conn):
        return queue.execute(INSERT, {"producer": "inner", "seq": 1})

    try:
        with pytest.raises(turboalchemy.QueueReentryError, match="write through the Connection"):
            queue.execute(reenter)  # led by this thread
        with pytest.raises(turboalchemy.QueueReentryError):
            queue.submit(reenter).result(timeout=10)  # run by the queue's thread
        assert queue.execute(INSERT, {"producer": "after", "seq": 2}).rowcount == 1
    finally:
        queue.close()  # returns: nothing is stuck


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
def test_an_item_raising_a_base_exception_gets_it_as_its_answer_and_the_queue_goes_on(engine, raised):
    queue = turboalchemy.WriteQueue(engine)

    def boom(conn):
        raise raised

    try:
        failing = queue.submit(boom)  # run by the queue's own thread
        with pytest.raises(type(raised)):
            failing.result(timeout=10)
        later = [queue.submit(INSERT, {"producer": "later", "seq": n}) for n in range(5)]
        assert [f.result(timeout=10).rowcount for f in later] == [1] * 5  # the writer thread is alive
    finally:
        queue.close()


def test_a_signal_while_this_thread_leads_a_batch_leaves_no_other_caller_unanswered(engine, monkeypatch):
    """Ctrl-C lands in the leading thread between two items of a batch that holds other callers' writes: its
    own write fails with KeyboardInterrupt, the transaction rolls back, and every other caller's write goes back
    to the queue, to be stored and answered."""
    queue = turboalchemy.WriteQueue(engine, max_wait_ms=5000)
    queue._last_batch = 4  # as after four writers committed together: the next leader gathers four writes
    real = queue._savepoint
    calls = {"n": 0}

    def savepoint_then_interrupt(conn, sql):
        if threading.get_ident() == threading.main_thread().ident:  # only while this (the leading) thread writes
            calls["n"] += 1
            if calls["n"] == 2:  # the second item's savepoint: one item of the batch has run
                raise KeyboardInterrupt
        real(conn, sql)

    def write(seq):
        return lambda conn: conn.execute(INSERT, {"producer": "other", "seq": seq})

    others: list = []

    def join_the_batch(seq):
        until(lambda: queue._writing)  # the main thread has claimed the writer and is gathering
        others.append(queue.submit(write(seq)))

    monkeypatch.setattr(queue, "_savepoint", savepoint_then_interrupt)
    callers = [threading.Thread(target=join_the_batch, args=(n,)) for n in range(3)]
    try:
        for c in callers:
            c.start()
        with pytest.raises(KeyboardInterrupt):
            queue.execute(write(99))
        queue.max_wait = 0  # the requeued three: no gathering wait for a fourth
        for c in callers:
            c.join(10)
        assert calls["n"] == 2  # the interrupt landed in this thread, leading the batch
        monkeypatch.setattr(queue, "_savepoint", real)
        assert len(others) == 3 and all(f.exception(timeout=10) is None for f in others)  # written after all
    finally:
        queue.close()
    with engine.connect() as conn:
        seqs = sorted(r[0] for r in conn.execute(text("SELECT seq FROM events WHERE producer = 'other'")))
    assert seqs == [0, 1, 2]


def test_bulk_insert_through_the_queue_tells_the_truth_about_a_bad_row(engine):
    """A bad row at 12,345 of 30,000: named as row 12,345 of the stream, 10,000 rows committed (two whole
    chunks), nothing after the failing chunk; it used to say row 2,345, committed=None, and commit 25,000."""
    rows = [{"producer": "bulk", "seq": n} for n in range(30_000)]
    rows[12_345] = {"producer": None, "seq": 12_345}  # NOT NULL
    queue = turboalchemy.WriteQueue(engine)
    try:
        with pytest.raises(turboalchemy.BulkWriteError) as caught:
            queue.bulk_insert(events, iter(rows), chunk_size=5000)
        batches = queue.stats.batches
    finally:
        queue.close()
    assert (caught.value.row, caught.value.column, caught.value.committed) == (12_345, "producer", 10_000)
    assert "10,000 rows were committed before it, nothing after it" in str(caught.value)
    assert "transaction is still open" not in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(seq) FROM events")).one() == (10_000, 9_999)
    assert batches == 3  # one chunk per commit: the two that committed and the one that failed


def test_bulk_upsert_through_the_queue_commits_chunk_by_chunk(engine):
    queue = turboalchemy.WriteQueue(engine)
    try:
        assert queue.bulk_insert(events, ({"id": n, "producer": "u", "seq": n} for n in range(12_000))) == 12_000
        assert (
            queue.bulk_upsert(
                events, ({"id": n, "producer": "v", "seq": -n} for n in range(0, 12_000, 2)), conflict=["id"]
            )
            == 6_000
        )
        assert queue.stats.largest_batch == 1  # each chunk its own item, never all chunks in one commit
    finally:
        queue.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE producer = 'v'")).scalar() == 6_000


def test_close_with_a_timeout_reports_what_it_could_not_finish(engine):
    queue = turboalchemy.WriteQueue(engine)
    release = threading.Event()
    slow = queue.submit(lambda conn: release.wait(10))  # holds the queue's thread
    until(lambda: queue._writing)
    behind = [queue.submit(INSERT, {"producer": "behind", "seq": n}) for n in range(3)]
    assert queue.close(timeout=0.05) == 4  # the slow item and the three behind it
    release.set()
    assert all(f.result(timeout=10).rowcount == 1 for f in behind) and slow.result(timeout=10) is True
    queue._thread.join(10)
    assert queue._connection.closed  # released by the queue's thread once it had answered everything
    assert turboalchemy.WriteQueue(engine).close() == 0
