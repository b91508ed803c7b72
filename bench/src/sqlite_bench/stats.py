"""Percentiles and batch-latency summaries, computed from the raw samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99, avg and max of batch latencies in milliseconds (None when there are none)."""
    if not latencies_ms:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "avg_ms": None, "max_ms": None}
    return {
        "count": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p95_ms": round(percentile(latencies_ms, 95), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "avg_ms": round(sum(latencies_ms) / len(latencies_ms), 3),
        "max_ms": round(max(latencies_ms), 3),
    }
