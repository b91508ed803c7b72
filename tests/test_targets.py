"""Every public function resolves its target in one place, so each refuses the wrong kind in the same words."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Integer, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import turboalchemy


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


ORDERED = select(Item).order_by(Item.id)

SYNC_CALLS = {
    "bulk_insert": lambda t: turboalchemy.bulk_insert(t, Item, [{"id": 1}]),
    "bulk_upsert": lambda t: turboalchemy.bulk_upsert(t, Item, [{"id": 1}], conflict=["id"]),
    "stream": lambda t: list(turboalchemy.stream(t, ORDERED)),
    "keyset_page": lambda t: turboalchemy.keyset_page(t, ORDERED),
    "explain": lambda t: turboalchemy.explain(t, ORDERED),
    "count_queries": lambda t: turboalchemy.count_queries(t).__enter__(),
    "health": lambda t: turboalchemy.health(t),
    "backup": lambda t: turboalchemy.backup(t, "copy.db"),
    "migrate": lambda t: turboalchemy.migrate(t, "."),
    "advise": lambda t: turboalchemy.advise(t),
    "copy_database": lambda t: turboalchemy.copy_database(t, t),
    "WriteQueue": lambda t: turboalchemy.WriteQueue(t),
}
ASYNC_CALLS = {
    "abulk_insert": lambda t: turboalchemy.abulk_insert(t, Item, [{"id": 1}]),
    "abulk_upsert": lambda t: turboalchemy.abulk_upsert(t, Item, [{"id": 1}], conflict=["id"]),
    "akeyset_page": lambda t: turboalchemy.akeyset_page(t, ORDERED),
}


@pytest.mark.parametrize("name", sorted(SYNC_CALLS))
def test_a_synchronous_function_refuses_what_is_no_target_naming_itself(name):
    with pytest.raises(turboalchemy.UnsupportedTargetError, match=rf"^{name} takes an .*, not int$") as caught:
        SYNC_CALLS[name](42)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize("name", sorted(set(SYNC_CALLS) - {"health", "backup", "migrate", "advise"}))
def test_an_asyncio_engine_given_to_a_synchronous_function_points_to_the_asyncio_way(name, tmp_path):
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    way = rf"use turboalchemy\.a{name}\)" if hasattr(turboalchemy, f"a{name}") else r"pass its sync_engine"
    try:
        with pytest.raises(turboalchemy.UnsupportedTargetError, match=rf"not AsyncEngine \(.*{way}"):
            SYNC_CALLS[name](engine)
    finally:
        asyncio.run(engine.dispose())


@pytest.mark.parametrize("name", sorted(ASYNC_CALLS))
def test_a_synchronous_engine_given_to_an_asyncio_function_points_to_the_plain_one(name, tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(
        turboalchemy.UnsupportedTargetError,
        match=rf"not Engine \(for synchronous targets, use turboalchemy\.{name[1:]}\)",
    ):
        asyncio.run(ASYNC_CALLS[name](engine))
    engine.dispose()


@pytest.mark.parametrize("name", ["backup", "migrate"])
def test_the_file_tools_refuse_a_connection_they_would_bypass(name, tmp_path):
    """backup and migrate open the file themselves, so a Connection's transaction would not hold them."""
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    with (
        engine.connect() as conn,
        pytest.raises(turboalchemy.UnsupportedTargetError, match=rf"^{name} takes an Engine or path, not Connection"),
    ):
        SYNC_CALLS[name](conn)
    engine.dispose()


@pytest.mark.parametrize("option", [{"method": "copy"}, {"pages_per_step": 0}])
def test_a_bad_backup_argument_is_a_value_error(tmp_path, option):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(ValueError):
        turboalchemy.backup(engine, tmp_path / "copy.db", **option)
    engine.dispose()
