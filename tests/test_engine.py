"""turboalchemy.create_engine and the profiles it applies: what every connection is, and what it refuses."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

import turboalchemy
from turboalchemy import PROFILES, Profile
from turboalchemy._profiles import resolve
from turboalchemy.errors import DatabaseLockedError, ProfileError, ReadOnlyDatabaseError, translate

from .dbapi import SQLITE


def pragmas(engine, *names):
    with engine.connect() as conn:
        return {n: conn.exec_driver_sql(f"PRAGMA {n}").scalar() for n in names}


def test_production_profile_is_the_consensus_list(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    assert pragmas(
        engine,
        "journal_mode",
        "synchronous",
        "busy_timeout",
        "cache_size",
        "mmap_size",
        "temp_store",
        "foreign_keys",
        "wal_autocheckpoint",
        "auto_vacuum",
    ) == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "cache_size": -64_000,
        "mmap_size": 268_435_456,
        "temp_store": 2,
        "foreign_keys": 1,
        "wal_autocheckpoint": 1000,
        "auto_vacuum": 2,
    }


def test_durable_is_production_with_synchronous_full(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}", profile="durable")
    assert pragmas(engine, "synchronous", "journal_mode") == {"synchronous": 2, "journal_mode": "wal"}
    assert {k: v for k, v in PROFILES["durable"].pragmas.items() if k != "synchronous"} == {
        k: v for k, v in PROFILES["production"].pragmas.items() if k != "synchronous"
    }


def test_new_database_only_settings_leave_an_existing_database_alone(tmp_path):
    path = tmp_path / "old.db"
    old = SQLITE.connect(path)
    old.execute("CREATE TABLE t (x)")  # auto_vacuum can no longer change once a table exists
    old.commit()
    old.close()
    engine = turboalchemy.create_engine(f"sqlite:///{path}")  # verification does not hold auto_vacuum against it
    assert pragmas(engine, "auto_vacuum", "journal_mode") == {"auto_vacuum": 0, "journal_mode": "wal"}


def test_the_library_ships_only_its_own_profiles():
    """The study's configurations (one of them synchronous=OFF) are the benchmark's, not the library's."""
    assert sorted(PROFILES) == ["durable", "production"]
    with pytest.raises(ProfileError, match="no profile named 'study:baseline'"):
        turboalchemy.create_engine("sqlite://", profile="study:baseline")


def test_profiles_compose_left_to_right():
    composed = resolve(["production", {"cache_size": -200_000}])
    assert composed.pragmas["cache_size"] == -200_000 and composed.pragmas["journal_mode"] == "WAL"
    assert resolve(PROFILES["durable"]) is PROFILES["durable"]
    with pytest.raises(ProfileError, match="no profile named 'fast'"):
        resolve("fast")
    with pytest.raises(ProfileError, match="synchronous"):
        Profile("bad", {"synchronous": "SOMETIMES"})


def test_write_transactions_begin_immediate(tmp_path):
    """A deferred transaction that reads then writes would fail at once with SQLITE_BUSY_SNAPSHOT."""
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    other = SQLITE.connect(tmp_path / "app.db", isolation_level=None)
    other.execute("PRAGMA busy_timeout = 0")
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()  # the transaction has begun: it holds the lock
        with pytest.raises(SQLITE.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        conn.rollback()
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")


def test_readers_are_a_separate_read_only_pool(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}", readers=2)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    reader = turboalchemy.reader(engine)
    assert reader is not engine and reader is turboalchemy.reader(engine)
    with engine.connect() as writing:  # WAL: a reader runs while the writer holds its transaction
        writing.exec_driver_sql("INSERT INTO t VALUES (2)")
        with reader.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
        writing.commit()
    with reader.connect() as conn:
        with pytest.raises(ReadOnlyDatabaseError, match="readonly"):
            conn.exec_driver_sql("INSERT INTO t VALUES (3)")


def test_an_in_memory_database_reads_through_its_one_connection():
    engine = turboalchemy.create_engine("sqlite://")
    assert turboalchemy.reader(engine) is engine
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0


def test_a_held_write_lock_raises_database_locked_with_the_driver_error_as_cause(tmp_path):
    engine = turboalchemy.create_engine(
        f"sqlite:///{tmp_path / 'app.db'}", profile=["production", {"busy_timeout": 50}]
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    other = SQLITE.connect(tmp_path / "app.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseLockedError, match="WriteQueue") as caught:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert isinstance(caught.value.__cause__, SQLITE.OperationalError)
    assert isinstance(caught.value, turboalchemy.TurboAlchemyError)
    other.execute("ROLLBACK")


def test_the_one_writer_connection_is_shared_in_turn(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")

    def write(n):
        for i in range(50):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": n * 100 + i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(DISTINCT x) FROM t").scalar() == 400
    assert engine.pool.size() == 1


@pytest.mark.parametrize("driver", ["stdlib", "pysqlite3"])
def test_a_sqlite_module_is_refused_for_a_postgresql_url(driver):
    with pytest.raises(ValueError, match="chooses the SQLite module; a PostgreSQL URL always goes through psycopg"):
        turboalchemy.create_engine("postgresql+psycopg://user@127.0.0.1/db", driver=driver)
    turboalchemy.create_engine("postgresql+psycopg://user@127.0.0.1/db").dispose()  # auto, the default: no error


def test_other_databases_are_refused_with_what_to_use():
    with pytest.raises(turboalchemy.UnsupportedTargetError, match="sqlalchemy.create_engine"):
        turboalchemy.create_engine("mysql://localhost/x")
    with pytest.raises(turboalchemy.UnsupportedTargetError, match="psycopg 3"):
        turboalchemy.create_engine("postgresql+psycopg2://localhost/x")


def test_postgresql_urls_get_psycopg_and_a_pinging_pool(postgres_url):
    engine = turboalchemy.create_engine(postgres_url.replace("+psycopg", ""))
    assert engine.dialect.driver == "psycopg" and engine.pool._pre_ping and engine.pool.size() == 10
    assert turboalchemy.reader(engine) is engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


@pytest.mark.parametrize(
    "code, cls",
    [
        (5, DatabaseLockedError),
        (13, turboalchemy.DiskFullError),
        (8, ReadOnlyDatabaseError),
        (26, turboalchemy.CorruptDatabaseError),
    ],
)
def test_driver_errors_map_to_typed_errors(code, cls):
    driver = SQLITE.OperationalError("boom")
    driver.sqlite_errorcode = code
    error = translate(driver)
    assert isinstance(error, cls) and error.__cause__ is driver and "boom" in str(error)
    assert translate(SQLITE.IntegrityError("UNIQUE constraint failed")) is None


def test_disposing_the_engine_closes_its_reader_pool(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with turboalchemy.reader(engine).connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert turboalchemy.reader(engine).pool.checkedin() == 1
    engine.dispose()
    assert turboalchemy.reader(engine).pool.checkedin() == 0


def test_a_second_writer_in_the_same_thread_fails_at_once_naming_the_remedy(tmp_path):
    """A second Session opened while the first holds the one write connection would wait for itself."""
    import time

    import sqlalchemy
    from sqlalchemy.orm import Session

    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    with Session(engine) as first, Session(engine) as second:
        first.execute(text("INSERT INTO t VALUES (1)"))
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.TimeoutError) as caught:  # what a generic handler already catches
            second.execute(text("INSERT INTO t VALUES (2)"))
        assert time.monotonic() - started < 1.0  # not the 30 s writer_timeout
    assert isinstance(caught.value, turboalchemy.WriterBusyError)
    assert "turboalchemy.reader(engine)" in str(caught.value) and "WriteQueue" in str(caught.value)
    engine.dispose()


def test_another_threads_long_write_is_waited_for_up_to_writer_timeout(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'w.db'}", writer_timeout=0.2)
    held, release = threading.Event(), threading.Event()

    def hold():
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(turboalchemy.WriterBusyError, match=r"another thread held .* for more than 0.2 s"):
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        release.set()
        holder.join()
    with engine.begin() as conn:  # once it is free, the next writer gets it
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()


def test_a_session_whose_transaction_sqlite_rolled_back_stays_failed(tmp_path):
    """A trigger's RAISE(ROLLBACK) ends SQLite's transaction; the Session's next flush used to run in driver
    autocommit, so a write made after the error was committed although the application then rolled back."""
    import sqlalchemy
    from sqlalchemy.orm import Session

    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql(
            "CREATE TRIGGER no_zero BEFORE INSERT ON t WHEN NEW.x = 0 BEGIN SELECT RAISE(ROLLBACK, 'no zero'); END"
        )
    with Session(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="no zero"):
            session.execute(text("INSERT INTO t VALUES (0)"))
        with pytest.raises(sqlalchemy.exc.SQLAlchemyError):  # failed until rolled back: nothing runs meanwhile
            session.execute(text("INSERT INTO t VALUES (2)"))
        session.rollback()
        session.execute(text("INSERT INTO t VALUES (3)"))  # after the rollback, a fresh transaction works
        session.commit()
    with engine.connect() as conn:
        assert [r[0] for r in conn.exec_driver_sql("SELECT x FROM t ORDER BY x")] == [3]
    engine.dispose()


def test_a_wal_profile_on_an_sqlite_with_the_wal_reset_bug_warns_once(tmp_path, monkeypatch):
    import warnings

    from turboalchemy import _engine
    from turboalchemy._tools.health import wal_reset_affected

    monkeypatch.setattr(_engine, "_WARNED", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a", "b"):
            turboalchemy.create_engine(f"sqlite:///{tmp_path / name}.db").dispose()
        turboalchemy.create_engine(f"sqlite:///{tmp_path / 'c.db'}", profile={"journal_mode": "DELETE"}).dispose()
    reset = [w for w in caught if "WAL-reset bug" in str(w.message)]
    assert len(reset) == (1 if wal_reset_affected(SQLITE.sqlite_version_info) else 0)
