"""The harness on a PostgreSQL server (--db URL): every path, the server's own limit included, same results format."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url

from sqlite_bench import results
from sqlite_bench.cli import before_after
from sqlite_bench.paths import PATHS


def databases(url: str) -> set[str]:
    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname="postgres") as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'sqlite_bench_%'")}


def test_every_path_runs_verifies_and_cleans_up_on_postgresql(tmp_path, postgres_url, capsys):
    before = databases(postgres_url)
    out = tmp_path / "out"
    code = before_after(
        [
            "--db",
            postgres_url,
            "--scales",
            "3K,6K",
            "--mode",
            "all,copy_binary,adbc",
            "--chunk-size",
            "1500",
            "--output-dir",
            str(out),
            "--db-dir",
            str(tmp_path),
        ]
    )
    assert code == 0, capsys.readouterr().out
    data = results.load(out / results.FILENAME)
    results.validate(data)
    assert data["settings"]["db_url"].startswith("postgresql+psycopg://")
    assert {c["path"] for c in data["cells"]} == set(PATHS)  # every registered path: "all" and the server's peers
    for cell in data["cells"]:
        assert cell["status"] == "done" and cell["verification"]["passed"], cell["error"]
        assert cell["verification"]["row_count"] == 6_000
        assert cell["checkpoints"][-1]["files"]["db_bytes"] > 0
    assert databases(postgres_url) == before  # each cell's database was dropped once it passed


def test_the_engine_path_measures_the_server_alone_and_stores_what_raw_stores(tmp_path, postgres_url, capsys):
    """INSERT ... SELECT from a staging table loaded untimed: the same rows and upserts as the raw path."""
    out = tmp_path / "out"
    code = before_after(
        [
            "--db",
            postgres_url,
            "--scales",
            "4K",
            "--mode",
            "raw,engine",
            "--chunk-size",
            "1000",
            "--output-dir",
            str(out),
            "--db-dir",
            str(tmp_path),
        ]
    )
    assert code == 0, capsys.readouterr().out
    cells = {c["path"]: c for c in results.load(out / results.FILENAME)["cells"]}
    assert cells["engine"]["verification"]["passed"], cells["engine"]["error"]
    assert [cp["phase"] for cp in cells["engine"]["checkpoints"]] == ["insert", "upsert"]
    assert "× engine" in capsys.readouterr().out
