"""The API contract every layer must pass before it is benchmarked: one scripted conversation, compared."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import create_engine, insert

from .app import ORDERS, build_app

EXPECTED = [201, 200, 200, 200, 200, 200, 200, 409, 422, 422, 422, 422, 422, 404, 404, 404, 404, 204, 404, 404]


async def conversation(layer: str, url: str) -> list[tuple[int, Any]]:
    """The same sequence of requests against one layer; returns (status, body) for each."""
    app = build_app(layer, url)
    # a dedicated email so a conversation can run on a seeded database too
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
                conn.execute(
                    insert(ORDERS), [{"user_id": uid, "item": f"item {i}", "cents": 100 * i} for i in range(3)]
                )
            engine.dispose()
            await call("GET", f"/users/{uid}")
            listed = await call("GET", f"/users/{uid}/orders")
            await call("GET", f"/orders/{listed[0]['id']}")
            await call("GET", "/orders?limit=2")
            await call("GET", "/users?limit=2")
            await call("PUT", f"/users/{uid}", {"name": "Ada L."})
            await call("POST", "/users", {"name": "Ada again", "email": "ada@example.org"})  # 409
            await call("POST", "/users", {"name": "", "email": "x@example.org"})  # 422
            await call("POST", "/users", {"name": "Bob"})  # 422 missing email
            await call("POST", "/users", {"name": "Bob", "email": "no-at-sign"})  # 422
            await call("PUT", f"/users/{uid}", {"admin": True})  # 422 unknown field
            await call("GET", "/users?limit=0")  # 422
            await call("GET", "/users/2000000000")  # 404
            await call("GET", "/orders/2000000000")  # 404
            await call("GET", "/users/abc")  # 404
            await call("GET", "/users/2000000000/orders")  # 404
            await call("DELETE", f"/users/{uid}")  # 204
            await call("DELETE", f"/users/{uid}")  # 404
            await call("GET", f"/users/{uid}")  # 404
    return out


def normalise(answers: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Ids differ between databases only by sequence; compare everything else."""

    def strip(body: Any) -> Any:
        if isinstance(body, dict):
            return {k: v for k, v in body.items() if k not in ("id", "user_id")}
        if isinstance(body, list):
            return [strip(b) for b in body]
        return body

    return [(status, strip(body)) for status, body in answers]


def check(answers: list[tuple[int, Any]]) -> list[str]:
    """What is wrong with a layer's answers (empty: it passes)."""
    statuses = [status for status, _ in answers]
    problems = [] if statuses == EXPECTED else [f"statuses {statuses}, expected {EXPECTED}"]
    if answers and answers[1][1] != {
        "id": answers[0][1].get("id") if isinstance(answers[0][1], dict) else None,
        "name": "Ada",
        "email": "ada@example.org",
    }:
        problems.append(f"GET after POST answered {answers[1][1]!r}")
    return problems
