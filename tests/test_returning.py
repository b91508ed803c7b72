"""returning=: what a bulk write gives back is what SQLAlchemy's own INSERT ... RETURNING gives for the same rows,
in input order, on SQLite and PostgreSQL; and rows given as instances end up as the ORM leaves them after a flush.

Order is proven, not assumed: ids the rows supply in scrambled order, generated ids, chunks that span several
statements, upserts, skipped rows and rows whose key holds NULL each come back where their input row was."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from decimal import Decimal

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, create_engine, insert, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import turboalchemy
from turboalchemy import SchemaMismatchError

from .dbapi import SQLITE
from .shop import Customer, Tag
from .test_contract import stored
from .test_contract_matrix import SHAPES


def as_dicts(shape: str) -> list[dict]:
    columns = [c.key for c in Customer.__table__.columns]
    rows = SHAPES[shape]()
    if shape == "tuples":
        return [dict(zip(columns, r)) for r in rows]
    return rows


def sqlalchemy_returns(engine, shape: str, returning) -> list:
    """SQLAlchemy itself: add_all + flush for instances (their ids), else insert().returning(...) in parameter order."""
    with Session(engine) as session:
        if "instances" in shape:
            objs = SHAPES[shape]()
            session.add_all(objs)
            session.flush()
            got = [o.id for o in objs]
        else:
            stmt = insert(Customer).returning(returning, sort_by_parameter_order=True)
            got = list(session.scalars(stmt, as_dicts(shape)))
        session.commit()
    return got


def ours_returns(engine, path: str, shape: str, returning) -> list:
    rows = SHAPES[shape]()
    if path == "engine":
        got = turboalchemy.bulk_insert(engine, Customer, rows, chunk_size=3, returning=returning)
    elif path == "connection":
        with engine.begin() as conn:
            got = turboalchemy.bulk_insert(conn, Customer, rows, chunk_size=3, returning=returning)
    elif path == "session":
        with Session(engine) as session:
            got = turboalchemy.bulk_insert(session, Customer, rows, chunk_size=3, returning=returning)
            if "instances" in shape:
                assert all(o in session for o in rows)  # persistent in the Session, as after add_all + flush
                assert [o.id for o in rows] == got
            session.commit()
        return got
    elif path == "write queue":
        with turboalchemy.WriteQueue(engine) as queue:
            got = queue.bulk_insert(Customer, rows, chunk_size=3, returning=returning)
    else:
        drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}
        engine.dispose()  # aiosqlite goes through the stdlib's SQLite: one SQLite library on the file at a time
        aengine = create_async_engine(engine.url.set(drivername=drivers[engine.dialect.name]))

        async def load() -> list:
            try:
                return await turboalchemy.abulk_insert(aengine, Customer, rows, chunk_size=3, returning=returning)
            finally:
                await aengine.dispose()

        got = asyncio.run(load())
    if "instances" in shape:
        assert [o.id for o in rows] == got  # the instances themselves got their keys
    return got


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("path", ["engine", "session", "connection", "asyncio", "write queue"])
def test_generated_keys_come_back_in_input_order_as_sqlalchemy_returns_them(twins, path, shape):
    ours, theirs = twins
    expected = sqlalchemy_returns(theirs, shape, Customer.id)
    assert ours_returns(ours, path, shape, Customer.id) == expected
    assert stored(ours, Customer) == stored(theirs, Customer)


@pytest.mark.parametrize(
    "returning, shape_of",
    [
        (Customer.email, lambda r: r),
        ((Customer.id, Customer.tier, Customer.balance), tuple),
        ("email", lambda r: r),
    ],
    ids=["one column: scalars", "several columns: tuples", "a column by name"],
)
def test_columns_come_back_as_scalars_or_tuples_with_server_values(twins, returning, shape_of):
    ours, theirs = twins
    rows = as_dicts("mixed dicts")
    columns = returning if isinstance(returning, tuple) else (Customer.email,)
    with Session(theirs) as session:
        expected = [
            shape_of(r)
            for r in session.execute(insert(Customer).returning(*columns, sort_by_parameter_order=True), rows)
        ]
        expected = [r[0] for r in expected] if not isinstance(returning, tuple) else expected
        session.commit()
    assert turboalchemy.bulk_insert(ours, Customer, rows, returning=returning) == expected


def test_the_model_class_gives_instances_equal_to_those_sqlalchemy_returns(twins):
    ours, theirs = twins
    rows = as_dicts("mixed dicts")
    with Session(theirs) as session:
        theirs_objs = list(session.scalars(insert(Customer).returning(Customer, sort_by_parameter_order=True), rows))
        expected = [(o.id, o.email, o.tier, o.name, o.balance) for o in theirs_objs]
        session.commit()
    with Session(ours) as session:
        got = turboalchemy.bulk_insert(session, Customer, rows, returning=Customer)
        assert all(isinstance(o, Customer) and o in session for o in got)  # persistent, as the ORM's are
        assert [(o.id, o.email, o.tier, o.name, o.balance) for o in got] == expected
        assert session.get(Customer, got[0].id) is got[0]  # the Session's identity map holds them
        session.commit()
    detached = turboalchemy.bulk_insert(ours, Customer, [{"email": "x@shop.test"}], returning=Customer)
    assert sqlalchemy.inspect(detached[0]).detached and detached[0].tier == "basic"


def test_instances_get_their_keys_defaults_and_server_values_as_after_a_flush(twins):
    ours, theirs = twins
    with Session(theirs) as session:
        objs = SHAPES["mixed instances"]()
        session.add_all(objs)
        session.flush()
        session.commit()
        expected = [(o.id, o.email, o.tier, o.name, o.balance) for o in objs]
    objs = SHAPES["mixed instances"]()
    turboalchemy.bulk_insert(ours, Customer, objs, returning=Customer.id)
    assert [(o.id, o.email, o.tier, o.name, o.balance) for o in objs] == expected
    assert all(sqlalchemy.inspect(o).detached for o in objs)  # written without a Session: detached, with identity


def test_supplied_keys_in_scrambled_order_come_back_where_their_rows_were(twins):
    ours, _ = twins
    ids = random.Random(7).sample(range(1, 100_000), 2600)  # more than one multi-row statement per chunk
    rows = [{"id": i, "email": f"{i}@shop.test"} for i in ids]
    assert turboalchemy.bulk_insert(ours, Customer, rows, chunk_size=5000, returning=Customer.email) == [
        r["email"] for r in rows
    ]


def test_generated_keys_span_statements_and_chunks_in_order(twins):
    ours, theirs = twins
    rows = [{"email": f"{i}@shop.test", "name": str(i % 7)} for i in range(2600)]
    with Session(theirs) as session:
        expected = list(session.scalars(insert(Customer).returning(Customer.id, sort_by_parameter_order=True), rows))
        session.commit()
    got = turboalchemy.bulk_insert(ours, Customer, rows, chunk_size=1100, returning=(Customer.id, Customer.email))
    assert [i for i, _ in got] == expected
    assert [e for _, e in got] == [r["email"] for r in rows]


def test_an_upsert_gives_every_row_the_row_as_stored_duplicates_included(twins):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, [{"email": f"{i}@shop.test", "name": "old"} for i in range(5)])
    rows = [
        {"email": "3@shop.test", "name": "first"},
        {"email": "new@shop.test", "name": "n"},
        {"email": "1@shop.test", "name": "one"},
        {"email": "3@shop.test", "name": "last"},
    ]
    got = turboalchemy.bulk_upsert(ours, Customer, rows, conflict=["email"], returning=(Customer.id, Customer.name))
    by_email = {e: (i, n) for i, e, n in [(r[0], r[1], r[3]) for r in stored(ours, Customer)]}
    assert got == [by_email[r["email"]] for r in rows]
    assert got[0] == got[3] and got[0][1] == "last"


def test_skipped_rows_give_none(twins):
    ours, _ = twins
    [kept] = turboalchemy.bulk_insert(ours, Customer, [{"email": "a@shop.test"}], returning=Customer.id)
    rows = [{"email": "a@shop.test"}, {"email": "b@shop.test"}, {"email": "b@shop.test"}]
    got = turboalchemy.bulk_insert(
        ours, Customer, rows, on_conflict="ignore", conflict=["email"], returning=Customer.email
    )
    assert got == [None, "b@shop.test", None]  # the first of two duplicates is the one inserted
    ids = turboalchemy.bulk_upsert(
        ours, Customer, [{"email": "a@shop.test"}], conflict=["email"], update=(), returning=Customer.id
    )
    assert ids == [None] and kept is not None


def test_rows_whose_conflict_key_holds_null_each_come_back(twins):
    """NULLs never conflict, so these rows cannot be matched by key: they take one statement each."""
    ours, theirs = twins
    rows = [
        {"code": None, "grp": 1, "label": "a"},
        {"code": "x", "grp": 1, "label": "b"},
        {"code": None, "grp": 1, "label": "c"},
    ]
    got = turboalchemy.bulk_upsert(ours, Tag, rows, conflict=["code", "grp"], returning=(Tag.id, Tag.label))
    assert [label for _, label in got] == ["a", "b", "c"]
    assert sorted(i for i, _ in got) == [r[0] for r in stored(ours, Tag)]


def test_a_table_without_a_key_comes_back_row_by_row(twins):
    ours, _ = twins
    table = Table("notes", MetaData(), Column("body", String(20)), Column("n", Integer, server_default="4"))
    table.metadata.create_all(ours)
    got = turboalchemy.bulk_insert(
        ours, table, [{"body": f"b{i}"} for i in range(4)], returning=(table.c.body, table.c.n)
    )
    assert got == [(f"b{i}", 4) for i in range(4)]


def test_keys_taken_between_ours_by_a_trigger_send_the_chunk_again_one_row_at_a_time(tmp_path):
    """A trigger inserting into the same table takes ids between ours, so sorting them would pair the wrong
    ones: the gap is seen, the chunk rolled back and written again a statement per row, and every id is right."""
    engine = create_engine(f"sqlite:///{tmp_path / 'trigger.db'}")
    Customer.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER echo AFTER INSERT ON customers WHEN NEW.email NOT LIKE 'echo%' BEGIN "
            "INSERT INTO customers (email, balance) VALUES ('echo' || NEW.email, 0); END"
        )
    rows = [{"email": f"{i}@shop.test"} for i in range(5)]
    ids = turboalchemy.bulk_insert(engine, Customer, rows, returning=Customer.id)
    with engine.connect() as conn:
        by_email = dict(conn.exec_driver_sql("SELECT email, id FROM customers").fetchall())
    assert ids == [by_email[r["email"]] for r in rows] and len(by_email) == 10  # each row once, with its echo
    engine.dispose()


@pytest.mark.parametrize("returning", [Tag.id, "nope", 42, ()])
def test_returning_what_is_not_a_column_of_the_table_is_refused_before_any_sql(twins, returning):
    ours, _ = twins
    with pytest.raises((SchemaMismatchError, TypeError)):
        turboalchemy.bulk_insert(ours, Customer, [{"email": "a@shop.test"}], returning=returning)
    assert stored(ours, Customer) == []


def test_without_returning_the_count_as_before(twins):
    ours, _ = twins
    assert turboalchemy.bulk_insert(ours, Customer, as_dicts("dicts")) == 7
    assert turboalchemy.bulk_insert(ours, Customer, [], returning=Customer.id) == []


def test_decimal_and_server_values_are_processed_as_sqlalchemy_processes_them(twins):
    ours, _ = twins
    [(balance, tier)] = turboalchemy.bulk_insert(
        ours,
        Customer,
        [{"email": "a@shop.test", "balance": Decimal("1.25")}],
        returning=(Customer.balance, Customer.tier),
    )
    assert balance == Decimal("1.25") and isinstance(balance, Decimal) and tier == "basic"


def test_multi_row_statements_stay_within_the_connections_bound_variable_limit(tmp_path):
    """A connection whose limit is lowered to 50 variables: 7 columns a row means at most 7 rows a statement,
    where a statement built for the compile-time default would be refused ("too many SQL variables")."""
    if not hasattr(SQLITE.Connection, "setlimit"):
        pytest.skip(f"{SQLITE.__name__} cannot lower a connection's limit (no setlimit)")
    engine = create_engine(f"sqlite:///{tmp_path / 'limit.db'}")

    @sqlalchemy.event.listens_for(engine, "connect")
    def lower(dbapi_connection, _record):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 50)  # the constant is the same in every module

    wide = Table(
        "wide", MetaData(), Column("id", Integer, primary_key=True), *(Column(f"c{i}", Integer) for i in range(6))
    )
    wide.metadata.create_all(engine)
    rows = [{"id": i, **{f"c{j}": i * j for j in range(6)}} for i in range(1, 200)]
    assert turboalchemy.bulk_insert(engine, wide, rows, returning=wide.c.c5) == [r["c5"] for r in rows]
    engine.dispose()


def test_without_getlimit_the_limit_comes_from_the_library_version():
    from turboalchemy._write.returning import variable_limit

    class Old:  # a driver connection that cannot say (aiosqlite's, or an old sqlite3)
        def __init__(self, version):
            self.sqlite_version_info = version

    assert variable_limit(Old((3, 31, 1))) == 999
    assert variable_limit(Old((3, 45, 0))) == 32766


class Extra(DeclarativeBase):
    pass


class Token(Extra):
    """A text key the driver may hand back as another type (psycopg returns a UUID object for a uuid column)."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True, default=lambda: str(uuid.uuid4()))
    label: Mapped[str] = mapped_column(String(10))


class Daily(Extra):
    """A natural key partly filled by the server (day), and an autoincrement id."""

    __tablename__ = "daily"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[str] = mapped_column(String(10), server_default=text("'2026-12-01'"))
    hits: Mapped[int] = mapped_column(Integer)
    __table_args__ = (sqlalchemy.UniqueConstraint("user_id", "day"),)


class Ticket(Extra):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)


@pytest.fixture
def extra(twins):
    ours, theirs = twins
    for engine in (ours, theirs):
        Extra.metadata.create_all(engine)
    return ours, theirs


def test_keys_the_driver_returns_as_another_type_still_come_back_right(extra):
    ours, theirs = extra
    objs = [Token(label=f"t{i}") for i in range(4)]
    ids = turboalchemy.bulk_insert(ours, Token, objs, returning=Token.id)
    assert ids == [o.id for o in objs] and all(isinstance(i, str) for i in ids)
    assert sorted(r[0] for r in stored(ours, Token)) == sorted(ids)


def test_an_upsert_whose_key_the_server_completes_is_matched_row_by_row(extra):
    """Sorting generated ids would give the updated row (an old, high id) to the new one."""
    ours, _ = extra
    with ours.begin() as conn:
        conn.exec_driver_sql("INSERT INTO daily (id, user_id, hits) VALUES (9, 1, 1)")
    got = turboalchemy.bulk_upsert(
        ours,
        Daily,
        [{"user_id": 2, "hits": 1}, {"user_id": 1, "hits": 5}],
        conflict=["user_id", "day"],
        returning=Daily.id,
    )
    by_user = {r[1]: r[0] for r in stored(ours, Daily)}
    assert got == [by_user[2], by_user[1]] and by_user[1] == 9


def test_a_skipped_row_is_told_apart_from_a_stored_converted_key(tmp_path):
    """SQLite stores the text '1' in an integer column as 1: the second row conflicts with the first and is
    skipped, and the answer says so, in order."""
    engine = create_engine(f"sqlite:///{tmp_path / 'tickets.db'}")
    Extra.metadata.create_all(engine)
    got = turboalchemy.bulk_insert(
        engine, Ticket, [{"number": "1"}, {"number": 1}], on_conflict="ignore", conflict=["number"], returning=Ticket.id
    )
    assert got == [1, None]
    engine.dispose()


def test_upserted_instances_show_the_row_as_stored_not_as_sent(twins):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, [{"id": 1, "email": "old@shop.test"}])
    with Session(ours) as session:
        loaded = session.get(Customer, 1)
        sent = Customer(id=1, email="new@shop.test", tier="gold")
        turboalchemy.bulk_upsert(session, Customer, [sent], conflict=["id"], update=["email"])
        assert (sent.email, sent.tier) == ("new@shop.test", "basic")  # tier was not updated: the stored one
        assert (loaded.email, loaded.tier) == ("new@shop.test", "basic")  # the Session's own object, refreshed


def test_before_sqlite_3_35_returning_is_refused_and_instances_are_written_as_before(tmp_path, monkeypatch):
    """RETURNING arrived in SQLite 3.35: older libraries refuse returning= (and graphs) naming the version."""
    monkeypatch.setattr(SQLITE, "sqlite_version_info", (3, 34, 1))  # the module SQLAlchemy drives
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    Customer.metadata.create_all(engine)
    with pytest.raises(turboalchemy.UnsupportedTargetError, match="3.35"):
        turboalchemy.bulk_insert(engine, Customer, [{"email": "a@shop.test"}], returning=Customer.id)
    objs = [Customer(email="b@shop.test")]
    assert turboalchemy.bulk_insert(engine, Customer, objs) == 1 and objs[0].id is None  # no keys back, as before
    engine.dispose()


# -- keys the rows supply: given back as sent, when the database stores them as sent ----------------------------


class Sent(DeclarativeBase):
    pass


class Keyed(Sent):
    """Keys the client makes, of the common kinds: text, integer, UUID, and a UUIDv7 made by a Python default."""

    __tablename__ = "keyed"
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    ref: Mapped[uuid.UUID] = mapped_column(Uuid)
    made: Mapped[str] = mapped_column(String(36), default=turboalchemy.uuid7, unique=True)


ASKED = (Keyed.code, Keyed.number, Keyed.ref)


def _row(i: int, **changed) -> dict:
    return {"code": f"k{i}", "number": i, "ref": uuid.UUID(int=i), **changed}


# Rows whose values the database stores as sent ("as sent"), or stores converted in some row: then the rows come
# back as stored, as SQLAlchemy's RETURNING gives them (value and type), never as sent.
AS_SENT_CASES = {
    "as sent": lambda: [_row(i) for i in range(1, 4)],
    "an int into a text column": lambda: [_row(i, code=100 + i) for i in range(1, 4)],
    "one row of three converted": lambda: [_row(1), _row(2, code=102), _row(3)],
    "numeric text into an integer column": lambda: [_row(i, number=str(i)) for i in range(1, 4)],
    "a whole float into an integer column": lambda: [_row(i, number=float(i)) for i in range(1, 4)],
    "a bool into an integer column": lambda: [_row(i, number=bool(i % 2)) for i in range(0, 2)],
    "trailing spaces past varchar(8)": lambda: [_row(i, code=f"k{i}".ljust(8, "x") + "   ") for i in range(1, 4)],
}


@pytest.fixture
def sent_twins(twins):
    for engine in twins:
        Sent.metadata.create_all(engine)
    return twins


def _outcome(call):
    try:
        return call()
    except Exception as exc:
        return exc


def typed(rows) -> list:
    """Rows with each value's type beside it (1 == 1.0 == True, but they are not the same answer)."""
    return [tuple((type(v), v) for v in (r if isinstance(r, tuple) else (r,))) for r in rows]


def sqlalchemy_inserts_returning(engine, table, columns, rows) -> list | Exception:
    """SQLAlchemy's own RETURNING, one row a statement (its batched form, sort_by_parameter_order, refuses rows
    whose key the database converts: it matches returned keys to the keys as sent), in one transaction."""
    stmt = insert(table).returning(*columns)
    with Session(engine) as session:
        try:
            got = [tuple(session.execute(stmt, dict(r)).one()) for r in rows]
        except Exception as exc:
            session.rollback()
            return exc
        session.commit()
    return got


def rows_of(engine, target) -> list[tuple]:
    """Every stored row of a model or Table, through a fresh connection, in primary-key order."""
    return (
        stored(engine, target) if hasattr(target, "__table__") else stored(engine, type("T", (), {"__table__": target}))
    )


def assert_same_answer(ours, theirs, model, columns, rows, got) -> None:
    """Ours gave what SQLAlchemy's RETURNING gave, value for value and type for type, and stored the same rows;
    or both refused (ours before storing anything)."""
    expected = sqlalchemy_inserts_returning(theirs, model, columns, rows)
    if isinstance(expected, Exception):
        assert isinstance(got, Exception), f"SQLAlchemy refused ({expected!r}), ours returned {got!r}"
        assert not rows_of(ours, model)
        return
    if isinstance(got, turboalchemy.BulkWriteError):  # a deliberate refusal, before anything is written
        assert not rows_of(ours, model)
        return
    assert not isinstance(got, Exception), got
    assert typed(got) == typed(expected)
    width = len(columns)  # (Keyed's last column is a fresh UUIDv7 on each side)
    assert [r[:width] for r in rows_of(ours, model)] == [r[:width] for r in rows_of(theirs, model)]


@pytest.mark.parametrize("case", list(AS_SENT_CASES))
def test_supplied_keys_come_back_as_the_database_stored_them(sent_twins, case):
    ours, theirs = sent_twins
    rows = AS_SENT_CASES[case]()
    got = _outcome(lambda: turboalchemy.bulk_insert(ours, Keyed, [dict(r) for r in rows], returning=ASKED))
    if case == "as sent":
        assert not isinstance(got, Exception), got
    assert_same_answer(ours, theirs, Keyed, ASKED, [{k: v for k, v in r.items()} for r in rows], got)


def test_from_asyncio_too(sent_twins):
    ours, theirs = sent_twins
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}
    ours.dispose()
    aengine = create_async_engine(ours.url.set(drivername=drivers[ours.dialect.name]))

    async def load() -> list:
        try:
            return await turboalchemy.abulk_insert(aengine, Keyed, AS_SENT_CASES["as sent"](), returning=ASKED)
        finally:
            await aengine.dispose()

    got = asyncio.run(load())
    assert_same_answer(ours, theirs, Keyed, ASKED, AS_SENT_CASES["as sent"](), got)


def _statements_sent(engine, write) -> list[str]:
    """The statements the write sent, as the driver saw them (SQLite's trace; psycopg's cursor, wrapped)."""
    with engine.begin() as conn:
        dbapi = conn.connection.dbapi_connection
        sent: list[str] = []
        if engine.dialect.name == "sqlite":
            dbapi.set_trace_callback(sent.append)
            try:
                write(conn)
            finally:
                dbapi.set_trace_callback(None)
            return sent
        original = dbapi.cursor_factory

        class Seen(original):  # psycopg's cursor class, noting each statement it is given
            def execute(self, query, *args, **kwargs):
                sent.append(query if isinstance(query, str) else query.as_string(self))
                return super().execute(query, *args, **kwargs)

            def executemany(self, query, *args, **kwargs):
                sent.append(query if isinstance(query, str) else query.as_string(self))
                return super().executemany(query, *args, **kwargs)

        dbapi.cursor_factory = Seen
        try:
            write(conn)
        finally:
            dbapi.cursor_factory = original
        return sent


def test_an_insert_of_keys_the_rows_supply_sends_no_returning(sent_twins):
    """The keys are known before the write: the plain fast path, and the keys (and the UUIDv7 the Python default
    made) as sent."""
    ours, _ = sent_twins
    rows = [{"code": f"k{i}", "number": i, "ref": uuid.uuid4()} for i in range(50)]
    got: list = []
    sent = _statements_sent(
        ours, lambda conn: got.extend(turboalchemy.bulk_insert(conn, Keyed, rows, returning=(*ASKED, Keyed.made)))
    )
    assert sent and not [s for s in sent if "RETURNING" in s.upper()]
    assert [g[:3] for g in got] == [(r["code"], r["number"], r["ref"]) for r in rows]
    assert sorted(g[3] for g in got) == sorted(r[3] for r in stored(ours, Keyed))


def test_a_value_the_database_would_convert_sends_returning(sent_twins):
    ours, _ = sent_twins
    rows = [_row(1), _row(2, code=102)]
    sent = _statements_sent(ours, lambda conn: turboalchemy.bulk_insert(conn, Keyed, rows, returning=Keyed.code))
    assert [s for s in sent if "RETURNING" in s.upper()]


# What the table's own definition does to an INSERT, per backend: each must be answered as RETURNING answers.
SQLITE_TABLES = {
    "a trigger that drops rows": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)",
        "CREATE TRIGGER drop_odd BEFORE INSERT ON guarded WHEN NEW.number % 2 = 1 BEGIN SELECT RAISE(IGNORE); END",
    ),
    "ON CONFLICT IGNORE in the table": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY ON CONFLICT IGNORE, number INTEGER)",
    ),
}
POSTGRESQL_TABLES = {
    "a trigger that changes the key": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)",
        "CREATE FUNCTION shout() RETURNS trigger AS $$ BEGIN NEW.code := upper(NEW.code); RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER shouting BEFORE INSERT ON guarded FOR EACH ROW EXECUTE FUNCTION shout()",
    ),
    "an INSERT rule": (
        "CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)",
        "CREATE TABLE guarded_log (code VARCHAR(8))",
        "CREATE RULE logged AS ON INSERT TO guarded DO ALSO INSERT INTO guarded_log VALUES (NEW.code)",
    ),
    "an identity column GENERATED ALWAYS given values": (
        "CREATE TABLE guarded (code VARCHAR(8), number INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY)",
    ),
    "a trigger on the partition the rows go to": (
        "CREATE TABLE guarded (code VARCHAR(8), number INTEGER, PRIMARY KEY (code, number)) PARTITION BY RANGE (number)",
        "CREATE TABLE guarded_low PARTITION OF guarded FOR VALUES FROM (0) TO (100)",
        "CREATE FUNCTION shout() RETURNS trigger AS $$ BEGIN NEW.code := upper(NEW.code); RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER shouting BEFORE INSERT ON guarded_low FOR EACH ROW EXECUTE FUNCTION shout()",
    ),
    "a Numeric model over an integer column": ("CREATE TABLE guarded (code VARCHAR(8) PRIMARY KEY, number INTEGER)",),
}


@pytest.mark.parametrize("case", sorted({*SQLITE_TABLES, *POSTGRESQL_TABLES}))
def test_what_the_tables_definition_does_to_an_insert_comes_back_as_returning_says(sent_twins, case):
    ours, theirs = sent_twins
    ddl = (SQLITE_TABLES if ours.dialect.name == "sqlite" else POSTGRESQL_TABLES).get(case)
    if ddl is None:
        pytest.skip(f"not a {ours.dialect.name} case")
    for engine in (ours, theirs):
        with engine.begin() as conn:
            for statement in ddl:
                conn.exec_driver_sql(statement)
    number = sqlalchemy.Numeric(10, 0) if "Numeric" in case else Integer
    guarded = Table("guarded", MetaData(), Column("code", String(8), primary_key=True), Column("number", number))
    rows = [{"code": f"k{i}", "number": i} for i in range(1, 5)]
    if "ON CONFLICT" in case:
        rows.append({"code": "k1", "number": 9})  # skipped by the table's own clause
    got = _outcome(lambda: turboalchemy.bulk_insert(ours, guarded, [dict(r) for r in rows], returning=list(guarded.c)))
    assert_same_answer(ours, theirs, guarded, list(guarded.c), rows, got)
    if "rule" in case:
        with ours.connect() as a, theirs.connect() as b:
            log = "SELECT code FROM guarded_log ORDER BY code"
            assert a.exec_driver_sql(log).all() == b.exec_driver_sql(log).all() != []
