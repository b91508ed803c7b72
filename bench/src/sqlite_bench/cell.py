"""One benchmark cell in its own process: `python -m sqlite_bench.cell SPEC.json`.

The parent (runner.py) starts a fresh process per cell so memory, caches and imports never carry
over between cells. This process writes the cell's rows, times each chunk, and reports events to
the parent as JSON lines on stdout (anything else printed goes to stderr): started, resumed,
progress, checkpoint, verified, error, done. It keeps no results itself; the parent owns the file.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from turboalchemy import count_queries

from .configs import config_named, open_engine
from .generator import Phase, RowGenerator
from .monitor import RssSampler, memory_breakdown
from .paths import PATHS, Writer, error_kind
from .schema import TABLE, create_schema
from .server import is_server

Emit = Callable[..., None]
_PROGRESS_EVERY_S = 0.25


def file_sizes(db_path: str, engine: Engine | None = None) -> dict[str, int]:
    """The database file and its WAL and shared-memory files; on PostgreSQL, the database's size."""
    if is_server(db_path):
        assert engine is not None
        with engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
        return {"db_bytes": int(size), "wal_bytes": 0, "shm_bytes": 0}
    sizes = {}
    for suffix, key in (("", "db_bytes"), ("-wal", "wal_bytes"), ("-shm", "shm_bytes")):
        try:
            sizes[key] = os.path.getsize(db_path + suffix)
        except OSError:
            sizes[key] = 0
    return sizes


def trim_after(engine: Engine, rows: int) -> int:
    """Delete rows past stream position `rows` (chunks committed after the last checkpoint)."""
    with engine.begin() as conn:
        result = conn.execute(
            text("DELETE FROM bench_rows WHERE bucket_index * 1000000 + sub_entity_id * 1000 + entity_id >= :n"),
            {"n": rows},
        )
        return result.rowcount


def verify(engine: Engine, generator: RowGenerator, rows: int, phases: list[Phase]) -> dict[str, Any]:
    """Row count, PRAGMA quick_check, and sampled rows equal to what the last phase wrote."""
    problems: list[str] = []
    last = phases[-1]
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(TABLE)).scalar_one()
        sqlite = engine.dialect.name == "sqlite"
        quick_check = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check")] if sqlite else ["ok"]
        if count != rows:
            problems.append(f"row count {count:,} != expected {rows:,}")
        if quick_check != ["ok"]:
            problems.append(f"quick_check: {'; '.join(quick_check[:5])}")
        if last == "upsert":
            stale = conn.execute(
                select(func.count()).select_from(TABLE).where(TABLE.c.updated_at.is_(None))
            ).scalar_one()
            if stale:
                problems.append(f"{stale:,} rows still carry the insert payload after the upsert pass")
        samples = sorted({0, rows - 1, *(rows * k // 19 for k in range(19))})
        for n in samples:
            expected = generator.row(n, last)
            key = {c: expected[c] for c in ("tenant_id", "entity_id", "sub_entity_id", "bucket_index")}
            stored = conn.execute(select(TABLE).filter_by(**key)).mappings().first()
            if stored is None:
                problems.append(f"row {n} is missing")
            elif dict(stored) != expected:
                diff = sorted(c for c in expected if stored[c] != expected[c])
                problems.append(f"row {n} differs from the {last} payload in {', '.join(diff)}")
    return {
        "passed": not problems,
        "row_count": count,
        "expected_rows": rows,
        "quick_check": ("ok" if sqlite else "not run (PostgreSQL)")
        if quick_check == ["ok"]
        else "; ".join(quick_check[:5]),
        "sampled_rows": len(samples),
        "problems": problems,
    }


class CellRun:
    """Writes one cell's phases and reports its checkpoints."""

    def __init__(self, spec: dict[str, Any], emit: Emit) -> None:
        self.spec = spec
        self.emit = emit
        self.config = config_named(spec["config"])
        self.path = PATHS[spec["path"]]
        self.generator = RowGenerator(spec["seed"], key=spec.get("key", "uuid4"))
        self.instrumented: bool = spec["instrumented"]
        self.max_retries: int = spec["max_retries"]
        interval = spec["sample_interval"]
        self.sampler = RssSampler(interval) if self.instrumented and interval > 0 else None
        self.lock = threading.Lock()
        self.engine = open_engine(self.config, spec["db_path"], spec.get("sqlite", "stdlib"))
        self.connections: set[int] = set()  # every DBAPI connection the cell's engine handed out: what it used
        event.listen(self.engine, "checkout", lambda dbapi, _record, _proxy: self.connections.add(id(dbapi)))

    # -- writing -------------------------------------------------------------------------------
    def _write(self, writer: Writer, phase: Phase, rows: list[dict], errors: Counter[str]) -> int:
        """Write one chunk as one transaction; retry it whole on a lock error. Returns the retries."""
        operation = getattr(writer, phase)
        for attempt in range(self.max_retries + 1):
            try:
                operation(rows)
                return attempt
            except Exception as exc:
                kind = error_kind(exc)
                with self.lock:
                    errors[kind] += 1
                if kind != "locked" or attempt == self.max_retries:
                    raise
        raise AssertionError("unreachable")

    def segment(self, writers: list[Writer], phase: Phase, start: int, stop: int) -> dict[str, Any]:
        """Write rows start..stop-1; return its timings. Generation is timed apart from writing."""
        chunks = self.generator.chunks(start, stop, self.spec["chunk_size"], phase)
        latencies: list[float] = []
        errors: Counter[str] = Counter({"locked": 0, "integrity": 0, "other": 0})
        state = {"rows": start, "retries": 0, "last_emit": 0.0}
        record = self.instrumented
        threads: set[int] = set()  # the threads that wrote, and the window from the first write to the last commit
        window = [float("inf"), 0.0]

        def done(n: int, retries: int, began: float) -> None:
            now = time.perf_counter()
            with self.lock:
                threads.add(threading.get_ident())
                window[0], window[1] = min(window[0], began), max(window[1], now)
                if record:
                    latencies.append((now - began) * 1000)
                state["rows"] += n
                state["retries"] += retries
                if record and now - state["last_emit"] >= _PROGRESS_EVERY_S:
                    state["last_emit"] = now
                    self.emit(event="progress", phase=phase, rows=state["rows"])

        generation = 0.0
        began = time.perf_counter()
        if len(writers) == 1:
            writer = writers[0]
            prepare = getattr(writer, "prepare", None)
            while True:
                t0 = time.perf_counter()
                rows = next(chunks, None)
                if rows is not None and prepare is not None:
                    prepare(phase, rows)  # a path's untimed set-up (the engine path's staging load)
                t1 = time.perf_counter()
                generation += t1 - t0
                if rows is None:
                    break
                retries = self._write(writer, phase, rows, errors)
                done(len(rows), retries, t1)
            wall = time.perf_counter() - began
            write = wall - generation  # one writer: every chunk's write, back to back
        else:
            # Several writers: the producer's generation overlaps their writes (and competes with them for the
            # GIL), so subtracting it from wall time would flatter the rate. Time the writers instead, from the
            # first write to the last commit; rows / wall is reported beside it.
            produced = self._threaded(writers, phase, chunks, errors, done)
            wall = time.perf_counter() - began
            write = window[1] - window[0] if threads else wall
            generation = wall - write
            state["producer_s"] = produced
        return {
            "wall_s": wall,
            "generation_s": generation,
            "write_s": write,
            "batch_latencies_ms": [round(x, 3) for x in latencies],
            "errors": dict(errors),
            "retries": state["retries"],
            "activity": {  # what the cell actually did, for the tests (and a reader) to check
                "writer_threads": len(threads),
                "connections": len(self.connections),
                "pid": os.getpid(),
                "sampler_running": self.sampler is not None and self.sampler.running,
                "sampler_samples": self.sampler.background if self.sampler is not None else 0,
                "producer_s": round(state.get("producer_s", generation), 4),
            },
        }

    def _threaded(
        self,
        writers: list[Writer],
        phase: Phase,
        chunks: Any,
        errors: Counter[str],
        done: Callable[[int, int, float], None],
    ) -> float:
        """Pool configs: one thread per writer (each with its own session) takes chunks from a queue."""
        work: queue.Queue[list[dict] | None] = queue.Queue(maxsize=2 * len(writers))
        failures: list[BaseException] = []

        def run(writer: Writer) -> None:
            prepare = getattr(writer, "prepare", None)
            while (rows := work.get()) is not None:
                if failures:
                    continue  # drain the queue without writing once any writer has failed
                if prepare is not None:
                    prepare(phase, rows)
                began = time.perf_counter()
                try:
                    done(len(rows), self._write(writer, phase, rows, errors), began)
                except BaseException as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=run, args=(w,), name=f"writer-{i}") for i, w in enumerate(writers)]
        for thread in threads:
            thread.start()
        generation = 0.0
        try:
            while not failures:
                t0 = time.perf_counter()
                rows = next(chunks, None)
                generation += time.perf_counter() - t0
                if rows is None:
                    break
                work.put(rows)
        finally:
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join()
        if failures:
            raise failures[0]
        return generation

    # -- the cell ------------------------------------------------------------------------------
    def run(self) -> None:
        spec = self.spec
        if self.sampler:
            self.sampler.start()
        create_schema(self.engine, spec.get("schema", "study"))
        readback: dict[str, Any] = {}
        version = None
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                readback = self.config.profile.verify(conn.connection.dbapi_connection)
                version = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
        self.emit(event="started", pid=os.getpid(), profile=readback, sqlite_version=version)

        completed = {(c["phase"], c["rows"]) for c in spec["completed"]}
        if spec["completed"]:
            last = spec["completed"][-1]
            trimmed = trim_after(self.engine, last["rows"]) if last["phase"] == "insert" else 0
            self.emit(event="resumed", phase=last["phase"], rows=last["rows"], trimmed=trimmed)

        writers = [self.path.open(self.engine) for _ in range(spec["writers"])]
        counting = count_queries(self.engine) if spec.get("count_queries") else nullcontext(None)
        try:
            with counting as counted:
                for phase in spec["phases"]:
                    previous = 0
                    for scale in spec["scales"]:
                        if (phase, scale) not in completed:
                            self.checkpoint(phase, scale, previous, self.segment(writers, phase, previous, scale))
                        previous = scale
        finally:
            for writer in writers:
                writer.close()
        if counted is not None:
            self.emit(event="queries", **counted.as_dict())
        self.emit(event="verified", **verify(self.engine, self.generator, spec["scales"][-1], spec["phases"]))
        self.engine.dispose()
        if self.sampler:
            self.sampler.stop()
        self.emit(event="done")

    def checkpoint(self, phase: Phase, rows: int, previous: int, segment: dict[str, Any]) -> None:
        if self.sampler:
            self.sampler.sample()
            samples = self.sampler.take()
        else:
            samples = [(0.0, round(memory_breakdown()["rss_mb"] or 0.0, 1))]
        self.emit(
            event="checkpoint",
            phase=phase,
            rows=rows,
            segment_rows=rows - previous,
            peak_rss_mb=max(mb for _, mb in samples),
            rss_samples=samples,
            memory=memory_breakdown(),
            files=file_sizes(self.spec["db_path"], self.engine),
            **segment,
        )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the event stream
    lock = threading.Lock()

    def emit(**event: Any) -> None:
        line = json.dumps(event)
        with lock:
            channel.write(line + "\n")

    try:
        CellRun(spec, emit).run()
    except Exception as exc:
        emit(event="error", kind=error_kind(exc), message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
