"""abulk_insert / abulk_upsert: the fast path from asyncio, for AsyncEngine, AsyncConnection and AsyncSession.

The same code as bulk_insert/bulk_upsert (one implementation of the value handling and the compiled plans),
run through SQLAlchemy's asyncio bridge: each chunk's statement is one await on the driver, so the event
loop runs other tasks while SQLite (in aiosqlite's thread) or the server does the work. Rows may come from
a plain or an async iterable; an async one is read chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Any

from turboalchemy._write.bulk import _write
from turboalchemy.errors import UnsupportedTargetError


async def abulk_insert(
    target: Any, model: Any, rows: Iterable[Any] | AsyncIterable[Any], *, chunk_size: int = 5000
) -> int:
    """bulk_insert for AsyncEngine (each chunk commits), AsyncConnection or AsyncSession (the caller commits)."""
    return await _run(
        target,
        rows,
        chunk_size,
        lambda sync, chunk, offset: _write(sync, model, chunk, "insert", chunk_size, (), None, offset),
    )


async def abulk_upsert(
    target: Any,
    model: Any,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    chunk_size: int = 5000,
) -> int:
    """bulk_upsert for AsyncEngine, AsyncConnection or AsyncSession."""
    changes = None if update is None else tuple(update)
    return await _run(
        target,
        rows,
        chunk_size,
        lambda sync, chunk, offset: _write(sync, model, chunk, "upsert", chunk_size, tuple(conflict), changes, offset),
    )


async def _run(target: Any, rows: Any, chunk_size: int, write: Any) -> int:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if isinstance(target, AsyncEngine):
        engine = target.sync_engine
        async with target.connect() as bridge:  # a greenlet to run in; the writes take their own connection
            return await _feed(
                rows, chunk_size, lambda chunk, offset: bridge.run_sync(lambda _c: write(engine, chunk, offset))
            )
    if isinstance(target, (AsyncConnection, AsyncSession)):
        return await _feed(
            rows, chunk_size, lambda chunk, offset: target.run_sync(lambda sync: write(sync, chunk, offset))
        )
    raise UnsupportedTargetError(
        f"target must be an AsyncEngine, AsyncConnection or AsyncSession, not "
        f"{type(target).__name__} (use turboalchemy.bulk_insert for synchronous targets)"
    )


async def _feed(rows: Any, chunk_size: int, run: Any) -> int:
    """Hand rows to `run` a chunk at a time (a plain iterable whole: the sync code chunks it itself)."""
    if not hasattr(rows, "__aiter__"):
        return int(await run(rows, 0))
    written = 0
    chunk: list[Any] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) == chunk_size:
            written += int(await run(chunk, written))
            chunk = []
    if chunk:
        written += int(await run(chunk, written))
    return written
