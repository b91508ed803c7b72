"""When the rows' own source raises (a generator, a file being parsed), its exception reaches the caller with its
own type, and says how far the write got: `committed` and a note, on every bulk path."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

import turboalchemy

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String))


class SourceBroke(Exception):
    pass


def rows(n_before: int = 25_000):
    for i in range(n_before):
        yield {"name": str(i)}
    raise SourceBroke("the export file is truncated")


async def arows(n_before: int = 25_000):
    for row in rows(n_before):
        yield row


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items)).scalar()


@pytest.mark.parametrize("path", ["engine", "session", "write queue", "asyncio"])
def test_a_raising_source_keeps_its_type_and_tells_what_was_committed(tmp_path, path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = turboalchemy.create_engine(url)
    metadata.create_all(engine)
    with pytest.raises(SourceBroke) as broke:
        if path == "engine":
            turboalchemy.bulk_insert(engine, items, rows(), chunk_size=10_000)
        elif path == "session":
            with Session(engine) as session:
                turboalchemy.bulk_insert(session, items, rows(), chunk_size=10_000)
        elif path == "write queue":
            with turboalchemy.WriteQueue(engine) as queue:
                queue.bulk_insert(items, rows(), chunk_size=10_000)
        else:
            from sqlalchemy.ext.asyncio import create_async_engine

            engine.dispose()  # aiosqlite runs the stdlib's SQLite: one SQLite library on the file at a time
            aengine = create_async_engine(url.replace("sqlite:", "sqlite+aiosqlite:", 1))

            async def load() -> None:
                try:
                    await turboalchemy.abulk_insert(aengine, items, arows(), chunk_size=10_000)
                finally:
                    await aengine.dispose()

            asyncio.run(load())
    expected = None if path == "session" else 20_000  # a Session's rows are in its transaction, never committed
    assert broke.value.committed == expected
    [note] = broke.value.__notes__
    assert "the rows' source raised after 20,000 rows had been written" in note
    assert ("20,000 rows of this call were committed" in note) is (expected is not None)
    assert count(engine) == (expected or 0)
    engine.dispose()
