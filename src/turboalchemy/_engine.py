"""create_engine: a SQLAlchemy Engine set up the way production SQLite deployments converge on.

One write connection (a pool of one, so writers queue in Python, in order, instead of spinning in
SQLite's busy handler), every write transaction begun IMMEDIATE (a deferred transaction that reads
then writes fails at once with SQLITE_BUSY_SNAPSHOT, whatever busy_timeout says), a PRAGMA profile
applied and verified on every connection, driver errors raised as turboalchemy's typed errors, and a
separate pool of read-only connections for reads (`reader(engine)`), which WAL lets run beside the writer.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

from turboalchemy import _driver
from turboalchemy._driver import Driver
from turboalchemy._profiles import Profile, ProfileSpec, resolve
from turboalchemy.errors import TurboAlchemyError, UnsupportedTargetError, WriterBusyError, translate


@dataclass
class _Setup:
    url: URL
    profile: Profile
    readers: int
    options: dict[str, Any]
    reader: Engine | None = None
    children: list[Engine] = field(default_factory=list)


_SETUPS: weakref.WeakKeyDictionary[Engine, _Setup] = weakref.WeakKeyDictionary()


def create_engine(
    url: str | URL,
    profile: ProfileSpec = "production",
    *,
    readers: int = 4,
    writer_timeout: float = 30.0,
    driver: Driver = "auto",
    **options: Any,
) -> Engine:
    """A SQLAlchemy Engine on an SQLite file: one writer connection, IMMEDIATE write transactions, `profile`.

    A postgresql:// URL gives a psycopg 3 engine with the pool settings in POSTGRES_POOL instead (`profile`,
    `readers` and `writer_timeout` are ignored there).

    Args:
        url: The database URL (sqlite:///path, or postgresql+psycopg://...).
        profile: A name ("production" or "durable"), a Profile, a dict of PRAGMAs, or a list of those composed
            left to right. Every new connection applies it and reads each value back.
        readers: Size of the read-only pool that `reader(engine)` returns.
        writer_timeout: Seconds a writer waits for the one write connection before WriterBusyError.
        driver: The SQLite DB-API module, for the writer and the reader pool alike: "pysqlite3" (a recent SQLite
            bundled, `pip install 'turboalchemy[sqlite]'`), "stdlib" (the sqlite3 your Python was built with), or
            "auto": pysqlite3 when it is installed, else stdlib (the environment variable
            TURBOALCHEMY_SQLITE_DRIVER=stdlib|pysqlite3 overrides what auto picks). SQLAlchemy's own `module=`
            option is honoured too, in place of `driver`.
        **options: Passed on to sqlalchemy.create_engine.

    Returns:
        A sqlalchemy.Engine.

    Raises:
        ProfileError: The profile names an unknown PRAGMA, or a value the connection did not take.
        ValueError: An unknown `driver`, `driver` beside `module=`, or `driver` for a PostgreSQL URL.
    """
    url = make_url(url)
    if url.get_backend_name() == "postgresql":
        if driver != "auto":
            raise ValueError(
                f"driver={driver!r} chooses the SQLite module; a PostgreSQL URL always goes through psycopg 3, "
                "so leave driver out"
            )
        return _postgresql(url, options)
    if url.get_backend_name() != "sqlite":
        raise UnsupportedTargetError(
            f"turboalchemy.create_engine sets up SQLite and PostgreSQL, not "
            f"{url.get_backend_name()}; use sqlalchemy.create_engine"
        )
    chosen = resolve(profile)
    if "module" in options:
        if driver != "auto":
            raise ValueError("pass driver= or SQLAlchemy's module=, not both")
    elif driver == "auto" and (file := _driver.file_of_url(url)) is not None:
        options["module"] = _driver.for_file(file)  # a file this process has open keeps its module
    else:
        options["module"] = _driver.module(driver)
    _warn_if_wal_reset_affected(chosen, options["module"])
    engine = _open(url, chosen, options, read_only=False, size=1, timeout=writer_timeout)
    setup = _SETUPS[engine] = _Setup(url, chosen, readers if not _in_memory(url) else 0, options)

    @event.listens_for(engine, "engine_disposed")
    def _dispose_readers(_engine: Any) -> None:  # engine.dispose() closes the reader pool too
        if setup.reader is not None:
            setup.reader.dispose()

    return engine


_WARNED: list[bool] = []  # once per process


def _warn_if_wal_reset_affected(profile: Profile, dbapi: ModuleType) -> None:
    """Warn once when a WAL profile runs on an SQLite with the WAL-reset bug (our topology is the affected one)."""
    import warnings

    from turboalchemy._tools.health import wal_reset_affected

    wal = str(profile.pragmas.get("journal_mode", "")).upper() == "WAL"
    if wal and not _WARNED and wal_reset_affected(tuple(getattr(dbapi, "sqlite_version_info", (0, 0, 0)))):
        _WARNED.append(True)
        warnings.warn(
            f"SQLite {getattr(dbapi, 'sqlite_version', '?')} (through {_driver.name(dbapi)}) has the WAL-reset bug "
            "(sqlite.org/wal.html#walresetbug): a writer and a checkpointing reader at nearly the same time can "
            "corrupt a WAL database; install a recent SQLite with `pip install 'turboalchemy[sqlite]'` (create_engine "
            "then uses pysqlite3), or use SQLite 3.51.3 or later (or 3.50.7, 3.44.6) another way",
            RuntimeWarning,
            stacklevel=3,
        )


POSTGRES_POOL = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True, "pool_recycle": 1800, "pool_timeout": 30}


def _postgresql(url: URL, options: dict[str, Any]) -> Engine:
    """PostgreSQL through psycopg 3 (the driver the COPY fast path uses), with a pool that survives restarts:
    10 connections plus 10 overflow, each checked with a ping on checkout and replaced after 30 minutes.
    PRAGMA profiles are SQLite's; the server's own configuration applies here."""
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_driver_name() != "psycopg":
        raise UnsupportedTargetError(
            f"turboalchemy's PostgreSQL support uses psycopg 3 (postgresql+psycopg://), not {url.get_driver_name()}"
        )
    return sqlalchemy.create_engine(url, **{**POSTGRES_POOL, **options})


def reader(engine: Engine) -> Engine:
    """The read-only pool beside a turboalchemy engine (created on first use); the engine itself when there is
    none (an in-memory database, or an engine turboalchemy did not create)."""
    setup = _SETUPS.get(engine)
    if setup is None or setup.readers == 0:
        return engine
    if setup.reader is None:
        setup.reader = _open(
            setup.url,
            setup.profile.extend(f"{setup.profile.name}+query_only", query_only=1),
            setup.options,
            read_only=True,
            size=setup.readers,
            timeout=30.0,
        )
    return setup.reader


def profile_of(engine: Engine) -> Profile | None:
    """The profile a turboalchemy engine applies to its connections (None for other engines)."""
    setup = _SETUPS.get(engine)
    return setup.profile if setup else None


def dedicated_writer(engine: Engine) -> Engine:
    """A second one-connection engine set up like `engine`, for a component (the WriteQueue) that must own
    its write connection for its whole life without starving the engine's own writers."""
    setup = _SETUPS.get(engine)
    if setup is None:
        raise UnsupportedTargetError("dedicated_writer needs an engine made by turboalchemy.create_engine")
    if _in_memory(setup.url):
        return engine  # an in-memory database exists on one connection only
    child = _open(setup.url, setup.profile, setup.options, read_only=False, size=1, timeout=30.0)
    return child


def _in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


class _OneWriterPool(QueuePool):
    """The writer's pool of one connection. A thread that already holds it and asks again (a second Session or
    Connection opened while the first is still open) would wait for itself: refused at once. A wait past the
    timeout for another thread's transaction is refused too, naming the design and the remedies."""

    _holder: int | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        me = threading.get_ident()
        if self._holder == me:
            raise WriterBusyError(
                "this thread already holds the engine's one write connection (a Session or Connection that is "
                f"still open), so a second one would wait for itself. {_REMEDY}"
            )
        try:
            record = super()._do_get()
        except sa_exc.TimeoutError as exc:
            raise WriterBusyError(
                f"another thread held the engine's one write connection for more than {self.timeout()} s "
                f"(writer_timeout). {_REMEDY}"
            ) from exc
        self._holder = me
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._holder = None
        super()._do_return_conn(record)


_REMEDY = (
    "turboalchemy.create_engine gives SQLite one writer, so writers queue instead of failing with 'database is "
    "locked': read through turboalchemy.reader(engine), finish (commit or close) one write transaction before "
    "the next, or send concurrent writes through a turboalchemy.WriteQueue"
)


def _open(url: URL, profile: Profile, options: dict[str, Any], *, read_only: bool, size: int, timeout: float) -> Engine:
    options = dict(options)  # the caller's dict is reused for the reader pool and the queue's connection
    connect_args = {"check_same_thread": False, **options.pop("connect_args", {})}
    if _in_memory(url):
        options.setdefault("poolclass", StaticPool)
    else:
        options.setdefault("pool_size", size)
        options.setdefault("max_overflow", 0)
        options.setdefault("pool_timeout", timeout)
        if not read_only and size == 1:
            options.setdefault("poolclass", _OneWriterPool)
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, **options)

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3 would otherwise open its own deferred transaction before the first INSERT; we begin explicitly
        dbapi_connection.isolation_level = None

    profile.install(engine)  # registered after the autocommit hook, so PRAGMAs run outside any transaction

    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # straight to the driver: half the cost of a statement through SQLAlchemy, on every transaction
        try:
            conn.connection.dbapi_connection.execute(begin)
        except Exception as exc:
            typed = translate(exc)
            if typed is None:
                raise
            raise typed from exc

    @event.listens_for(engine, "handle_error")
    def _typed(context: Any) -> TurboAlchemyError | None:
        connection = context.connection
        if connection is not None and connection.in_transaction() and not read_only:
            dbapi = connection.connection.dbapi_connection
            if dbapi is not None and not dbapi.in_transaction:
                # SQLite itself rolled the whole transaction back (a trigger's RAISE(ROLLBACK), some I/O errors):
                # SQLAlchemy would go on in driver autocommit, committing each later statement of a transaction
                # the application may still roll back. Treated as a lost connection, the transaction stays
                # failed until the application rolls it back.
                context.is_disconnect = True
        # raised by SQLAlchemy in place of its own OperationalError, which the typed error also is
        return translate(context.original_exception, context)

    return engine
