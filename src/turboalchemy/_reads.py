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

from sqlalchemy import Column, Select, bindparam, inspect, tuple_
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators

from turboalchemy.errors import TurboAlchemyError, UnsupportedTargetError


class KeysetError(TurboAlchemyError):
    """A select cannot be paged by keyset: its ORDER BY is missing, not unique, mixed in direction, or unselected."""


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


def stream(target: Engine | Connection | Session, stmt: Select[Any], *, batch_size: int = 1000) -> Iterator[Any]:
    """Yield the results of `stmt` one by one, fetching `batch_size` rows at a time from the database."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stmt = stmt.execution_options(yield_per=batch_size)  # implies stream_results (server-side cursor on PostgreSQL)
    if isinstance(target, Session):
        result = target.execute(stmt)
        try:
            yield from (result.scalars() if _single_entity(stmt) else result)
        finally:
            result.close()
    elif isinstance(target, Connection):
        result = target.execute(stmt)
        try:
            yield from result
        finally:
            result.close()
    elif isinstance(target, Engine):
        with target.connect() as conn:
            yield from stream(conn, stmt, batch_size=batch_size)
    else:
        raise UnsupportedTargetError(f"stream takes an Engine, Connection or Session, not {type(target).__name__}")


async def astream(target: Any, stmt: Select[Any], *, batch_size: int = 1000) -> AsyncIterator[Any]:
    """`stream` for AsyncEngine, AsyncConnection and AsyncSession."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    stmt = stmt.execution_options(yield_per=batch_size)
    if isinstance(target, AsyncEngine):
        async with target.connect() as conn:
            async for item in astream(conn, stmt, batch_size=batch_size):
                yield item
        return
    if not isinstance(target, (AsyncConnection, AsyncSession)):
        raise UnsupportedTargetError(
            f"astream takes an AsyncEngine, AsyncConnection or AsyncSession, not {type(target).__name__}"
        )
    result = await target.stream(stmt)
    try:
        source = result.scalars() if isinstance(target, AsyncSession) and _single_entity(stmt) else result
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
    table = columns[0].table
    if any(c.table is not table for c in columns):
        return False
    names = {c.name for c in columns}
    keys = [{c.name for c in table.primary_key.columns}] if table.primary_key.columns else []
    for constraint in table.constraints:
        if constraint.__class__.__name__ == "UniqueConstraint":
            keys.append({c.name for c in constraint.columns})  # type: ignore[attr-defined]
    keys += [{c.name for c in index.columns} for index in getattr(table, "indexes", ()) if index.unique]
    keys += [{c.name} for c in table.columns if c.unique]
    return any(key and key <= names for key in keys)


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


def keyset_page(
    target: Session | Connection | Engine, stmt: Select[Any], *, size: int = 100, after: Sequence[Any] | None = None
) -> Page:
    """The page of `stmt` (ordered by a unique key) that follows the key tuple `after` (None: the first page)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    if isinstance(target, Engine):
        with target.connect() as conn:
            return keyset_page(conn, stmt, size=size, after=after)
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
    entity = plan.entity
    if isinstance(target, Session):
        result = target.execute(paged, params)
        rows = list(result.scalars() if entity else result)
    elif isinstance(target, Connection):
        rows = list(target.execute(paged, params))
        entity = False
    else:
        raise UnsupportedTargetError(f"keyset_page takes an Engine, Connection or Session, not {type(target).__name__}")
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


async def akeyset_page(target: Any, stmt: Select[Any], *, size: int = 100, after: Sequence[Any] | None = None) -> Page:
    """`keyset_page` for AsyncEngine, AsyncConnection and AsyncSession (the same code, run through run_sync)."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    if isinstance(target, AsyncEngine):
        async with target.connect() as conn:
            return await conn.run_sync(lambda sync: keyset_page(sync, stmt, size=size, after=after))
    if isinstance(target, (AsyncConnection, AsyncSession)):
        return await target.run_sync(lambda sync: keyset_page(sync, stmt, size=size, after=after))
    raise UnsupportedTargetError(
        f"akeyset_page takes an AsyncEngine, AsyncConnection or AsyncSession, not {type(target).__name__}"
    )
