"""abulk_insert / abulk_upsert: the same tables, errors and transaction rules as the sync fast path, on both backends."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import turboalchemy
from turboalchemy import BulkWriteError

from .models import STRICT, Base, Every, Mood, odd_meta, strict_meta
from .test_bulk import _strict

METAS = (Base.metadata, strict_meta, odd_meta)


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request, tmp_path):
    """(sync URL, async URL) of two fresh databases (or, on PostgreSQL, one database used twice in turn)."""
    if request.param == "sqlite":
        made = [
            (f"sqlite:///{tmp_path / f'{n}.db'}", f"sqlite+aiosqlite:///{tmp_path / f'{n}.db'}") for n in ("a", "b")
        ]
    else:
        url = request.getfixturevalue("postgres_url")
        made = [(url, url)]
    for sync_url, _ in made:
        engine = create_engine(sync_url)
        for meta in METAS:
            meta.drop_all(engine)
            meta.create_all(engine)
        engine.dispose()
    yield made
    for sync_url, _ in made:
        engine = create_engine(sync_url)
        for meta in METAS:
            meta.drop_all(engine)
        engine.dispose()


ROWS = [
    {
        "id": i,
        "name": f"n{i}",
        "when": datetime(2024, 1, 1) + timedelta(minutes=i),
        "mood": Mood.calm,
        "amount": Decimal("1.25") * i,
        "doc": {"i": i},
        "ratio": i / 3,
    }
    for i in range(1, 2_001)
]


def dump(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(Every.__table__).order_by(Every.id))]
    finally:
        engine.dispose()


def clear(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(Every.__table__.delete())
    engine.dispose()


async def _async_writes(url: str) -> None:
    engine = create_async_engine(url)
    try:
        assert await turboalchemy.abulk_insert(engine, Every, ROWS[:1000], chunk_size=300) == 1000

        async def rest():
            for row in ROWS[1000:]:
                yield row

        async with AsyncSession(engine) as session:
            assert await turboalchemy.abulk_insert(session, Every, rest(), chunk_size=300) == 1000
            await session.commit()
        async with engine.connect() as conn:
            assert await turboalchemy.abulk_upsert(conn, Every, [{"id": 5, "name": "up"}], conflict=["id"]) == 1
            await conn.commit()
    finally:
        await engine.dispose()


def test_async_and_sync_writes_leave_identical_tables(urls):
    sync_url, async_url = urls[0]
    engine = create_engine(sync_url)
    turboalchemy.bulk_insert(engine, Every, ROWS[:1000], chunk_size=300)
    turboalchemy.bulk_insert(engine, Every, iter(ROWS[1000:]), chunk_size=300)
    turboalchemy.bulk_upsert(engine, Every, [{"id": 5, "name": "up"}], conflict=["id"])
    engine.dispose()
    expected = dump(sync_url)
    if len(urls) == 1:
        clear(sync_url)
    else:
        sync_url, async_url = urls[1]
    asyncio.run(_async_writes(async_url))
    assert dump(sync_url) == expected and len(expected) == 2000


def test_async_upserts_apply_one_key_twice_in_a_chunk_in_order(urls):
    """The first row inserts and the later one updates it, as executemany applies them: the column the update
    leaves keeps the first row's value (on PostgreSQL such a chunk goes row by row through the async driver)."""
    sync_url, async_url = urls[0]
    rows = [_strict(1, s="first"), _strict(2), _strict(1, n=99, s="second")]

    async def run():
        engine = create_async_engine(async_url)
        try:
            await turboalchemy.abulk_upsert(engine, STRICT, rows, conflict=["id"], update=["n"])
        finally:
            await engine.dispose()

    asyncio.run(run())
    engine = create_engine(sync_url)
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(select(STRICT.c.id, STRICT.c.n, STRICT.c.s).order_by(STRICT.c.id))]
    engine.dispose()
    assert stored == [(1, 99, "first"), (2, 2, "s2")]


def test_async_errors_name_the_same_row_and_column_across_an_async_stream(urls):
    sync_url, async_url = urls[0]
    rows = [_strict(i) for i in range(25)]
    rows[17] = rows[17] | {"n": None}

    async def run():
        engine = create_async_engine(async_url)

        async def stream():
            for row in rows:
                yield row

        try:
            with pytest.raises(BulkWriteError) as failure:
                await turboalchemy.abulk_insert(engine, STRICT, stream(), chunk_size=10)
            return failure.value
        finally:
            await engine.dispose()

    error = asyncio.run(run())
    assert (error.row, error.column, error.committed) == (17, "n", 10)
    engine = create_engine(sync_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(STRICT)).scalar() == 10
    engine.dispose()


def test_sync_targets_are_refused_with_the_sync_function_named():
    with pytest.raises(turboalchemy.UnsupportedTargetError, match="turboalchemy.bulk_insert"):
        asyncio.run(turboalchemy.abulk_insert(create_engine("sqlite://"), Every, ROWS[:1]))


def test_nan_follows_the_backend_rule_through_the_async_path(urls):
    sync_url, async_url = urls[0]

    async def run():
        engine = create_async_engine(async_url)
        try:
            await turboalchemy.abulk_insert(engine, STRICT, [_strict(1, x=math.nan)])
        finally:
            await engine.dispose()

    if sync_url.startswith("sqlite"):
        with pytest.raises(BulkWriteError, match="NaN"):
            asyncio.run(run())
    else:
        asyncio.run(run())


def test_async_upserts_of_keys_the_unique_index_finds_equal_apply_in_order_and_keep_earlier_writes(urls):
    """Keys equal as the unique index compares them ("a", "A" under a case-insensitive collation: the index's own on
    PostgreSQL, the column's on SQLite): the first row inserts, the later one updates it. On PostgreSQL, on a table
    drawing no sequence values, the server refuses the merge; the chunk is undone (its transaction, or back to its
    savepoint inside the caller's) and goes row by row through the async driver. The caller's earlier write stays."""
    from sqlalchemy import Column, Integer, MetaData, Table, Text

    sync_url, async_url = urls[0]
    postgresql = sync_url.startswith("postgresql")
    coded = Table("coded", MetaData(), Column("code", Text, unique=True), Column("n", Integer), Column("s", Text))
    rows = [{"code": "a", "n": 1, "s": "first"}, {"code": "b", "n": 2, "s": "b"}, {"code": "A", "n": 3, "s": "last"}]

    async def run():
        engine = create_async_engine(async_url)
        try:
            async with engine.begin() as conn:
                if postgresql:
                    await conn.exec_driver_sql(
                        "CREATE COLLATION IF NOT EXISTS ci "
                        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
                    )
                    await conn.exec_driver_sql("CREATE TABLE coded (code TEXT, n INTEGER, s TEXT)")
                    await conn.exec_driver_sql('CREATE UNIQUE INDEX coded_code ON coded (code COLLATE "ci")')
                else:
                    await conn.exec_driver_sql(
                        "CREATE TABLE coded (code TEXT COLLATE NOCASE UNIQUE, n INTEGER, s TEXT)"
                    )
            await turboalchemy.abulk_upsert(engine, coded, rows, conflict=["code"], update=["n"])
            async with engine.begin() as conn:
                await conn.execute(coded.insert().values(code="z", n=0, s="before"))
                again = [{"code": "c", "n": 1, "s": "first"}, {"code": "C", "n": 4, "s": "last"}]
                await turboalchemy.abulk_upsert(conn, coded, again, conflict=["code"], update=["n"])
            async with engine.connect() as conn:
                return [tuple(r) for r in await conn.execute(select(coded).order_by(coded.c.code))]
        finally:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DROP TABLE IF EXISTS coded")
                if postgresql:
                    await conn.exec_driver_sql("DROP COLLATION IF EXISTS ci")
            await engine.dispose()

    stored = asyncio.run(run())
    assert stored == [("a", 3, "first"), ("b", 2, "b"), ("c", 4, "first"), ("z", 0, "before")]
