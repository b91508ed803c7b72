"""The contract, property-based: Hypothesis draws rows over the shop's model zoo (serial ids left to the
database, a server default, optional columns, Numeric with a Python default, naive and aware datetimes, and
children in a relationship), a row shape (dicts leaving different keys out, instances, graphs of instances),
a target and whether keys come back; our write and SQLAlchemy's, on twin databases of either backend, store
the same rows, read back through a fresh connection, and give the instances the same keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

import turboalchemy

from .shop import Customer, Order, Visit
from .test_contract import stored

names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cs",)), max_size=12
)
balances = st.decimals(min_value=-(10**5), max_value=10**5, places=4, allow_nan=False, allow_infinity=False)
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))
OPTIONAL = {"name": st.none() | names, "tier": st.sampled_from(["basic", "gold", "silver"]), "balance": balances}


@st.composite
def customers(draw) -> list[dict]:
    """Customers that each supply their own set of the optional keys (rows of different shapes in one call)."""
    rows = []
    for i in range(draw(st.integers(1, 9))):
        row = {"email": f"c{i}@shop.test"}
        for key in draw(st.sets(st.sampled_from(sorted(OPTIONAL)))):
            row[key] = draw(OPTIONAL[key])
        rows.append(row)
    return rows


@st.composite
def cases(draw) -> dict:
    return {
        "customers": draw(customers()),
        "children": draw(
            st.lists(st.lists(st.sampled_from(["book", "pen", "cup"]), max_size=3), min_size=9, max_size=9)
        ),
        "shape": draw(st.sampled_from(["dicts", "instances", "graph"])),
        "target": draw(st.sampled_from(["engine", "session", "connection"])),
        "returning": draw(st.booleans()),
        "visits": draw(
            st.lists(moments.flatmap(lambda m: st.just(m) | zones.map(lambda z: m.replace(tzinfo=z))), max_size=5)
        ),
        "chunk_size": draw(st.integers(1, 4)),
    }


def build(case: dict) -> list:
    """The rows in the drawn shape: dicts, instances, or instances holding new children (a graph)."""
    rows = case["customers"]
    if case["shape"] == "dicts":
        return [dict(r) for r in rows]
    if case["shape"] == "instances":
        return [Customer(**r) for r in rows]
    return [Customer(**r, orders=[Order(item=i) for i in items]) for r, items in zip(rows, case["children"])]


def sqlalchemy_writes(engine, case: dict) -> list | None:
    rows = build(case)
    with Session(engine) as session:
        if case["shape"] == "dicts":
            session.execute(sqlalchemy.insert(Customer), rows)
            keys = None
        else:
            session.add_all(rows)
            session.flush()
            keys = [c.id for c in rows]
        session.add_all([Visit(code=f"v{i}", at=at) for i, at in enumerate(case["visits"])])
        session.commit()
    return keys


def ours_writes(engine, case: dict) -> list | None:
    rows = build(case)
    options = {"chunk_size": case["chunk_size"], "returning": Customer.id if case["returning"] else None}
    visits = [{"code": f"v{i}", "at": at} for i, at in enumerate(case["visits"])]

    def held() -> list:  # the keys the instances hold (read before a commit expires them)
        return [c.__dict__.get("id") for c in rows] if case["shape"] != "dicts" else []

    if case["target"] == "engine":
        got = turboalchemy.bulk_insert(engine, Customer, rows, **options)
        keys = held()
        turboalchemy.bulk_insert(engine, Visit, visits)
    elif case["target"] == "connection":
        with engine.begin() as conn:
            got = turboalchemy.bulk_insert(conn, Customer, rows, **options)
            keys = held()
            turboalchemy.bulk_insert(conn, Visit, visits)
    else:
        with Session(engine) as session:
            got = turboalchemy.bulk_insert(session, Customer, rows, **options)
            keys = held()
            turboalchemy.bulk_insert(session, Visit, visits)
            session.commit()
    if case["shape"] == "dicts":
        return None
    if case["returning"]:
        assert got == keys  # what came back is what the instances hold
    graph = case["shape"] == "graph" and any(case["children"][: len(rows)])
    # instances get their keys when asked for (returning=) or when they form a graph (its levels need them)
    return keys if case["returning"] or graph else None


def _reset(*engines) -> None:
    """Empty the tables between examples, serial counters included, so both twins hand out the same ids."""
    for engine in engines:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("TRUNCATE orders, customers, visits RESTART IDENTITY CASCADE")
            else:  # no AUTOINCREMENT: an empty table's next rowid is 1 again
                for table in ("orders", "customers", "visits"):
                    conn.exec_driver_sql(f"DELETE FROM {table}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_any_drawn_write_stores_what_sqlalchemy_stores(twins, case):
    ours, theirs = twins
    _reset(ours, theirs)
    keys = sqlalchemy_writes(theirs, case)
    got = ours_writes(ours, case)
    for model in (Customer, Order, Visit):
        assert stored(ours, model) == stored(theirs, model), model.__name__
    if got is not None:
        assert got == keys  # the instances got the keys add_all gives them


def test_the_balance_default_and_the_tier_server_default_are_filled_like_the_orm(twins):
    """One fixed case the drawn ones build on, readable on its own."""
    ours, theirs = twins
    case = {
        "customers": [{"email": "a@shop.test"}, {"email": "b@shop.test", "balance": Decimal("1.5"), "tier": "gold"}],
        "children": [["pen"], []] + [[]] * 7,
        "shape": "graph",
        "target": "session",
        "returning": True,
        "visits": [datetime(2026, 1, 1, 12, tzinfo=UTC)],
        "chunk_size": 1,
    }
    assert ours_writes(ours, case) == sqlalchemy_writes(theirs, case) == [1, 2]
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert [r[2] for r in stored(ours, Customer)] == ["basic", "gold"]


pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
