"""One CRUD API (users and their orders), the same routes and JSON over three data layers.

  sqlalchemy    SQLAlchemy 2.x asyncio: AsyncSession per request (aiosqlite on SQLite, asyncpg on PostgreSQL)
  tortoise      Tortoise ORM on the same tables
  turboalchemy  reads on turboalchemy's reader pool (in a worker thread); on SQLite writes through one
                WriteQueue, on PostgreSQL on the pool like the reads (the library's own advice)

Equal terms: on SQLite every layer runs the same PRAGMAs (EQUAL, turboalchemy's production profile without the
settings only a new file takes), read back through the layer's own connections at GET /_setup; a layer named
with "+defaults" (sqlalchemy+defaults, tortoise+defaults) keeps what it does out of the box, as its own row. On
PostgreSQL every layer may hold up to POOL connections. Every layer sends the same statements per operation
(STATEMENTS); what differs is how each layer holds connections and transactions (DESIGN).

Routes: POST /users, GET /users?limit=N, GET /users/{id}, PUT /users/{id}, DELETE /users/{id},
GET /users/{id}/orders, GET /orders?limit=N, GET /orders/{id}, GET /_setup.
Validation errors answer 422 with {"detail": ...}; a missing user or order 404; a duplicate email 409.
`build_app(layer, url)` returns a Starlette app; `python -m sqlite_bench.orm_compare.app LAYER URL PORT` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlencode

from sqlalchemy import ForeignKey, Integer, MetaData, String, create_engine, delete, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import turboalchemy

LAYERS = ("sqlalchemy", "tortoise", "turboalchemy")
DEFAULTS = "+defaults"  # suffix: the layer as it comes, without the equal SQLite set-up
VARIANTS = tuple(f"{layer}{DEFAULTS}" for layer in ("sqlalchemy", "tortoise"))
POOL = 20  # connections a layer may hold on PostgreSQL
PAGE = 20  # rows in a list when the request gives no limit

# The SQLite set-up every layer runs unless it is a "+defaults" row: turboalchemy's production profile without
# page_size and auto_vacuum (only a new file takes them, and every cell starts from the same seeded file), and
# journal_size_limit pinned because Tortoise sets its own otherwise.
EQUAL = turboalchemy.Profile(
    "equal",
    {
        **{
            k: v
            for k, v in turboalchemy.PROFILES["production"].pragmas.items()
            if k not in ("page_size", "auto_vacuum")
        },
        "journal_size_limit": -1,
    },
)
READ_BACK = tuple(EQUAL.pragmas)

# What each operation sends: the same SQL statements for every layer. The id of a new row comes from lastrowid
# (SQLAlchemy's ORM and Tortoise on SQLite) or RETURNING (turboalchemy; every layer on PostgreSQL). Transaction
# control differs by layer and is in DESIGN.
STATEMENTS = {
    "create": "one INSERT",
    "read": "one SELECT by primary key",
    "list": "one SELECT ... ORDER BY id LIMIT n",
    "update": "a SELECT by primary key, then an UPDATE of the changed columns (SQLAlchemy skips an UPDATE that "
    "changes nothing)",
    "delete": "a DELETE of the user's orders, then a DELETE of the user, in one transaction",
    "orders": "a SELECT of the user, then a SELECT of their orders",
}
# How the layers differ, by design (recorded with every run).
DESIGN = {
    "sqlalchemy": "AsyncSession per request; SQLite: aiosqlite pool of 5 + 10 connections, a thread each, the "
    "driver's implicit transactions (reads and an update's SELECT run outside one, BEGIN comes with the first "
    f"write); PostgreSQL: asyncpg pool of {POOL}, every request in a transaction",
    "tortoise": "SQLite: one aiosqlite connection behind a lock, autocommit, updates and deletes in a transaction; "
    f"PostgreSQL: asyncpg pool of {POOL}, autocommit but for updates and deletes",
    "turboalchemy": "reads on the reader pool in worker threads, each in a BEGIN ... ROLLBACK; SQLite: writes "
    "through one WriteQueue (group commit: one transaction for the writes waiting together, a SAVEPOINT each); "
    f"PostgreSQL: writes on the psycopg pool like the reads, {POOL} threads and {POOL} connections, no pre-ping",
}


def split_layer(name: str) -> tuple[str, bool]:
    """(layer, whether it keeps its own defaults) from a layer name such as "sqlalchemy+defaults"."""
    base, _, rest = name.partition("+")
    if base not in LAYERS or (rest and f"+{rest}" != DEFAULTS) or (rest and name not in VARIANTS):
        raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS + VARIANTS)}")
    return base, bool(rest)


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
    async def setup(self) -> dict[str, Any]: ...
    async def create_user(self, name: str, email: str) -> dict[str, Any]: ...
    async def get_user(self, user_id: int) -> dict[str, Any] | None: ...
    async def list_users(self, limit: int) -> list[dict[str, Any]]: ...
    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None: ...
    async def delete_user(self, user_id: int) -> bool: ...
    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None: ...
    async def get_order(self, order_id: int) -> dict[str, Any] | None: ...
    async def list_orders(self, limit: int) -> list[dict[str, Any]]: ...


def _user(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "email": row.email}


def _order(row: Any) -> dict[str, Any]:
    return {"id": row.id, "user_id": row.user_id, "item": row.item, "cents": row.cents}


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


async def _read_back(run: Any, sqlite: bool) -> dict[str, Any]:
    """The settings one connection of a layer reports: `run(sql)` returns the first column of the first row."""
    if sqlite:
        return {key: await run(f"PRAGMA {key}") for key in READ_BACK}
    return {key: await run(f"SHOW {key}") for key in ("synchronous_commit", "shared_buffers", "server_version")}


class SqlAlchemyStore:
    def __init__(self, url: str, defaults: bool = False) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.defaults = defaults
        self.url = parsed.set(drivername="sqlite+aiosqlite" if self.sqlite else "postgresql+asyncpg")

    async def start(self) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        self.engine = (
            create_async_engine(self.url)
            if self.sqlite
            else create_async_engine(self.url, pool_size=POOL, max_overflow=0)
        )
        if self.sqlite and not self.defaults:
            EQUAL.install(self.engine.sync_engine)  # applied and read back on every new aiosqlite connection
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def stop(self) -> None:
        await self.engine.dispose()

    async def setup(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:

            async def run(sql: str) -> Any:
                return (await conn.execute(text(sql))).scalar()

            return await _read_back(run, self.sqlite)

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

    async def list_users(self, limit: int) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            return [_user(u) for u in await session.scalars(select(User).order_by(User.id).limit(limit))]

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

    async def get_order(self, order_id: int) -> dict[str, Any] | None:
        async with self.sessions() as session:
            order = await session.get(Order, order_id)
            return _order(order) if order else None

    async def list_orders(self, limit: int) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            return [_order(o) for o in await session.scalars(select(Order).order_by(Order.id).limit(limit))]


class TortoiseStore:
    def __init__(self, url: str, defaults: bool = False) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            # Tortoise runs every "key=value" of its URL as PRAGMA key=value on its connection
            options = "" if defaults else "?" + urlencode({k: v for k, v in EQUAL.pragmas.items()})
            self.db_url = f"sqlite://{parsed.database}{options}"
        else:
            auth = parsed.username or "postgres"
            self.db_url = (
                f"postgres://{auth}@{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{parsed.database}"
                f"?minsize=1&maxsize={POOL}"
            )

    async def start(self) -> None:
        from tortoise import Tortoise

        await Tortoise.init(db_url=self.db_url, modules={"models": ["sqlite_bench.orm_compare.tortoise_models"]})

    async def stop(self) -> None:
        from tortoise import Tortoise

        await Tortoise.close_connections()
        await Tortoise._reset_apps()  # Tortoise keeps global state; a later init (another database) starts clean

    async def setup(self) -> dict[str, Any]:
        from tortoise import connections

        async def run(sql: str) -> Any:
            _, rows = await connections.get("default").execute_query(sql)
            return next(iter(dict(rows[0]).values())) if rows else None

        return await _read_back(run, self.sqlite)

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

    async def list_users(self, limit: int) -> list[dict[str, Any]]:
        from .tortoise_models import TUser

        return [_user(u) for u in await TUser.all().order_by("id").limit(limit)]

    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        from tortoise.exceptions import IntegrityError
        from tortoise.transactions import in_transaction

        from .tortoise_models import TUser

        try:
            async with in_transaction():
                user = await TUser.get_or_none(id=user_id)
                if user is None:
                    return None
                for key, value in fields.items():
                    setattr(user, key, value)
                await user.save(update_fields=list(fields))  # the changed columns, as SQLAlchemy's flush sends
        except IntegrityError as exc:
            raise Duplicate() from exc
        return _user(user)

    async def delete_user(self, user_id: int) -> bool:
        from tortoise.transactions import in_transaction

        from .tortoise_models import TOrder, TUser

        async with in_transaction():
            await TOrder.filter(user_id=user_id).delete()
            return bool(await TUser.filter(id=user_id).delete())

    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None:
        from .tortoise_models import TOrder, TUser

        if not await TUser.exists(id=user_id):
            return None
        return [_order(o) for o in await TOrder.filter(user_id=user_id).order_by("id")]

    async def get_order(self, order_id: int) -> dict[str, Any] | None:
        from .tortoise_models import TOrder

        order = await TOrder.get_or_none(id=order_id)
        return _order(order) if order else None

    async def list_orders(self, limit: int) -> list[dict[str, Any]]:
        from .tortoise_models import TOrder

        return [_order(o) for o in await TOrder.all().order_by("id").limit(limit)]


class TurboAlchemyStore:
    """Reads on turboalchemy's reader pool in worker threads. Writes: on SQLite through one WriteQueue (group
    commit), on PostgreSQL on the pool like the reads (the library's advice: the server takes concurrent writers)."""

    def __init__(self, url: str, defaults: bool = False) -> None:
        self.url = url
        self.sqlite = _is_sqlite(url)

    async def start(self) -> None:
        # the stdlib's SQLite, as every other layer here (aiosqlite cannot use another): equal terms, and one SQLite
        # library per file in the process. Its WAL-reset warning (SQLite 3.40.1 here) applies to every layer alike.
        warnings.filterwarnings("ignore", "SQLite .* has the WAL-reset bug", RuntimeWarning)
        self.engine = (
            turboalchemy.create_engine(self.url, EQUAL, driver="stdlib")
            if self.sqlite
            # POOL connections held, as the others: turboalchemy's own 10 + 10 overflow closes every connection past
            # the tenth when it is returned, so 20 busy threads open and close connections all the time (measured:
            # 1.4 ms of machine CPU per request against SQLAlchemy's 0.96)
            # and no ping per checkout (the library's default), which none of the others sends
            else turboalchemy.create_engine(self.url, pool_size=POOL, max_overflow=0, pool_pre_ping=False)
        )
        self.reads = turboalchemy.reader(self.engine)
        self.queue = turboalchemy.WriteQueue(self.engine) if self.sqlite else None
        self.threads = ThreadPoolExecutor(POOL, thread_name_prefix="turboalchemy") if not self.sqlite else None

    async def stop(self) -> None:
        if self.queue is not None:
            self.queue.close()
        if self.threads is not None:
            self.threads.shutdown()
        self.engine.dispose()

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.threads, functools.partial(fn, *args))

    async def _write(self, fn: Any) -> Any:
        """fn(connection) in one write transaction: through the queue on SQLite, on the pool on PostgreSQL."""
        if self.queue is not None:
            return await self.queue.aexecute(fn)

        def in_transaction() -> Any:
            with self.engine.begin() as conn:
                return fn(conn)

        return await self._in_thread(in_transaction)

    def _read(self, stmt: Any) -> list[Any]:
        with self.reads.connect() as conn:
            return list(conn.execute(stmt))

    async def setup(self) -> dict[str, Any]:
        def both() -> dict[str, Any]:
            out = {}
            for name, engine in (("reader", self.reads), ("writer", self.engine)):
                with engine.connect() as conn:
                    keys = READ_BACK if self.sqlite else ("synchronous_commit", "shared_buffers", "server_version")
                    verb = "PRAGMA" if self.sqlite else "SHOW"
                    out[name] = {k: conn.exec_driver_sql(f"{verb} {k}").scalar() for k in keys}
            return out

        found = await self._in_thread(both)
        if found["reader"] != found["writer"]:
            raise RuntimeError(f"turboalchemy's reader and writer connections differ: {found}")
        return dict(found["writer"])

    async def create_user(self, name: str, email: str) -> dict[str, Any]:
        from sqlalchemy.exc import IntegrityError

        try:
            new_id = await self._write(
                lambda conn: conn.execute(
                    insert(USERS).values(name=name, email=email).returning(USERS.c.id)
                ).scalar_one()
            )
        except IntegrityError as exc:
            raise Duplicate() from exc
        return {"id": new_id, "name": name, "email": email}

    async def get_user(self, user_id: int) -> dict[str, Any] | None:
        rows = await self._in_thread(self._read, select(USERS).where(USERS.c.id == user_id))
        return _user(rows[0]) if rows else None

    async def list_users(self, limit: int) -> list[dict[str, Any]]:
        return [_user(r) for r in await self._in_thread(self._read, select(USERS).order_by(USERS.c.id).limit(limit))]

    async def update_user(self, user_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        from sqlalchemy.exc import IntegrityError

        def change(conn: Any) -> dict[str, Any] | None:
            found = conn.execute(select(USERS).where(USERS.c.id == user_id)).first()
            if found is None:
                return None
            conn.execute(update(USERS).where(USERS.c.id == user_id).values(**fields))
            return {**_user(found), **fields}

        try:
            return await self._write(change)  # type: ignore[no-any-return]
        except IntegrityError as exc:
            raise Duplicate() from exc

    async def delete_user(self, user_id: int) -> bool:
        def remove(conn: Any) -> bool:
            conn.execute(delete(ORDERS).where(ORDERS.c.user_id == user_id))
            return bool(conn.execute(delete(USERS).where(USERS.c.id == user_id)).rowcount)

        return bool(await self._write(remove))

    async def user_orders(self, user_id: int) -> list[dict[str, Any]] | None:
        def both() -> tuple[list[Any], list[Any]]:
            with self.reads.connect() as conn:
                with conn.begin():  # one snapshot for the existence check and the list
                    user = list(conn.execute(select(USERS.c.id).where(USERS.c.id == user_id)))
                    orders = list(conn.execute(select(ORDERS).where(ORDERS.c.user_id == user_id).order_by(ORDERS.c.id)))
            return user, orders

        user, orders = await self._in_thread(both)
        return [_order(o) for o in orders] if user else None

    async def get_order(self, order_id: int) -> dict[str, Any] | None:
        rows = await self._in_thread(self._read, select(ORDERS).where(ORDERS.c.id == order_id))
        return _order(rows[0]) if rows else None

    async def list_orders(self, limit: int) -> list[dict[str, Any]]:
        return [_order(r) for r in await self._in_thread(self._read, select(ORDERS).order_by(ORDERS.c.id).limit(limit))]


STORES = {"sqlalchemy": SqlAlchemyStore, "tortoise": TortoiseStore, "turboalchemy": TurboAlchemyStore}


def create_schema(url: str) -> None:
    """The two tables, created with SQLAlchemy for every layer (no layer generates its own schema)."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _found(value: Any, what: str) -> JSONResponse:
    """The body, or 404 naming what was not found (an empty list of orders is found)."""
    return JSONResponse(value) if value is not None else _problem(404, f"no such {what}")


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
    """The API over one data layer ("sqlalchemy", "tortoise+defaults", ...); the store starts and stops with the app."""
    base, defaults = split_layer(layer)
    store: Store = STORES[base](url, defaults)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            return None

    def number(request: Request, name: str) -> int | None:
        try:
            return int(request.path_params[name])
        except ValueError:
            return None

    def limit_of(request: Request) -> int | None:
        try:
            limit = int(request.query_params.get("limit", PAGE))
        except ValueError:
            return None
        return limit if 1 <= limit <= 100 else None

    async def create(request: Request) -> Response:
        fields = _validate(await body_of(request), partial=False)
        if isinstance(fields, str):
            return _problem(422, fields)
        try:
            return JSONResponse(await store.create_user(fields["name"], fields["email"]), status_code=201)
        except Duplicate:
            return _problem(409, "a user with this email exists")

    async def read(request: Request) -> Response:
        uid = number(request, "user_id")
        user = await store.get_user(uid) if uid is not None else None
        return _found(user, "user")

    async def users(request: Request) -> Response:
        limit = limit_of(request)
        return JSONResponse(await store.list_users(limit)) if limit else _problem(422, "limit must be 1 to 100")

    async def change(request: Request) -> Response:
        uid = number(request, "user_id")
        fields = _validate(await body_of(request), partial=True)
        if isinstance(fields, str):
            return _problem(422, fields)
        try:
            user = await store.update_user(uid, fields) if uid is not None else None
        except Duplicate:
            return _problem(409, "a user with this email exists")
        return _found(user, "user")

    async def remove(request: Request) -> Response:
        uid = number(request, "user_id")
        return (
            Response(status_code=204)
            if uid is not None and await store.delete_user(uid)
            else _problem(404, "no such user")
        )

    async def user_orders(request: Request) -> Response:
        uid = number(request, "user_id")
        found = await store.user_orders(uid) if uid is not None else None
        return _found(found, "user")

    async def order(request: Request) -> Response:
        oid = number(request, "order_id")
        found = await store.get_order(oid) if oid is not None else None
        return _found(found, "order")

    async def orders(request: Request) -> Response:
        limit = limit_of(request)
        return JSONResponse(await store.list_orders(limit)) if limit else _problem(422, "limit must be 1 to 100")

    async def setup(_request: Request) -> Response:
        return JSONResponse(await store.setup())

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
            Route("/users", users, methods=["GET"]),
            Route("/users/{user_id}", read, methods=["GET"]),
            Route("/users/{user_id}", change, methods=["PUT"]),
            Route("/users/{user_id}", remove, methods=["DELETE"]),
            Route("/users/{user_id}/orders", user_orders, methods=["GET"]),
            Route("/orders", orders, methods=["GET"]),
            Route("/orders/{order_id}", order, methods=["GET"]),
            Route("/_setup", setup, methods=["GET"]),
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
