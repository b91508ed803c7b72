"""Which SQLite DB-API module a connection goes through: the standard library's sqlite3 (the SQLite your Python was
built with), or pysqlite3 (`pip install turboalchemy[sqlite]`: the same API with a recent SQLite bundled).

The one place that answers "which module", and "is this a driver error": every module's error classes are
collected here, so a handler catches the errors of whichever module the engine uses.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import threading
import weakref
from types import ModuleType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

Driver = Literal["auto", "stdlib", "pysqlite3"]
DRIVERS: tuple[Driver, ...] = ("auto", "stdlib", "pysqlite3")
ENVIRONMENT = "TURBOALCHEMY_SQLITE_DRIVER"  # what "auto" means when set: stdlib or pysqlite3


def _pysqlite3() -> ModuleType | None:
    try:
        return importlib.import_module("pysqlite3.dbapi2")
    except ImportError:
        return None


PYSQLITE3 = _pysqlite3()
MODULES: tuple[ModuleType, ...] = (sqlite3,) if PYSQLITE3 is None else (sqlite3, PYSQLITE3)

Error: tuple[type[Exception], ...] = tuple(m.Error for m in MODULES)
DatabaseError: tuple[type[Exception], ...] = tuple(m.DatabaseError for m in MODULES)
OperationalError: tuple[type[Exception], ...] = tuple(m.OperationalError for m in MODULES)
BindingError: tuple[type[Exception], ...] = tuple(c for m in MODULES for c in (m.InterfaceError, m.ProgrammingError))
Connection: tuple[type[Any], ...] = tuple(m.Connection for m in MODULES)


def module(driver: Driver = "auto") -> ModuleType:
    """The DB-API module for `driver`: "auto" is pysqlite3 when it is installed (unless TURBOALCHEMY_SQLITE_DRIVER
    says stdlib), else the standard library's sqlite3."""
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, not {driver!r}")
    if driver == "auto":
        chosen = os.environ.get(ENVIRONMENT, "").strip().lower() or "auto"
        if chosen not in DRIVERS:
            raise ValueError(f"{ENVIRONMENT} must be stdlib or pysqlite3, not {chosen!r}")
        if chosen == "auto":
            return PYSQLITE3 or sqlite3
        driver = "stdlib" if chosen == "stdlib" else "pysqlite3"
    if driver == "stdlib":
        return sqlite3
    if PYSQLITE3 is None:
        raise ValueError("driver='pysqlite3' needs the pysqlite3 module: pip install 'turboalchemy[sqlite]'")
    return PYSQLITE3


def module_of(dbapi_connection: Any) -> ModuleType:
    """The module a DB-API connection belongs to (the standard library's for anything else, e.g. an adapter)."""
    for candidate in MODULES:
        if isinstance(dbapi_connection, candidate.Connection):
            return candidate
    return sqlite3


def error_base(exc: BaseException) -> type[Exception]:
    """The `Error` class of the module that raised `exc` (for SQLAlchemy's DBAPIError.instance)."""
    for candidate in MODULES:
        if isinstance(exc, candidate.Error):
            return candidate.Error  # type: ignore[no-any-return]
    return sqlite3.Error


def name(dbapi_module: ModuleType) -> str:
    """ "sqlite3" or "pysqlite3": how health reports and the benchmark's cells name the module."""
    return dbapi_module.__name__.removesuffix(".dbapi2")


# -- one SQLite library per database file in this process ------------------------------------------------------
# Each module carries its own copy of SQLite. POSIX advisory locks belong to the process, so when one copy closes a
# file descriptor it drops the locks the other copy holds on the same file, and the two can then write at once:
# sqlite.org/howtocorrupt.html, section 2.2.1. Every SQLite connection a SQLAlchemy pool opens (turboalchemy's
# engines and anyone else's) and every connection turboalchemy's tools open is recorded here by the file it opened;
# a connection through another module to a file that is open is refused before it is used.

# (st_dev, st_ino) -> {id(connection): (module name, its pool record while it lives; None for a tool's own)}
_OPEN: dict[tuple[int, int], dict[int, tuple[str, weakref.ref[Any] | None]]] = {}
# Re-entrant: a pool's close event can run from a garbage-collection finalizer in the thread that holds it.
_LOCK = threading.RLock()


def _main_file(dbapi_connection: Any) -> str | None:
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA database_list")
        rows = cursor.fetchall()
        cursor.close()
    except Exception:  # an adapter that cannot run it here (aiosqlite outside its greenlet): not tracked
        return None
    return next((str(row[2]) for row in rows if row[1] == "main" and row[2]), None)


def _key(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _open_through(key: tuple[int, int] | None) -> set[str]:
    """The modules holding the file open, forgetting connections that are gone: a pool record that died (its
    engine dropped without dispose()) or that now holds another connection (reconnected after a failure that
    told no pool). Call with _LOCK held."""
    holders = _OPEN.get(key) if key else None
    if not holders:
        return set()
    for i, (_, ref) in list(holders.items()):
        if ref is None:
            continue
        record = ref()
        if record is None or id(getattr(record, "dbapi_connection", None)) != i:
            holders.pop(i, None)
    if not holders:
        _OPEN.pop(key, None)  # type: ignore[arg-type]
    return {m for m, _ in holders.values()}


def _conflict(path: str | os.PathLike[str], others: set[str], mine: str) -> Exception:
    from turboalchemy.errors import SQLiteLibraryConflictError

    return SQLiteLibraryConflictError(
        f"{path} is already open in this process through {sorted(others)[0]}, and this connection would go through "
        f"{mine}: two copies of SQLite on one file in one process drop each other's locks and can corrupt it "
        "(sqlite.org/howtocorrupt.html, 2.2.1). Use one module for the file: create_engine(driver=...) (or "
        f"{ENVIRONMENT}) for turboalchemy's engines, module=... for SQLAlchemy's own, or close the other "
        "connections first"
    )


def refuse_mixing(path: str | os.PathLike[str], mine: str) -> None:
    """Before a connection through module `mine` opens `path`: refuse if another SQLite library has it open.
    (After the open would be too late: closing the refused connection would drop the other library's locks.)"""
    key = _key(path)
    with _LOCK:
        others = _open_through(key) - {mine}
    if others:
        raise _conflict(path, others, mine)


def claim(dbapi_connection: Any, module_name: str | None = None, record: Any = None) -> None:
    """Record a new connection by its database file (refused before it opened, by refuse_mixing, if another
    library had the file open; checked again here for connections no listener saw coming)."""
    path = _main_file(dbapi_connection)
    key = _key(path) if path else None
    if key is None:
        return
    mine = module_name or name(module_of(dbapi_connection))
    with _LOCK:
        others = _open_through(key) - {mine}
        if not others:
            _OPEN.setdefault(key, {})[id(dbapi_connection)] = (mine, None if record is None else weakref.ref(record))
            return
    raise _conflict(path, others, mine)  # type: ignore[arg-type]


def release(dbapi_connection: Any) -> None:
    """Forget a connection that was closed."""
    ident = id(dbapi_connection)
    with _LOCK:
        for key, holders in list(_OPEN.items()):
            if holders.pop(ident, None) is not None:
                if not holders:
                    _OPEN.pop(key, None)
                return


def holder(path: str | os.PathLike[str]) -> ModuleType | None:
    """The module through which this process has `path` open, if any (what a tool opening it must use)."""
    with _LOCK:
        names = _open_through(_key(path))
    for candidate in MODULES:
        if name(candidate) in names:
            return candidate
    return None


def _database_of(cargs: Any, cparams: Any) -> str | None:
    """The file a pysqlite connect is about to open ("file:" URIs included); None for memory databases."""
    database: Any = cargs[0] if cargs else (cparams or {}).get("database")
    if not isinstance(database, str) or database in ("", ":memory:"):
        return None
    return _file_of(database, uri=bool((cparams or {}).get("uri")))


def _file_of(database: str, *, uri: bool) -> str | None:
    """The file a database name opens: a path as it is; with `uri`, a "file:" URI read as SQLite reads it
    (sqlite.org/uri.html: an empty or "localhost" authority, %-escapes decoded, query and fragment dropped).
    None for a memory database or an authority SQLite refuses."""
    if not (uri and database.startswith("file:")):
        return database or None
    rest, _, query = database[len("file:") :].split("#", 1)[0].partition("?")
    if ("mode", "memory") in parse_qsl(query):
        return None
    if rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            return None
        rest = slash + tail
    rest = unquote(rest)
    return None if rest in ("", ":memory:") else rest


def _before_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> None:
    if dialect.name != "sqlite":
        return
    path = _database_of(cargs, cparams)
    if path is None:
        return
    if dialect.driver == "aiosqlite":
        refuse_mixing(path, "sqlite3")  # aiosqlite runs the stdlib's SQLite
    elif isinstance(getattr(dialect, "dbapi", None), ModuleType):
        refuse_mixing(path, name(dialect.dbapi))


def file_of_url(url: Any) -> str | None:
    """The file an SQLite URL opens: its database, read as a "file:" URI with `?uri=true` (SQLAlchemy's pysqlite
    dialect); None for a memory database."""
    from sqlalchemy.util import asbool

    database = url.database
    if not database or database == ":memory:":
        return None
    value = url.query.get("uri", False)
    uri = bool(asbool(value if isinstance(value, str) else value[-1] if value else False))
    return _file_of(database, uri=uri) if "memory" not in url.query.get("mode", "") else None


def for_file(path: str | os.PathLike[str]) -> ModuleType:
    """The module a tool opens `path` with: the one this process already has it open through, else auto's."""
    return holder(path) or module()


def _on_connect(dbapi_connection: Any, record: Any) -> None:
    if isinstance(dbapi_connection, Connection):
        claim(dbapi_connection, record=record)
    elif hasattr(dbapi_connection, "driver_connection") and "sqlite" in type(dbapi_connection).__module__:
        claim(dbapi_connection, "sqlite3", record)  # aiosqlite, under SQLAlchemy's asyncio: the stdlib's SQLite


def _on_close(dbapi_connection: Any, *_record: Any) -> None:
    release(dbapi_connection)


def watch_pools() -> None:
    """Record every SQLite connection any SQLAlchemy pool in this process opens and closes (once)."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    if not event.contains(Pool, "connect", _on_connect):
        from sqlalchemy.engine import Engine

        event.listen(Engine, "do_connect", _before_connect)
        event.listen(Pool, "connect", _on_connect)
        event.listen(Pool, "close", _on_close)
        event.listen(Pool, "close_detached", _on_close)
