"""The library's tools on databases the harness made: `turboalchemy doctor` and `copy` read the benchmark's table."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import create_engine

import turboalchemy
from sqlite_bench.generator import RowGenerator
from sqlite_bench.paths import PATHS


def test_a_database_made_by_the_harness_gets_a_clean_report(tmp_path, bench_engine):
    engine = bench_engine("harness")
    writer = PATHS["raw"].open(engine)
    writer.insert(list(RowGenerator(seed=1).rows(0, 2_000, "insert")))
    writer.close()
    engine.dispose()
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(tmp_path / "harness.db")], capture_output=True, text=True
    )
    report = turboalchemy.health(tmp_path / "harness.db")
    red = [f.what for f in report.flags if f.level == "red"]
    # the only red flag there may be is this machine's SQLite, if it has the WAL-reset bug; none for the file
    assert all(what.startswith("SQLite version:") for what in red), red
    assert out.returncode == (0 if report.ok else 1), out.stdout + out.stderr
    assert ("health: OK" in out.stdout) is report.ok
    assert "random_primary_key" in out.stdout and "redundant_index" in out.stdout  # advice, not red flags


def test_the_cli_copies_the_harness_database_into_postgresql(tmp_path, postgres_url, bench_engine):
    engine = bench_engine("harness")
    writer = PATHS["raw"].open(engine)
    writer.insert(list(RowGenerator(seed=3).rows(0, 3_000, "insert")))
    writer.close()
    engine.dispose()
    pg = create_engine(postgres_url)
    with pg.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_rows")
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "turboalchemy",
                "copy",
                str(tmp_path / "harness.db"),
                postgres_url,
                "--chunk-size",
                "1000",
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "3,000 rows" in out.stdout
        with pg.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(DISTINCT row_id) FROM bench_rows").scalar() == 3_000
    finally:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_rows")
        pg.dispose()


def test_doctor_names_the_random_key_and_the_redundant_index_of_the_harness_table(tmp_path):
    """The benchmark's own study-schema database, made by the harness, read by `turboalchemy doctor`."""
    from sqlite_bench.cli import before_after

    assert (
        before_after(
            [
                "--scales",
                "5K",
                "--mode",
                "raw",
                "--phases",
                "insert",
                "--keep-db",
                "--db-dir",
                str(tmp_path),
                "--output-dir",
                str(tmp_path / "out"),
                "--sample-interval",
                "0.2",
            ]
        )
        == 0
    )
    (db,) = tmp_path.glob("sqlite_bench-*/bench.db")
    out = subprocess.run([sys.executable, "-m", "turboalchemy", "doctor", str(db)], capture_output=True, text=True)
    assert out.returncode == (0 if turboalchemy.health(db).ok else 1), out.stderr  # 1: an affected SQLite
    assert "[random_primary_key] bench_rows.row_id" in out.stdout and "uuid7_primary_key" in out.stdout
    assert "[redundant_index] index ix_bench_rows_tenant_id" in out.stdout
    assert 'DROP INDEX "ix_bench_rows_tenant_id"' in out.stdout
