"""Results: cumulative figures from stored segments, atomic replacement, schema conformance."""

import json

import pytest

from sqlite_bench import results


def _event(phase, rows, segment_rows, write_s, latencies, rss):
    return {
        "phase": phase,
        "rows": rows,
        "segment_rows": segment_rows,
        "wall_s": write_s + 0.5,
        "generation_s": 0.5,
        "write_s": write_s,
        "batch_latencies_ms": latencies,
        "peak_rss_mb": rss,
        "errors": {"locked": 0, "integrity": 0, "other": 0},
        "retries": 0,
        "memory": {"rss_mb": rss, "rss_anon_mb": rss, "rss_file_mb": 0.0, "sqlite_heap_mb": 1.0},
        "files": {"db_bytes": 1, "wal_bytes": 0, "shm_bytes": 0},
    }


def test_cumulative_figures_fold_every_earlier_segment_of_the_phase():
    cell = results.new_cell("raw/baseline", "raw", "baseline", 1000, 1, "fair", {})
    results.add_checkpoint(cell, _event("insert", 2000, 2000, 1.0, [400.0, 600.0], 50.0))
    second = results.add_checkpoint(cell, _event("insert", 5000, 3000, 2.0, [500.0, 700.0, 800.0], 40.0))
    upsert = results.add_checkpoint(cell, _event("upsert", 2000, 2000, 4.0, [2000.0, 2000.0], 45.0))
    assert second["segment"]["rows_per_s"] == 1500.0
    assert second["cumulative"]["rows_per_s"] == round(5000 / 3.0, 1)
    assert second["cumulative"]["write_s"] == 3.0 and second["cumulative"]["generation_s"] == 1.0
    assert second["cumulative"]["batches"]["count"] == 5
    assert second["cumulative"]["batches"]["p50_ms"] == 600.0
    assert second["cumulative"]["peak_rss_mb"] == 50.0
    assert upsert["cumulative"]["rows_per_s"] == 500.0  # phases are never mixed
    assert upsert["cumulative"]["batches"]["count"] == 2


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path):
    target = tmp_path / "results.json"
    results.write_atomic(target, {"n": 1})
    with pytest.raises(TypeError):
        results.write_atomic(target, {"n": 2, "bad": object()})
    assert json.loads(target.read_text())["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_a_file_from_another_schema_version_is_refused(tmp_path):
    target = tmp_path / "old.json"
    target.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(ValueError, match="schema version 0"):
        results.load(target)
