"""pool_status: a connection pool's state as a plain dict, for metrics exporters."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from turboalchemy._targets import ENGINE, classify


def pool_status(engine: Engine) -> dict[str, Any]:
    """size, checked_out, checked_in, overflow (QueuePool; other pools report what they can)."""
    classify(engine, ENGINE, "pool_status")
    pool = engine.pool
    status: dict[str, Any] = {"pool": type(pool).__name__}
    if isinstance(pool, QueuePool):
        status.update(
            size=pool.size(),
            checked_out=pool.checkedout(),
            checked_in=pool.checkedin(),
            overflow=pool.overflow(),
            max_overflow=pool._max_overflow,
            timeout_s=pool.timeout(),
        )
    else:
        for name in ("size", "checkedout", "checkedin", "overflow"):
            method = getattr(pool, name, None)
            if callable(method):
                status[{"checkedout": "checked_out", "checkedin": "checked_in"}.get(name, name)] = method()
    return status
