"""The read side: stream a large result with constant memory, and keyset pages that stay fast deep in a table.

`stream` yields ORM objects (a select of one entity) or rows, `batch_size` at a time from the database:
`yield_per` for ORM entities, and a server-side cursor on PostgreSQL (`stream_results`). Memory stays
bounded as long as the caller does not keep what it was given.

`keyset_page` turns a select ordered by a unique key into `WHERE (key) > (:last) ORDER BY key LIMIT n`:
each page costs an index seek, where `OFFSET n` reads and throws away n rows first.
The async variants run the same code through SQLAlchemy's asyncio extension.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Select, Table, bindparam, inspect, tuple_
from sqlalchemy.sql import operators

from turboalchemy._schema import unique_keys
from turboalchemy._targets import ASYNC, SYNC, AsyncTarget, Target, bound, classify
from turboalchemy.errors import KeysetError


@dataclass(frozen=True)
class Page:
    """One keyset page: its rows (ORM objects or Row objects) and the cursor of the next page (None after the last)."""

    rows: list[Any]
    next_after: tuple[Any, ...] | None


def _single_entity(stmt: Select[Any]) -> bool:
    descriptions = stmt.column_descriptions
    return (
        len(descriptions) == 1
        and descriptions[0].get("entity") is not None
        and descriptions[0].get("expr") is descriptions[0].get("entity")
    )


def stream(target: Target, stmt: Select[Any], *, batch_size: int = 1000) -> Iterator[Any]:
    """Yield the results of `stmt` one by one, fetching `batch_size` rows at a time from the database.

    Args:
        target: An Engine, Connection or Session.
        stmt: A select; on a Session, a select of one entity yields ORM objects, anything else rows.
        batch_size: Rows fetched per round trip (`yield_per`; a server-side cursor on PostgreSQL).

    Yields:
        ORM objects or rows; memory stays flat as long as you do not keep them.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stmt = stmt.execution_options(yield_per=batch_size)  # implies stream_results (server-side cursor on PostgreSQL)
    with bound(target, "stream") as on:
        result = on.runner.execute(stmt)
        try:
            yield from (result.scalars() if on.session is not None and _single_entity(stmt) else result)
        finally:
            result.close()


async def astream(target: AsyncTarget, stmt: Select[Any], *, batch_size: int = 1000) -> AsyncIterator[Any]:
    """`stream` for AsyncEngine, AsyncConnection and AsyncSession."""
    kind = classify(target, ASYNC, "astream")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stmt = stmt.execution_options(yield_per=batch_size)
    if kind == "async_engine":
        async with target.connect() as conn:  # type: ignore[union-attr]
            async for item in astream(conn, stmt, batch_size=batch_size):
                yield item
        return
    result = await target.stream(stmt)  # type: ignore[union-attr]
    try:
        source = result.scalars() if kind == "async_session" and _single_entity(stmt) else result
        async for item in source:
            yield item
    finally:
        await result.close()


def _order(stmt: Select[Any]) -> tuple[list[Column[Any]], bool]:
    """The ORDER BY columns and whether they descend; KeysetError unless all are plain columns, one direction."""
    clauses = list(stmt._order_by_clauses)  # SQLAlchemy has no public accessor for a select's ORDER BY
    if not clauses:
        raise KeysetError("keyset pages need a select ordered by a unique key: add .order_by(Model.id)")
    columns, directions = [], set()
    for clause in clauses:
        descending = getattr(clause, "modifier", None) is operators.desc_op
        element = (
            clause.element if getattr(clause, "modifier", None) in (operators.desc_op, operators.asc_op) else clause
        )
        element = getattr(element, "element", element) if not isinstance(element, Column) else element
        if not isinstance(element, Column) or element.table is None:
            raise KeysetError(f"ORDER BY {clause} is not a table column; keyset pages compare stored key values")
        columns.append(element)
        directions.add(descending)
    if len(directions) > 1:
        raise KeysetError("ORDER BY mixes ascending and descending columns; a row-value comparison needs one direction")
    return columns, directions.pop()


def _unique(columns: list[Column[Any]]) -> bool:
    """Whether the ORDER BY columns hold a unique key of their (one) table, so no two rows share a cursor."""
    table = columns[0].table
    if not isinstance(table, Table) or any(c.table is not table for c in columns):
        return False
    keys = {c.key for c in columns}
    return any(key and key <= keys for key in unique_keys(table))


@dataclass
class _KeysetPlan:
    """What keyset_page learns once per select: its key columns, the select continued past a bound cursor,
    and the paged statements made from them, by (page size, whether a cursor is given)."""

    columns: list[Column[Any]]
    entity: bool
    following: Select[Any]
    paged: dict[tuple[int, bool], Select[Any]] = field(default_factory=dict)


_PLANS: weakref.WeakKeyDictionary[Select[Any], _KeysetPlan] = weakref.WeakKeyDictionary()
_AFTER = "_turboalchemy_after_"  # names of the cursor's bound parameters; never rendered from values


def _plan(stmt: Select[Any]) -> _KeysetPlan:
    """Check `stmt` once and keep the result while the select lives: an endpoint that pages with the same
    select pays only for executing it (and SQLAlchemy's compiled cache hits, since the cursor is bound)."""
    plan = _PLANS.get(stmt)
    if plan is not None:
        return plan
    columns, descending = _order(stmt)
    if not _unique(columns):
        names = ", ".join(c.name for c in columns)
        raise KeysetError(
            f"ORDER BY ({names}) is not unique, so rows could repeat or go missing between pages; "
            f"end it with the primary key, e.g. order_by({names}, <table>.id)"
        )
    if stmt._limit_clause is not None or stmt._offset_clause is not None:
        raise KeysetError("remove .limit()/.offset(): keyset_page sets the limit and replaces the offset")
    binds = [bindparam(f"{_AFTER}{i}", type_=c.type) for i, c in enumerate(columns)]
    key = tuple_(*columns) if len(columns) > 1 else columns[0]
    value = tuple_(*binds) if len(columns) > 1 else binds[0]
    plan = _PLANS[stmt] = _KeysetPlan(
        columns, _single_entity(stmt), stmt.where(key < value if descending else key > value)
    )
    return plan


def keyset_page(target: Target, stmt: Select[Any], *, size: int = 100, after: Sequence[Any] | None = None) -> Page:
    """The page of `stmt` that follows the key tuple `after`: `WHERE (key) > (:after) ORDER BY key LIMIT size`.

    Args:
        target: An Engine, Connection or Session.
        stmt: A select ordered by a unique key (end the ORDER BY with the primary key), all in one direction,
            with the key's columns selected.
        size: Rows per page.
        after: The previous page's `next_after` (None: the first page).

    Returns:
        A Page: `rows`, and `next_after` to pass for the next page (None after the last).

    Raises:
        KeysetError: An ORDER BY that is missing, not unique, mixed in direction, or not selected; an `after`
            of the wrong length.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    classify(target, SYNC, "keyset_page")
    plan = _plan(stmt)
    columns = plan.columns
    params = None
    if after is not None:
        if len(after) != len(columns):
            raise KeysetError(
                f"after has {len(after)} values; the key ({', '.join(c.name for c in columns)}) has {len(columns)}"
            )
        params = {f"{_AFTER}{i}": v for i, v in enumerate(after)}
    paged = plan.paged.get((size, params is not None))
    if paged is None:  # one more row than the page tells whether there is a next one
        paged = (plan.following if params is not None else stmt).limit(size + 1)
        plan.paged[(size, params is not None)] = paged
    with bound(target, "keyset_page") as on:
        entity = plan.entity and on.session is not None
        result = on.runner.execute(paged, params)
        rows = list(result.scalars() if entity else result)
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, _key_of(rows[-1], columns, entity) if more else None)


def _key_of(row: Any, columns: list[Column[Any]], entity: bool) -> tuple[Any, ...]:
    if entity:
        mapper = inspect(row).mapper
        return tuple(getattr(row, mapper.get_property_by_column(c).key) for c in columns)
    mapping = row._mapping
    try:
        return tuple(mapping[c] for c in columns)
    except KeyError:
        raise KeysetError(
            "select the key columns too, so the next page's cursor can be read from the last row"
        ) from None


async def akeyset_page(
    target: AsyncTarget, stmt: Select[Any], *, size: int = 100, after: Sequence[Any] | None = None
) -> Page:
    """`keyset_page` for AsyncEngine, AsyncConnection and AsyncSession (the same code, run through run_sync)."""

    def page(sync: Any) -> Page:
        return keyset_page(sync, stmt, size=size, after=after)

    if classify(target, ASYNC, "akeyset_page") == "async_engine":
        async with target.connect() as conn:  # type: ignore[union-attr]
            return await conn.run_sync(page)
    return await target.run_sync(page)  # type: ignore[union-attr]
