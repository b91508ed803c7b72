"""A small HTTP/1.1 load generator for loopback servers: bounded, self-stopping, measured from outside.

`concurrency` keep-alive connections each send requests drawn from a weighted endpoint mix until either
`max_requests` have been sent or `duration_s` has passed. Per request it records the endpoint, status and
latency; a thread samples the server process's RSS. Plain asyncio streams keep the client's own cost per
request low (a few tens of microseconds), so the server, not the generator, is what gets measured.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..stats import percentile

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
Request = tuple[str, str, Any]  # (method, path, JSON body or None)


@dataclass(frozen=True)
class Endpoint:
    """One kind of request in the mix: `make(rng)` builds it, `weight` sets how often it is drawn."""

    name: str
    weight: float
    make: Callable[[random.Random], Request]


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    server_errors: int = 0  # 5xx and broken connections: the ones that count against a cell
    client_errors: int = 0  # 4xx, expected for some endpoints (a deleted id, a validation error)
    peak_rss_mb: float | None = None
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        every = [x for values in self.latencies_ms.values() for x in values]

        def pct(v: list[float], q: float) -> float | None:
            return round(percentile(v, q), 3) if v else None

        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "server_errors": self.server_errors,
            "client_errors": self.client_errors,
            "error_rate": round(self.error_rate, 6),
            "peak_rss_mb": self.peak_rss_mb,
            "p50_ms": pct(every, 50),
            "p90_ms": pct(every, 90),
            "p99_ms": pct(every, 99),
            "endpoints": {
                name: {"requests": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99)}
                for name, v in self.latencies_ms.items()
            },
        }


class _RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            except Exception:
                return
            self.stop.wait(self.interval)


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def _encode(method: str, path: str, body: Any, host: str) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(payload)}\r\n"
    if payload:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + payload


async def run_load(
    host: str,
    port: int,
    endpoints: Sequence[Endpoint],
    *,
    concurrency: int = 10,
    max_requests: int = 10_000,
    duration_s: float = 30.0,
    seed: int = 1,
    server_pid: int | None = None,
) -> LoadResult:
    """Drive the server at host:port (loopback only) and return what was measured."""
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only targets this machine (127.0.0.1, ::1, localhost), not {host!r}")
    if concurrency < 1 or max_requests < 1 or duration_s <= 0 or not endpoints:
        raise ValueError("concurrency and max_requests must be at least 1, duration positive, endpoints non-empty")
    result = LoadResult(latencies_ms={e.name: [] for e in endpoints})
    weights = [e.weight for e in endpoints]
    budget = [max_requests]
    deadline = time.monotonic() + duration_s
    sampler = _RssSampler(server_pid) if server_pid else None
    if sampler:
        sampler.start()

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        reader, writer = await asyncio.open_connection(host, port)
        clock = time.perf_counter
        try:
            while budget[0] > 0 and time.monotonic() < deadline:
                budget[0] -= 1
                endpoint = rng.choices(endpoints, weights)[0]
                method, path, body = endpoint.make(rng)
                began = clock()
                try:
                    writer.write(_encode(method, path, body, host))
                    await writer.drain()
                    status = await _read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                    result.server_errors += 1
                    result.requests += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies_ms[endpoint.name].append((clock() - began) * 1000)
                result.requests += 1
                if status >= 500:
                    result.server_errors += 1
                elif status >= 400:
                    result.client_errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        result.seconds = time.perf_counter() - began
        if sampler:
            sampler.stop.set()
            sampler.join()
            result.peak_rss_mb = round(sampler.peak, 1)
    return result
