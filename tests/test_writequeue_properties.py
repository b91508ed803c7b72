"""The WriteQueue's promise under random work: every submit is answered exactly once, and an item answered OK is
stored (an item answered with an error is not). Each seed draws threads that submit, lead batches (execute) or
await (aexecute) a random mix: plain inserts, inserts that fail (a duplicate key), functions that write and
return, functions raising an Exception, SystemExit or KeyboardInterrupt, functions that write through their own
queue (reentrancy), and transaction-control statements."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import Future

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text

import turboalchemy

from .dbapi import SQLITE

metadata = MetaData()
marks = Table("marks", metadata, Column("id", Integer, primary_key=True), Column("who", String, nullable=False))
INSERT = text("INSERT INTO marks (id, who) VALUES (:id, :who)")
KINDS = ["insert", "duplicate", "function", "raises", "system exit", "interrupt", "reentrant", "control"]


class Boom(Exception):
    pass


def item(kind: str, ident: int, queue: turboalchemy.WriteQueue):
    """(work, params, whether it stores its id when answered OK)."""
    row = {"id": ident, "who": kind}
    if kind == "insert":
        return INSERT, row, True
    if kind == "duplicate":
        return INSERT, {"id": 0, "who": kind}, False  # id 0 is stored before the run: always refused
    if kind == "control":
        return random.choice(["ROLLBACK", "COMMIT", "RELEASE turboalchemy_item", "SAVEPOINT x"]), None, False

    def fn(conn):
        if kind == "reentrant":
            return queue.execute(INSERT, row)  # refused: would wait for itself
        conn.execute(INSERT, row)
        if kind == "raises":
            raise Boom(ident)
        if kind == "system exit":
            raise SystemExit(ident)
        if kind == "interrupt":
            raise KeyboardInterrupt
        return ident

    return fn, None, kind == "function"


@pytest.mark.parametrize("seed", range(12))
def test_every_submit_is_answered_once_and_every_ok_is_stored(tmp_path, seed):
    rng = random.Random(seed)
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'q.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(INSERT, {"id": 0, "who": "seed"})
    queue = turboalchemy.WriteQueue(engine, max_batch=rng.choice([1, 4, 64]), max_wait_ms=rng.choice([0, 2]))
    answers: dict[int, list[tuple[str, object]]] = {}  # ident -> every answer it got (exactly one expected)
    stores: dict[int, bool] = {}
    lock = threading.Lock()

    def answered(ident: int, outcome: str, value: object) -> None:
        with lock:
            answers.setdefault(ident, []).append((outcome, value))

    def producer(base: int, how: str) -> None:
        local = random.Random(seed * 1000 + base)
        pending: list[tuple[int, Future]] = []
        for n in range(25):
            ident = base + n
            work, params, stores[ident] = item(local.choice(KINDS), ident, queue)
            try:
                if how == "submit":
                    pending.append((ident, queue.submit(work, params)))
                    continue
                if how == "execute":
                    value = queue.execute(work, params)  # this thread may lead the batch
                else:
                    value = asyncio.run(queue.aexecute(work, params))
                answered(ident, "ok", value)
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are answers here
                answered(ident, "error", exc)
        for ident, future in pending:
            try:
                answered(ident, "ok", future.result(timeout=30))
            except BaseException as exc:  # noqa: BLE001
                answered(ident, "error", exc)

    ways = [rng.choice(["submit", "execute", "aexecute"]) for _ in range(4)]
    threads = [threading.Thread(target=producer, args=(1000 * (i + 1), how)) for i, how in enumerate(ways)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a caller is still waiting"
    assert queue.close(timeout=10) == 0  # nothing left unanswered
    engine.dispose()

    assert sorted(answers) == sorted(stores) and all(len(a) == 1 for a in answers.values())
    conn = SQLITE.connect(tmp_path / "q.db")
    stored = {r[0] for r in conn.execute("SELECT id FROM marks WHERE id > 0")}
    conn.close()
    ok = {ident for ident, [(outcome, _)] in answers.items() if outcome == "ok"}
    assert ok >= {i for i, s in stores.items() if s} - {i for i, [(o, _)] in answers.items() if o == "error"}
    assert stored == {i for i in ok if stores[i]}  # answered OK: stored; answered with an error: not
    for ident, [(outcome, value)] in answers.items():
        if not stores[ident]:  # every kind that must not store is refused or fails
            assert outcome == "error", (ident, value)
