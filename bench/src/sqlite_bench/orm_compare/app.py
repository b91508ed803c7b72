"""One CRUD API (users and their orders), the same routes and JSON over three data layers.

  sqlalchemy  SQLAlchemy 2.x asyncio: AsyncSession per request (aiosqlite on SQLite, asyncpg on PostgreSQL)
  tortoise    Tortoise ORM on the same tables
  turboalchemy   reads from turboalchemy's reader pool (in a worker thread), writes through one WriteQueue

Routes: POST /users, GET /users/{id}, PUT /users/{id}, DELETE /users/{id}, GET /users/{id}/orders.
Validation errors answer 422 with {"detail": ...}; a missing user 404; a duplicate email 409.
`build_app(layer, url)` returns a Starlette app; `python -m sqlite_bench.orm_compare.app LAYER URL PORT` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any, Protocol

from sqlalchemy import ForeignKey, Integer, MetaData, String, create_engine, delete, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LAYERS = ("sqlalchemy", "tortoise", "turboalchemy")


class Base(DeclarativeBase):
    metadata = MetaData()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(String(100))
    cents: Mapped[int] = mapped_column(Integer)


USERS, ORDERS = User.__table__, Order.__table__


class Duplicate(Exception):
    """The email is taken."""


class Store(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def create_user(self, name: str, email: str) -> dict[str, Any]: ...
    async def get_user(self, user_id: int) -> dict[str, Any] | None: ...
    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None: ...
    async def delete_user(self, user_id: int) -> bool: ...
    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None: ...


def _user(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "email": row.email}


def _order(row: Any) -> dict[str, Any]:
    return {"id": row.id, "user_id": row.user_id, "item": row.item, "cents": row.cents}


def _is_duplicate(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unique" in text or "duplicate" in text


class SqlAlchemyStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+asyncpg"
        self.url = parsed.set(drivername=driver)

    async def start(self) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        self.engine = (
            create_async_engine(self.url, pool_size=20, max_overflow=20)
            if self.url.get_backend_name() == "postgresql"
            else create_async_engine(self.url)
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def stop(self) -> None:
        await self.engine.dispose()

    async def create_user(self, name: str, email: str) -> dict[str, Any]:
        from sqlalchemy.exc import IntegrityError

        async with self.sessions() as session:
            user = User(name=name, email=email)
            session.add(user)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Duplicate() from exc
            return _user(user)

    async def get_user(self, user_id: int) -> dict[str, Any] | None:
        async with self.sessions() as session:
            user = await session.get(User, user_id)
            return _user(user) if user else None

    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        from sqlalchemy.exc import IntegrityError
        from sqlalchemy.orm.exc import StaleDataError

        async with self.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return None
            for key, value in fields.items():
                setattr(user, key, value)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Duplicate() from exc
            except StaleDataError:  # deleted by another request between our read and our write: gone
                return None
            return _user(user)

    async def delete_user(self, user_id: int) -> bool:
        async with self.sessions() as session:
            await session.execute(delete(Order).where(Order.user_id == user_id))
            result = await session.execute(delete(User).where(User.id == user_id))
            await session.commit()
            return bool(result.rowcount)

    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None:
        async with self.sessions() as session:
            if await session.get(User, user_id) is None:
                return None
            orders = await session.scalars(select(Order).where(Order.user_id == user_id).order_by(Order.id))
            return [_order(o) for o in orders]


class TortoiseStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            self.db_url = f"sqlite://{parsed.database}"
        else:
            auth = parsed.username or "postgres"
            self.db_url = f"postgres://{auth}@{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{parsed.database}"

    async def start(self) -> None:
        from tortoise import Tortoise

        await Tortoise.init(db_url=self.db_url, modules={"models": ["sqlite_bench.orm_compare.tortoise_models"]})

    async def stop(self) -> None:
        from tortoise import Tortoise

        await Tortoise.close_connections()
        await Tortoise._reset_apps()  # Tortoise keeps global state; a later init (another database) starts clean

    async def create_user(self, name: str, email: str) -> dict[str, Any]:
        from tortoise.exceptions import IntegrityError

        from .tortoise_models import TUser

        try:
            user = await TUser.create(name=name, email=email)
        except IntegrityError as exc:
            raise Duplicate() from exc
        return _user(user)

    async def get_user(self, user_id: int) -> dict[str, Any] | None:
        from .tortoise_models import TUser

        user = await TUser.get_or_none(id=user_id)
        return _user(user) if user else None

    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        from tortoise.exceptions import IntegrityError

        from .tortoise_models import TUser

        user = await TUser.get_or_none(id=user_id)
        if user is None:
            return None
        for key, value in fields.items():
            setattr(user, key, value)
        try:
            await user.save()
        except IntegrityError as exc:
            raise Duplicate() from exc
        return _user(user)

    async def delete_user(self, user_id: int) -> bool:
        from .tortoise_models import TOrder, TUser

        await TOrder.filter(user_id=user_id).delete()
        return bool(await TUser.filter(id=user_id).delete())

    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None:
        from .tortoise_models import TOrder, TUser

        if not await TUser.exists(id=user_id):
            return None
        return [_order(o) for o in await TOrder.filter(user_id=user_id).order_by("id")]


class TurboAlchemyStore:
    """Writes through one WriteQueue (group commit); reads on turboalchemy's reader pool in a worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        import turboalchemy

        # the stdlib's SQLite, as every other layer here (aiosqlite cannot use another): equal terms, and one SQLite
        # library per file in the process
        self.engine = turboalchemy.create_engine(self.url, driver="stdlib")
        self.reads = turboalchemy.reader(self.engine)
        self.queue = turboalchemy.WriteQueue(self.engine)

    async def stop(self) -> None:
        self.queue.close()
        self.engine.dispose()

    def _read(self, stmt: Any) -> list[Any]:
        with self.reads.connect() as conn:
            return list(conn.execute(stmt))

    async def create_user(self, name: str, email: str) -> dict[str, Any]:
        from sqlalchemy.exc import IntegrityError

        try:
            new_id = await self.queue.aexecute(
                lambda conn: conn.execute(
                    insert(USERS).values(name=name, email=email).returning(USERS.c.id)
                ).scalar_one()
            )
        except IntegrityError as exc:
            raise Duplicate() from exc
        return {"id": new_id, "name": name, "email": email}

    async def get_user(self, user_id: int) -> dict[str, Any] | None:
        rows = await asyncio.to_thread(self._read, select(USERS).where(USERS.c.id == user_id))
        return _user(rows[0]) if rows else None

    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        from sqlalchemy.exc import IntegrityError

        try:
            rows = await self.queue.aexecute(
                lambda conn: list(
                    conn.execute(update(USERS).where(USERS.c.id == user_id).values(**fields).returning(*USERS.c))
                )
            )
        except IntegrityError as exc:
            raise Duplicate() from exc
        return _user(rows[0]) if rows else None

    async def delete_user(self, user_id: int) -> bool:
        def remove(conn: Any) -> bool:
            conn.execute(delete(ORDERS).where(ORDERS.c.user_id == user_id))
            return bool(conn.execute(delete(USERS).where(USERS.c.id == user_id)).rowcount)

        return bool(await self.queue.aexecute(remove))

    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None:
        def both() -> tuple[list[Any], list[Any]]:
            with self.reads.connect() as conn:
                with conn.begin():  # one snapshot for the existence check and the list
                    user = list(conn.execute(select(USERS.c.id).where(USERS.c.id == user_id)))
                    orders = list(conn.execute(select(ORDERS).where(ORDERS.c.user_id == user_id).order_by(ORDERS.c.id)))
            return user, orders

        user, orders = await asyncio.to_thread(both)
        return [_order(o) for o in orders] if user else None


STORES = {"sqlalchemy": SqlAlchemyStore, "tortoise": TortoiseStore, "turboalchemy": TurboAlchemyStore}


def create_schema(url: str) -> None:
    """The two tables, created with SQLAlchemy for every layer (no layer generates its own schema)."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _validate(body: Any, *, partial: bool) -> dict[str, str] | str:
    """The fields to write, or what is wrong with them."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - {"name", "email"})
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    if not partial and {"name", "email"} - set(body):
        return f"missing field(s): {', '.join(sorted({'name', 'email'} - set(body)))}"
    if not body:
        return "nothing to update"
    for key, value in body.items():
        if not isinstance(value, str) or not value.strip():
            return f"{key} must be a non-empty string"
    if "name" in body and len(body["name"]) > 100:
        return "name must be at most 100 characters"
    if "email" in body and ("@" not in body["email"] or len(body["email"]) > 200):
        return "email must contain @ and be at most 200 characters"
    return dict(body)


def build_app(layer: str, url: str) -> Starlette:
    """The API over one data layer; the store starts with the app and stops with it."""
    if layer not in STORES:
        raise ValueError(f"unknown layer {layer!r}; choose from {', '.join(LAYERS)}")
    store: Store = STORES[layer](url)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            return None

    def user_id(request: Request) -> int | None:
        try:
            return int(request.path_params["user_id"])
        except ValueError:
            return None

    async def create(request: Request) -> Response:
        fields = _validate(await body_of(request), partial=False)
        if isinstance(fields, str):
            return _problem(422, fields)
        try:
            return JSONResponse(await store.create_user(fields["name"], fields["email"]), status_code=201)
        except Duplicate:
            return _problem(409, "a user with this email exists")

    async def read(request: Request) -> Response:
        uid = user_id(request)
        user = await store.get_user(uid) if uid is not None else None
        return JSONResponse(user) if user else _problem(404, "no such user")

    async def change(request: Request) -> Response:
        uid = user_id(request)
        fields = _validate(await body_of(request), partial=True)
        if isinstance(fields, str):
            return _problem(422, fields)
        try:
            user = await store.update_user(uid, fields) if uid is not None else None
        except Duplicate:
            return _problem(409, "a user with this email exists")
        return JSONResponse(user) if user else _problem(404, "no such user")

    async def remove(request: Request) -> Response:
        uid = user_id(request)
        return (
            Response(status_code=204)
            if uid is not None and await store.delete_user(uid)
            else _problem(404, "no such user")
        )

    async def orders(request: Request) -> Response:
        uid = user_id(request)
        found = await store.user_orders(uid) if uid is not None else None
        return JSONResponse(found) if found is not None else _problem(404, "no such user")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> Any:
        await store.start()
        try:
            yield
        finally:
            await store.stop()

    return Starlette(
        routes=[
            Route("/users", create, methods=["POST"]),
            Route("/users/{user_id}", read, methods=["GET"]),
            Route("/users/{user_id}", change, methods=["PUT"]),
            Route("/users/{user_id}", remove, methods=["DELETE"]),
            Route("/users/{user_id}/orders", orders, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    layer, url, port = (argv if argv is not None else sys.argv[1:])[:3]
    uvicorn.run(build_app(layer, url), host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
