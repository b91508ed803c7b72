"""abulk_insert / abulk_upsert: the fast path from asyncio, for AsyncEngine, AsyncConnection and AsyncSession.

The same code as bulk_insert/bulk_upsert (one implementation of the value handling and the compiled plans),
run through SQLAlchemy's asyncio bridge: each chunk's statement is one await on the driver, so the event
loop runs other tasks while SQLite (in aiosqlite's thread) or the server does the work. Rows may come from
a plain or an async iterable; an async one is read chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any, Literal, overload

from turboalchemy._schema import Model
from turboalchemy._targets import ASYNC, AsyncTarget, classify
from turboalchemy._write.bulk import M, Returning, _write, source_failed
from turboalchemy._write.plan import Kind


@overload
async def abulk_insert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: None = ...,
) -> int: ...
@overload
async def abulk_insert(
    target: AsyncTarget,
    model: type[M],
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: type[M],
) -> list[M]: ...
@overload
async def abulk_insert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int = ...,
    on_conflict: Literal["error", "ignore"] = ...,
    conflict: Sequence[str] | None = ...,
    returning: Returning,
) -> list[Any]: ...


async def abulk_insert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int = 5000,
    on_conflict: Literal["error", "ignore"] = "error",
    conflict: Sequence[str] | None = None,
    returning: Any = None,
) -> Any:
    """bulk_insert for AsyncEngine (each chunk commits), AsyncConnection or AsyncSession (the caller commits).
    Returns the count, or with `returning=` the list (see bulk_insert)."""
    if on_conflict not in ("error", "ignore") or (conflict is not None and on_conflict != "ignore"):
        raise ValueError("on_conflict must be 'error' or 'ignore'; conflict= goes with on_conflict='ignore'")
    kind: Kind = "upsert" if on_conflict == "ignore" else "insert"
    keys, changes = (tuple(conflict or ()), ()) if kind == "upsert" else ((), None)

    def write(sync: Any, chunk: Iterable[Any], offset: int) -> Any:
        return _write(sync, model, chunk, kind, chunk_size, keys, changes, offset, returning)

    return await _run(target, "abulk_insert", rows, chunk_size, write, returning is not None)


@overload
async def abulk_upsert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: None = ...,
) -> int: ...
@overload
async def abulk_upsert(
    target: AsyncTarget,
    model: type[M],
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: type[M],
) -> list[M]: ...
@overload
async def abulk_upsert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = ...,
    chunk_size: int = ...,
    returning: Returning,
) -> list[Any]: ...


async def abulk_upsert(
    target: AsyncTarget,
    model: Model,
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str] | None = None,
    chunk_size: int = 5000,
    returning: Any = None,
) -> Any:
    """bulk_upsert for AsyncEngine, AsyncConnection or AsyncSession (returning= as for bulk_upsert)."""
    changes = None if update is None else tuple(update)

    def write(sync: Any, chunk: Iterable[Any], offset: int) -> Any:
        return _write(sync, model, chunk, "upsert", chunk_size, tuple(conflict), changes, offset, returning)

    return await _run(target, "abulk_upsert", rows, chunk_size, write, returning is not None)


Write = Callable[[Any, Iterable[Any], int], Any]


async def _run(target: AsyncTarget, what: str, rows: Any, chunk_size: int, write: Write, returning: bool) -> Any:
    kind = classify(target, ASYNC, what)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if kind == "async_engine":
        engine = target.sync_engine  # type: ignore[union-attr]
        async with target.connect() as bridge:  # type: ignore[union-attr]  # a greenlet to run in; writes take their own connection
            return await _feed(
                rows,
                chunk_size,
                lambda chunk, offset: bridge.run_sync(lambda _c: write(engine, chunk, offset)),
                returning,
                what,
                commits=True,
            )
    return await _feed(
        rows,
        chunk_size,
        lambda chunk, offset: target.run_sync(lambda sync: write(sync, chunk, offset)),  # type: ignore[union-attr]
        returning,
        what,
        commits=False,
    )


async def _feed(
    rows: Any, chunk_size: int, run: Any, returning: bool = False, what: str = "abulk", commits: bool = True
) -> Any:
    """Hand rows to `run` a chunk at a time (a plain iterable whole: the sync code chunks it itself). Returns the
    count (related rows of graphs included), or with `returning` the answers of every chunk, in order."""
    if not hasattr(rows, "__aiter__"):
        return await run(rows, 0)
    offset = 0  # rows of the stream handed over so far: the next chunk's position in it
    written = 0
    answers: list[Any] = []
    chunk: list[Any] = []

    async def send(chunk: list[Any]) -> None:
        nonlocal offset, written
        got = await run(chunk, offset)
        if returning:
            answers.extend(got)
        else:
            written += int(got)
        offset += len(chunk)

    stream = aiter(rows)
    while True:
        try:
            row = await anext(stream)
        except StopAsyncIteration:
            break
        except Exception as exc:  # the rows' own source: its type kept, told how far the write got
            source_failed(exc, what, offset, offset if commits else None)
            raise
        chunk.append(row)
        if len(chunk) == chunk_size:
            await send(chunk)
            chunk = []
    if chunk:
        await send(chunk)
    return answers if returning else written
