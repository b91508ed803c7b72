"""The HTTP load generator: counts what it sends, stops by itself, tells server errors from client errors."""

from __future__ import annotations

import asyncio
import os

import pytest

from sqlite_bench.orm_compare.loadgen import Endpoint, run_load


async def _server(delay: float = 0.0):
    """A tiny HTTP/1.1 server: /ok 200, /missing 404, /boom 500, /slow after `delay`; echoes JSON bodies."""
    seen = {"requests": 0, "bodies": 0}

    async def handle(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            method, path, _ = line.decode().split(" ", 2)
            length = 0
            while (header := await reader.readline()) != b"\r\n":
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            seen["requests"] += 1
            seen["bodies"] += bool(body)
            if path.startswith("/slow"):
                await asyncio.sleep(delay)
            status = {"/missing": 404, "/boom": 500}.get(path, 200)
            payload = body or b'{"ok": true}'
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


MIX = [
    Endpoint("read", 3, lambda rng: ("GET", "/ok", None)),
    Endpoint("create", 1, lambda rng: ("POST", "/ok", {"name": f"u{rng.randint(1, 100)}"})),
    Endpoint("missing", 1, lambda rng: ("GET", "/missing", None)),
]


def test_it_sends_exactly_max_requests_over_keep_alive_connections():
    async def main():
        server, port, seen = await _server()
        async with server:
            result = await run_load(
                "127.0.0.1", port, MIX, concurrency=8, max_requests=2_000, duration_s=30, server_pid=os.getpid()
            )
        return result, seen

    result, seen = asyncio.run(main())
    summary = result.summary()
    assert result.requests == seen["requests"] == 2_000
    assert result.server_errors == 0 and 0 < result.client_errors < 2_000  # the /missing share, as 4xx
    assert set(summary["endpoints"]) == {"read", "create", "missing"} and seen["bodies"] > 0
    assert summary["p50_ms"] <= summary["p99_ms"] and result.peak_rss_mb > 0 and result.rate > 0


def test_it_stops_by_itself_when_the_duration_is_over():
    async def main():
        server, port, _ = await _server(delay=0.05)
        async with server:
            return await run_load(
                "127.0.0.1",
                port,
                [Endpoint("slow", 1, lambda rng: ("GET", "/slow", None))],
                concurrency=4,
                max_requests=1_000_000,
                duration_s=0.5,
            )

    result = asyncio.run(main())
    assert 0.4 < result.seconds < 1.5 and 10 < result.requests < 100


def test_server_errors_are_counted_against_the_cell():
    async def main():
        server, port, _ = await _server()
        async with server:
            return await run_load(
                "127.0.0.1",
                port,
                [
                    Endpoint("boom", 1, lambda rng: ("GET", "/boom", None)),
                    Endpoint("ok", 1, lambda rng: ("GET", "/ok", None)),
                ],
                concurrency=2,
                max_requests=400,
                duration_s=10,
            )

    result = asyncio.run(main())
    assert result.requests == 400 and 100 < result.server_errors < 300 and 0 < result.error_rate < 1


def test_only_this_machine_can_be_targeted():
    with pytest.raises(ValueError, match="only targets this machine"):
        asyncio.run(run_load("10.0.0.1", 80, MIX, max_requests=1))
    with pytest.raises(ValueError):
        asyncio.run(run_load("127.0.0.1", 80, [], max_requests=1))
