"""The comparison's API contract: every data layer answers the same requests with the same status and JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from sqlite_bench.orm_compare.app import EQUAL, LAYERS, POOL, VARIANTS, Base, create_schema
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
    layers = LAYERS + (VARIANTS if url.startswith("sqlite") else ())
    answers = {layer: _in_own_process(layer, url if i == 0 else _fresh(url)) for i, layer in enumerate(layers)}
    reference = answers["sqlalchemy"]
    assert all(check(answers[layer]) == [] for layer in layers)
    assert [s for s, _ in reference] == [
        *(201, 200, 200, 200, 200, 200, 200, 409),
        *(422, 422, 422, 422, 422, 404, 404, 404, 404, 204, 404, 404),
    ]
    assert reference[1][1] == {"id": reference[0][1]["id"], "name": "Ada", "email": "ada@example.org"}
    assert [o["cents"] for o in reference[2][1]] == [0, 100, 200]
    assert reference[3][1] == reference[2][1][0] and reference[4][1] == reference[2][1][:2]
    assert reference[5][1] == [reference[1][1]]  # GET /users?limit=2 on a database holding Ada alone
    assert reference[6][1]["name"] == "Ada L." and "missing field" in reference[9][1]["detail"]
    for layer in layers[1:]:
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
    from sqlite_bench.orm_compare import decision_rows, spreads
    from sqlite_bench.orm_compare.__main__ import main

    layers = [*LAYERS, "sqlalchemy+defaults"]
    argv = ["--db", "sqlite", "--layers", ",".join(layers), "--concurrency", "4", "--duration", "1s"]
    assert main([*argv, "--seed-users", "300", "--repeat", "2", "--output-dir", str(tmp_path)]) == 0
    data = results.load(tmp_path / results.FILENAME)
    results.validate(data)
    # interleaved: every cell's first run before any second run, the layers' order rotated between runs
    assert [c["id"] for c in data["cells"]] == [f"{x}/sqlite/c4#1" for x in layers] + [
        f"{x}/sqlite/c4#2" for x in layers[1:] + layers[:1]
    ]
    rows = decision_rows(data)
    assert {r["layer"] for r in rows} == set(layers) and all(r["requests"] > 0 and not r["flagged"] for r in rows)
    assert [r["vs_sqlalchemy"] for r in rows if r["layer"] == "sqlalchemy"] == [1.0, 1.0]
    for cell in data["cells"]:  # what each cell ran on, read back through the layer, and what it cost
        wanted = EQUAL.expected(new_database=False)
        found = cell["setup"]["database"]
        assert (found["journal_mode"] == "delete") if cell["path"] == "sqlalchemy+defaults" else (found == wanted)
        cpu = cell["http"]["cpu"]
        assert cpu["server_ms"] > 0 and cpu["client_ms"] > 0 and cpu["machine_ms"] >= cpu["server_ms"] * 0.5
        assert cpu["database_ms"] is None and cpu["server_bound_rps"] > 0
    spread = {r["layer"]: r for r in spreads(data)}
    assert spread["sqlalchemy"]["runs"] == 2 and spread["sqlalchemy"]["against_sqlalchemy"] == "-"
    low, high = spread["tortoise"]["rate"][1:]
    assert low <= spread["tortoise"]["rate"][0] <= high
    assert spread["tortoise"]["against_sqlalchemy"] in ("win", "loss", "overlap")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "the decision table, median (range) over the runs" in report and "server CPU ms" in report


def test_the_articles_shape_is_a_preset_that_explicit_options_still_override():
    from sqlite_bench.orm_compare.__main__ import parse_args

    args = parse_args(["--preset", "article"])
    assert (args.databases, args.levels, args.mix, args.repeat) == (["postgresql"], [500], "article", 3)
    assert (args.seed_users, args.seed_orders, args.duration) == (1_000_000, 10_000, 30.0)
    assert parse_args(["--preset", "article", "--concurrency", "100", "--repeat", "1"]).levels == [100]


def test_on_postgresql_turboalchemy_writes_on_the_pool_not_through_a_write_queue(postgres_url):
    """Our own advice: a WriteQueue in front of PostgreSQL funnels writes the server could take side by side."""
    from sqlite_bench.orm_compare.app import TurboAlchemyStore

    engine = create_engine(postgres_url)
    Base.metadata.drop_all(engine)
    create_schema(postgres_url)

    async def run():
        store = TurboAlchemyStore(postgres_url)
        await store.start()
        try:
            assert store.queue is None
            # as many connections held as the other layers may hold, none opened and closed per request
            assert store.engine.pool.size() == POOL and store.engine.pool.timeout() > 0
            assert store.engine.pool._max_overflow == 0
            return await store.create_user("pg", "pg@x.org"), await store.update_user(1, {"name": "pg2"})
        finally:
            await store.stop()

    created, updated = asyncio.run(run())
    assert updated == {"id": created["id"], "name": "pg2", "email": "pg@x.org"}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM users").scalar_one() == "pg2"
    Base.metadata.drop_all(engine)
    engine.dispose()


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


def _served_setup(layer: str, url: str) -> dict[str, object]:
    from sqlite_bench.orm_compare.__main__ import read_setup, serve

    server, port = serve(layer, url)
    try:
        return read_setup(port)
    finally:
        server.terminate()
        server.wait(10)


def test_on_sqlite_every_layer_reads_back_the_same_settings_through_its_own_connections(tmp_path):
    """The audit found SQLAlchemy in rollback-journal mode with a 2 MB cache, Tortoise in WAL with synchronous FULL
    and turboalchemy in WAL with NORMAL, 64 MB and mmap: three different databases. Now one set-up, read back."""
    from sqlite_bench.orm_compare.__main__ import setup_problems

    wanted = EQUAL.expected(new_database=False)
    assert wanted["journal_mode"] == "wal" and wanted["synchronous"] == 1 and wanted["mmap_size"] > 0
    for layer in LAYERS:
        url = f"sqlite:///{tmp_path / f'{layer}.db'}"
        create_schema(url)  # a file as SQLAlchemy creates it: rollback journal
        found = _served_setup(layer, url)
        assert {k: found[k] for k in wanted} == wanted, layer
        assert setup_problems(layer, "sqlite", found) == []
    # the "+defaults" rows keep what each layer does by itself, and are shown as such
    for layer, differs in (("sqlalchemy+defaults", "journal_mode"), ("tortoise+defaults", "synchronous")):
        url = f"sqlite:///{tmp_path / f'{layer}.db'}"
        create_schema(url)
        found = _served_setup(layer, url)
        assert found[differs] != wanted[differs], (layer, found)
        assert setup_problems(layer, "sqlite", found) == []


def test_a_layer_off_the_equal_setup_is_named_and_refused():
    from sqlite_bench.orm_compare.__main__ import setup_problems

    found = dict(EQUAL.expected(new_database=False), synchronous=2, cache_size=-2000)
    assert setup_problems("tortoise", "sqlite", found) == ["synchronous is 2, not 1", "cache_size is -2000, not -64000"]
    assert setup_problems("tortoise", "postgresql", found) == []


def _statements_of(layer: str, url: str, operation: str) -> list[str]:
    """The SQL verbs one operation sends through a layer (transaction control left out), recorded in-process."""
    import logging

    from sqlalchemy import event

    from sqlite_bench.orm_compare.app import STORES, split_layer

    base, defaults = split_layer(layer)
    sent: list[str] = []

    class Record(logging.Handler):
        def emit(self, record):  # Tortoise logs every query it sends at DEBUG: "<sql>: <values>"
            sent.append(str(record.args[0]) if record.args else record.getMessage())

    async def run():
        store = STORES[base](url, defaults)
        await store.start()
        queue = getattr(store, "queue", None)  # the WriteQueue writes on an engine of its own
        for engine in (getattr(store, "engine", None), getattr(store, "reads", None), getattr(queue, "_engine", None)):
            if engine is not None:
                sync = getattr(engine, "sync_engine", engine)
                event.listen(sync, "before_cursor_execute", lambda _c, _cur, sql, *_a: sent.append(sql))
        logger = logging.getLogger("tortoise.db_client")
        handler, level = Record(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            sent.clear()
            user = await store.create_user("a", f"{operation}@x.org")
            if operation != "create":
                sent.clear()
            if operation == "update":
                await store.update_user(user["id"], {"name": "b"})
            elif operation == "delete":
                await store.delete_user(user["id"])
            elif operation == "read":
                await store.get_user(user["id"])
            elif operation == "orders":
                await store.user_orders(user["id"])
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            await store.stop()
        verbs = [sql.split()[0].upper() for sql in sent if sql.split()]
        return [v for v in verbs if v in ("SELECT", "INSERT", "UPDATE", "DELETE")]  # not transaction control

    return asyncio.run(run())


@pytest.mark.parametrize("operation", ["create", "read", "orders", "update", "delete"])
def test_every_layer_sends_the_same_statements_for_an_operation(tmp_path, operation):
    """turboalchemy's update was one UPDATE ... RETURNING where the ORMs read first and then wrote."""
    sent = {}
    for layer in LAYERS:
        url = f"sqlite:///{tmp_path / f'{layer}-{operation}.db'}"
        create_schema(url)
        code = (
            "import json, sys; from tests.test_orm_compare_contract import _statements_of; "
            "print(json.dumps(_statements_of(*sys.argv[1:])))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, layer, url, operation],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        sent[layer] = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {
        "create": ["INSERT"],
        "read": ["SELECT"],
        "orders": ["SELECT", "SELECT"],
        "update": ["SELECT", "UPDATE"],
        "delete": ["DELETE", "DELETE"],
    }[operation]
    assert sent == dict.fromkeys(LAYERS, expected)
