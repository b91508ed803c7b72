"""What a user's type checker infers for the main calls; checked by mypy --strict in tests/test_typing.py.

Never run: every line is for the type checker (assert_type is a no-op at run time).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, TypeVar, assert_type

from sqlalchemy import Engine, MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.base import Executable

import turboalchemy


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def sync_calls(session: Session, table: Table) -> None:
    engine = turboalchemy.create_engine("sqlite:///app.db")
    assert_type(engine, Engine)
    assert_type(turboalchemy.reader(engine), Engine)
    assert_type(turboalchemy.bulk_insert(engine, User, [{"id": 1, "name": "a"}]), int)
    assert_type(turboalchemy.bulk_insert(session, table, [(1, "a")]), int)
    assert_type(turboalchemy.bulk_upsert(engine, User, [{"id": 1, "name": "b"}], conflict=["id"]), int)
    assert_type(turboalchemy.bulk_insert(engine, User, [{"name": "a"}], returning=User), list[User])
    assert_type(turboalchemy.bulk_insert(engine, User, [{"name": "a"}], returning=User.id), list[Any])
    assert_type(
        turboalchemy.bulk_upsert(engine, User, [{"id": 1, "name": "b"}], conflict=["id"], returning=User), list[User]
    )

    page = turboalchemy.keyset_page(session, select(User).order_by(User.id), size=50)
    assert_type(page, turboalchemy.Page)
    assert_type(page.next_after, tuple[Any, ...] | None)

    repo = turboalchemy.Repository(session, User)
    assert_type(repo.get(1), User | None)
    assert_type(repo.list(), list[User])

    queue = turboalchemy.WriteQueue(engine)
    assert_type(queue.submit(insert(User), {"id": 2, "name": "c"}), Future[turboalchemy.WriteResult])
    assert_type(queue.execute(text("DELETE FROM users")), turboalchemy.WriteResult)
    assert_type(queue.execute(lambda conn: 42), int)
    assert_type(queue.stats, turboalchemy.QueueStats)

    assert_type(turboalchemy.health("app.db"), turboalchemy.HealthReport)
    assert_type(turboalchemy.health("app.db").checklist, list[turboalchemy.Check])
    assert_type(turboalchemy.strict_tables(Base), MetaData)
    assert_type(queue.stats.commit_ms(99), float | None)
    assert_type(turboalchemy.explain(session, select(User)), turboalchemy.QueryPlan)
    with turboalchemy.count_queries(session) as counted:
        assert_type(counted, turboalchemy.QueryCount)


S = TypeVar("S", bound=Executable)


def raiseload_all_keeps_the_statements_type(stmt: S) -> S:
    return turboalchemy.raiseload_all(stmt)  # an error here if it returned anything wider


async def async_calls(engine: AsyncEngine) -> None:
    assert_type(await turboalchemy.abulk_insert(engine, User, [{"id": 1, "name": "a"}]), int)
    assert_type(await turboalchemy.abulk_insert(engine, User, [{"name": "a"}], returning=User), list[User])
    assert_type(await turboalchemy.akeyset_page(engine, select(User).order_by(User.id)), turboalchemy.Page)


def errors_keep_sqlalchemys_handlers(error: turboalchemy.DiskFullError) -> None:
    import sqlalchemy.exc

    handled: sqlalchemy.exc.OperationalError = error  # a DiskFullError is an OperationalError
    assert_type(error.committed, int | None)
    del handled
