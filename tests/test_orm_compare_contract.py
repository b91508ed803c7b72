"""The comparison's API contract: every data layer answers the same requests with the same status and JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert

from sqlite_bench.orm_compare.app import LAYERS, ORDERS, Base, build_app, create_schema


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


async def conversation(layer: str, url: str) -> list[tuple[int, object]]:
    """The same sequence of requests against one layer; returns (status, body) for each."""
    app = build_app(layer, url)
    out = []
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            async def call(method, path, body=None):
                response = await client.request(method, path, json=body)
                out.append((response.status_code, response.json() if response.content else None))
                return out[-1][1]

            first = await call("POST", "/users", {"name": "Ada", "email": "ada@example.org"})
            uid = first["id"]
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(insert(ORDERS), [{"user_id": uid, "item": f"item {i}", "cents": 100 * i} for i in range(3)])
            engine.dispose()
            await call("GET", f"/users/{uid}")
            await call("GET", f"/users/{uid}/orders")
            await call("PUT", f"/users/{uid}", {"name": "Ada L."})
            await call("POST", "/users", {"name": "Ada again", "email": "ada@example.org"})  # 409
            await call("POST", "/users", {"name": "", "email": "x@example.org"})  # 422
            await call("POST", "/users", {"name": "Bob"})  # 422 missing email
            await call("POST", "/users", {"name": "Bob", "email": "no-at-sign"})  # 422
            await call("PUT", f"/users/{uid}", {"admin": True})  # 422 unknown field
            await call("GET", "/users/999999")  # 404
            await call("GET", "/users/abc")  # 404
            await call("GET", "/users/999999/orders")  # 404
            await call("DELETE", f"/users/{uid}")  # 204
            await call("DELETE", f"/users/{uid}")  # 404
            await call("GET", f"/users/{uid}")  # 404
    return out


def _in_own_process(layer: str, url: str) -> list[tuple[int, object]]:
    """Each layer in a fresh process, as the benchmark serves it (Tortoise keeps process-wide state)."""
    code = ("import asyncio, json, sys; from tests.test_orm_compare_contract import conversation; "
            "print(json.dumps(asyncio.run(conversation(sys.argv[1], sys.argv[2]))))")
    out = subprocess.run([sys.executable, "-c", code, layer, url], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return [tuple(pair) for pair in json.loads(out.stdout.strip().splitlines()[-1])]


def test_every_layer_answers_the_contract_identically(url):
    answers = {layer: _in_own_process(layer, url if i == 0 else _fresh(url)) for i, layer in enumerate(LAYERS)}
    reference = answers["sqlalchemy"]
    assert [s for s, _ in reference] == [201, 200, 200, 200, 409, 422, 422, 422, 422, 404, 404, 404, 204, 404, 404]
    assert reference[1][1] == {"id": reference[0][1]["id"], "name": "Ada", "email": "ada@example.org"}
    assert [o["cents"] for o in reference[2][1]] == [0, 100, 200]
    assert reference[3][1]["name"] == "Ada L." and "missing field" in reference[6][1]["detail"]
    for layer in ("tortoise", "turbolite"):
        assert _normalise(answers[layer]) == _normalise(reference), layer


def _fresh(url: str) -> str:
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    create_schema(url)
    return url


def _normalise(answers):
    """Ids differ between fresh databases only by sequence; compare everything else."""
    def strip(body):
        if isinstance(body, dict):
            return {k: v for k, v in body.items() if k not in ("id", "user_id")}
        if isinstance(body, list):
            return [strip(b) for b in body]
        return body
    return [(status, strip(body)) for status, body in answers]


def test_a_layer_served_by_uvicorn_takes_load_from_the_generator(tmp_path):
    import socket
    import time

    from sqlite_bench.orm_compare.loadgen import Endpoint, run_load

    url = f"sqlite:///{tmp_path / 'served.db'}"
    create_schema(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sqlite_bench.orm_compare.app", "turbolite", url, str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        mix = [Endpoint("create", 1, lambda rng: ("POST", "/users", {"name": "n", "email": f"{rng.random()}@x.org"})),
               Endpoint("read", 3, lambda rng: ("GET", f"/users/{rng.randint(1, 50)}", None))]
        result = asyncio.run(run_load("127.0.0.1", port, mix, concurrency=8, max_requests=600, duration_s=20,
                                      server_pid=server.pid))
    finally:
        server.terminate()
        server.wait(10)
    assert result.requests == 600 and result.server_errors == 0 and result.peak_rss_mb > 10
    created = result.summary()["endpoints"]["create"]["requests"]
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM users").scalar() == created
    engine.dispose()
