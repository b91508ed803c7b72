"""The comparison's API contract: every data layer answers the same requests with the same status and JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from sqlite_bench.orm_compare.app import LAYERS, Base, create_schema
from sqlite_bench.orm_compare.contract import check, normalise


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    made = f"sqlite:///{tmp_path / 'api.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_engine(made)
    Base.metadata.drop_all(engine)
    engine.dispose()
    create_schema(made)
    yield made
    engine = create_engine(made)
    Base.metadata.drop_all(engine)
    engine.dispose()


def _in_own_process(layer: str, url: str) -> list[tuple[int, object]]:
    """Each layer in a fresh process, as the benchmark serves it (Tortoise keeps process-wide state)."""
    code = (
        "import asyncio, json, sys; from sqlite_bench.orm_compare.contract import conversation; "
        "print(json.dumps(asyncio.run(conversation(sys.argv[1], sys.argv[2]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, layer, url],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return [tuple(pair) for pair in json.loads(out.stdout.strip().splitlines()[-1])]


def test_every_layer_answers_the_contract_identically(url):
    answers = {layer: _in_own_process(layer, url if i == 0 else _fresh(url)) for i, layer in enumerate(LAYERS)}
    reference = answers["sqlalchemy"]
    assert all(check(answers[layer]) == [] for layer in LAYERS)
    assert [s for s, _ in reference] == [201, 200, 200, 200, 409, 422, 422, 422, 422, 404, 404, 404, 204, 404, 404]
    assert reference[1][1] == {"id": reference[0][1]["id"], "name": "Ada", "email": "ada@example.org"}
    assert [o["cents"] for o in reference[2][1]] == [0, 100, 200]
    assert reference[3][1]["name"] == "Ada L." and "missing field" in reference[6][1]["detail"]
    for layer in ("tortoise", "turboalchemy"):
        assert normalise(answers[layer]) == normalise(reference), layer


def _fresh(url: str) -> str:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    create_schema(url)
    return url


def test_a_layer_served_by_uvicorn_takes_load_from_the_generator(tmp_path):
    import socket
    import time

    from sqlite_bench.orm_compare.loadgen import Endpoint, run_load

    url = f"sqlite:///{tmp_path / 'served.db'}"
    create_schema(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sqlite_bench.orm_compare.app", "turboalchemy", url, str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        mix = [
            Endpoint("create", 1, lambda rng: ("POST", "/users", {"name": "n", "email": f"{rng.random()}@x.org"})),
            Endpoint("read", 3, lambda rng: ("GET", f"/users/{rng.randint(1, 50)}", None)),
        ]
        result = asyncio.run(
            run_load("127.0.0.1", port, mix, concurrency=8, max_requests=600, duration_s=20, server_pid=server.pid)
        )
    finally:
        server.terminate()
        server.wait(10)
    assert result.requests == 600 and result.server_errors == 0 and result.peak_rss_mb > 10
    created = result.summary()["endpoints"]["create"]["requests"]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM users").scalar() == created
    engine.dispose()


def test_the_comparison_runs_every_layer_and_reports_the_decision_table(tmp_path):
    from sqlite_bench import results
    from sqlite_bench.orm_compare import decision_rows
    from sqlite_bench.orm_compare.__main__ import main

    assert (
        main(
            [
                "--db",
                "sqlite",
                "--concurrency",
                "4",
                "--duration",
                "1s",
                "--seed-users",
                "300",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = results.load(tmp_path / results.FILENAME)
    results.validate(data)
    rows = decision_rows(data)
    assert {r["layer"] for r in rows} == set(LAYERS) and all(r["requests"] > 0 and not r["flagged"] for r in rows)
    assert [r["vs_sqlalchemy"] for r in rows if r["layer"] == "sqlalchemy"] == [1.0]
    assert "the decision table" in (tmp_path / "report" / "report.md").read_text()


def test_an_update_racing_a_delete_is_a_404_not_a_500(tmp_path, monkeypatch):
    """Found by the CI run of the benchmark: SQLAlchemy's ORM raised StaleDataError (a 500) when another
    request deleted the user between update_user's read and its UPDATE."""
    import sqlite3

    from sqlalchemy.ext.asyncio import AsyncSession

    from sqlite_bench.orm_compare.app import SqlAlchemyStore

    url = f"sqlite:///{tmp_path / 'race.db'}"
    create_schema(url)
    real_get = AsyncSession.get

    async def get_then_lose_the_race(self, *args, **kwargs):
        found = await real_get(self, *args, **kwargs)
        other = sqlite3.connect(tmp_path / "race.db")  # another request deletes the user now
        other.execute("DELETE FROM users")
        other.commit()
        other.close()
        return found

    async def run():
        store = SqlAlchemyStore(url)
        await store.start()
        try:
            user = await store.create_user("a", "a@x.org")
            monkeypatch.setattr(AsyncSession, "get", get_then_lose_the_race)
            return await store.update_user(user["id"], {"name": "c"})
        finally:
            await store.stop()

    assert asyncio.run(run()) is None
