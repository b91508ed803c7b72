"""What a target is, asked in one place.

Every public function takes a *target*: where to read or write. This module names the kinds, tells which
one an object is, and words the refusal the same way everywhere (with a pointer to the a-prefixed
function when an asyncio object reaches a synchronous one, or the other way round).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from turboalchemy.errors import ConnectionLostError, UnsupportedTargetError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

TargetKind = Literal["engine", "connection", "session", "async_engine", "async_connection", "async_session", "path"]

Target: TypeAlias = Engine | Connection | Session
"""A synchronous target: an Engine (each chunk commits), or a Connection or Session (the caller's transaction)."""
AsyncTarget: TypeAlias = "AsyncEngine | AsyncConnection | AsyncSession"
"""An asyncio target, for the a-prefixed functions."""
PathTarget: TypeAlias = str | os.PathLike[str]
"""A path to an SQLite file (or an sqlite:/// URL), for the file-level tools."""
FileTarget: TypeAlias = Engine | str | os.PathLike[str]
"""An SQLite Engine or a path to its file, for the file-level tools (migrate, backup, health, advise)."""

SYNC: frozenset[TargetKind] = frozenset({"engine", "connection", "session"})
ASYNC: frozenset[TargetKind] = frozenset({"async_engine", "async_connection", "async_session"})
ENGINE: frozenset[TargetKind] = frozenset({"engine"})

_NAMES: dict[TargetKind, str] = {
    "engine": "Engine",
    "connection": "Connection",
    "session": "Session",
    "async_engine": "AsyncEngine",
    "async_connection": "AsyncConnection",
    "async_session": "AsyncSession",
    "path": "path",
}


def kind_of(target: object) -> TargetKind | None:
    """The kind of `target`, or None when it is none of them."""
    if isinstance(target, Session):
        return "session"
    if isinstance(target, Connection):
        return "connection"
    if isinstance(target, Engine):
        return "engine"
    if isinstance(target, (str, os.PathLike)):
        return "path"
    aio = sys.modules.get("sqlalchemy.ext.asyncio")  # not imported: then nothing can be an asyncio object
    if aio is not None:
        if isinstance(target, aio.AsyncSession):
            return "async_session"
        if isinstance(target, aio.AsyncConnection):
            return "async_connection"
        if isinstance(target, aio.AsyncEngine):
            return "async_engine"
    return None


def classify(target: object, accept: Collection[TargetKind], what: str) -> TargetKind:
    """The kind of `target` if `what` (the function's name) accepts it; else UnsupportedTargetError saying
    what it takes."""
    kind = kind_of(target)
    if kind is not None and kind in accept:
        return kind
    order = [k for k in _NAMES if k in accept]
    wanted = ", ".join(_NAMES[k] for k in order[:-1]) + (" or " if len(order) > 1 else "") + _NAMES[order[-1]]
    import turboalchemy  # the public names, for the pointer to the other form of the same function

    hint = ""
    if kind in ASYNC and not ASYNC & set(accept):
        twin = f"a{what}"
        hint = (
            f" (for asyncio, use turboalchemy.{twin})"
            if hasattr(turboalchemy, twin)
            else " (an asyncio object: pass its sync_engine, or call this inside run_sync)"
        )
    elif kind in SYNC and not SYNC & set(accept) and hasattr(turboalchemy, what.removeprefix("a")):
        hint = f" (for synchronous targets, use turboalchemy.{what.removeprefix('a')})"
    raise UnsupportedTargetError(f"{what} takes an {wanted}, not {type(target).__name__}{hint}")


def bind_of(target: object, what: str) -> Engine | Connection:
    """The object whose events see the target's statements: an Engine or Connection as given, a Session's bind."""
    classify(target, SYNC, what)
    if isinstance(target, Session):
        return target.get_bind()
    assert isinstance(target, (Engine, Connection))
    return target


@dataclass(frozen=True)
class Bound:
    """A synchronous target resolved to what runs statements: the Connection, the Session if there is one
    (ORM statements go through it), and whether turboalchemy opened the connection (an Engine target)."""

    connection: Connection
    session: Session | None
    opened: bool

    @property
    def runner(self) -> Connection | Session:
        """What to call execute() on: the Session when there is one, else the Connection."""
        return self.session if self.session is not None else self.connection


@contextmanager
def bound(target: object, what: str) -> Iterator[Bound]:
    """Resolve an Engine, Connection or Session; an Engine's connection is opened here and closed afterwards."""
    kind = classify(target, SYNC, what)
    if kind == "engine":
        assert isinstance(target, Engine)
        with target.connect() as connection:
            try:
                yield Bound(connection, None, True)
            except ConnectionLostError:
                connection.invalidate()  # not returned to the pool, which would try to reset a dead connection
                raise
    elif kind == "session":
        assert isinstance(target, Session)
        connection = target.connection()
        try:
            yield Bound(connection, target, False)
        except ConnectionLostError:
            connection.invalidate()  # as SQLAlchemy does on a disconnect: the transaction is gone, roll back is moot
            raise
    else:
        assert isinstance(target, Connection)
        try:
            yield Bound(target, None, False)
        except ConnectionLostError:
            target.invalidate()
            raise
