"""End to end: the study's commands run in fresh processes, verify their cells, survive SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from sqlite_bench import results
from sqlite_bench.cell import verify
from sqlite_bench.cli import before_after, scale_benchmark
from sqlite_bench.generator import RowGenerator
from sqlite_bench.runner import plan_cells
from sqlite_bench.summary import ratios, spreads, verdict

pytestmark = pytest.mark.slow
FAST = ["--sample-interval", "0.2"]


def into(tmp_path: Path) -> list[str]:
    """A run's results in tmp_path/out and its cells' databases in tmp_path (the tests read `out`)."""
    return ["--output-dir", str(tmp_path / "out"), "--db-dir", str(tmp_path)]


def _expected_checkpoints(scales, phases):
    return [(phase, rows) for phase in phases for rows in scales]


def test_the_smoke_run_verifies_every_cell_and_conforms_to_the_schema(tmp_path, capsys):
    out = tmp_path / "out"
    code = before_after(
        [
            "--scales",
            "5K,10K",
            "--mode",
            "both",
            "--chunk-size",
            "2500",
            *into(tmp_path),
            *FAST,
        ]
    )
    assert code == 0
    data = results.load(out / "results.json")
    jsonschema.validate(data, results.json_schema())
    assert [c["id"] for c in data["cells"]] == ["orm/baseline@2500", "raw/baseline@2500"]
    for cell in data["cells"]:
        assert cell["status"] == "done" and cell["verification"]["passed"]
        assert cell["verification"]["row_count"] == 10_000
        assert [(c["phase"], c["rows"]) for c in cell["checkpoints"]] == _expected_checkpoints(
            [5_000, 10_000], ["insert", "upsert"]
        )
        assert cell["profile_readback"]["journal_mode"] == "wal"
        assert cell["checkpoints"][-1]["cumulative"]["batches"]["count"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("sqlite_bench-")]  # passed cells clean up
    printed = capsys.readouterr().out
    assert "raw ÷ orm, equal 2.5K chunks" in printed and "rows/s" in printed


ROUNDING_S = 1e-4  # what results.json's rounding of write_s and of the batch latencies can take off


def test_pool_configs_write_from_as_many_threads_as_connections(tmp_path):
    out = tmp_path / "out"
    code = scale_benchmark(
        [
            "--scales",
            "20K",
            "--configs",
            "pool_3",
            "--mode",
            "raw",
            "--chunk-size",
            "1000",
            *into(tmp_path),
            *FAST,
        ]
    )
    assert code == 0
    (cell,) = results.load(out / "results.json")["cells"]
    assert cell["writers"] == 3 and cell["verification"]["passed"]
    (checkpoint,) = cell["checkpoints"]
    assert checkpoint["segment"]["batches"]["count"] == 20
    # what the cell did, not what its config says: three threads wrote, each on its own connection
    assert checkpoint["activity"]["writer_threads"] == 3
    assert checkpoint["activity"]["connections"] >= 3
    # timed from the first write to the last commit, never wall time minus an overlapped generation time
    segment = checkpoint["segment"]
    assert segment["write_s"] <= segment["wall_s"] and segment["wall_rows_per_s"] <= segment["rows_per_s"]
    longest = max(checkpoint["batch_latencies_ms"]) / 1000
    written = segment["write_s"] + ROUNDING_S  # (the results file keeps 0.1 ms of it, and 1 µs of each latency)
    assert written >= longest and written >= sum(checkpoint["batch_latencies_ms"]) / 1000 / 3


def test_a_one_writer_cell_times_its_writes_and_samples_memory_as_it_goes(tmp_path):
    """Write time is the chunks' own latencies added up (generation is not counted as writing), and the RSS
    sampler really ran beside the writes in the cell's own process."""
    out = tmp_path / "out"
    code = before_after(
        [
            "--scales",
            "20K",
            "--mode",
            "orm",
            "--phases",
            "insert",
            "--chunk-size",
            "1000",
            *into(tmp_path),
            "--sample-interval",
            "0.02",
        ]
    )
    assert code == 0
    (cell,) = results.load(out / "results.json")["cells"]
    (checkpoint,) = cell["checkpoints"]
    latencies = sum(checkpoint["batch_latencies_ms"]) / 1000
    segment = checkpoint["segment"]
    assert abs(segment["write_s"] - latencies) <= 0.05 * latencies + 0.01
    assert segment["generation_s"] > 0 and segment["write_s"] < segment["wall_s"]
    activity = checkpoint["activity"]
    assert activity["writer_threads"] == 1 and activity["pid"] != os.getpid()  # written in its own process
    assert activity["sampler_running"] and activity["sampler_samples"] >= 3
    assert len(cell["rss_samples"]) > len(cell["checkpoints"])  # samples beside the checkpoints' own


def test_study_chunks_add_the_published_unequal_cells():
    cells = plan_cells(["orm", "raw"], ["baseline"], study_chunks=True)
    assert [(c["id"], c["chunk_size"], c["variant"]) for c in cells] == [
        ("orm/baseline", 5_000, "fair"),
        ("raw/baseline", 5_000, "fair"),
        ("raw/baseline@50000", 50_000, "study-chunks"),
    ]


def test_verification_fails_a_cell_with_a_missing_or_stale_row(bench_engine):
    engine = bench_engine()
    gen = RowGenerator(3)
    from sqlite_bench.paths import PATHS

    writer = PATHS["raw"].open(engine)
    writer.insert(list(gen.rows(0, 1_000)))
    assert verify(engine, gen, 1_000, ["insert"])["passed"]
    writer.upsert(list(gen.rows(0, 999, "upsert")))  # one row keeps its insert payload
    writer.close()
    report = verify(engine, gen, 1_000, ["insert", "upsert"])
    assert not report["passed"]
    assert any("insert payload" in p for p in report["problems"])
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM bench_rows WHERE entity_id = 0 AND sub_entity_id = 0")
    assert any("row count" in p for p in verify(engine, gen, 1_000, ["insert", "upsert"])["problems"])


def _rows_in(db_path: str) -> int:
    """Rows committed so far, read by a separate connection (WAL lets it read beside the writer)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM bench_rows").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the table is not there yet
    finally:
        conn.close()


def _wait_for(predicate, path: Path, deadline_s: float):
    """Poll the results file until `predicate(data)` holds; the runner writes it atomically."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.exists():
            data = json.loads(path.read_text())
            if predicate(data):
                return data
        time.sleep(0.02)
    raise AssertionError(f"condition not reached within {deadline_s}s")


def test_a_run_killed_after_a_cell_finished_keeps_that_cell_on_resume(tmp_path):
    out = tmp_path / "out"
    argv = [
        "--scales",
        "4K,8K",
        "--mode",
        "both",
        "--chunk-size",
        "500",
        *into(tmp_path),
        *FAST,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlite_bench.before_after", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = out / "results.json"
    try:
        at_kill = _wait_for(lambda d: d["cells"][0]["status"] == "done" and d["cells"][1]["checkpoints"], target, 90)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = at_kill["cells"][0]
    resumed = subprocess.run(
        [sys.executable, "-m", "sqlite_bench.before_after", "--resume", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    data = results.load(target)
    kept = data["cells"][0]
    assert kept["status"] == "done" and kept["checkpoints"] == finished["checkpoints"]  # not run again, not lost
    assert data["cells"][1]["status"] == "done" and data["cells"][1]["verification"]["passed"]


@pytest.mark.parametrize("kill_after", [1, 4], ids=["mid-insert", "mid-upsert"])
def test_a_run_killed_with_sigkill_resumes_to_the_same_counts_without_duplicates(tmp_path, kill_after):
    out = tmp_path / "out"
    scales, phases = [4_000, 8_000, 12_000], ["insert", "upsert"]
    argv = [
        "--scales",
        "4K,8K,12K",
        "--mode",
        "both",
        "--chunk-size",
        "500",
        *into(tmp_path),
        *FAST,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlite_bench.before_after", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = out / "results.json"

    def past_a_checkpoint(data) -> bool:
        cell = data["cells"][0]
        if len(cell["checkpoints"]) < kill_after:
            return False
        if kill_after > 1:
            return True
        # mid-insert: wait until chunks past the checkpoint are committed, so the resume must remove them
        return _rows_in(cell["db_path"]) > cell["checkpoints"][-1]["rows"]

    try:
        at_kill = _wait_for(past_a_checkpoint, target, 60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # runner and cell process together, as a crash would
        proc.wait()
    orm = at_kill["cells"][0]
    assert orm["status"] == "running" and len(orm["checkpoints"]) < len(scales) * len(phases)
    committed_at_kill = _rows_in(orm["db_path"])

    resumed = subprocess.run(
        [sys.executable, "-m", "sqlite_bench.before_after", "--resume", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    data = results.load(target)
    jsonschema.validate(data, results.json_schema())
    assert [c["id"] for c in data["cells"]] == ["orm/baseline@500", "raw/baseline@500"]
    assert [i["resumed"] for i in data["invocations"]] == [False, True]
    for cell in data["cells"]:
        assert cell["status"] == "done", cell["error"]
        assert [(c["phase"], c["rows"]) for c in cell["checkpoints"]] == _expected_checkpoints(scales, phases)
        assert cell["verification"]["row_count"] == 12_000 and cell["verification"]["passed"]
        assert cell["checkpoints"][-1]["cumulative"]["batches"]["count"] == 24  # every chunk once, none twice
    assert data["cells"][0]["attempts"] == 2
    if kill_after == 1:
        assert committed_at_kill > orm["checkpoints"][-1]["rows"]  # there was work past the checkpoint to undo
        assert f"removed {committed_at_kill - orm['checkpoints'][-1]['rows']:,} rows" in resumed.stderr
    assert data["cells"][0]["checkpoints"][: len(orm["checkpoints"])] == orm["checkpoints"]  # earlier work kept


def test_resuming_from_a_missing_file_says_so(tmp_path, capsys):
    assert before_after(["--resume", str(tmp_path / "nowhere.json")]) == 2
    assert "cannot resume from" in capsys.readouterr().err


def test_the_curve_plot_is_a_png_with_one_series_per_cell(tmp_path):
    from sqlite_bench.cli import plot_curve
    from sqlite_bench.plots import throughput_over_rows

    out = tmp_path / "out"
    assert (
        scale_benchmark(
            [
                "--scales",
                "4K,8K",
                "--configs",
                "baseline",
                "--mode",
                "raw,turbo",
                "--key",
                "uuid4,uuid7",
                "--chunk-size",
                "1000",
                *into(tmp_path),
                *FAST,
            ]
        )
        == 0
    )
    data = results.load(out / "results.json")
    labels = throughput_over_rows([data], tmp_path / "curve.png")
    assert labels == [
        "raw, study table + uuid4 keys, baseline, 1K-row chunks",
        "turbo, study table + uuid4 keys, baseline, 1K-row chunks",
        "raw, study table + uuid7 keys, baseline, 1K-row chunks",
        "turbo, study table + uuid7 keys, baseline, 1K-row chunks",
    ]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curve([str(out / "results.json"), "--out", str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").stat().st_size > 10_000


def test_repeat_interleaves_runs_and_the_summary_gives_medians_ranges_and_verdicts(tmp_path, capsys):
    cells = plan_cells(["orm", "raw"], ["baseline"], repeat=3)
    assert [c["id"] for c in cells] == [
        f"{p}/baseline#{r}" for r in (1, 2, 3) for p in ("orm", "raw")
    ]  # run 1 of every cell, then run 2, ...
    out = tmp_path / "out"
    code = before_after(
        [
            "--scales",
            "4K",
            "--mode",
            "orm,raw",
            "--repeat",
            "2",
            "--chunk-size",
            "1000",
            *into(tmp_path),
            *FAST,
        ]
    )
    assert code == 0
    data = results.load(out / "results.json")
    assert [c["repeat"] for c in data["cells"]] == [1, 1, 2, 2]
    spread = {(r["path"], r["phase"]): r for r in spreads(data)}
    orm = spread[("orm", "insert")]
    rates = [c["checkpoints"][0]["cumulative"]["rows_per_s"] for c in data["cells"] if c["path"] == "orm"]
    assert orm["runs"] == 2 and orm["rows_per_s"][1:] == (min(rates), max(rates))
    assert "median and range over 2 interleaved runs" in capsys.readouterr().out


def test_a_ratio_is_a_win_only_when_the_ranges_do_not_overlap():
    assert verdict([110, 120, 130], [90, 100, 105]) == "win"
    assert verdict([80, 85], [90, 100]) == "loss"
    assert verdict([95, 120], [90, 100]) == "overlap"


def test_sqlite_modules_run_side_by_side_and_every_ratio_stays_within_one_module(tmp_path, capsys):
    pytest.importorskip("pysqlite3.dbapi2", reason="--sqlite pysqlite3 needs the [sqlite] extra")
    cells = plan_cells(["raw", "turbo"], ["baseline"], sqlite=("stdlib", "pysqlite3"), repeat=2)
    assert [c["id"] for c in cells[:4]] == [
        "raw/baseline#1",
        "turbo/baseline#1",
        "raw/baseline+pysqlite3#1",
        "turbo/baseline+pysqlite3#1",
    ]
    out = tmp_path / "out"
    argv = ["--scales", "4K", "--mode", "raw,turbo,engine", "--sqlite", "stdlib,pysqlite3", "--repeat", "2"]
    code = before_after([*argv, "--chunk-size", "1000", *into(tmp_path), *FAST])
    assert code == 0
    data = results.load(out / "results.json")
    import pysqlite3.dbapi2 as pysqlite3

    versions = {(c["sqlite"], c["sqlite_version"]) for c in data["cells"]}
    assert versions == {("stdlib", sqlite3.sqlite_version), ("pysqlite3", pysqlite3.sqlite_version)}
    spread = {(r["path"], r["phase"]): r for r in spreads(data)}
    assert spread[("turbo+pysqlite3", "insert")]["vs_stdlib"] is not None  # pysqlite3 ÷ stdlib, run by run
    assert spread[("turbo+pysqlite3", "insert")]["against_raw"] != "-"  # judged against raw on its own module
    assert spread[("turbo", "insert")]["vs_stdlib"] is None
    cell = {(c["path"], c["sqlite"], c["repeat"]): c for c in data["cells"]}
    for run in (1, 2):  # × raw compares cells of one module and one run
        turbo, raw = cell[("turbo", "pysqlite3", run)], cell[("raw", "pysqlite3", run)]
        [ratio] = [
            r for r in ratios(data) if r["path"] == "turbo+pysqlite3" and r["phase"] == "insert" and r["repeat"] == run
        ]
        rate = lambda c: next(cp for cp in c["checkpoints"] if cp["phase"] == "insert")["cumulative"]["rows_per_s"]  # noqa: E731
        assert ratio["vs_raw"] == pytest.approx(rate(turbo) / rate(raw))
    assert "× stdlib" in capsys.readouterr().out


def test_sqlite_modules_are_refused_for_a_postgresql_run(tmp_path):
    with pytest.raises(SystemExit, match="--sqlite"):
        before_after(["--db", "postgresql://x@127.0.0.1/y", "--sqlite", "pysqlite3", "--output-dir", str(tmp_path)])
