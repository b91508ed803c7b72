"""create_engine(driver=...): the SQLite DB-API module behind the writer, the reader pool and the WriteQueue, and
everything that talks to the driver (typed errors, limits, backups, health) following the module in use."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import warnings

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

import turboalchemy
from turboalchemy import _driver, _engine
from turboalchemy._tools.health import wal_reset_affected
from turboalchemy.errors import DatabaseLockedError

pysqlite3 = pytest.importorskip("pysqlite3.dbapi2", reason="the driver tests need the [sqlite] extra")

MODULES = {"stdlib": sqlite3, "pysqlite3": pysqlite3}
metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String))


@pytest.fixture(params=sorted(MODULES))
def driver(request):
    return request.param


def module_of_engine(engine) -> object:
    with engine.connect() as conn:
        return type(conn.connection.dbapi_connection).__module__


def test_driver_chooses_the_module_of_the_writer_the_reader_pool_and_the_writequeue(tmp_path, driver):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver)
    metadata.create_all(engine)
    expected = MODULES[driver].__name__
    assert module_of_engine(engine) == expected
    assert module_of_engine(turboalchemy.reader(engine)) == expected
    queue = turboalchemy.WriteQueue(engine)
    try:
        assert queue.submit(lambda conn: type(conn.connection.dbapi_connection).__module__).result(10) == expected
    finally:
        queue.close()
    engine.dispose()


def test_auto_prefers_pysqlite3_unless_the_environment_says_stdlib(tmp_path, monkeypatch):
    monkeypatch.delenv(_driver.ENVIRONMENT, raising=False)
    assert _driver.module("auto") is pysqlite3
    monkeypatch.setenv(_driver.ENVIRONMENT, "stdlib")
    assert _driver.module("auto") is sqlite3
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert module_of_engine(engine) == "sqlite3"
    engine.dispose()
    assert _driver.module("pysqlite3") is pysqlite3  # an explicit choice is not overridden


def test_sqlalchemys_module_option_is_honoured(tmp_path):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", module=pysqlite3)
    assert module_of_engine(engine) == pysqlite3.__name__
    assert module_of_engine(turboalchemy.reader(engine)) == pysqlite3.__name__
    engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"driver": "apsw"}, "driver must be one of auto, stdlib, pysqlite3"),
        ({"driver": "stdlib", "module": sqlite3}, "not both"),
    ],
)
def test_a_bad_driver_choice_is_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", **kwargs)


@pytest.mark.parametrize(
    ("name", "uri", "file"),
    [
        ("/data/app.db", False, "/data/app.db"),
        ("file:app.db", False, "file:app.db"),  # without uri=true SQLite opens a file of that name
        ("file:/data/app.db?mode=ro&cache=shared", True, "/data/app.db"),
        ("file:///data/my%20app.db", True, "/data/my app.db"),
        ("file://localhost/data/app.db#frag", True, "/data/app.db"),
        ("file://elsewhere/data/app.db", True, None),  # an authority SQLite refuses
        ("file::memory:", True, None),
        ("file:shared?mode=memory&cache=shared", True, None),
    ],
)
def test_a_database_name_is_read_as_the_file_sqlite_opens(name, uri, file):
    assert _driver._file_of(name, uri=uri) == file


def test_a_bad_environment_value_is_refused(monkeypatch):
    monkeypatch.setenv(_driver.ENVIRONMENT, "sqlite4")
    with pytest.raises(ValueError, match="TURBOALCHEMY_SQLITE_DRIVER must be stdlib or pysqlite3"):
        _driver.module()


def test_a_write_lock_held_elsewhere_is_our_typed_error_whatever_the_module(tmp_path, driver):
    path = tmp_path / "db.sqlite"
    engine = turboalchemy.create_engine(f"sqlite:///{path}", driver=driver, profile={"busy_timeout": 50})
    metadata.create_all(engine)
    holder = MODULES[driver].connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseLockedError, match="busy_timeout") as caught:
            turboalchemy.bulk_insert(engine, items, [{"name": "a"}])
        assert isinstance(caught.value.__cause__, MODULES[driver].OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    engine.dispose()


def test_a_row_error_names_the_row_and_column_whatever_the_module(tmp_path, driver):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver)
    metadata.create_all(engine)
    rows = [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]
    with pytest.raises(turboalchemy.BulkWriteError, match="row 1") as caught:
        turboalchemy.bulk_insert(engine, items, rows)
    assert isinstance(caught.value.__cause__, MODULES[driver].IntegrityError)
    with turboalchemy.reader(engine).connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 0  # the chunk rolled back whole
    engine.dispose()


def test_returning_splits_statements_by_the_modules_own_limit(tmp_path, driver):
    """pysqlite3 has no getlimit: the limit comes from its own SQLite's version, not the standard library's."""
    from turboalchemy._write.returning import variable_limit

    conn = MODULES[driver].connect(":memory:")
    if hasattr(conn, "getlimit"):
        assert variable_limit(conn) == conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    else:
        assert variable_limit(conn) == (32766 if MODULES[driver].sqlite_version_info >= (3, 32, 0) else 999)
    limit = variable_limit(conn)
    n = min(limit, 40000)  # a statement with that many bound values runs
    assert conn.execute(f"SELECT 1 WHERE 0 NOT IN ({', '.join('?' * n)})", [1] * n).fetchone() == (1,)
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver)
    metadata.create_all(engine)
    ids = turboalchemy.bulk_insert(engine, items, [{"name": str(i)} for i in range(3000)], returning="id")
    assert ids == list(range(1, 3001))
    engine.dispose()


def test_an_online_backup_of_an_engine_works_on_either_module(tmp_path, driver):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver)
    metadata.create_all(engine)
    turboalchemy.bulk_insert(engine, items, [{"name": str(i)} for i in range(500)])
    report = turboalchemy.backup(engine, tmp_path / "copy.sqlite")
    assert report.integrity == "ok"
    check = sqlite3.connect(tmp_path / "copy.sqlite")
    assert check.execute("SELECT count(*) FROM items").fetchone()[0] == 500
    check.close()
    engine.dispose()


def test_health_reports_the_module_and_version_the_engine_uses(tmp_path, driver):
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver)
    metadata.create_all(engine)
    report = turboalchemy.health(engine)
    module = MODULES[driver]
    assert (report.sqlite_module, report.sqlite_version) == (_driver.name(module), module.sqlite_version)
    version = next(c for c in report.checklist if c.item == "SQLite version")
    assert version.verdict == ("red" if wal_reset_affected(module.sqlite_version_info) else "ok")
    engine.dispose()


@pytest.mark.parametrize("driver", ["stdlib", "pysqlite3"])
def test_doctor_flags_the_wal_reset_bug_only_on_an_affected_sqlite(tmp_path, driver):
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    env = {"PATH": "/usr/bin:/bin", _driver.ENVIRONMENT: driver}
    out = subprocess.run(
        [sys.executable, "-m", "turboalchemy", "doctor", str(path)], capture_output=True, text=True, env=env
    ).stdout
    module = MODULES[driver]
    assert f"SQLite {module.sqlite_version} (through {_driver.name(module)})" in out
    assert ("WAL-reset bug" in out) is wal_reset_affected(module.sqlite_version_info)


def test_the_wal_reset_warning_follows_the_module_in_use(tmp_path, monkeypatch, driver):
    monkeypatch.setattr(_engine, "_WARNED", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        turboalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", driver=driver).dispose()
    reset = [w for w in caught if "WAL-reset bug" in str(w.message)]
    assert len(reset) == (1 if wal_reset_affected(MODULES[driver].sqlite_version_info) else 0)


OTHER = {"stdlib": "pysqlite3", "pysqlite3": "stdlib"}


def test_a_file_open_through_one_sqlite_library_is_refused_to_the_other(tmp_path, driver):
    """Two copies of SQLite on one file in one process drop each other's locks (sqlite.org/howtocorrupt.html)."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    theirs = sqlalchemy.create_engine(url, module=MODULES[OTHER[driver]])  # the application's own engine
    metadata.create_all(theirs)
    held = theirs.connect()
    engine = turboalchemy.create_engine(url, driver=driver)
    with pytest.raises(turboalchemy.SQLiteLibraryConflictError, match="already open in this process through"):
        turboalchemy.bulk_insert(engine, items, [{"name": "a"}])
    assert held.exec_driver_sql("SELECT count(*) FROM items").scalar() == 0
    held.close()
    theirs.dispose()  # closed: the file is free for the other module
    assert turboalchemy.bulk_insert(engine, items, [{"name": "a"}]) == 1
    engine.dispose()


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_auto_and_the_file_tools_follow_the_module_a_file_is_open_through(tmp_path, driver, uri):
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    theirs = sqlalchemy.create_engine(url, module=MODULES[driver])
    metadata.create_all(theirs)
    with theirs.connect():
        engine = turboalchemy.create_engine(
            f"sqlite:///{(tmp_path / 'db.sqlite').as_uri()}?uri=true" if uri else url
        )  # auto
        assert module_of_engine(engine) == MODULES[driver].__name__
        assert turboalchemy.backup(engine, tmp_path / "from-engine.sqlite").integrity == "ok"  # the URI's file
        assert turboalchemy.health(tmp_path / "db.sqlite").sqlite_module == _driver.name(MODULES[driver])
        assert turboalchemy.backup(tmp_path / "db.sqlite", tmp_path / "copy.sqlite").integrity == "ok"
        engine.dispose()
    theirs.dispose()


def test_an_engine_dropped_without_dispose_does_not_hold_the_file(tmp_path, driver):
    import gc

    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    theirs = sqlalchemy.create_engine(url, module=MODULES[OTHER[driver]])
    metadata.create_all(theirs)
    del theirs
    gc.collect()
    engine = turboalchemy.create_engine(url, driver=driver)
    assert turboalchemy.bulk_insert(engine, items, [{"name": "a"}]) == 1
    engine.dispose()


LOCK_PROBE = """
import sqlite3, sys
try:
    sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE")
    print("free")
except sqlite3.OperationalError:
    print("locked")
"""


def test_a_refused_connection_never_opens_the_file_so_the_other_librarys_lock_holds(tmp_path, driver):
    """Refusing after the open would be too late: closing the refused connection drops the POSIX locks the
    other library holds on the file. Another process must still see the write lock afterwards."""
    import sqlalchemy

    path = tmp_path / "db.sqlite"
    theirs = sqlalchemy.create_engine(f"sqlite:///{path}", module=MODULES[OTHER[driver]])
    metadata.create_all(theirs)
    held = theirs.raw_connection()
    held.cursor().execute("BEGIN IMMEDIATE")  # the other library holds the write lock
    probe = [sys.executable, "-c", LOCK_PROBE, str(path)]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "locked"
    engine = turboalchemy.create_engine(f"sqlite:///{path}", driver=driver)
    with pytest.raises(turboalchemy.SQLiteLibraryConflictError):
        engine.connect()
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "locked"  # still held
    held.rollback()
    held.close()
    theirs.dispose()
    engine.dispose()


def test_a_connection_closed_by_the_garbage_collector_inside_the_registry_does_not_deadlock(tmp_path):
    """A pool's close event can run from a GC finalizer in the thread already holding the registry's lock."""
    import gc
    import threading

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", poolclass=NullPool)

    def leak() -> None:
        conn = engine.connect()
        conn.cycle = conn  # type: ignore[attr-defined]  # only the cycle collector frees it

    def run() -> None:
        leak()
        with _driver._LOCK:
            gc.collect()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the registry deadlocked"
    engine.dispose()
