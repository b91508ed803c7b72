"""turboalchemy.bulk_insert / bulk_upsert on PostgreSQL (COPY): what the ORM stores, nothing partial on failure."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import (
    JSON,
    REAL,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import INTERVAL, JSONB
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.orm import Session

import turboalchemy
from turboalchemy import BulkWriteError
from turboalchemy._write.plan import compile_plan

from .models import FIXED, ODD, STRICT, Base, Every, odd_meta, strict_meta
from .test_bulk import _strict, every_rows

pytestmark = pytest.mark.postgresql  # (no case here touches SQLite)

METAS = (Base.metadata, strict_meta, odd_meta)


@pytest.fixture(scope="module")
def pg(postgres_url):
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(pg):
    """The test models' tables, created empty for each test and dropped after it."""
    for meta in METAS:
        meta.drop_all(pg)
        meta.create_all(pg)
    yield pg
    for meta in METAS:
        meta.drop_all(pg)


def dump(engine, table) -> list[tuple]:
    return dump_by(engine, table, *(c.key for c in table.primary_key.columns))


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_fast_path_is_copy(pg):
    plan = compile_plan(STRICT, pg.dialect, "insert", ("id", "n", "x", "s"))
    assert plan.copy_columns == ("id", "n", "x", "s")
    upsert = compile_plan(STRICT, pg.dialect, "upsert", ("id", "n", "x", "s"), ("id",))
    assert (
        upsert.copy_columns
        and "ON CONFLICT (id) DO UPDATE" in upsert.merge_sql
        and "row_number() OVER" not in upsert.merge_sql  # every staged row, in arrival order
        and "HAVING count(*) > 1" in upsert.duplicates_sql  # asked first where a refused merge leaves a trace
    )
    # a Python onupdate called per row (as the ORM calls it) cannot ride through COPY: executemany instead
    assert compile_plan(Every.__table__, pg.dialect, "upsert", ("id", "name"), ("id",)).copy_columns is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=every_rows())
def test_bulk_insert_stores_exactly_what_the_orm_stores(engine, rows):
    table = Every.__table__
    with Session(engine) as session:
        session.add_all([Every(**r) for r in rows])
        try:
            session.commit()
        except DataError:  # PostgreSQL refuses what the ORM sent (a NUL in text): the fast path must refuse too
            with pytest.raises(BulkWriteError) as failure:
                turboalchemy.bulk_insert(engine, Every, rows, chunk_size=7)
            assert count(engine, table) == failure.value.committed  # whole chunks only
            with engine.begin() as conn:
                conn.execute(table.delete())
            return
    expected = dump(engine, table)
    with engine.begin() as conn:
        conn.execute(table.delete())
    assert turboalchemy.bulk_insert(engine, Every, rows, chunk_size=7) == len(rows)
    assert dump(engine, table) == expected
    with engine.begin() as conn:
        conn.execute(table.delete())


def test_upsert_twice_equals_upsert_once_and_the_last_duplicate_wins(engine):
    rows = [{"id": i, "name": f"n{i}"} for i in range(1, 30)] + [{"id": 3, "name": "last"}]
    turboalchemy.bulk_upsert(engine, Every, rows, conflict=["id"], chunk_size=1000)
    once = dump(engine, Every.__table__)
    turboalchemy.bulk_upsert(engine, Every, rows, conflict=["id"], chunk_size=1000)
    twice = dump(engine, Every.__table__)
    assert len(once) == 29 and next(r for r in once if r[0] == 3)[1] == "last"
    stamped = [c.key for c in Every.__table__.columns].index("stamped")
    assert {r[stamped] for r in twice} == {FIXED + timedelta(days=1)}  # onupdate applied on the second pass
    assert [r[:stamped] for r in twice] == [r[:stamped] for r in once]


def test_duplicates_within_a_copied_chunk_resolve_last_wins(engine):
    assert compile_plan(STRICT, engine.dialect, "upsert", ("id", "n", "x", "s"), ("id",)).copy_columns  # the COPY path
    rows = [_strict(1, s="first"), _strict(2), _strict(1, s="second"), _strict(1, s="last")]
    turboalchemy.bulk_upsert(engine, STRICT, rows, conflict=["id"])
    assert [(r[0], r[3]) for r in dump(engine, STRICT)] == [(1, "last"), (2, "s2")]


def test_upsert_on_a_unique_constraint_of_quoted_columns(engine):
    rows = [{"id": i, "order": f"o{i % 3}", "with space": i % 2, 'quote"d': str(i)} for i in range(6)]
    turboalchemy.bulk_insert(engine, ODD, rows[:3])
    turboalchemy.bulk_upsert(
        engine,
        ODD,
        [{"id": 100 + i, **{k: v for k, v in r.items() if k != "id"}} for i, r in enumerate(rows)],
        conflict=["order", "with space"],
    )
    assert count(engine, ODD) == 6


BAD = [
    pytest.param(17, "n", {"n": "seven"}, "str", id="text into INTEGER"),
    pytest.param(15, "n", {"n": 2**40}, "int", id="out of range for INTEGER"),
    pytest.param(19, "n", {"n": None}, "NoneType", id="None into NOT NULL"),
    pytest.param(14, "id", {"id": 11}, "int", id="duplicate key within the chunk"),
    pytest.param(
        16, "s", {"s": object()}, "object", id="unsendable value"
    ),  # a list would be stored as '{a}', as by Core
]


@pytest.mark.parametrize("target_kind", ["engine", "session"])
@pytest.mark.parametrize("row, column, override, value_type", BAD)
def test_a_bad_row_is_named_and_its_chunk_rolls_back_whole(engine, target_kind, row, column, override, value_type):
    rows = [_strict(i) for i in range(20)]
    rows[row] = rows[row] | override
    if target_kind == "engine":
        with pytest.raises(BulkWriteError) as failure:
            turboalchemy.bulk_insert(engine, STRICT, rows, chunk_size=10)
        assert failure.value.committed == 10
    else:
        with Session(engine) as session:
            with pytest.raises(BulkWriteError) as failure:
                turboalchemy.bulk_insert(session, STRICT, rows, chunk_size=10)
            assert session.execute(select(func.count()).select_from(STRICT)).scalar_one() == 10
            session.commit()
    assert count(engine, STRICT) == 10  # the first chunk; nothing of the second
    error = failure.value
    assert (error.table, error.row, error.column) == ("strict_rows", row, column)
    assert error.value_type == value_type and f"row {row}" in str(error)
    turboalchemy.bulk_insert(engine, STRICT, [_strict(100)])  # the connection is usable afterwards


@pytest.mark.parametrize("kind", ["insert", "upsert"])
def test_a_duplicate_of_a_stored_row_is_named(engine, kind):
    turboalchemy.bulk_insert(engine, ODD, [{"id": 1, "order": "a", "with space": 1, 'quote"d': "q"}])
    rows = [{"id": i, "order": f"b{i}", "with space": i, 'quote"d': "q"} for i in range(2, 6)]
    rows.append({"id": 9, "order": "a", "with space": 1, 'quote"d': "q"})  # clashes with the stored row's unique key
    with pytest.raises(BulkWriteError) as failure:
        if kind == "insert":
            turboalchemy.bulk_insert(engine, ODD, rows)
        else:
            turboalchemy.bulk_upsert(engine, ODD, rows, conflict=["id"])
    assert (failure.value.row, failure.value.column, failure.value.committed) == (4, "order", 0)
    assert count(engine, ODD) == 1


def test_nan_is_stored_as_the_orm_stores_it(engine):
    turboalchemy.bulk_insert(engine, STRICT, [_strict(1, x=math.nan), _strict(2, x=math.inf)])
    values = [r[2] for r in dump(engine, STRICT)]
    assert math.isnan(values[0]) and values[1] == math.inf


def test_a_generator_that_raises_midway_leaves_no_partial_chunk(engine):
    def rows():
        for i in range(25):
            if i == 23:
                raise RuntimeError("the source broke")
            yield _strict(i)

    with pytest.raises(RuntimeError, match="the source broke"):
        turboalchemy.bulk_insert(engine, STRICT, rows(), chunk_size=10)
    assert count(engine, STRICT) == 20  # two whole chunks, nothing of the third


def test_inside_a_connection_nothing_is_committed_until_the_caller_commits(engine):
    with engine.connect() as conn:
        turboalchemy.bulk_insert(conn, STRICT, [_strict(i) for i in range(30)], chunk_size=7)
        assert conn.execute(select(func.count()).select_from(STRICT)).scalar_one() == 30
        assert count(engine, STRICT) == 0
        conn.commit()
    assert count(engine, STRICT) == 30


def test_repository_works_unchanged(engine):
    with Session(engine) as session:
        repo = turboalchemy.Repository(session, Every)
        repo.create(id=1, name="orm")
        assert repo.bulk_insert([{"id": i, "name": f"b{i}"} for i in range(2, 50)]) == 48
        assert repo.bulk_upsert([{"id": 1, "name": "fast"}], conflict=["id"]) == 1
        assert repo.get(1).name == "fast"
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM every")).scalar() == 49


@pytest.mark.parametrize("target", ["engine", "session"])
def test_a_lost_connection_mid_load_is_typed_with_the_rows_committed_before_it(engine, postgres_url, target):
    """The server terminates the connection while the third chunk is sent: a ConnectionLostError (an
    OperationalError, as SQLAlchemy's own would be) saying how many rows were committed; the engine then works."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    own = turboalchemy.create_engine(postgres_url)
    with own.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()  # the pool hands this connection back

    def rows():
        for i in range(1, 40_001):
            if i == 25_001:  # chunks of 10,000: two committed, the third in flight
                with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            yield {"id": i, "name": f"row {i}"}

    with pytest.raises(turboalchemy.ConnectionLostError, match="connection to the server was lost") as lost:
        if target == "engine":
            turboalchemy.bulk_insert(own, Every, rows(), chunk_size=10_000)
        else:
            with Session(own) as session:
                turboalchemy.bulk_insert(session, Every, rows(), chunk_size=10_000)
    assert isinstance(lost.value, OperationalError) and lost.value.connection_invalidated
    assert lost.value.committed == (20_000 if target == "engine" else None)  # a Session's transaction is the caller's
    with own.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Every)).scalar() == (20_000 if target == "engine" else 0)
    own.dispose()


class _SentLog:
    """What psycopg is asked to send (to see which route a chunk took): the COPY statements, and for upserts each
    merge (one INSERT ... SELECT) or row-by-row send (an INSERT ... VALUES, or an executemany)."""

    def __init__(self, monkeypatch):
        import psycopg

        self.copies: list[str] = []
        self.upserts: list[str] = []

        def text_of(cursor, query) -> str:
            return query.as_string(cursor) if hasattr(query, "as_string") else str(query)

        def on_execute(cursor, query) -> None:
            head, conflict, _ = text_of(cursor, query).partition("ON CONFLICT")
            if conflict:
                self.upserts.append("merge" if "SELECT" in head else "row by row")

        watch = {
            "copy": lambda cursor, query: self.copies.append(text_of(cursor, query)),
            "execute": on_execute,
            "executemany": lambda cursor, query: self.upserts.append("row by row"),
        }
        for name, record in watch.items():
            real = getattr(psycopg.Cursor, name)

            def call(cursor, query, *args, _real=real, _record=record, **kwargs):
                _record(cursor, query)
                return _real(cursor, query, *args, **kwargs)

            monkeypatch.setattr(psycopg.Cursor, name, call)

    def formats(self) -> list[str]:
        return ["binary" if "FORMAT BINARY" in s else "text" for s in self.copies]


def _binary_table(name: str, meta, *, serial: bool = True):
    return Table(
        name,
        meta,
        Column("id", Integer, primary_key=True, autoincrement=serial),
        Column("n", Integer),
        Column("big", BigInteger),
        Column("x", Float),
        Column("s", String(20)),
        Column("t", Text),
        Column("d", Date),
        Column("ts", DateTime),
        Column("u", Uuid),
        Column("b", Boolean),
        Column("m", Numeric(10, 2)),
        Column("blob", LargeBinary),
    )


def _full(**values):
    import datetime as dt
    import uuid as uuid_
    from decimal import Decimal

    row = {
        "n": 5,
        "big": 2**40,
        "x": 1.5,
        "s": "a",
        "t": "long text",
        "d": dt.date(2026, 1, 2),
        "ts": dt.datetime(2026, 1, 2, 3, 4, 5, 6),
        "u": uuid_.UUID(int=7),
        "b": True,
        "m": Decimal("1.25"),
        "blob": b"\x00\xff",
    }
    return {**row, **values}


BINARY_CASES = {
    "every kind as the ORM binds it": ([_full(id=1), {"id": 2}], "binary"),
    "a Numeric rounded to its scale": ([_full(id=1, m=__import__("decimal").Decimal("1.005"))], "binary"),
    "an int past int4": ([_full(id=1, n=2**31)], "refused"),  # as text, refused by the server as the ORM's is
    "an int past int8": ([_full(id=1, big=-(2**63) - 1)], "refused"),
    "a str into an Integer column": ([_full(id=1, n="7")], "text"),
    # the statement itself, where COPY's text would be read otherwise than the statement's cast reads the value
    "an int into a String column": ([_full(id=1, s=42)], "statement"),
    "a bool into an Integer column": ([_full(id=1, n=True), _full(id=2, n=7)], "statement"),  # true::INTEGER is 1
    "an int into a Float column": ([_full(id=1, x=3)], "text"),
    "a datetime into a Date column": (
        [_full(id=1, d=__import__("datetime").datetime(2026, 1, 2, 23, 59))],
        "statement",
    ),
}


@pytest.mark.parametrize("case", list(BINARY_CASES))
@pytest.mark.parametrize("kind", ["insert", "upsert"])
def test_binary_copy_only_where_it_stores_what_the_orm_stores(pg, monkeypatch, case, kind):
    """Binary COPY carries a chunk only when every value is of the kind its column's binary form takes, within
    range; anything else goes as text, which the server converts as it would a bound value, as for the ORM.
    Differential: our write against SQLAlchemy's insert of the same rows into a twin table."""
    from sqlalchemy import MetaData

    rows, expected = BINARY_CASES[case]
    meta = MetaData()
    ours_t, theirs_t = _binary_table("binary_ours", meta), _binary_table("binary_theirs", meta)
    meta.drop_all(pg)
    meta.create_all(pg)
    try:
        log = _SentLog(monkeypatch)
        try:
            if kind == "insert":
                turboalchemy.bulk_insert(pg, ours_t, [dict(r) for r in rows])
            else:
                turboalchemy.bulk_upsert(pg, ours_t, [dict(r) for r in rows], conflict=["id"])
        except BulkWriteError as refused:
            assert expected.startswith("refused") and refused.row == 0, refused
            assert "binary" not in log.formats()  # never sent in binary, which would have truncated it
            if expected == "refused":
                with pytest.raises(DBAPIError):  # SQLAlchemy refuses it too
                    with pg.begin() as conn:
                        conn.execute(theirs_t.insert(), rows[0])
            return
        assert not expected.startswith("refused")
        assert log.formats() == [] if expected == "statement" else set(log.formats()) == {expected}
        with pg.begin() as conn:
            for row in rows:  # one statement per row, as the ORM's insert of each: a missing key is NULL
                conn.execute(theirs_t.insert(), dict(row))
        with pg.connect() as conn:
            ours = conn.execute(select(ours_t).order_by(ours_t.c.id)).all()
            theirs = conn.execute(select(theirs_t).order_by(theirs_t.c.id)).all()
        assert ours == theirs
    finally:
        meta.drop_all(pg)


def _odd_at(at: int, **values):
    """A chunk of rows of every kind, the row `at` with `values`: more rows than the fast path checks at a time."""
    rows = [_full(id=i, n=i) for i in range(1200)]
    rows[at] = _full(id=at, **values)
    return rows


def _write_in(pg, table, rows, kind, target, caller):
    """Our insert or upsert of `rows` as one chunk, on the Engine or inside a caller's transaction that wrote
    `caller` first and commits whatever follows; the BulkWriteError it raised, or None."""

    def write(on):
        if kind == "insert":
            turboalchemy.bulk_insert(on, table, [dict(r) for r in rows], chunk_size=len(rows))
        else:
            turboalchemy.bulk_upsert(on, table, [dict(r) for r in rows], conflict=["id"], chunk_size=len(rows))

    try:
        if target == "engine":
            write(pg)
        else:
            with pg.begin() as conn:
                conn.execute(table.insert(), caller)  # the caller's, before the write
                try:
                    write(conn)
                except BulkWriteError as exc:
                    return exc  # the caller goes on and commits what it wrote
    except BulkWriteError as exc:
        return exc
    return None


# A chunk whose first rows may go by binary COPY and one row near its end may not (or not so): COPY goes a slice at a
# time while the server reads the slices before, so this row is met with the COPY under way. Expected: the formats
# COPY was opened in, and then the statement, if it goes as the statement.
LATE_ROWS = {
    "a str into an Integer column": (dict(n="7"), ["binary", "text"], False),
    "an int into a String column": (dict(s=42), ["binary"], True),
    "a bool into an Integer column": (dict(n=True), ["binary"], True),
    "a float into a Numeric column": (dict(m=0.1 + 0.2), ["binary", "text"], False),
    "an aware datetime into a naive DateTime column": (
        dict(ts=__import__("datetime").datetime(2026, 1, 2, 3, tzinfo=__import__("datetime").timezone.utc)),
        ["binary", "binary"],  # (again from the start, to ask the session's TimeZone before the COPY)
        False,
    ),
    "an int past int4": (dict(n=2**31), ["binary", "text"], "refused"),
}


@pytest.mark.parametrize("target", ["engine", "connection"])
@pytest.mark.parametrize("kind", ["insert", "upsert"])
@pytest.mark.parametrize("case", list(LATE_ROWS))
def test_a_row_late_in_a_chunk_that_may_not_go_as_the_first_did_sends_the_chunk_again_as_a_whole(
    pg, monkeypatch, case, kind, target
):
    """The COPY under way is undone (only it: not what the caller's transaction wrote before) and the chunk goes as
    it would have gone checked whole, storing what SQLAlchemy's insert stores, or refused naming that row."""
    from sqlalchemy import MetaData

    late, formats, statement = LATE_ROWS[case]
    rows = _odd_at(1100, **late)
    meta = MetaData()
    # (ids of no sequence, see the next test)
    ours_t, theirs_t = _binary_table("late_ours", meta, serial=False), _binary_table("late_theirs", meta, serial=False)
    meta.drop_all(pg)
    meta.create_all(pg)
    try:
        log = _SentLog(monkeypatch)
        refused = _write_in(pg, ours_t, rows, kind, target, _full(id=5000))
        if refused is not None:
            assert statement == "refused" and refused.row == 1100, refused
            assert log.formats() == formats
            with pg.connect() as conn:  # only the chunk undone, not the caller's row before it
                assert conn.execute(select(ours_t.c.id)).scalars().all() == ([5000] if target == "connection" else [])
            with pytest.raises(DBAPIError):  # SQLAlchemy refuses it too
                with pg.begin() as conn:
                    conn.execute(theirs_t.insert(), rows)
            return
        assert statement != "refused"
        assert log.formats() == formats
        assert ("row by row" in log.upserts) == statement
        with pg.begin() as conn:
            if target == "connection":
                conn.execute(theirs_t.insert(), _full(id=5000))
            conn.execute(theirs_t.insert(), rows)
        with pg.connect() as conn:
            ours = conn.execute(select(ours_t).order_by(ours_t.c.id)).all()
            theirs = conn.execute(select(theirs_t).order_by(theirs_t.c.id)).all()
        assert len(ours) == len(rows) + (target == "connection")
        assert ours == theirs
    finally:
        meta.drop_all(pg)


class _Trimmed(TypeDecorator):
    """A type whose Python-side processor (as the ORM calls it per value) refuses what is not a str."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.strip()


def _without(row: dict, *keys: str, **more) -> dict:
    return {**{k: v for k, v in row.items() if k not in keys}, **more}


# A row late in a chunk that the chunk's fast conversion (dicts to tuples, as COPY sends it, a slice at a time) cannot
# take, though every row has as many keys: expected, what SQLAlchemy does with the same rows (stores them, each run of
# one key set its own statement, as the ORM's bulk insert sends them; or refuses), and the column named.
UNCONVERTED = {
    "a row with another key set": (lambda i: _without(_full(id=i, n=i), "t"), dict(t="late"), "blob", None),
    "a row with a key that is no column": (lambda i: _without(_full(id=i, n=i), "t"), dict(nope=1), "blob", "nope"),
    "a value the type's processor refuses": (lambda i: {"id": i, "n": i, "s": f" k{i} "}, dict(s=5), None, "s"),
}


@pytest.mark.parametrize("target", ["engine", "connection"])
@pytest.mark.parametrize("kind", ["insert", "upsert"])
@pytest.mark.parametrize("case", list(UNCONVERTED))
def test_a_row_late_in_a_chunk_that_the_fast_conversion_cannot_take_is_met_as_if_the_chunk_were_read_first(
    pg, monkeypatch, case, kind, target
):
    """The COPY already under way is undone (only it: not what the caller's transaction wrote before) and the chunk
    is read the careful way: split where its rows' keys differ and stored as SQLAlchemy stores it, or refused naming
    the row and the column."""
    from itertools import groupby

    from sqlalchemy import MetaData

    row_of, late, drop, refused_column = UNCONVERTED[case]
    rows = [row_of(i) for i in range(1200)]
    rows[1100] = _without(rows[1100], *([drop] if drop else []), **late)
    meta = MetaData()
    if drop is None:
        ours_t, theirs_t = (
            Table(
                name,
                meta,
                Column("id", Integer, primary_key=True, autoincrement=False),
                Column("n", Integer),
                Column("s", _Trimmed(20)),
            )
            for name in ("unconverted_ours", "unconverted_theirs")
        )
    else:
        ours_t = _binary_table("unconverted_ours", meta, serial=False)
        theirs_t = _binary_table("unconverted_theirs", meta, serial=False)
    meta.drop_all(pg)
    meta.create_all(pg)
    try:
        log = _SentLog(monkeypatch)
        caller = {"id": 5000, "n": 1}
        refused = _write_in(pg, ours_t, rows, kind, target, caller)
        # the first COPY went before the late row was met, and was undone: then, refused, nothing more; stored, one
        # COPY per run of one key set (the rows before it, the row, the rows after)
        assert len(log.copies) == (1 if refused_column else 4), log.copies
        kept = [5000] if target == "connection" else []
        if refused_column is not None:
            assert refused is not None and (refused.row, refused.column) == (1100, refused_column), refused
            assert "nothing of this chunk was written" in str(refused) or target == "connection"
            with pg.connect() as conn:  # only the chunk undone, not the caller's row before it
                assert conn.execute(select(ours_t.c.id)).scalars().all() == kept
            if refused_column == "nope":
                return  # (refused as a chunk read whole is; SQLAlchemy's Core statement would leave the key out)
            with pytest.raises(StatementError):  # SQLAlchemy refuses it too
                with pg.begin() as conn:
                    for _, run in groupby(rows, key=frozenset):
                        conn.execute(theirs_t.insert(), list(run))
            return
        assert refused is None
        with pg.begin() as conn:
            if target == "connection":
                conn.execute(theirs_t.insert(), caller)
            for _, run in groupby(rows, key=frozenset):
                conn.execute(theirs_t.insert(), list(run))
        with pg.connect() as conn:
            ours = conn.execute(select(ours_t).order_by(ours_t.c.id)).all()
            theirs = conn.execute(select(theirs_t).order_by(theirs_t.c.id)).all()
        assert len(ours) == len(rows) + len(kept) and ours == theirs
    finally:
        meta.drop_all(pg)


@pytest.mark.parametrize("on_conflict", ["update", "ignore"])
def test_an_upsert_of_one_key_twice_far_apart_in_a_chunk_stores_what_sqlalchemys_row_by_row_upsert_stores(
    pg, on_conflict
):
    """The key's two rows in different slices of the COPY: updating, the merge refuses the chunk and every row of it
    goes row by row, the last one winning; ignoring, the merge keeps the first, by arrival order across slices."""
    from sqlalchemy import MetaData
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    rows = [_full(id=i, n=i) for i in range(1200)]
    rows[1100] = _full(id=3, n=1100)
    meta = MetaData()
    ours_t, theirs_t = (
        _binary_table("twice_ours", meta, serial=False),
        _binary_table("twice_theirs", meta, serial=False),
    )
    meta.drop_all(pg)
    meta.create_all(pg)
    try:
        if on_conflict == "update":
            turboalchemy.bulk_upsert(pg, ours_t, [dict(r) for r in rows], conflict=["id"], chunk_size=len(rows))
        else:
            turboalchemy.bulk_insert(pg, ours_t, [dict(r) for r in rows], on_conflict="ignore", chunk_size=len(rows))
        with pg.begin() as conn:
            for row in rows:
                statement = pg_insert(theirs_t).values(row)
                if on_conflict == "update":
                    statement = statement.on_conflict_do_update(
                        index_elements=["id"], set_={c: statement.excluded[c] for c in row if c != "id"}
                    )
                else:
                    statement = statement.on_conflict_do_nothing()
                conn.execute(statement)
        with pg.connect() as conn:
            ours = conn.execute(select(ours_t).order_by(ours_t.c.id)).all()
            theirs = conn.execute(select(theirs_t).order_by(theirs_t.c.id)).all()
        assert len(ours) == 1199 and ours == theirs
        assert [r.n for r in ours if r.id == 3] == [1100 if on_conflict == "update" else 3]
    finally:
        meta.drop_all(pg)


def _cents_dumper():
    """A connection's own dumper for float, as an application may register one: it changes what is stored."""
    from psycopg.types.numeric import FloatDumper

    class Cents(FloatDumper):
        def dump(self, obj):
            return super().dump(round(obj, 2))

    return Cents


def _own_int4_type(conn) -> None:
    conn.exec_driver_sql("CREATE DOMAIN public.int4 AS text")  # a user's type of a built-in's name, in public
    conn.exec_driver_sql("CREATE TABLE typed (id integer PRIMARY KEY, n public.int4, x float8)")


def _own_float_dumper(conn) -> None:
    conn.exec_driver_sql("CREATE TABLE typed (id integer PRIMARY KEY, n integer, x float8)")


BINARY_LOOKALIKES = {
    # 1094795585 is b"AAAA" as int4's binary form, which the domain's text input would store
    "a column of a user's type named like a built-in": (_own_int4_type, None, {"id": 1, "n": 1094795585, "x": 0.5}),
    "a connection's own dumper for a Python type": (_own_float_dumper, _cents_dumper, {"id": 1, "n": 7, "x": 1.23456}),
}


@pytest.mark.parametrize("case", list(BINARY_LOOKALIKES))
@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_binary_copy_is_only_for_the_builtin_types_and_dumpers_it_was_checked_for(twins, monkeypatch, case):
    """The staging COPY goes binary only for columns of the built-in types themselves (by OID, not by name) and only
    where the connection dumps their Python types as psycopg does by default; otherwise a binary form would be read
    by another type's input, or skip the application's dumper that SQLAlchemy's statements go through."""
    from sqlalchemy import event
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    create, dumper, row = BINARY_LOOKALIKES[case]
    ours, theirs = twins
    tables = []
    for engine in (ours, theirs):
        if dumper is not None:
            event.listen(engine, "connect", lambda dbapi, _: dbapi.adapters.register_dumper(float, dumper()))
            engine.dispose()  # every connection from here on has it
        with engine.begin() as conn:
            create(conn)
            conn.execute(text("INSERT INTO typed (id, n, x) VALUES (2, '3', 0.25)"))
        tables.append(
            Table(
                "typed",
                MetaData(),
                Column("id", Integer, primary_key=True),
                Column("n", Integer),
                Column("x", Float),
            )
        )
    log = _SentLog(monkeypatch)
    turboalchemy.bulk_upsert(ours, tables[0], [dict(row)], conflict=["id"])
    assert "binary" not in log.formats()
    with theirs.begin() as conn:
        stmt = pg_insert(tables[1]).values(row)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["id"], set_={"n": stmt.excluded.n, "x": stmt.excluded.x})
        )
    assert dump(ours, tables[0]) == dump(theirs, tables[1])


@pytest.mark.parametrize("where", ["a connection's", "psycopg's global"])
@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_copy_takes_psycopgs_default_dumpers_as_given_or_goes_as_the_statement(twins, where):
    """With psycopg's documented StrDumper registered, a str is bound as text, which no numeric column takes from
    a statement: SQLAlchemy refuses the row, and so do we (COPY's text would have been read as a number)."""
    import psycopg
    from psycopg.types.string import StrDumper, StrDumperUnknown
    from sqlalchemy import event

    table = Table("amounts", MetaData(), Column("id", Integer, primary_key=True), Column("n", Numeric))
    for engine in twins:
        table.metadata.create_all(engine)
        if where == "a connection's":
            event.listen(engine, "connect", lambda dbapi, _: dbapi.adapters.register_dumper(str, StrDumper))
            engine.dispose()
    if where != "a connection's":  # before the engines: SQLAlchemy's dialect copies psycopg's map when made
        psycopg.adapters.register_dumper(str, StrDumper)
    ours, theirs = twins if where == "a connection's" else [create_engine(e.url) for e in twins]
    try:
        with pytest.raises(BulkWriteError):
            turboalchemy.bulk_insert(ours, table, [{"id": 1, "n": "1.5"}])
        with pytest.raises(DBAPIError), theirs.begin() as conn:
            conn.execute(insert(table), [{"id": 1, "n": "1.5"}])
        assert dump(ours, table) == dump(theirs, table) == []
    finally:
        psycopg.adapters.register_dumper(str, StrDumperUnknown)  # the default again (the last one registered)
        for engine in (ours, theirs):
            engine.dispose()


class _Stamp(TypeDecorator):
    impl = DateTime
    cache_ok = True


class _Shouted(TypeDecorator):
    """A type whose statement wraps its parameter in SQL (a bind_expression), which COPY would not apply."""

    impl = String
    cache_ok = True

    def bind_expression(self, bindvalue):
        return func.upper(bindvalue)


# Each column type a model may declare over each server type (the natural pairs, and some a database made elsewhere
# has, and types whose statement adds SQL), against a value of every Python type SQLAlchemy may bind there: COPY's text is read by the column type's
# input alone, where SQLAlchemy's statement binds the value as psycopg types it, casts it to the model's type and
# converts that into the column's, so the two agree only for some of them (a float into numeric has 15 digits
# through float8, 17 as text).
COLUMN_TYPES = {
    "smallint": ("smallint", SmallInteger),
    "integer": ("integer", Integer),
    "bigint": ("bigint", BigInteger),
    "numeric": ("numeric", Numeric),
    "numeric(12,4)": ("numeric(12,4)", Numeric(12, 4)),
    "real": ("real", REAL),
    "double precision": ("double precision", Float),
    "text": ("text", Text),
    "varchar(8)": ("varchar(8)", String(8)),
    "boolean": ("boolean", Boolean),
    "date": ("date", Date),
    "timestamp": ("timestamp", DateTime),
    "timestamptz": ("timestamptz", DateTime(timezone=True)),
    "time": ("time", Time),
    "interval": ("interval", Interval),
    "uuid": ("uuid", Uuid),
    "bytea": ("bytea", LargeBinary),
    "json": ("json", JSON),
    "jsonb": ("jsonb", JSONB),
    "a Float over numeric": ("numeric", Float),
    "a Float over real": ("real", Float),
    "an Integer over numeric": ("numeric", Integer),
    "a String over integer": ("integer", String),
    "a String over a domain of text": ("texts", String),
    "a String with a collation over text": ("text", String(collation="C")),
    "an Interval over interval hour": ("interval hour", Interval),
    "an INTERVAL(0) over interval": ("interval", INTERVAL(precision=0)),
    "a DateTime decorator over timestamp": ("timestamp", _Stamp),
    "an upper-casing decorator over text": ("text", _Shouted),
    "an upper-casing variant over text": ("text", String().with_variant(_Shouted(), "postgresql")),
    "a DateTime variant over timestamp": ("timestamp", String().with_variant(DateTime(), "postgresql")),
    "an INTERVAL HOUR over interval": ("interval", INTERVAL(fields="HOUR")),
    "an Interval over a domain of interval hour": ("hours", Interval),
}


def _values() -> list:
    import datetime as dt
    from decimal import Decimal

    aware = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    return [
        *(0, 7, -1, 2**31, 2**63, True, False),
        *(1.0, 1.5, 0.1 + 0.2, 1 / 3, 1 + 2**-24, 1e16, 1e15, 1e-7, -0.0, math.nan, math.inf, 1e300, 1e-50),
        *(3.4028235677973366e38, Decimal("1.5"), Decimal("0.30000000000000004"), Decimal("NaN"), Decimal("1E+2")),
        *(Decimal("-NaN"), Decimal("sNaN"), "7", "5", "1.5", "abc", " 7 ", "true", "2026-01-02", '{"a": 1}'),
        *(dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, 5, 6), aware, dt.time(3, 4, 5), dt.timedelta(days=1)),
        dt.timedelta(minutes=30),
        *(uuid.UUID(int=7), b"\x00\xff", bytearray(b"ab"), {"a": 1}, [1, 2]),
    ]


@pytest.mark.parametrize("kind", ["insert", "upsert"])
@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_every_value_into_every_column_type_is_stored_as_sqlalchemys_statement_stores_it(twins, kind):
    """Each value, one write each: ours stores what SQLAlchemy's insert (or upsert) of it stores, read back as the
    server's text of it, or both refuse it; ours may refuse only with its own error. Differential over the whole
    table of column types by Python values above."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ours, theirs = twins
    values = _values()
    wrong = []
    for name, (ddl, model_type) in COLUMN_TYPES.items():
        tables = []
        for engine in (ours, theirs):
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS typed")
                conn.exec_driver_sql("DROP DOMAIN IF EXISTS texts, hours")
                conn.exec_driver_sql("CREATE DOMAIN texts AS text CHECK (VALUE <> 'abc')")
                conn.exec_driver_sql("CREATE DOMAIN hours AS interval hour")
                conn.exec_driver_sql(f"CREATE TABLE typed (id integer PRIMARY KEY, v {ddl})")
            tables.append(Table("typed", MetaData(), Column("id", Integer, primary_key=True), Column("v", model_type)))
        refused = {}
        for i, value in enumerate(values):
            row = {"id": i, "v": value}
            try:
                if kind == "insert":
                    turboalchemy.bulk_insert(ours, tables[0], [row])
                else:
                    turboalchemy.bulk_upsert(ours, tables[0], [row], conflict=["id"])
            except BulkWriteError:
                refused[i] = "ours"
            try:
                with theirs.begin() as conn:
                    statement = pg_insert(tables[1]).values(row)
                    if kind == "upsert":
                        statement = statement.on_conflict_do_update(
                            index_elements=["id"], set_={"v": statement.excluded.v}
                        )
                    conn.execute(statement)
            except (StatementError, TypeError):  # (a DBAPIError is a StatementError; psycopg may raise TypeError)
                refused[i] = "both" if refused.get(i) == "ours" else "theirs"
        stored = []
        for engine in (ours, theirs):
            with engine.connect() as conn:
                stored.append(dict(conn.exec_driver_sql("SELECT id, v::text FROM typed").all()))
        for i, value in enumerate(values):
            if refused.get(i) in ("both", "ours"):
                continue  # (refusing what SQLAlchemy stores is ours to choose, as for a float into an integer)
            if stored[0].get(i, "(not stored)") != stored[1].get(i, "(refused)"):
                wrong.append(
                    f"{name} <- {value!r}: ours {stored[0].get(i, '(not stored)')!r}, "
                    f"SQLAlchemy's {stored[1].get(i, '(refused)')!r}"
                )
    assert wrong == []


@pytest.mark.parametrize("kind", ["insert", "upsert"])
@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_floats_into_numeric_and_real_still_go_by_copy_as_the_server_converts_a_float8(twins, monkeypatch, kind):
    """A float bound for a numeric column is a float8 the server converts with 15 significant digits, and one for a
    real column is rounded from the float8 (1 + 2**-24 is a tie, to even); COPY carries them so converted."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ours, theirs = twins
    meta = MetaData()
    table = Table("floats", meta, Column("id", Integer, primary_key=True), Column("n", Numeric), Column("r", REAL))
    for engine in twins:
        meta.create_all(engine)
    rows = [{"id": i, "n": v, "r": v} for i, v in enumerate([0.1 + 0.2, 1 + 2**-24, 1 / 3, math.nan, 1e-50, None])]
    rows[4]["r"] = 2.0**-140  # a subnormal real, not 0
    log = _SentLog(monkeypatch)
    if kind == "insert":
        turboalchemy.bulk_insert(ours, table, rows)
    else:
        turboalchemy.bulk_upsert(ours, table, rows, conflict=["id"])
    assert log.formats() == ["text"]
    with theirs.begin() as conn:
        for row in rows:
            statement = pg_insert(table).values(row)
            if kind == "upsert":
                statement = statement.on_conflict_do_update(index_elements=["id"], set_={"n": statement.excluded.n})
            conn.execute(statement)
    read = "SELECT id, n::text, r::text FROM floats ORDER BY id"
    with ours.connect() as a, theirs.connect() as b:
        assert a.exec_driver_sql(read).all() == b.exec_driver_sql(read).all()


# Tables whose definition makes COPY store something other than INSERT (or refuse what INSERT writes): a plain
# bulk_insert must store what SQLAlchemy's INSERT stores there, or refuse as it does, nothing written.
COPY_DIFFERS = {
    "an INSERT rule": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)",
        "CREATE TABLE guarded_log (code VARCHAR(8))",
        "CREATE RULE logged AS ON INSERT TO guarded DO ALSO INSERT INTO guarded_log VALUES (NEW.code)",
    ),
    "an identity column GENERATED ALWAYS given values": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER GENERATED ALWAYS AS IDENTITY)",
    ),
    "a view INSERT writes through": (
        "CREATE TABLE guarded_rows (code VARCHAR(8) PRIMARY KEY, number INTEGER)",
        "CREATE VIEW guarded AS SELECT code, number FROM guarded_rows",
    ),
    "an INSERT rule on a mixed-case table in a schema": (
        'CREATE SCHEMA "Shop"',
        'CREATE TABLE "Shop"."Guarded" (code VARCHAR(8) PRIMARY KEY, number INTEGER)',
        "CREATE TABLE guarded_log (code VARCHAR(8))",
        'CREATE RULE logged AS ON INSERT TO "Shop"."Guarded" DO ALSO INSERT INTO guarded_log VALUES (NEW.code)',
    ),
}


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
@pytest.mark.parametrize("case", list(COPY_DIFFERS))
def test_a_plain_insert_stores_what_insert_stores_whatever_the_table_defines(twins, case):
    ours, theirs = twins
    for engine in (ours, theirs):
        with engine.begin() as conn:
            for statement in COPY_DIFFERS[case]:
                conn.exec_driver_sql(statement)
    name, schema = ("Guarded", "Shop") if "schema" in case else ("guarded", None)
    guarded = Table(
        name, MetaData(), Column("code", String(8), primary_key=True), Column("number", Integer), schema=schema
    )
    rows = [{"code": f"k{i}", "number": i} for i in range(1, 5)]
    try:
        with Session(theirs) as session:
            session.execute(insert(guarded), rows)
            session.commit()
        expected: Exception | None = None
    except DBAPIError as exc:
        expected = exc
    if expected is not None:  # SQLAlchemy's INSERT refused: ours refuses too, having written nothing
        with pytest.raises(BulkWriteError, match="number"):
            turboalchemy.bulk_insert(ours, guarded, rows)
        assert dump(ours, guarded) == []
        return
    assert turboalchemy.bulk_insert(ours, guarded, rows) == len(rows)
    assert dump(ours, guarded) == dump(theirs, guarded) != []
    if "rule" in case:
        log = text("SELECT code FROM guarded_log ORDER BY code")
        with ours.connect() as a, theirs.connect() as b:
            assert a.execute(log).all() == b.execute(log).all() != []


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_a_plain_insert_under_row_level_security_applies_the_policies_as_insert_does(twins):
    """COPY FROM refuses a table whose row-level security applies to the user; INSERT applies the policies."""
    ours, theirs = twins
    role = f"clerk_{uuid.uuid4().hex[:8]}"  # not a superuser (those bypass row-level security)
    with ours.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')  # (a role is the server's, not one database's)
        conn.commit()
    engines = []
    try:
        for engine in twins:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)")
                conn.exec_driver_sql("ALTER TABLE guarded ENABLE ROW LEVEL SECURITY")
                conn.exec_driver_sql("CREATE POLICY small ON guarded USING (true) WITH CHECK (number < 10)")
                conn.exec_driver_sql(f'GRANT SELECT, INSERT ON guarded TO "{role}"')
            engines.append(create_engine(engine.url.set(username=role)))
        ours_as, theirs_as = engines
        guarded = Table("guarded", MetaData(), Column("code", String(8), primary_key=True), Column("number", Integer))
        rows = [{"code": f"k{i}", "number": i} for i in range(1, 5)]
        with Session(theirs_as) as session:
            session.execute(insert(guarded), rows)
            session.commit()
        assert turboalchemy.bulk_insert(ours_as, guarded, rows) == len(rows)
        assert dump(ours, guarded) == dump(theirs, guarded) != []
        with pytest.raises(BulkWriteError, match="row-level security policy"):  # the policy's check, as INSERT
            turboalchemy.bulk_insert(ours_as, guarded, [{"code": "big", "number": 99}])
    finally:
        for engine in engines:
            engine.dispose()
        for engine in twins:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
        with ours.connect() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
            conn.commit()


# An upsert merges its staged chunk in one INSERT ... SELECT ... ON CONFLICT unless the chunk holds one conflict
# key twice: that chunk goes row by row, so the first row inserts and each later one updates it, as SQLAlchemy's
# upsert of the rows stores them. The server refuses the merge of such a chunk, comparing keys as the unique index
# does; on a table where a refused merge would leave a trace (sequence values drawn: a serial id, a trigger), the
# staged keys are compared first by the columns' equality, and a refusal then fails the chunk.
CI_COLLATION = "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"


@dataclass(frozen=True)
class KeyCase:
    column: str  # the key column's definition
    rows: list[tuple]  # (key, number, note)
    notes: list[str]  # what returning=note gives each row
    equal_by_column: bool = False  # one key twice as the column compares (NULLs alike)
    equal_by_index: bool = False  # one key twice as the unique index compares, so the server refuses the merge
    setup: tuple[str, ...] = ()  # more DDL for the table "keyed"
    traced: bool = False  # the setup makes a refused merge leave a trace (a trigger): keys compared first


KEY_CASES = {
    "distinct integer keys": KeyCase("INTEGER UNIQUE", [(1, 10, "a"), (2, 20, "b"), (3, 30, "c")], ["a", "b", "c"]),
    "a duplicate integer key": KeyCase(
        "INTEGER UNIQUE",
        [(1, 10, "first"), (2, 20, "b"), (1, 30, "last")],
        ["first", "b", "first"],  # the update leaves note: the first row's stays
        equal_by_column=True,
        equal_by_index=True,
    ),
    "distinct text keys": KeyCase("VARCHAR(8) UNIQUE", [("a", 1, "x"), ("b", 2, "y")], ["x", "y"]),
    "keys equal under a case-insensitive collation": KeyCase(
        'VARCHAR(8) COLLATE "ci" UNIQUE',
        [("a", 1, "first"), ("A", 2, "last")],
        ["first", "first"],
        equal_by_column=True,
        equal_by_index=True,
    ),
    "keys equal under the unique index's collation, not the column's": KeyCase(
        "TEXT",
        [("a", 1, "first"), ("A", 2, "last")],
        ["first", "first"],
        equal_by_index=True,
        setup=('CREATE UNIQUE INDEX keyed_code ON keyed (code COLLATE "ci")',),
    ),
    "keys a BEFORE INSERT trigger makes equal": KeyCase(  # a trigger may draw sequence values: compared first
        "TEXT UNIQUE",
        [("a", 1, "first"), ("A", 2, "last")],
        ["first", "first"],
        equal_by_index=True,
        setup=(
            "CREATE FUNCTION lower_code() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.code := lower(NEW.code); RETURN NEW; END $$",
            "CREATE TRIGGER lower_code BEFORE INSERT ON keyed FOR EACH ROW EXECUTE FUNCTION lower_code()",
        ),
        traced=True,
    ),
    "float keys the server finds equal (NaN)": KeyCase(
        "DOUBLE PRECISION UNIQUE",
        [(math.nan, 1, "x"), (math.nan, 2, "y")],
        ["x", "x"],
        equal_by_column=True,
        equal_by_index=True,
    ),
    "NULL keys, which never conflict": KeyCase(
        "INTEGER UNIQUE", [(None, 1, "x"), (None, 2, "y"), (5, 3, "z")], ["x", "y", "z"], equal_by_column=True
    ),
}


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
@pytest.mark.parametrize("serial", [True, False], ids=["serial ids", "no sequence"])
@pytest.mark.parametrize("case", list(KEY_CASES))
def test_an_upsert_of_one_key_twice_in_a_chunk_stores_what_sqlalchemys_row_by_row_upsert_stores(
    twins, monkeypatch, case, serial, returning
):
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    key = KEY_CASES[case]
    ours, theirs = twins
    for engine in (ours, theirs):
        with engine.begin() as conn:
            conn.exec_driver_sql(CI_COLLATION)
            ids = "id SERIAL PRIMARY KEY, " if serial else ""
            conn.exec_driver_sql(f"CREATE TABLE keyed ({ids}code {key.column}, number INTEGER, note TEXT)")
            for statement in key.setup:
                conn.exec_driver_sql(statement)
    rows = [{"code": code, "number": number, "note": note} for code, number, note in key.rows]
    tables = [Table("keyed", MetaData(), autoload_with=e) for e in (ours, theirs)]
    order = [tables[0].c.id] if serial else [tables[0].c.code, tables[0].c.number]
    log = _SentLog(monkeypatch)

    def write():
        return turboalchemy.bulk_upsert(
            ours,
            tables[0],
            rows,
            conflict=["code"],
            update=["number"],
            returning=tables[0].c.note if returning else None,
        )

    compared_first = serial or key.traced
    if compared_first and key.equal_by_index and not key.equal_by_column:
        # the refused merge has drawn sequence values the ORM's statements would not skip: the chunk fails whole
        with pytest.raises(BulkWriteError, match="equal as the unique index compares them.*chunk_size=1"):
            write()
        assert log.upserts == ["merge"] and count(ours, tables[0]) == 0
        return
    got = write()
    if returning and any(code is None for code, _, _ in key.rows):
        assert log.upserts == ["row by row"]  # returning= cannot match a NULL key's row to a merge's
    elif compared_first:
        assert log.upserts == (["row by row"] if key.equal_by_column else ["merge"])
    else:
        assert log.upserts == (["merge", "row by row"] if key.equal_by_index else ["merge"])
    with theirs.begin() as conn:
        for row in rows:  # SQLAlchemy's upsert, one statement per row
            stmt = pg_insert(tables[1]).values(row)
            conn.execute(stmt.on_conflict_do_update(index_elements=["code"], set_={"number": stmt.excluded.number}))
    stored = [dump_by(e, t, *(c.key for c in order)) for e, t in zip((ours, theirs), tables)]
    assert repr(stored[0]) == repr(stored[1])  # repr: NaN is not equal to itself
    if returning:  # each row is given its key's row as stored (a NULL key's row: its own)
        assert got == key.notes


# Where a refused merge may leave sequence values drawn out of the table's own sight, the staged keys are compared
# first: a chunk with one key twice goes row by row without a merge, so the ids are the ORM's.
TRACED_TABLES = {
    "a view over a table with a serial id": (
        "CREATE TABLE keyed_rows (id SERIAL PRIMARY KEY, code TEXT UNIQUE, number INTEGER, note TEXT)",
        "CREATE VIEW keyed AS SELECT * FROM keyed_rows",
    ),
    "a default calling a function that draws from a sequence": (
        "CREATE SEQUENCE ids",
        "CREATE FUNCTION next_id() RETURNS integer LANGUAGE sql AS $$ SELECT nextval('ids')::integer $$",
        "CREATE TABLE keyed (id INTEGER DEFAULT next_id(), code TEXT UNIQUE, number INTEGER, note TEXT)",
    ),
    "a column of a domain whose default draws from a sequence": (
        "CREATE SEQUENCE ids",
        "CREATE DOMAIN drawn_id AS INTEGER DEFAULT nextval('ids')",
        "CREATE TABLE keyed (id drawn_id, code TEXT UNIQUE, number INTEGER, note TEXT)",
    ),
    "a default using an operator whose function draws from a sequence": (
        "CREATE SEQUENCE ids",
        "CREATE FUNCTION drawn(integer, integer) RETURNS integer LANGUAGE sql AS $$ SELECT nextval('ids')::integer $$",
        "CREATE OPERATOR #@# (FUNCTION = drawn, LEFTARG = integer, RIGHTARG = integer)",
        "CREATE TABLE keyed (id INTEGER DEFAULT (1 #@# 2), code TEXT UNIQUE, number INTEGER, note TEXT)",
    ),
    "a CHECK calling a function that draws from a sequence": (
        "CREATE SEQUENCE ids",
        "CREATE FUNCTION draws(integer) RETURNS boolean LANGUAGE sql AS $$ SELECT nextval('ids') > 0 $$",
        "CREATE TABLE keyed (id INTEGER, code TEXT UNIQUE, number INTEGER CHECK (draws(number)), note TEXT)",
    ),
}


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shape", list(TRACED_TABLES))
def test_an_upsert_of_one_key_twice_into_a_table_drawing_sequence_values_unseen_stores_the_orms_ids(
    twins, monkeypatch, shape
):
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ours, theirs = twins
    for engine in (ours, theirs):
        with engine.begin() as conn:
            for statement in TRACED_TABLES[shape]:
                conn.exec_driver_sql(statement)
    tables = [Table("keyed", MetaData(), autoload_with=e) for e in (ours, theirs)]
    for table in tables:  # a view reflects no unique key: the application declares the one its table has
        if not any(isinstance(c, UniqueConstraint) for c in table.constraints):
            table.append_constraint(UniqueConstraint(table.c.code))
    rows = [{"code": "a", "number": 1, "note": "first"}, {"code": "b", "number": 2, "note": "b"}]
    rows.append({"code": "a", "number": 3, "note": "last"})
    log = _SentLog(monkeypatch)
    turboalchemy.bulk_upsert(ours, tables[0], rows, conflict=["code"], update=["number"])
    assert log.upserts == ["row by row"]
    with theirs.begin() as conn:
        for row in rows:
            stmt = pg_insert(tables[1]).values(row)
            conn.execute(stmt.on_conflict_do_update(index_elements=["code"], set_={"number": stmt.excluded.number}))
    stored = [(dump_by(e, t, "code"), sequences(e)) for e, t in zip((ours, theirs), tables)]
    assert stored[0] == stored[1]
    assert [row[1:] for row in stored[0][0]] == [("a", 3, "first"), ("b", 2, "b")]


def sequences(engine) -> list[tuple]:
    """Each sequence's last value: what the writes drew from it."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")]


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_an_upsert_whose_sql_onupdate_draws_from_a_sequence_compares_keys_before_merging(twins, monkeypatch):
    """A SET computed in SQL draws its values as the merge updates rows; a merge refused after that would leave them
    drawn, so the chunk with one key twice goes row by row at once, as SQLAlchemy's statements draw them."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ours, theirs = twins
    tables = []
    for engine in (ours, theirs):
        meta = MetaData()
        table = Table(
            "touched",
            meta,
            Column("code", String(8), primary_key=True),
            Column("number", Integer),
            Column("touch", Integer, onupdate=text("nextval('touches')")),
        )
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE SEQUENCE touches")
            meta.create_all(conn)
            conn.execute(insert(table).values(code="x", number=0))
        tables.append(table)
    rows = [{"code": "x", "number": 1}, {"code": "a", "number": 2}, {"code": "a", "number": 3}]
    log = _SentLog(monkeypatch)
    turboalchemy.bulk_upsert(ours, tables[0], rows, conflict=["code"])  # number, and touch by its onupdate
    assert log.upserts == ["row by row"]
    with theirs.begin() as conn:
        for row in rows:  # SQLAlchemy's upsert with the onupdate spelled out, one statement per row
            stmt = pg_insert(tables[1]).values(row)
            sets = {"number": stmt.excluded.number, "touch": text("nextval('touches')")}
            conn.execute(stmt.on_conflict_do_update(index_elements=["code"], set_=sets))
    assert dump_by(ours, tables[0], "code") == dump_by(theirs, tables[1], "code") == [("a", 3, 2), ("x", 1, 1)]


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
def test_a_refused_merge_inside_the_callers_transaction_undoes_only_its_chunk(twins, monkeypatch):
    """On a Connection target the chunk whose merge the server refuses is undone back to its savepoint and sent row by
    row; the caller's own write and the earlier chunk stay in the caller's transaction."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    ours, theirs = twins
    for engine in (ours, theirs):
        with engine.begin() as conn:
            conn.exec_driver_sql(CI_COLLATION)
            conn.exec_driver_sql("CREATE TABLE coded (code TEXT, number INTEGER)")
            conn.exec_driver_sql('CREATE UNIQUE INDEX coded_code ON coded (code COLLATE "ci")')
    tables = [Table("coded", MetaData(), autoload_with=e) for e in (ours, theirs)]
    rows = [{"code": "x", "number": 1}, {"code": "y", "number": 2}, {"code": "a", "number": 3}]
    rows.append({"code": "A", "number": 4})
    log = _SentLog(monkeypatch)
    with ours.begin() as conn:
        conn.execute(insert(tables[0]).values(code="before", number=0))
        turboalchemy.bulk_upsert(conn, tables[0], rows, conflict=["code"], update=["number"], chunk_size=2)
    assert log.upserts == ["merge", "merge", "row by row"]
    with theirs.begin() as conn:
        conn.execute(insert(tables[1]).values(code="before", number=0))
        for row in rows:
            stmt = pg_insert(tables[1]).values(row)
            conn.execute(stmt.on_conflict_do_update(index_elements=["code"], set_={"number": stmt.excluded.number}))
    assert dump_by(ours, tables[0], "code") == dump_by(theirs, tables[1], "code")
    assert len(dump_by(ours, tables[0], "code")) == 4


def dump_by(engine, table, *columns: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*(table.c[c] for c in columns)))]


def test_a_scalar_subquery_of_two_rows_in_a_trigger_is_reported_as_the_servers_error_not_as_equal_keys(pg):
    """SQLSTATE 21000 also means a scalar subquery gave more than one row: only ON CONFLICT DO UPDATE's own refusal
    is read as one key twice."""
    with pg.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS subquery_keyed")
        conn.exec_driver_sql("CREATE TABLE subquery_keyed (id SERIAL PRIMARY KEY, code TEXT UNIQUE, number INTEGER)")
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION two_rows() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.number := (SELECT g FROM generate_series(1, 2) g); RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER two_rows BEFORE INSERT ON subquery_keyed FOR EACH ROW EXECUTE FUNCTION two_rows()"
        )
    table = Table("subquery_keyed", MetaData(), autoload_with=pg)
    try:
        with pytest.raises(BulkWriteError, match="more than one row returned by a subquery") as failure:
            turboalchemy.bulk_upsert(pg, table, [{"code": "a", "number": 1}], conflict=["code"], update=["number"])
        assert "unique index" not in str(failure.value)
    finally:
        with pg.begin() as conn:
            conn.exec_driver_sql("DROP TABLE subquery_keyed")
            conn.exec_driver_sql("DROP FUNCTION two_rows()")


# Tables into which a COPY undone part way would leave values drawn (for the columns the rows leave out, or by a
# trigger or a CHECK), which its rollback does not give back
INSERT_TRACES = {
    "a serial id": ("CREATE TABLE keyed (id SERIAL PRIMARY KEY, code TEXT UNIQUE, number INTEGER, note TEXT)",),
    "an identity column": (
        "CREATE TABLE keyed (id INTEGER GENERATED BY DEFAULT AS IDENTITY, code TEXT UNIQUE, number INTEGER, note TEXT)",
    ),
    "a trigger that draws from a sequence": (
        "CREATE SEQUENCE ids",
        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.id := nextval('ids'); RETURN NEW; "
        "END $$",
        "CREATE TABLE keyed (id INTEGER, code TEXT UNIQUE, number INTEGER, note TEXT)",
        "CREATE TRIGGER stamped BEFORE INSERT ON keyed FOR EACH ROW EXECUTE FUNCTION stamp()",
    ),
    **{shape: ddl for shape, ddl in TRACED_TABLES.items() if "view" not in shape},
}


@pytest.mark.parametrize("twins", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shape", list(INSERT_TRACES))
def test_an_insert_into_a_table_drawing_values_is_checked_whole_before_its_copy(twins, monkeypatch, shape):
    """Into such a table a chunk is checked whole first, so a row late in it that goes as the statement leaves the
    values drawn that SQLAlchemy's insert leaves: no COPY begun and undone."""
    ours, theirs = twins
    for engine in twins:
        with engine.begin() as conn:
            for statement in INSERT_TRACES[shape]:
                conn.exec_driver_sql(statement)
    tables = [Table("keyed", MetaData(), autoload_with=e) for e in twins]
    rows = [{"code": f"c{i}", "number": i, "note": "a"} for i in range(1200)]
    rows[1100]["note"] = 42  # an int into a text column: the statement
    log = _SentLog(monkeypatch)
    turboalchemy.bulk_insert(ours, tables[0], rows, chunk_size=len(rows))
    assert log.formats() == [] and log.upserts == ["row by row"]
    with theirs.begin() as conn:
        conn.execute(tables[1].insert(), rows)
    stored = [(dump_by(e, t, "code"), sequences(e)) for e, t in zip(twins, tables)]
    assert stored[0] == stored[1]
    assert len(stored[0][0]) == 1200
