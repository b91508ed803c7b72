"""The contract, differentially: a bulk write stores what SQLAlchemy stores for the same input, on a twin
database read back through a fresh connection, or refuses with our error before anything is written."""

from __future__ import annotations

import math
from datetime import UTC
from decimal import Decimal

import pytest
import sqlalchemy
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

import turboalchemy

from .shop import PRICES_A, PRICES_B, Customer, Excluded, Order, Shop, Tag, Visit, schemas


def stored(engine, model) -> list[tuple]:
    """Every stored row, through a fresh connection, in primary-key order."""
    fresh = create_engine(engine.url)
    try:
        with fresh.connect() as conn:
            table = getattr(model, "__table__", model)
            return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
    finally:
        fresh.dispose()


def sqlalchemy_upsert(engine, model, rows, conflict, update):
    """What SQLAlchemy itself stores: the dialect's insert().on_conflict_do_update, one row at a time in order
    (so duplicates within the input resolve last-wins, as ours do)."""
    module = sqlalchemy.dialects.sqlite if engine.dialect.name == "sqlite" else sqlalchemy.dialects.postgresql
    stmt = module.insert(model)
    stmt = (
        stmt.on_conflict_do_update(index_elements=conflict, set_={c: stmt.excluded[c] for c in update})
        if update
        else stmt.on_conflict_do_nothing(index_elements=conflict)
    )
    with Session(engine) as session:
        for row in rows:
            session.execute(stmt, row)
        session.commit()


CUSTOMERS = [{"email": f"c{i}@shop.test", "name": f"c{i}", "balance": Decimal(i) / 7} for i in range(6)]
AGAIN = [
    {"email": "c1@shop.test", "name": "renamed", "balance": Decimal("1.5")},
    {"email": "new@shop.test", "name": None, "balance": Decimal("2")},
]


@pytest.mark.parametrize("path", ["engine", "session", "repository"])
def test_an_upsert_leaving_the_serial_id_and_server_default_out_stores_what_sqlalchemy_stores(twins, path):
    ours, theirs = twins
    for rows in (CUSTOMERS, AGAIN):
        sqlalchemy_upsert(theirs, Customer, rows, ["email"], ["name", "balance"])
        if path == "engine":
            turboalchemy.bulk_upsert(ours, Customer, rows, conflict=["email"])
        else:
            with Session(ours) as session:
                if path == "session":
                    turboalchemy.bulk_upsert(session, Customer, rows, conflict=["email"])
                else:
                    turboalchemy.Repository(session, Customer).bulk_upsert(rows, conflict=["email"])
                session.commit()
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert [r[2] for r in stored(ours, Customer)] == ["basic"] * 7  # the server default, filled by the database


def test_the_ignore_form_leaving_the_serial_id_out_stores_what_sqlalchemy_stores(twins):
    ours, theirs = twins
    for rows in (CUSTOMERS, AGAIN):
        sqlalchemy_upsert(theirs, Customer, rows, ["email"], [])
        turboalchemy.bulk_upsert(ours, Customer, rows, conflict=["email"], update=[])
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_abulk_upsert_leaving_the_serial_id_out_stores_what_sqlalchemy_stores(twins):
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    ours, theirs = twins
    url = ours.url.set(drivername="sqlite+aiosqlite" if ours.dialect.name == "sqlite" else "postgresql+psycopg_async")
    ours.dispose()  # aiosqlite goes through the stdlib's SQLite: one SQLite library on the file at a time
    aengine = create_async_engine(url)

    async def load(rows):
        await turboalchemy.abulk_upsert(aengine, Customer, rows, conflict=["email"])

    for rows in (CUSTOMERS, AGAIN):
        sqlalchemy_upsert(theirs, Customer, rows, ["email"], ["name", "balance"])
        asyncio.run(load(rows))
    asyncio.run(aengine.dispose())
    assert stored(ours, Customer) == stored(theirs, Customer)


NULL_KEYS = [
    {"code": None, "grp": 1, "label": "a"},
    {"code": None, "grp": 1, "label": "b"},
    {"code": "x", "grp": None, "label": "c"},
    {"code": "x", "grp": None, "label": "d"},
    {"code": "x", "grp": 1, "label": "e"},
    {"code": "x", "grp": 1, "label": "f"},
]


def test_rows_whose_conflict_key_holds_null_are_never_collapsed(twins):
    """ON CONFLICT treats NULLs as distinct: all four NULL-key rows are inserted; the duplicate x/1 resolves
    last-wins."""
    ours, theirs = twins
    sqlalchemy_upsert(theirs, Tag, NULL_KEYS, ["code", "grp"], ["label"])
    written = turboalchemy.bulk_upsert(ours, Tag, NULL_KEYS, conflict=["code", "grp"])
    assert [r[1:] for r in stored(ours, Tag)] == [r[1:] for r in stored(theirs, Tag)]
    assert len(stored(ours, Tag)) == 5 and written == 6


def test_a_generator_that_reuses_one_dict_stores_every_rows_own_values(twins):
    ours, theirs = twins

    def reused():
        row = {}
        for i in range(10):
            row.update(email=f"r{i}@shop.test", name=f"r{i}", balance=Decimal(i))
            yield row

    with Session(theirs) as session:
        session.execute(sqlalchemy.insert(Customer), [dict(r) for r in reused()])
        session.commit()
    turboalchemy.bulk_insert(ours, Customer, reused(), chunk_size=4)
    turboalchemy.bulk_upsert(ours, Customer, reused(), conflict=["email"], chunk_size=4)
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_an_update_column_the_rows_do_not_supply_is_refused_before_any_sql(twins):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, CUSTOMERS)
    before = stored(ours, Customer)
    with pytest.raises(
        turboalchemy.SchemaMismatchError, match=r"update= names 'balance', which the rows do not supply"
    ):
        turboalchemy.bulk_upsert(
            ours, Customer, [{"email": "c1@shop.test", "name": "z"}], conflict=["email"], update=["name", "balance"]
        )
    assert stored(ours, Customer) == before


def test_bulk_insert_can_skip_rows_that_conflict(twins):
    ours, theirs = twins
    sqlalchemy_upsert(theirs, Customer, CUSTOMERS + AGAIN, ["email"], [])
    assert turboalchemy.bulk_insert(ours, Customer, CUSTOMERS, on_conflict="ignore") == 6
    turboalchemy.bulk_insert(ours, Customer, AGAIN, on_conflict="ignore", conflict=["email"])
    assert stored(ours, Customer) == stored(theirs, Customer)
    with pytest.raises(ValueError, match="on_conflict"):
        turboalchemy.bulk_insert(ours, Customer, AGAIN, on_conflict="update")


def test_an_upsert_into_a_table_named_excluded_updates(twins):
    """No differential here: SQLAlchemy's own statement silently keeps the old price on SQLite (`excluded.price`
    resolves to the target) and is refused as ambiguous on PostgreSQL. Ours aliases the target, so the name
    keeps its meaning."""
    ours, _ = twins
    for batch in ([{"id": 1, "price": 10}, {"id": 2, "price": 20}], [{"id": 1, "price": 11}]):
        turboalchemy.bulk_upsert(ours, Excluded, batch, conflict=["id"])
    assert stored(ours, Excluded) == [(1, 11), (2, 20)]


def test_same_named_tables_in_two_schemas_upserted_in_one_transaction_keep_their_own_types(postgres_url):
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for schema in ("a", "b"):
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    schemas.create_all(engine)
    try:
        with Session(engine) as session:
            turboalchemy.bulk_upsert(session, PRICES_A, [{"id": 1, "v": Decimal("10")}], conflict=["id"])
            turboalchemy.bulk_upsert(session, PRICES_B, [{"id": 1, "v": Decimal("10.1234")}], conflict=["id"])
            session.commit()
        with engine.connect() as conn:
            assert conn.execute(select(PRICES_B.c.v)).scalar_one() == Decimal("10.1234")
            assert conn.execute(select(PRICES_A.c.v)).scalar_one() == Decimal("10")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA a CASCADE; DROP SCHEMA b CASCADE"))
        engine.dispose()


@pytest.mark.parametrize("value", [math.nan, float("nan")])
def test_nan_into_a_column_that_would_store_null_is_refused_on_sqlite(tmp_path, value):
    engine = create_engine(f"sqlite:///{tmp_path / 'n.db'}")
    Shop.metadata.create_all(engine)
    rows = [{"email": "a@shop.test", "name": "a"}, {"email": "b@shop.test", "name": value}]
    with pytest.raises(turboalchemy.BulkWriteError, match="row 1, column 'name': NaN") as caught:
        turboalchemy.bulk_insert(engine, Customer, rows)
    assert (caught.value.row, caught.value.column) == (1, "name")
    assert stored(engine, Customer) == []
    engine.dispose()


MIXED = [
    {"email": "a@shop.test", "name": "a"},
    {"email": "b@shop.test"},
    {"email": "c@shop.test"},
    {"email": "d@shop.test", "balance": Decimal("4.5")},
    {"email": "e@shop.test", "name": None},
    {"name": "f", "email": "f@shop.test"},
]


@pytest.mark.parametrize("chunk_size", [2, 5000])
def test_dicts_that_leave_out_different_keys_store_what_the_orm_bulk_insert_stores(twins, chunk_size):
    """A missing key means the column's default (Python-side applied, server-side left to the database); None
    means NULL; rows of several key sets stay in their order."""
    ours, theirs = twins
    with Session(theirs) as session:
        session.execute(sqlalchemy.insert(Customer), MIXED)
        session.commit()
    assert turboalchemy.bulk_insert(ours, Customer, MIXED, chunk_size=chunk_size) == len(MIXED)
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_upserting_dicts_of_different_key_sets_stores_what_sqlalchemy_stores(twins):
    ours, theirs = twins
    rows = [*MIXED, {"email": "a@shop.test", "balance": Decimal(9)}, {"email": "b@shop.test", "name": "bee"}]
    sqlalchemy_upsert(theirs, Customer, MIXED, ["email"], [])  # the first pass inserts
    for row in rows[len(MIXED) :]:
        sqlalchemy_upsert(theirs, Customer, [row], ["email"], [k for k in row if k != "email"])
    turboalchemy.bulk_upsert(ours, Customer, rows, conflict=["email"])
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_instances_that_set_different_attributes_store_what_add_all_stores(twins):
    ours, theirs = twins

    def instances():
        return [
            Customer(email="a@shop.test"),
            Customer(email="b@shop.test", tier="gold"),
            Customer(email="c@shop.test", name="c", balance=Decimal("2.25")),
            Customer(email="d@shop.test"),
        ]

    with Session(theirs) as session:
        session.add_all(instances())
        session.commit()
    turboalchemy.bulk_insert(ours, Customer, instances())
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert [r[2] for r in stored(ours, Customer)] == ["basic", "gold", "basic", "basic"]


@pytest.mark.parametrize(
    "row",
    [
        lambda: Customer(email="p@shop.test", orders=[Order(item="x")]),
        lambda: Order(item="y", customer=Customer(email="q@shop.test")),
    ],
    ids=["one-to-many children", "many-to-one parent"],
)
def test_an_upsert_of_an_instance_holding_related_objects_is_refused_before_any_sql(twins, row):
    """add_all has no upsert to compare with; bulk_insert writes such graphs (tests/test_graphs.py)."""
    ours, _ = twins
    first = Customer(email="first@shop.test") if isinstance(row(), Customer) else Order(item="first")
    model = type(first)
    with pytest.raises(
        turboalchemy.SchemaMismatchError, match=r"row 1 sets relationship (Customer\.orders|Order\.customer)"
    ):
        turboalchemy.bulk_upsert(ours, model, [first, row()], conflict=["id"])
    assert stored(ours, model) == []


@pytest.mark.parametrize("target_kind", ["engine", "session"])
def test_a_chunk_of_several_key_sets_rolls_back_whole(twins, target_kind):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, [{"email": "kept@shop.test"}])
    before = stored(ours, Customer)
    rows = [{"email": "a@shop.test"}, {"email": "b@shop.test", "name": "b"}, {"email": "a@shop.test"}]
    with pytest.raises(turboalchemy.BulkWriteError) as caught:
        if target_kind == "engine":
            turboalchemy.bulk_insert(ours, Customer, rows)
        else:
            with Session(ours) as session:
                turboalchemy.bulk_insert(session, Customer, rows)
                session.commit()
    assert (caught.value.row, caught.value.column) == (2, "email")
    assert stored(ours, Customer) == before


def test_aware_datetimes_into_a_naive_column_are_stored_as_a_bound_value_is(twins):
    """12:00+05:00 into a TIMESTAMP WITHOUT TIME ZONE: the server stores the session's local time (07:00 in UTC),
    as for the ORM's bound value; COPY's text input used to keep 12:00 and drop the offset."""
    from datetime import datetime, timedelta, timezone

    ours, theirs = twins
    plus5 = timezone(timedelta(hours=5))
    rows = [
        {"code": "a", "at": datetime(2024, 1, 1, 12, 0, tzinfo=plus5)},
        {"code": "b", "at": datetime(2024, 1, 1, 9)},
        {"code": "c", "at": datetime(2024, 6, 1, 0, 30, tzinfo=UTC)},
    ]
    with Session(theirs) as session:
        session.execute(sqlalchemy.insert(Visit), rows)
        session.commit()
    turboalchemy.bulk_insert(ours, Visit, rows)
    assert stored(ours, Visit) == stored(theirs, Visit)
    later = [{"code": "a", "at": datetime(2024, 1, 2, 12, 0, tzinfo=plus5)}]
    sqlalchemy_upsert(theirs, Visit, later, ["code"], ["at"])
    turboalchemy.bulk_upsert(ours, Visit, later, conflict=["code"])
    assert stored(ours, Visit) == stored(theirs, Visit)


@pytest.mark.parametrize(
    "row, column",
    [({"email": "nul@shop.test", "name": "a\x00b"}, "name"), ({"email": "x\x00@shop.test", "name": "n"}, "email")],
    ids=["NUL in name", "NUL in email"],
)
def test_a_value_the_driver_cannot_send_is_named_with_its_column(postgres_url, row, column):
    """PostgreSQL text cannot hold NUL: the ORM's write fails too; ours names the row and the column."""
    engine = create_engine(postgres_url)
    Shop.metadata.drop_all(engine)
    Shop.metadata.create_all(engine)
    try:
        with pytest.raises(turboalchemy.BulkWriteError) as caught:
            turboalchemy.bulk_insert(engine, Customer, [{"email": "ok@shop.test", "name": "ok"}, row])
        assert (caught.value.row, caught.value.column) == (1, column)
        assert stored(engine, Customer) == []
    finally:
        Shop.metadata.drop_all(engine)
        engine.dispose()


def test_a_float_into_an_integer_column_on_postgresql_is_stored_as_the_orm_stores_it(postgres_url):
    """The ORM's bound float8 is rounded by the server (1.5 stored as 2), where COPY's text '1.5' would be refused
    for an integer column: such a chunk goes as the statement itself, and stores what the ORM stores."""
    engine = create_engine(postgres_url)
    Shop.metadata.drop_all(engine)
    Shop.metadata.create_all(engine)
    rows = [{"code": "a", "grp": 1, "label": "x"}, {"code": "b", "grp": 1.5, "label": "y"}]
    try:
        turboalchemy.bulk_insert(engine, Tag, rows)
        ours = [row[1:] for row in stored(engine, Tag)]  # (the ids are the sequence's, drawn anew below)
        with engine.begin() as conn:
            conn.execute(Tag.__table__.delete())
        with Session(engine) as session:
            session.add_all([Tag(**row) for row in rows])
            session.commit()
        assert ours == [row[1:] for row in stored(engine, Tag)] == [("a", 1, "x"), ("b", 2, "y")]
    finally:
        Shop.metadata.drop_all(engine)
        engine.dispose()


class _Rounded(sqlalchemy.types.TypeDecorator):
    """A type whose statement binds a value of its own: round(%s, 2)."""

    impl = sqlalchemy.Numeric
    cache_ok = True

    def bind_expression(self, bindvalue):
        return sqlalchemy.func.round(bindvalue, 2)


@pytest.mark.parametrize("twins", ["sqlite", "postgresql"], indirect=True)
def test_a_type_whose_statement_binds_values_of_its_own_is_refused_before_anything_is_written(twins):
    ours, _ = twins
    table = sqlalchemy.Table(
        "rounded",
        sqlalchemy.MetaData(),
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("v", _Rounded),
    )
    table.metadata.create_all(ours)
    with pytest.raises(turboalchemy.SchemaMismatchError, match="round_1"):
        turboalchemy.bulk_insert(ours, table, [{"id": 1, "v": 1.234}])
    with ours.connect() as conn:
        assert conn.execute(select(table)).all() == []


# -- many rows per statement ----------------------------------------------------------------------
# SQLite writes a chunk as multi-row statements of up to ROWS_PER_WRITE rows; `per` lowers it so that a few rows
# cross statement boundaries (None keeps the library's own size, which the longer inputs cross).


@pytest.fixture(params=[None, 3], ids=["rows-per-write", "3-per-statement"])
def per(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr("turboalchemy._write.sqlite.ROWS_PER_WRITE", request.param)
    return request.param


def _repeating(n: int, keys: int) -> list[dict]:
    """n rows over `keys` emails, each key coming back within and across statements."""
    return [{"email": f"c{i % keys}@shop.test", "name": f"n{i}", "balance": Decimal(i) / 8} for i in range(n)]


@pytest.mark.parametrize("update", [["name", "balance"], []], ids=["updating", "ignoring"])
def test_an_upsert_whose_keys_repeat_across_statements_stores_what_sqlalchemy_stores(twins, per, update):
    ours, theirs = twins
    if per and ours.dialect.name != "sqlite":
        pytest.skip("statements of rows are SQLite's")
    rows = _repeating(20, 7) if per else _repeating(700, 300)
    sqlalchemy_upsert(theirs, Customer, rows, ["email"], update)
    turboalchemy.bulk_upsert(ours, Customer, rows, conflict=["email"], update=update, chunk_size=len(rows))
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_an_insert_of_several_statements_stores_what_sqlalchemy_stores(twins, per):
    ours, theirs = twins
    if per and ours.dialect.name != "sqlite":
        pytest.skip("statements of rows are SQLite's")
    rows = [{"email": f"c{i}@shop.test", "name": None if i % 5 else f"n{i}"} for i in range(10 if per else 600)]
    with Session(theirs) as session:
        session.execute(sqlalchemy.insert(Customer), rows)
        session.commit()
    turboalchemy.bulk_insert(ours, Customer, rows, chunk_size=len(rows))
    assert stored(ours, Customer) == stored(theirs, Customer)


def _stamped(onupdate: object) -> tuple[sqlalchemy.MetaData, sqlalchemy.Table]:
    meta = sqlalchemy.MetaData()
    table = sqlalchemy.Table(
        "stamped",
        meta,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("code", sqlalchemy.String(10), unique=True),
        sqlalchemy.Column("v", sqlalchemy.Integer),
        sqlalchemy.Column("touched", sqlalchemy.String(20), default="new", onupdate=onupdate),
    )
    return meta, table


CALLS = iter(range(10**9))


@pytest.mark.parametrize(
    "onupdate",
    [pytest.param("edited", id="scalar onupdate"), pytest.param(lambda: f"call {next(CALLS)}", id="onupdate called")],
)
def test_an_upsert_applying_an_onupdate_across_statements_stores_what_sqlalchemy_stores(tmp_path, per, onupdate):
    """A scalar onupdate is bound once per statement; one the ORM calls per row keeps rows a statement each."""
    meta, table = _stamped(onupdate)
    ours, theirs = (create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs"))
    rows = [{"code": f"k{i % 4}", "v": i} for i in range(11)]
    for engine in (ours, theirs):
        meta.create_all(engine)
    stmt = sqlalchemy.dialects.sqlite.insert(table)
    with theirs.begin() as conn:
        for row in rows:  # SQLAlchemy's upsert with the onupdate spelled out, one statement per row in order
            value = onupdate if isinstance(onupdate, str) else onupdate()
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["code"], set_={"v": stmt.excluded.v, "touched": value}), row
            )
    turboalchemy.bulk_upsert(ours, table, rows, conflict=["code"])
    mine, sqlalchemys = (stored(e, table) for e in (ours, theirs))
    if isinstance(onupdate, str):
        assert mine == sqlalchemys
    else:  # each row's call is its own: the same rows, each touched by a call of its own
        assert [r[:3] for r in mine] == [r[:3] for r in sqlalchemys]
        assert len({r[3] for r in mine}) == 4 and all(r[3].startswith("call ") for r in mine)
    for engine in (ours, theirs):
        engine.dispose()


TRIGGERS = [
    "CREATE TABLE seen (event TEXT, code TEXT, v INTEGER, rows_then INTEGER)",
    "CREATE TRIGGER on_insert AFTER INSERT ON stamped BEGIN "
    "INSERT INTO seen VALUES ('insert', new.code, new.v, (SELECT count(*) FROM stamped)); END",
    "CREATE TRIGGER on_update AFTER UPDATE ON stamped BEGIN "
    "INSERT INTO seen VALUES ('update', new.code, new.v, (SELECT sum(v) FROM stamped)); END",
]


def test_row_triggers_see_each_row_after_the_rows_before_it_as_with_sqlalchemy(tmp_path, per):
    """Each row's triggers run before the next row, as with SQLAlchemy's statement per row."""
    meta, table = _stamped("edited")
    engines = [create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs")]
    for engine in engines:
        meta.create_all(engine)
        with engine.begin() as conn:
            for ddl in TRIGGERS:
                conn.exec_driver_sql(ddl)
    ours, theirs = engines
    rows = [{"code": f"k{i % 5}", "v": i} for i in range(13)]
    stmt = sqlalchemy.dialects.sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["code"], set_={"v": stmt.excluded.v, "touched": "edited"})
    with theirs.begin() as conn:
        for row in rows:
            conn.execute(stmt, row)
    turboalchemy.bulk_upsert(ours, table, rows, conflict=["code"])
    for query in ("SELECT * FROM seen ORDER BY rowid", "SELECT * FROM stamped ORDER BY id"):
        mine, sqlalchemys = (e.connect().exec_driver_sql(query).fetchall() for e in engines)
        assert mine == sqlalchemys
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize(
    "clause",
    [
        pytest.param({"sqlite_on_conflict_unique": "REPLACE"}, id="unique on conflict replace"),
        pytest.param({"sqlite_on_conflict_not_null": "IGNORE"}, id="not null on conflict ignore"),
    ],
)
@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_a_table_with_a_conflict_clause_of_its_own_stores_what_sqlalchemy_stores(tmp_path, per, clause, returning):
    """The table's own conflict clause decides, as for SQLAlchemy's insert (a statement's OR clause would override
    it, so these rows go without one)."""
    meta = sqlalchemy.MetaData()
    unique = clause.get("sqlite_on_conflict_unique")
    table = sqlalchemy.Table(
        "clauses",
        meta,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("code", sqlalchemy.String(10), unique=True, **({} if unique is None else clause)),
        sqlalchemy.Column("v", sqlalchemy.Integer, nullable=False, **({} if unique else clause)),
    )
    engines = [create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs")]
    for engine in engines:
        meta.create_all(engine)
    ours, theirs = engines
    rows = [
        {"code": f"k{i % 3}" if unique else f"k{i}", "v": None if i % 4 == 1 and not unique else i} for i in range(9)
    ]
    with theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(table), rows)
    if returning and not unique:  # an ignored row returns nothing: refused, nothing kept
        with pytest.raises(turboalchemy.BulkWriteError, match="came back with nothing"):
            turboalchemy.bulk_insert(ours, table, rows, returning=table.c.v)
        assert stored(ours, table) == []
        return
    turboalchemy.bulk_insert(ours, table, rows, returning=table.c.v if returning else None)
    assert stored(ours, table) == stored(theirs, table)
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_a_conflict_clause_in_a_triggers_body_holds_as_with_sqlalchemy(tmp_path, per, returning):
    """A statement's OR clause would override the one in a trigger's body (OR IGNORE here), so rows into a table
    with triggers go without one."""
    meta, table = _stamped("edited")
    engines = [create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs")]
    for engine in engines:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE firsts (parity INTEGER PRIMARY KEY, code TEXT)")
            conn.exec_driver_sql(
                "CREATE TRIGGER first_of_parity AFTER INSERT ON stamped BEGIN "
                "INSERT OR IGNORE INTO firsts VALUES (new.v % 2, new.code); END"
            )
    ours, theirs = engines
    rows = [{"code": f"k{i}", "v": i} for i in range(7)]
    with theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(table), rows)
    turboalchemy.bulk_insert(ours, table, rows, returning=table.c.id if returning else None)
    for query in ("SELECT * FROM firsts ORDER BY parity", "SELECT * FROM stamped ORDER BY id"):
        mine, sqlalchemys = (e.connect().exec_driver_sql(query).fetchall() for e in engines)
        assert mine == sqlalchemys
    for engine in engines:
        engine.dispose()


def _twin_files(tmp_path, *ddl: str, foreign_keys: bool = False) -> list:
    """Two SQLite files made by the same DDL (and PRAGMA foreign_keys on every connection, if asked)."""
    engines = [create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs")]
    for engine in engines:
        if foreign_keys:
            sqlalchemy.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys = ON"))
        with engine.begin() as conn:
            for statement in ddl:
                conn.exec_driver_sql(statement)
    return engines


def _stored_rows(engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_a_child_row_before_its_parent_is_refused_as_sqlalchemy_refuses_it(tmp_path, per, returning):
    """With foreign keys enforced SQLite checks a statement's references when it ends, so rows a statement each."""
    engines = _twin_files(
        tmp_path,
        "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node (id), label TEXT DEFAULT 'x')",
        foreign_keys=True,
    )
    node = sqlalchemy.Table("node", sqlalchemy.MetaData(), autoload_with=engines[0])
    rows = [{"id": 1, "parent": 2}, {"id": 2, "parent": None}, {"id": 3, "parent": 1}]
    ours, theirs = engines
    with pytest.raises(sqlalchemy.exc.IntegrityError), theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(node), rows)
    with pytest.raises(turboalchemy.BulkWriteError) as failure:
        turboalchemy.bulk_insert(ours, node, rows, returning=node.c.label if returning else None)  # (not echoed)
    assert failure.value.row == 0
    assert _stored_rows(ours, "node") == _stored_rows(theirs, "node") == []
    turboalchemy.bulk_insert(ours, node, [rows[1], rows[0], rows[2]])  # parents first: stored
    assert len(_stored_rows(ours, "node")) == 3


@pytest.mark.parametrize(
    "default",
    [
        pytest.param("sqlalchemy", id="SQL default reading the table"),
        pytest.param("(total_changes())", id="server default"),
        pytest.param("CURRENT_TIMESTAMP", id="server default reading the clock"),
    ],
)
@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_a_default_sqlite_evaluates_per_row_is_evaluated_per_row(tmp_path, per, default, returning):
    """A SQL default in the values, or a table's own non-literal default for a column the rows leave out, is
    evaluated row by row, as for a statement per row."""
    server = "" if default == "sqlalchemy" else f" DEFAULT {default}"
    engines = _twin_files(tmp_path, f"CREATE TABLE counted (id INTEGER PRIMARY KEY, name TEXT, pos{server})")
    table = sqlalchemy.Table("counted", sqlalchemy.MetaData(), autoload_with=engines[0])
    if default == "sqlalchemy":
        count = sqlalchemy.select(sqlalchemy.func.count()).select_from(table).scalar_subquery()
        table.c.pos.default = sqlalchemy.ColumnDefault(count)
    rows = [{"name": f"n{i}"} for i in range(5)]
    ours, theirs = engines
    trace: list[str] = []
    sqlalchemy.event.listen(ours, "connect", lambda dbapi, _: dbapi.set_trace_callback(trace.append))
    ours.dispose()
    with theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(table), rows)
    ids = turboalchemy.bulk_insert(ours, table, rows, returning=table.c.id if returning else None)
    if default != "CURRENT_TIMESTAMP":  # the clock's reading differs between any two writes
        assert _stored_rows(ours, "counted") == _stored_rows(theirs, "counted")
    assert ids == ([1, 2, 3, 4, 5] if returning else 5)
    assert not [s for s in trace if s.startswith("INSERT") and "), (" in s]  # a statement per row


@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_a_conflict_clause_behind_a_comment_still_keeps_rows_a_statement_each(tmp_path, per, returning):
    engines = _twin_files(
        tmp_path,
        "CREATE TABLE clauses (id INTEGER PRIMARY KEY, code TEXT UNIQUE on/* why */conflict replace, v INTEGER)",
    )
    table = sqlalchemy.Table("clauses", sqlalchemy.MetaData(), autoload_with=engines[0])
    rows = [{"code": f"k{i % 2}", "v": i} for i in range(5)]
    ours, theirs = engines
    with theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(table), rows)
    turboalchemy.bulk_insert(ours, table, rows, returning=table.c.id if returning else None)
    assert _stored_rows(ours, "clauses") == _stored_rows(theirs, "clauses")


@pytest.mark.parametrize("returning", [False, True], ids=["plain", "returning"])
def test_rows_of_a_plain_table_go_several_to_a_statement(tmp_path, returning):
    """The route the statement-per-row tests above are measured against: a table with nothing SQLite would treat
    differently (an autoincrement key, a literal default) goes as multi-row INSERT OR FAIL, with returning= too."""
    engines = _twin_files(tmp_path, "CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT, tier TEXT DEFAULT 'basic')")
    ours = engines[0]
    table = sqlalchemy.Table("plain", sqlalchemy.MetaData(), autoload_with=ours)
    trace: list[str] = []
    sqlalchemy.event.listen(ours, "connect", lambda dbapi, _: dbapi.set_trace_callback(trace.append))
    ours.dispose()
    ids = turboalchemy.bulk_insert(
        ours, table, [{"name": f"n{i}"} for i in range(600)], returning=table.c.id if returning else None
    )
    assert ids == (list(range(1, 601)) if returning else 600)
    statements = [s for s in trace if s.startswith("INSERT")]
    assert statements and all(s.startswith("INSERT OR FAIL INTO") and "), (" in s for s in statements)


def _readings_table() -> tuple[sqlalchemy.MetaData, sqlalchemy.Table]:
    """Values SQLite takes as they are (text, integers, floats) and DateTime: converted with no code of the caller's."""
    meta = sqlalchemy.MetaData()
    table = sqlalchemy.Table(
        "readings",
        meta,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("sensor", sqlalchemy.String(20), unique=True, nullable=False),
        sqlalchemy.Column("x", sqlalchemy.Float),  # nullable: a NaN would be stored as NULL unless refused
        sqlalchemy.Column("at", sqlalchemy.DateTime),
    )
    return meta, table


def _readings(n: int, keys: int, shift: int = 0) -> list[dict]:
    from datetime import datetime, timedelta

    start = datetime(2026, 1, 1)
    return [
        {"sensor": f"s{i % keys}", "x": i / 7 + shift, "at": None if i % 5 == 0 else start + timedelta(seconds=i)}
        for i in range(n)
    ]


@pytest.fixture
def ahead(monkeypatch):
    """3 rows a statement, and the number of chunks whose rows were converted ahead on the helper thread."""
    from turboalchemy._write import sqlite as writer

    monkeypatch.setattr(writer, "ROWS_PER_WRITE", 3)
    monkeypatch.setattr(writer, "_CORES", 2)  # as on any machine with a second core
    used = []
    real = writer._ahead

    def counted(make, starts):
        used.append(len(starts))
        return real(make, starts)

    monkeypatch.setattr(writer, "_ahead", counted)
    return used


def test_rows_converted_ahead_on_a_helper_thread_store_what_sqlalchemy_stores(tmp_path, ahead):
    """Each statement's rows converted on a helper thread while SQLite writes the statement before: the insert
    and the upsert (keys repeating within and across statements) store what SQLAlchemy's statements store."""
    meta, table = _readings_table()
    ours, theirs = (create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs"))
    for engine in (ours, theirs):
        meta.create_all(engine)
    first, again = _readings(40, 40), _readings(50, 17, shift=1)
    stmt = sqlalchemy.dialects.sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["sensor"], set_={"x": stmt.excluded.x, "at": stmt.excluded.at})
    with theirs.begin() as conn:
        conn.execute(sqlalchemy.insert(table), first)
        for row in again:
            conn.execute(stmt, row)
    assert turboalchemy.bulk_insert(ours, table, first) == 40
    assert turboalchemy.bulk_upsert(ours, table, again, conflict=["sensor"]) == 50
    assert ahead == [14, 17]  # both chunks went ahead, 3 rows a statement
    assert stored(ours, table) == stored(theirs, table)
    for engine in (ours, theirs):
        engine.dispose()


@pytest.mark.parametrize("target_kind", ["engine", "session"])
@pytest.mark.parametrize(
    "bad, column",
    [({"x": math.nan}, "x"), ({"at": "2026-01-01"}, "at"), ({"sensor": None}, "sensor")],
    ids=["NaN", "text", "NULL"],
)
def test_a_bad_row_found_ahead_is_named_and_nothing_of_its_chunk_is_kept(tmp_path, ahead, target_kind, bad, column):
    """Row 40 of a 50-row chunk: a NaN or a value DateTime refuses is found by the helper while statements before
    it are written, a NULL into NOT NULL by SQLite; either way the chunk is undone, the row and column named, and
    the helper thread is gone."""
    import threading

    meta, table = _readings_table()
    engine = create_engine(f"sqlite:///{tmp_path / 'bad'}.db")
    meta.create_all(engine)
    rows = _readings(50, 50)
    rows[40] = rows[40] | bad
    if target_kind == "engine":
        with pytest.raises(turboalchemy.BulkWriteError) as failure:
            turboalchemy.bulk_insert(engine, table, rows)
    else:
        with Session(engine) as session:
            turboalchemy.bulk_insert(session, table, [{"sensor": "kept", "x": 1.0}])
            with pytest.raises(turboalchemy.BulkWriteError) as failure:
                turboalchemy.bulk_insert(session, table, rows)
            session.commit()
    assert (failure.value.row, failure.value.column) == (40, column)
    assert ahead  # the chunk went ahead before it was refused
    assert [r[1] for r in stored(engine, table)] == ([] if target_kind == "engine" else ["kept"])
    assert not [t for t in threading.enumerate() if t.name == "turboalchemy-convert"]
    engine.dispose()


class _Tenant(sqlalchemy.types.TypeDecorator):
    """A type of the caller's own that reads state of the caller's thread as it binds a value."""

    impl = sqlalchemy.String
    cache_ok = True
    local = __import__("threading").local()

    def process_bind_param(self, value, dialect):
        return None if value is None else f"{getattr(self.local, 'tenant', 'NONE')}:{value}"


def _tenant_table(variant: bool) -> tuple[sqlalchemy.MetaData, sqlalchemy.Table]:
    meta = sqlalchemy.MetaData()
    kind = sqlalchemy.String(30).with_variant(_Tenant(30), "sqlite") if variant else _Tenant(30)
    table = sqlalchemy.Table(
        "tenanted",
        meta,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("label", kind),
        sqlalchemy.Column("x", sqlalchemy.Float),
    )
    return meta, table


def test_a_type_of_the_callers_own_binds_in_the_callers_thread_even_as_a_variant(tmp_path, ahead):
    """String().with_variant(a TypeDecorator, "sqlite") binds through the TypeDecorator: its rows are converted in
    the caller's thread, as SQLAlchemy converts them, not ahead on the helper."""
    meta, table = _tenant_table(variant=True)
    ours, theirs = (create_engine(f"sqlite:///{tmp_path / name}.db") for name in ("ours", "theirs"))
    for engine in (ours, theirs):
        meta.create_all(engine)
    rows = [{"label": f"r{i}", "x": i / 3} for i in range(30)]
    _Tenant.local.tenant = "acme"
    try:
        with theirs.begin() as conn:
            conn.execute(sqlalchemy.insert(table), rows)
        turboalchemy.bulk_insert(ours, table, rows)
    finally:
        del _Tenant.local.tenant
    assert stored(ours, table) == stored(theirs, table)
    assert stored(ours, table)[0][1] == "acme:r0"
    assert ahead == []


def test_the_nan_check_of_rows_converted_ahead_runs_in_the_callers_thread(tmp_path, ahead):
    """The check calls the values' own methods (an int subclass's __bool__ here): not on the helper thread."""
    import threading

    seen = set()

    class Counted(int):
        def __bool__(self):
            seen.add(threading.current_thread().name)
            return int(self) != 0

    meta, table = _readings_table()
    engine = create_engine(f"sqlite:///{tmp_path / 'nan'}.db")
    meta.create_all(engine)
    extra = sqlalchemy.Table("counted", meta, sqlalchemy.Column("n", sqlalchemy.Integer))
    extra.create(engine)
    assert turboalchemy.bulk_insert(engine, extra, [{"n": Counted(i + 1)} for i in range(30)]) == 30
    assert ahead == [10]
    assert seen == {threading.current_thread().name}
    engine.dispose()


def test_without_a_thread_to_be_had_rows_are_converted_in_the_callers_thread(tmp_path, ahead, monkeypatch):
    import threading

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    meta, table = _readings_table()
    engine = create_engine(f"sqlite:///{tmp_path / 'nothread'}.db")
    meta.create_all(engine)
    rows = _readings(40, 40)
    assert turboalchemy.bulk_insert(engine, table, rows) == 40
    assert ahead == [14]
    assert [r[1] for r in stored(engine, table)] == [r["sensor"] for r in rows]
    engine.dispose()


def test_on_aiosqlite_rows_a_statement_each_bind_in_the_callers_thread(tmp_path):
    """A table with a trigger goes by executemany; on aiosqlite, whose own thread runs it, the rows are converted
    before they are handed over, so a type of the caller's own binds as SQLAlchemy binds it."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    meta, table = _tenant_table(variant=False)
    theirs = create_engine(f"sqlite:///{tmp_path / 'theirs'}.db")
    for url in (f"sqlite:///{tmp_path / 'ours'}.db", str(theirs.url)):
        made = create_engine(url)
        meta.create_all(made)
        with made.begin() as conn:
            conn.exec_driver_sql("CREATE TRIGGER noted AFTER INSERT ON tenanted BEGIN SELECT 1; END")
        made.dispose()
    rows = [{"label": f"r{i}", "x": i / 3} for i in range(30)]

    async def write() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ours'}.db")
        try:
            await turboalchemy.abulk_insert(engine, table, rows)
        finally:
            await engine.dispose()

    _Tenant.local.tenant = "acme"
    try:
        with theirs.begin() as conn:
            conn.execute(sqlalchemy.insert(table), rows)
        asyncio.run(write())
    finally:
        del _Tenant.local.tenant
    ours = create_engine(f"sqlite:///{tmp_path / 'ours'}.db")
    assert stored(ours, table) == stored(theirs, table)
    assert stored(ours, table)[0][1] == "acme:r0"
    for engine in (ours, theirs):
        engine.dispose()
