"""stream and keyset_page: constant memory, every row exactly once and in order, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest
from sqlalchemy import Integer, String, create_engine, func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import turboalchemy
from turboalchemy import KeysetError


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "reads_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    grp: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(20), unique=True)


ROWS = 3_000


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reads.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    made = create_engine(url)
    Base.metadata.drop_all(made)
    Base.metadata.create_all(made)
    turboalchemy.bulk_insert(
        made, Item, ({"id": i, "grp": i % 7, "name": f"item {i}", "code": f"c{i:06d}"} for i in range(1, ROWS + 1))
    )
    yield made
    Base.metadata.drop_all(made)
    made.dispose()


def test_stream_yields_objects_or_rows_in_order(engine):
    with Session(engine) as session:
        objects = list(turboalchemy.stream(session, select(Item).order_by(Item.id), batch_size=100))
        assert len(objects) == ROWS and isinstance(objects[0], Item) and objects[-1].id == ROWS
        pairs = list(turboalchemy.stream(session, select(Item.id, Item.name).order_by(Item.id), batch_size=100))
        assert pairs[0] == (1, "item 1")
    assert sum(1 for _ in turboalchemy.stream(engine, select(Item.id), batch_size=250)) == ROWS


def test_streaming_memory_does_not_grow_with_the_table(engine):
    def peak(fn) -> int:
        tracemalloc.start()
        fn()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    with Session(engine) as session:
        streamed = peak(lambda: sum(len(o.name) for o in turboalchemy.stream(session, select(Item), batch_size=100)))
        session.expunge_all()
        loaded = peak(lambda: sum(len(o.name) for o in session.scalars(select(Item)).all()))
    assert streamed * 3 < loaded, (streamed, loaded)


@pytest.mark.parametrize("order", ["id", "code", "id desc", "grp,id"])
def test_keyset_pages_cover_every_row_once_in_order(engine, order):
    columns = {"id": Item.id, "code": Item.code, "grp": Item.grp}
    order_by = [columns[o.split()[0]].desc() if o.endswith(" desc") else columns[o] for o in order.split(",")]
    expected_stmt = select(Item.id).order_by(*order_by)
    with Session(engine) as session:
        expected = list(session.scalars(expected_stmt))
        seen, after, pages = [], None, 0
        while True:
            page = turboalchemy.keyset_page(session, select(Item).order_by(*order_by), size=128, after=after)
            seen += [item.id for item in page.rows]
            pages += 1
            if page.next_after is None:
                break
            after = page.next_after
    assert seen == expected and pages == -(-ROWS // 128)


@pytest.mark.parametrize("order", ["id", "id desc", "grp,id"])
def test_one_select_reused_for_every_page_and_size_still_pages_exactly(engine, order):
    """An endpoint keeps one select and pages with it: the plan kept for it must serve any cursor and size."""
    columns = {"id": Item.id, "grp": Item.grp}
    order_by = [columns[o.split()[0]].desc() if o.endswith(" desc") else columns[o] for o in order.split(",")]
    stmt = select(Item).order_by(*order_by)
    with Session(engine) as session:
        expected = list(session.scalars(select(Item.id).order_by(*order_by)))
        for sizes in ([100, 7], [7, 100]):  # the same select, first and later pages, sizes alternating
            seen, after, turn = [], None, 0
            while True:
                page = turboalchemy.keyset_page(session, stmt, size=sizes[turn % 2], after=after)
                assert len(page.rows) <= sizes[turn % 2]
                seen += [item.id for item in page.rows]
                turn += 1
                if page.next_after is None:
                    break
                after = page.next_after
            assert seen == expected


def test_keyset_pages_stay_exact_under_inserts_past_the_cursor(engine):
    seen, after = [], None
    with Session(engine) as session:
        while True:
            page = turboalchemy.keyset_page(
                session, select(Item.id, Item.name).order_by(Item.id), size=500, after=after
            )
            seen += [row.id for row in page.rows]
            if page.next_after is None:
                break
            after = page.next_after
            with Session(engine) as writer:  # a concurrent writer appends past the cursor
                top = writer.scalar(select(func.max(Item.id)))
                writer.add(Item(id=top + 1, grp=0, name="late", code=f"late{top + 1}"))
                writer.commit()
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > ROWS  # nothing twice, nothing skipped


@pytest.mark.parametrize(
    "stmt, message",
    [
        (select(Item), "need a select ordered by a unique key"),
        (select(Item).order_by(Item.grp), r"ORDER BY \(grp\) is not unique"),
        (select(Item).order_by(Item.grp, Item.id.desc()), "mixes ascending and descending"),
        (select(Item).order_by(Item.id).limit(5), "remove .limit"),
        (select(Item.name).order_by(Item.id), "select the key columns"),
    ],
)
def test_orderings_that_cannot_be_paged_are_refused(engine, stmt, message):
    with Session(engine) as session:
        with pytest.raises(KeysetError, match=message):
            turboalchemy.keyset_page(session, stmt, size=10, after=None)


def test_the_async_variants_give_the_same_pages_and_stream(engine):
    url = engine.url.render_as_string(hide_password=False)
    async_url = url.replace("sqlite:", "sqlite+aiosqlite:", 1) if url.startswith("sqlite") else url
    engine.dispose()  # aiosqlite goes through the stdlib's SQLite: one SQLite library on the file at a time

    async def run():
        aengine = create_async_engine(async_url)
        try:
            async with AsyncSession(aengine) as session:
                first = await turboalchemy.akeyset_page(session, select(Item).order_by(Item.id), size=10)
                second = await turboalchemy.akeyset_page(
                    session, select(Item).order_by(Item.id), size=10, after=first.next_after
                )
                streamed = [
                    item.id
                    async for item in turboalchemy.astream(session, select(Item).order_by(Item.id), batch_size=100)
                ]
            rows = [row async for row in turboalchemy.astream(aengine, select(Item.id), batch_size=500)]
            return [i.id for i in first.rows], [i.id for i in second.rows], streamed, len(rows)
        finally:
            await aengine.dispose()

    first, second, streamed, count = asyncio.run(run())
    assert first == list(range(1, 11)) and second == list(range(11, 21))
    assert streamed == list(range(1, ROWS + 1)) and count == ROWS
