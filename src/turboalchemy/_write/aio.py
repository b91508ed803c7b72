"""abulk_insert / abulk_upsert: the fast path from asyncio, for AsyncEngine, AsyncConnection and AsyncSession.

The same code as bulk_insert/bulk_upsert (one implementation of the value handling and the compiled plans),
run through SQLAlchemy's asyncio bridge: each chunk's statement is one await on the driver, so the event
loop runs other tasks while SQLite (in aiosqlite's thread) or the server does the work. Rows may come from
a plain or an async iterable; an async one is read chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any

from turboalchemy._schema import Model
from turboalchemy._targets import ASYNC, AsyncTarget, classify
from turboalchemy._write.bulk import _write


async def abulk_insert(
    target: AsyncTarget, model: Model, rows: Iterable[Any] | AsyncIterable[Any], *, chunk_size: int = 5000
) -> int:
    """bulk_insert for AsyncEngine (each chunk commits), AsyncConnection or AsyncSession (the caller commits)."""

    def write(sync: Any, chunk: Iterable[Any], offset: int) -> int:
        return _write(sync, model, chunk, "insert", chunk_size, (), None, offset)

    return await _run(target, "abulk_insert", rows, chunk_size, write)


async def abulk_upsert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    chunk_size: int = 5000,
) -> int:
    """bulk_upsert for AsyncEngine, AsyncConnection or AsyncSession."""
    changes = None if update is None else tuple(update)

    def write(sync: Any, chunk: Iterable[Any], offset: int) -> int:
        return _write(sync, model, chunk, "upsert", chunk_size, tuple(conflict), changes, offset)

    return await _run(target, "abulk_upsert", rows, chunk_size, write)


Write = Callable[[Any, Iterable[Any], int], int]


async def _run(target: AsyncTarget, what: str, rows: Any, chunk_size: int, write: Write) -> int:
    kind = classify(target, ASYNC, what)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if kind == "async_engine":
        engine = target.sync_engine  # type: ignore[union-attr]
        async with target.connect() as bridge:  # type: ignore[union-attr]  # a greenlet to run in; writes take their own connection
            return await _feed(
                rows, chunk_size, lambda chunk, offset: bridge.run_sync(lambda _c: write(engine, chunk, offset))
            )
    return await _feed(
        rows,
        chunk_size,
        lambda chunk, offset: target.run_sync(lambda sync: write(sync, chunk, offset)),  # type: ignore[union-attr]
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
