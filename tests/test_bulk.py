"""turboalchemy.bulk_insert / bulk_upsert on SQLite: what the ORM would store, and nothing partial on failure."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import Session

import turboalchemy
from turboalchemy import BulkWriteError, SchemaMismatchError

from .dbapi import SQLITE
from .models import FIXED, ODD, STRICT, Base, Every, Mood, Reading, odd_meta, strict_meta


@pytest.fixture
def engines(tmp_path):
    """Fresh SQLite files with the test models; disposed afterwards."""
    made = []

    def make(name: str):
        engine = create_engine(f"sqlite:///{tmp_path / name}.db")
        for meta in (Base.metadata, strict_meta, odd_meta):
            meta.create_all(engine)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


def dump(engine, table: str, order: str = "id") -> list[tuple]:
    """Every value with its storage class, read by a separate sqlite3 connection."""
    conn = SQLITE.connect(engine.url.database)
    try:

        def q(name):
            return '"' + name.replace('"', '""') + '"'

        names = [r[1] for r in conn.execute(f"PRAGMA table_info({q(table)})")]
        cols = ", ".join(f"{q(n)}, typeof({q(n)})" for n in names)
        return conn.execute(f"SELECT {cols} FROM {q(table)} ORDER BY {q(order)}").fetchall()
    finally:
        conn.close()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- storing what the ORM stores ------------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
OPTIONAL = {
    "when": st.datetimes(),
    "day": st.dates(),
    "at": st.times(),
    "flag": st.booleans(),
    "mood": st.sampled_from(Mood),
    "doc": st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000) | st.text(max_size=5), max_size=3),
    "amount": st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
    "uid": st.uuids(),
    "blob": st.binary(max_size=40),
    "span": st.timedeltas(min_value=timedelta(days=-9999), max_value=timedelta(days=9999)),
    "shout": text,
    "ratio": st.floats(allow_nan=False),
    "count": st.integers(-(2**63), 2**63 - 1),
}


@st.composite
def every_rows(draw):
    """A batch of rows that all supply the same keys: id and name, plus a drawn set of the others."""
    keys = draw(st.sets(st.sampled_from(sorted(OPTIONAL))))
    n = draw(st.integers(1, 30))
    rows = []
    for i in range(n):
        row = {"id": i + 1, "name": draw(text)}
        for key in sorted(keys):
            row[key] = draw(st.none() | OPTIONAL[key]) if key != "count" else draw(OPTIONAL[key])
        rows.append(row)
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=every_rows())
def test_bulk_insert_stores_exactly_what_the_orm_stores(engines, rows):
    orm, fast = engines("orm"), engines("fast")
    try:
        with Session(orm) as session:
            session.add_all([Every(**r) for r in rows])
            session.commit()
        assert turboalchemy.bulk_insert(fast, Every, rows, chunk_size=7) == len(rows)
        assert dump(fast, "every") == dump(orm, "every")
    finally:
        for engine in (orm, fast):
            Base.metadata.drop_all(engine)
            Base.metadata.create_all(engine)


@pytest.mark.parametrize("shape", ["dicts", "column names", "instances", "tuples"])
def test_rows_come_as_dicts_instances_or_tuples(engines, shape):
    orm, fast = engines("orm"), engines("fast")
    rows = [
        {"id": i, "name": f"n{i}", "ratio": i / 3, "label": f"l{i}", "count": i, "stamped": FIXED, "echo": "e"}
        for i in range(1, 40)
    ]
    if shape == "tuples":
        # a tuple supplies every column, so "absent" reads as an explicit None (JSON stores 'null' then,
        # as the ORM does for an attribute set to None): give the ORM reference the same explicit Nones
        attributes = [c.key for c in Every.__mapper__.column_attrs]
        rows = [{a: r.get(a) for a in attributes} for r in rows]
    with Session(orm) as session:
        session.add_all([Every(**r) for r in rows])
        session.commit()
    if shape == "column names":
        given_rows = [{("label text" if k == "label" else k): v for k, v in r.items()} for r in rows]
    elif shape == "instances":
        given_rows = [Every(**r) for r in rows]
    elif shape == "tuples":
        table = Every.__table__
        given_rows = [tuple(r[c.key if c.key != "label text" else "label"] for c in table.columns) for r in rows]
    else:
        given_rows = rows
    turboalchemy.bulk_insert(fast, Every, iter(given_rows), chunk_size=10)
    assert dump(fast, "every") == dump(orm, "every")


def test_python_defaults_scalar_callable_and_context_sensitive(engines):
    engine = engines("d")
    turboalchemy.bulk_insert(engine, Every, [{"id": 1, "name": "ann"}])
    with Session(engine) as session:
        row = session.get(Every, 1)
        assert (row.count, row.stamped, row.echo, row.label) == (7, FIXED, "ann!", "x")


# -- upserts --------------------------------------------------------------------------------------


def readings(n: int, value: float = 1.0) -> list[dict]:
    return [{"id": i, "sensor": f"s{i % 7}", "slot": i, "value": value * i, "note": None} for i in range(n)]


def test_upsert_twice_equals_upsert_once(engines):
    once, twice = engines("once"), engines("twice")
    turboalchemy.bulk_upsert(once, Reading, readings(500), conflict=("sensor", "slot"), chunk_size=64)
    for _ in range(2):
        turboalchemy.bulk_upsert(twice, Reading, readings(500), conflict=("sensor", "slot"), chunk_size=64)
    assert dump(once, "readings") == dump(twice, "readings")
    assert count(twice, Reading.__table__) == 500


def test_upsert_updates_in_place_and_keeps_the_primary_key(engines):
    engine = engines("u")
    turboalchemy.bulk_insert(engine, Reading, readings(100))
    changed = [dict(r, id=r["id"] + 1000, value=-1.0, note="new") for r in readings(100)]
    assert turboalchemy.bulk_upsert(engine, Reading, changed, conflict=("sensor", "slot")) == 100
    with Session(engine) as session:
        stored = session.scalars(select(Reading).order_by(Reading.id)).all()
    assert [r.id for r in stored] == list(range(100))  # ids are not overwritten
    assert {(r.value, r.note) for r in stored} == {(-1.0, "new")}


def test_duplicates_within_one_chunk_resolve_last_wins(engines):
    engine = engines("dup")
    rows = [
        {"id": 1, "sensor": "a", "slot": 1, "value": 1.0, "note": "first"},
        {"id": 2, "sensor": "a", "slot": 1, "value": 2.0, "note": "last"},
    ]
    turboalchemy.bulk_upsert(engine, Reading, rows, conflict=("sensor", "slot"))
    with Session(engine) as session:
        (row,) = session.scalars(select(Reading)).all()
    assert (row.id, row.value, row.note) == (1, 2.0, "last")


def test_upsert_applies_onupdate_and_an_explicit_update_list(engines):
    engine = engines("on")
    turboalchemy.bulk_insert(engine, Every, [{"id": 1, "name": "a", "ratio": 1.0}])
    turboalchemy.bulk_upsert(
        engine, Every, [{"id": 1, "name": "b", "ratio": 2.0}], conflict=("id",), update=["ratio", "stamped"]
    )
    with Session(engine) as session:
        row = session.get(Every, 1)
        assert (row.name, row.ratio, row.stamped) == ("a", 2.0, FIXED + timedelta(days=1))


def test_a_conflict_target_without_a_unique_key_is_refused_before_any_sql(engines):
    engine = engines("nt")
    with pytest.raises(SchemaMismatchError, match="not a primary key, unique constraint or unique index"):
        turboalchemy.bulk_upsert(engine, Reading, readings(3), conflict=("sensor",))
    assert count(engine, Reading.__table__) == 0


# -- bad input ------------------------------------------------------------------------------------


def _strict(i: int, **override) -> dict:
    return {"id": i, "n": i, "x": float(i), "s": f"s{i}"} | override


# (row at fault, column named, what that row holds instead, the type reported); rows 10..19 are the second chunk
BAD = [
    pytest.param(17, "n", {"n": "seven"}, "str", id="text into STRICT INTEGER"),
    pytest.param(13, "x", {"x": math.nan}, "float", id="NaN"),
    pytest.param(15, "n", {"n": 2**63}, "int", id="2**63"),
    pytest.param(19, "n", {"n": None}, "NoneType", id="None into NOT NULL"),
    pytest.param(14, "id", {"id": 11}, "int", id="duplicate key within the chunk"),
    pytest.param(16, "s", {"s": ["a"]}, "list", id="unbindable value"),
    pytest.param(12, "s", {"s": b"\xff bytes"}, "bytes", id="bytes into STRICT TEXT"),
]


@pytest.mark.parametrize("per", [None, 4], ids=["rows-per-write", "4-per-statement"])
@pytest.mark.parametrize("target_kind", ["engine", "session"])
@pytest.mark.parametrize("row, column, override, value_type", BAD)
def test_a_bad_row_is_named_and_its_chunk_rolls_back_whole(
    engines, monkeypatch, per, target_kind, row, column, override, value_type
):
    """Also where the chunk goes as several multi-row statements (`per` rows each) and the bad row is in a later
    one: the rows written by the statements before it are undone with the chunk."""
    if per is not None:
        monkeypatch.setattr("turboalchemy._write.sqlite.ROWS_PER_WRITE", per)
    engine = engines("bad")
    rows = [_strict(i) for i in range(20)]
    rows[row] = rows[row] | override
    if target_kind == "engine":
        with pytest.raises(BulkWriteError) as failure:
            turboalchemy.bulk_insert(engine, STRICT, rows, chunk_size=10)
        assert failure.value.committed == 10
        assert count(engine, STRICT) == 10  # the first chunk, committed; none of the second
    else:
        with Session(engine) as session:
            with pytest.raises(BulkWriteError) as failure:
                turboalchemy.bulk_insert(session, STRICT, rows, chunk_size=10)
            assert session.execute(select(func.count()).select_from(STRICT)).scalar_one() == 10
            session.commit()  # the caller decides: keep the chunks that succeeded
        assert failure.value.committed is None
        assert count(engine, STRICT) == 10
    error = failure.value
    assert (error.table, error.row, error.column) == ("strict_rows", row, column)
    assert error.value_type == value_type
    assert f"row {row}" in str(error) and repr(column) in str(error)
    turboalchemy.bulk_insert(engine, STRICT, [_strict(100)])  # the connection is usable afterwards


def test_a_duplicate_of_a_stored_row_is_named(engines):
    engine = engines("stored")
    turboalchemy.bulk_insert(engine, STRICT, [_strict(i) for i in range(5)])
    with pytest.raises(BulkWriteError) as failure:
        turboalchemy.bulk_insert(engine, STRICT, [_strict(i) for i in range(5, 8)] + [_strict(2)])
    assert (failure.value.row, failure.value.column, failure.value.committed) == (3, "id", 0)
    assert count(engine, STRICT) == 5


def test_infinities_are_stored_as_they_are(engines):
    engine = engines("inf")
    turboalchemy.bulk_insert(engine, STRICT, [_strict(1, x=math.inf), _strict(2, x=-math.inf)])
    assert [r[4] for r in dump(engine, "strict_rows")] == [math.inf, -math.inf]


def test_values_over_the_length_limit_are_named(engines):
    if not hasattr(SQLITE.Connection, "setlimit"):
        pytest.skip(f"{SQLITE.__name__} cannot lower a connection's limit (no setlimit)")
    engine = engines("long")

    @event.listens_for(engine, "connect")
    def lower_limit(dbapi_connection, _record):
        # 1,000 bytes: room for the schema's own CREATE TABLE text, which SQLite must read back
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000)  # the constant is the same in every module

    engine.dispose()
    with pytest.raises(BulkWriteError) as failure:
        turboalchemy.bulk_insert(engine, STRICT, [_strict(1), _strict(2, s="x" * 5_000)])
    assert (failure.value.row, failure.value.column) == (1, "s")
    assert count(engine, STRICT) == 0


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": 1, "n": 1, "nope": 2}], "'nope'"),
        ([{"id": 1, "x": 1.0}], "NOT NULL column\\(s\\) 'n'"),
        ([(1, 2)], "has 2 values"),
        (["just text"], "rows must be dicts, tuples"),
    ],
)
def test_rows_that_cannot_fit_are_refused_before_any_sql(engines, rows, message):
    engine = engines("refuse")
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pytest.raises(SchemaMismatchError, match=message):
        turboalchemy.bulk_insert(engine, STRICT, rows)
    assert statements == []
    assert count(engine, STRICT) == 0


@pytest.mark.parametrize("chunk_size", [2, 5000], ids=["in a later chunk", "in the first chunk"])
def test_a_later_row_with_a_key_that_is_no_column_is_named(engines, chunk_size):
    """Rows may leave keys out (the column's default applies), but a key that names no column is refused."""
    engine = engines("keys")
    rows = [_strict(i) for i in range(5)]
    rows[3] = {"id": 3, "n": 3, "x": 1.0, "t": "?"}
    with pytest.raises(
        BulkWriteError, match="row 3 has key 't', which is not a column of table 'strict_rows'"
    ) as caught:
        turboalchemy.bulk_insert(engine, STRICT, rows, chunk_size=chunk_size)
    assert (caught.value.row, caught.value.column, caught.value.committed) == (3, "t", 2 if chunk_size == 2 else 0)
    assert count(engine, STRICT) == (2 if chunk_size == 2 else 0)


def test_a_generator_is_read_chunk_by_chunk(engines):
    engine = engines("gen")
    seen = []

    def rows():
        for i in range(25):
            seen.append(i)
            if i == 22:
                raise RuntimeError("source failed")
            yield _strict(i)

    with pytest.raises(RuntimeError, match="source failed"):
        turboalchemy.bulk_insert(engine, STRICT, rows(), chunk_size=10)
    assert count(engine, STRICT) == 20  # two whole chunks committed; the third never reached SQL


# -- identifiers and transactions -----------------------------------------------------------------


def test_odd_identifiers_are_quoted(engines):
    engine = engines("odd")
    rows = [{"id": i, "order": f"o{i}", "with space": i, 'quote"d': 'it\'s "x"'} for i in range(10)]
    turboalchemy.bulk_insert(engine, ODD, rows)
    turboalchemy.bulk_upsert(
        engine, ODD, [dict(r, id=r["id"] + 100, **{'quote"d': "new"}) for r in rows], conflict=("order", "with space")
    )
    stored = dump(engine, 'select "odd" table')
    assert len(stored) == 10 and {r[6] for r in stored} == {"new"}


def test_inside_a_session_nothing_is_committed_until_the_caller_commits(engines):
    engine = engines("tx")
    with Session(engine) as session:
        repo = turboalchemy.Repository(session, Reading)
        repo.create(id=9_999, sensor="orm", slot=1, value=0.5)
        assert repo.bulk_insert(readings(300)) == 300
        assert count(engine, Reading.__table__) == 0  # another connection sees nothing yet
        session.rollback()
    assert count(engine, Reading.__table__) == 0
    with Session(engine) as session:
        repo = turboalchemy.Repository(session, Reading)
        repo.create(id=9_999, sensor="orm", slot=1, value=0.5)
        repo.bulk_insert(readings(300))
        session.commit()
    assert count(engine, Reading.__table__) == 301


def test_a_connection_target_joins_the_callers_transaction(engines):
    engine = engines("conn")
    with engine.connect() as conn:
        turboalchemy.bulk_insert(conn, Reading, readings(50))
        assert count(engine, Reading.__table__) == 0
        conn.commit()
    assert count(engine, Reading.__table__) == 50


def test_repository_upsert_expires_objects_it_replaced(engines):
    engine = engines("repo")
    with Session(engine) as session:
        repo = turboalchemy.Repository(session, Reading)
        repo.bulk_insert(readings(5))
        loaded = repo.get(3)
        assert loaded.value == 3.0
        repo.bulk_upsert([dict(readings(5)[3], value=-3.0)], conflict=("sensor", "slot"))
        assert loaded.value == -3.0


def test_datetimes_that_are_not_naive_are_stored_as_the_orm_stores_them(engines):
    """The fast DateTime conversion covers naive datetimes; aware ones and dates take SQLAlchemy's own."""
    from datetime import date, datetime

    values = [datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC), date(2021, 5, 6), datetime(2021, 5, 6), None]
    rows = [{"id": i + 1, "name": "n", "when": v} for i, v in enumerate(values)]
    orm, fast = engines("orm"), engines("fast")
    with Session(orm) as session:
        session.add_all([Every(**r) for r in rows])
        session.commit()
    turboalchemy.bulk_insert(fast, Every, rows)
    assert dump(fast, "every") == dump(orm, "every")
