"""The contract as a matrix: every write path and every row shape, on SQLite and PostgreSQL, stores what
SQLAlchemy itself stores for the same input (read back through a fresh connection on a twin database)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import sqlalchemy
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

import turboalchemy

from .shop import Customer
from .test_contract import stored

COLUMNS = [c.key for c in Customer.__table__.columns]


def dicts():
    return [{"email": f"d{i}@shop.test", "name": f"n{i}", "balance": Decimal(i) / 4} for i in range(7)]


def mixed_dicts():
    return [
        {"email": "a@shop.test"},
        {"email": "b@shop.test", "name": "b"},
        {"email": "c@shop.test", "tier": "gold"},
        {"email": "d@shop.test", "balance": Decimal("1.25"), "name": None},
        {"email": "e@shop.test"},
    ]


def instances():
    return [Customer(email=f"i{i}@shop.test", name=f"i{i}", balance=Decimal(i)) for i in range(5)]


def mixed_instances():
    return [
        Customer(email="a@shop.test"),
        Customer(email="b@shop.test", tier="gold"),
        Customer(email="c@shop.test", name="c", balance=Decimal("2.5")),
        Customer(email="d@shop.test"),
    ]


def tuples():  # in the table's column order: id, email, tier, name, balance
    return [(10 + i, f"t{i}@shop.test", "basic", None if i % 2 else f"t{i}", Decimal(i)) for i in range(6)]


SHAPES = {
    "dicts": dicts,
    "mixed dicts": mixed_dicts,
    "instances": instances,
    "mixed instances": mixed_instances,
    "tuples": tuples,
}
PATHS = ["engine", "session", "connection", "repository", "asyncio", "write queue"]


def sqlalchemy_stores(engine, shape: str) -> None:
    rows = SHAPES[shape]()
    with Session(engine) as session:
        if "instances" in shape:
            session.add_all(rows)
        else:
            as_dicts = [dict(zip(COLUMNS, r)) for r in rows] if shape == "tuples" else rows
            session.execute(sqlalchemy.insert(Customer), as_dicts)
        session.commit()


def ours_stores(engine, path: str, shape: str) -> int:
    rows = SHAPES[shape]()
    if path == "engine":
        return turboalchemy.bulk_insert(engine, Customer, rows, chunk_size=3)
    if path == "connection":
        with engine.begin() as conn:
            return turboalchemy.bulk_insert(conn, Customer, rows, chunk_size=3)
    if path in ("session", "repository"):
        with Session(engine) as session:
            written = (
                turboalchemy.bulk_insert(session, Customer, rows, chunk_size=3)
                if path == "session"
                else turboalchemy.Repository(session, Customer).bulk_insert(rows, chunk_size=3)
            )
            session.commit()
        return written
    if path == "write queue":
        queue = turboalchemy.WriteQueue(engine)
        try:
            return queue.bulk_insert(Customer, rows, chunk_size=3)
        finally:
            queue.close()
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}
    engine.dispose()  # aiosqlite goes through the stdlib's SQLite: one SQLite library on the file at a time
    aengine = create_async_engine(engine.url.set(drivername=drivers[engine.dialect.name]))

    async def load() -> int:
        try:
            return await turboalchemy.abulk_insert(aengine, Customer, rows, chunk_size=3)
        finally:
            await aengine.dispose()

    return asyncio.run(load())


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("path", PATHS)
def test_every_path_and_row_shape_stores_what_sqlalchemy_stores(twins, path, shape):
    ours, theirs = twins
    sqlalchemy_stores(theirs, shape)
    assert ours_stores(ours, path, shape) == len(SHAPES[shape]())
    assert stored(ours, Customer) == stored(theirs, Customer)
    fresh = create_engine(ours.url)  # and the server defaults were filled by the database, as for SQLAlchemy
    with fresh.connect() as conn:
        assert None not in [r[0] for r in conn.exec_driver_sql("SELECT tier FROM customers")]
    fresh.dispose()
