"""The async data-layer comparison under HTTP load: the CRUD API per layer (app), its contract, the load
generator, and `python -m sqlite_bench.orm_compare` (__main__)."""

from __future__ import annotations

from typing import Any


def decision_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (database, concurrency, layer) with the ratio to SQLAlchemy async at the same point."""
    done = [c for c in data["cells"] if c["status"] == "done"]
    base = {(c["config"], c["writers"]): c["http"]["rate"] for c in done if c["path"] == "sqlalchemy"}
    return [
        {
            "db": c["config"],
            "concurrency": c["writers"],
            "layer": c["path"],
            **c["http"],
            "vs_sqlalchemy": c["http"]["rate"] / base[(c["config"], c["writers"])]
            if base.get((c["config"], c["writers"]))
            else None,
            "flagged": c.get("flagged", False),
        }
        for c in done
    ]
