"""The async data-layer comparison under HTTP load: the CRUD API per layer (app), its contract, the load
generator, and `python -m sqlite_bench.orm_compare` (__main__)."""

from __future__ import annotations

from typing import Any

from ..summary import median_range, range_text, verdict


def decision_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per done cell (database, concurrency, layer, run) with the ratio to SQLAlchemy async measured at the
    same point in the same run of a --repeat."""
    done = [c for c in data["cells"] if c["status"] == "done"]
    base = {(c["config"], c["writers"], c.get("repeat")): c["http"]["rate"] for c in done if c["path"] == "sqlalchemy"}
    rows = []
    for c in done:
        peer = base.get((c["config"], c["writers"], c.get("repeat")))
        cpu = c["http"].get("cpu") or {}
        rows.append(
            {
                "db": c["config"],
                "concurrency": c["writers"],
                "layer": c["path"],
                "repeat": c.get("repeat"),
                **c["http"],
                "server_cpu_ms": cpu.get("server_ms"),
                "machine_cpu_ms": cpu.get("machine_ms"),
                "database_cpu_ms": cpu.get("database_ms"),
                "vs_sqlalchemy": c["http"]["rate"] / peer if peer else None,
                "flagged": c.get("flagged", False),
            }
        )
    return rows


def spreads(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per database, concurrency and layer over the runs of a --repeat: median and range of req/s, of the ratio to
    SQLAlchemy async (run by run), of CPU per request and latency; "win"/"loss" against SQLAlchemy async only
    when the req/s ranges do not overlap."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in decision_rows(data):
        groups.setdefault((r["db"], r["concurrency"], r["layer"]), []).append(r)
    out = []
    for (db, level, layer), runs in groups.items():
        rates = [r["rate"] for r in runs]
        base = [r["rate"] for r in groups.get((db, level, "sqlalchemy"), [])]

        def values(key: str) -> list[float]:
            return [r[key] for r in runs if r.get(key) is not None]  # noqa: B023 - used at once

        out.append(
            {
                "db": db,
                "concurrency": level,
                "layer": layer,
                "runs": len(runs),
                "rate": median_range(rates),
                "vs_sqlalchemy": median_range(values("vs_sqlalchemy")),
                "against_sqlalchemy": verdict(rates, base) if base and layer != "sqlalchemy" else "-",
                "server_cpu_ms": median_range(values("server_cpu_ms")),
                "machine_cpu_ms": median_range(values("machine_cpu_ms")),
                "database_cpu_ms": median_range(values("database_cpu_ms")),
                "p50_ms": median_range(values("p50_ms")),
                "p99_ms": median_range(values("p99_ms")),
                "server_errors": sum(r["server_errors"] for r in runs),
                "flagged": any(r["flagged"] for r in runs),
                "peak_rss_mb": max((r["peak_rss_mb"] or 0.0) for r in runs),
            }
        )
    return out


def spread_cells(r: dict[str, Any], *, latency_ranges: bool = True) -> list[str]:
    """One row of spreads() as the decision tables print it: database, concurrency, layer, runs, req/s and its ratio
    to SQLAlchemy async as median (range), the verdict, CPU and latency (median (range), or the median alone where
    a table is short of width), server errors (⚑: flagged) and peak RSS."""

    def text(value: tuple[float, float, float] | None, fmt: str) -> str:
        if latency_ranges or value is None:
            return range_text(value, fmt)
        return f"{value[0]:{fmt}}"

    return [
        r["db"],
        str(r["concurrency"]),
        r["layer"],
        str(r["runs"]),
        range_text(r["rate"], ",.0f"),
        range_text(r["vs_sqlalchemy"], ".2f"),
        r["against_sqlalchemy"],
        text(r["server_cpu_ms"], ".2f"),
        text(r["machine_cpu_ms"], ".2f"),
        text(r["p50_ms"], ".1f"),
        text(r["p99_ms"], ".1f"),
        f"{r['server_errors']}" + (" ⚑" if r["flagged"] else ""),
        f"{r['peak_rss_mb']}",
    ]
