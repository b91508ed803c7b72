"""Typed errors keep existing handlers working: a full disk or a held lock is our error *and* SQLAlchemy's."""

from __future__ import annotations

import pickle

import pytest
import sqlalchemy
from sqlalchemy import Integer, String, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import turboalchemy

from .dbapi import SQLITE


class Base(DeclarativeBase):
    pass


class Blob(Base):
    __tablename__ = "blobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String)


ROWS = [{"id": i, "body": "x" * 4000} for i in range(200)]  # ~200 pages: more than the cap below allows


@pytest.fixture
def full_engine(tmp_path):
    """A turboalchemy engine whose one write connection may not grow the file past 40 pages: SQLITE_FULL."""
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA max_page_count = 40")
    yield engine
    engine.dispose()


def stored(engine) -> int:
    with turboalchemy.reader(engine).connect() as conn:
        return conn.execute(select(sqlalchemy.func.count()).select_from(Blob)).scalar_one()


def core(engine):
    with engine.begin() as conn:
        conn.execute(insert(Blob), ROWS)


def orm(engine):
    with Session(engine) as session:
        session.add_all(Blob(**row) for row in ROWS)
        session.commit()


def fast_path(engine):
    turboalchemy.bulk_insert(engine, Blob, ROWS, chunk_size=len(ROWS))


def queue(engine):
    writes = turboalchemy.WriteQueue(engine)  # on a write connection of its own: cap that one too
    try:
        writes.execute(lambda conn: conn.exec_driver_sql("PRAGMA max_page_count = 40"))
        writes.execute(insert(Blob), ROWS)
    finally:
        writes.close()


@pytest.mark.parametrize("write", [core, orm, fast_path, queue])
def test_an_operational_error_handler_catches_a_full_disk(full_engine, write):
    try:
        write(full_engine)
    except sqlalchemy.exc.OperationalError as caught:  # what an application's retry handler already says
        error = caught
    else:
        pytest.fail("the write should not fit")
    assert isinstance(error, turboalchemy.DiskFullError)
    assert isinstance(error.orig, SQLITE.OperationalError) and error.__cause__ is error.orig
    assert "free disk space" in str(error)
    assert stored(full_engine) == 0  # rolled back whole


def test_a_held_write_lock_is_an_operational_error_too(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'l.db'}", profile=["production", {"busy_timeout": 50}])
    Base.metadata.create_all(engine)
    holder = SQLITE.connect(tmp_path / "l.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as caught, engine.begin() as conn:
            conn.execute(insert(Blob), ROWS[:1])
        assert isinstance(caught.value, turboalchemy.DatabaseLockedError)
        assert "WriteQueue" in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_a_typed_error_names_the_statement_and_survives_pickling(full_engine):
    with pytest.raises(turboalchemy.DiskFullError) as caught:
        core(full_engine)
    assert caught.value.statement.startswith("INSERT INTO blobs")
    assert "[SQL: INSERT INTO blobs" in str(caught.value)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is turboalchemy.DiskFullError and str(copy.orig) == str(caught.value.orig)
    assert copy.statement == caught.value.statement


def test_an_engine_that_hides_parameters_hides_them_in_our_errors_too(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'h.db'}", hide_parameters=True)
    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA max_page_count = 40")
    with pytest.raises(turboalchemy.DiskFullError) as caught:
        with engine.begin() as conn:
            conn.execute(insert(Blob), [{"id": i, "body": "hunter2-" + "x" * 4000} for i in range(200)])
    assert "hunter2" not in str(caught.value) and "parameters hidden" in str(caught.value)
    assert caught.value.ismulti is True
    copy = pickle.loads(pickle.dumps(caught.value))
    assert "hunter2" not in str(copy) and copy.hide_parameters and copy.params == caught.value.params
    engine.dispose()
