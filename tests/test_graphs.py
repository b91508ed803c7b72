"""Graphs of objects: instances whose relationships hold new objects are written as session.add_all writes them
(parents first, keys returned, children with their foreign keys filled in), the stored rows equal to the ORM's on
a twin database; what add_all would do another way is refused before any SQL, naming the relationship."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy
from sqlalchemy import Column, ForeignKey, Integer, String, Table, create_engine, event, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import turboalchemy
from turboalchemy import BulkWriteError, SchemaMismatchError

from .shop import Customer, Order, Shop
from .test_contract import stored
from .test_writequeue import hold, until


def parents_with_children() -> list[Customer]:
    return [Customer(email=f"c{i}@shop.test", orders=[Order(item=f"o{i}.{j}") for j in range(i % 3)]) for i in range(7)]


def children_with_parents() -> list[Order]:
    shared = Customer(email="shared@shop.test")
    return [
        Order(item="a", customer=shared),
        Order(item="b", customer=Customer(email="own@shop.test", name="own")),
        Order(item="c"),
        Order(item="d", customer=shared),
    ]


GRAPHS = {
    "one-to-many children": (Customer, parents_with_children),
    "many-to-one parents": (Order, children_with_parents),
}


def ours_writes(engine, path: str, model, rows) -> int:
    if path == "engine":
        return turboalchemy.bulk_insert(engine, model, rows, chunk_size=3)
    if path == "connection":
        with engine.begin() as conn:
            return turboalchemy.bulk_insert(conn, model, rows, chunk_size=3)
    with Session(engine) as session:
        written = turboalchemy.bulk_insert(session, model, rows, chunk_size=3)
        session.commit()
    return written


@pytest.mark.parametrize("graph", list(GRAPHS))
@pytest.mark.parametrize("path", ["engine", "session", "connection"])
def test_a_graph_is_stored_as_add_all_stores_it(twins, path, graph):
    ours, theirs = twins
    model, make = GRAPHS[graph]
    with Session(theirs) as session:
        session.add_all(make())
        session.commit()
    rows = make()
    written = ours_writes(ours, path, model, rows)
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert stored(ours, Order) == stored(theirs, Order)
    assert written == len(stored(ours, Customer)) + len(stored(ours, Order))  # every row, related ones included


def test_in_a_session_the_objects_end_as_after_a_flush_and_commit_writes_nothing_more(twins):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, [{"email": "old@shop.test"}])
    statements: list[str] = []
    with Session(ours) as session:
        old = session.get(Customer, 1)
        orders = [Order(item="x", customer=Customer(email="new@shop.test")), Order(item="y", customer=old)]
        ids = turboalchemy.bulk_insert(session, Order, orders, returning=Order.id)
        assert ids == [o.id for o in orders] and [o.customer_id for o in orders] == [orders[0].customer.id, 1]
        assert all(o in session for o in orders) and orders[0].customer in session
        assert not session.new and not session.dirty

        def note(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(ours, "before_cursor_execute", note)
        session.commit()
        event.remove(ours, "before_cursor_execute", note)
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(stored(ours, Order)) == 2 and len(stored(ours, Customer)) == 2


@pytest.mark.parametrize("path", ["engine", "session", "connection"])
def test_new_children_of_stored_parents_only_are_stored_as_add_all_stores_them(twins, path):
    ours, theirs = twins

    def orders_of_known_customers(engine) -> list[Order]:
        with Session(engine) as session:
            known = session.scalars(select(Customer).order_by(Customer.id)).all()
        return [Order(item=f"o{i}", customer=known[i % 2]) for i in range(5)]  # (known: detached now)

    for engine in twins:
        turboalchemy.bulk_insert(engine, Customer, [{"email": "old@shop.test"}, {"email": "older@shop.test"}])
    with Session(theirs) as session:
        session.add_all(orders_of_known_customers(theirs))
        session.commit()
    assert ours_writes(ours, path, Order, orders_of_known_customers(ours)) == 5
    assert stored(ours, Order) == stored(theirs, Order)
    assert stored(ours, Customer) == stored(theirs, Customer)


def test_a_stored_object_the_graph_points_to_joins_the_session_as_add_alls_cascade_takes_it(twins):
    def scenario(engine, write) -> list[bool]:
        """A customer loaded by another Session (detached now), pointed to by a new order with a new customer's
        order beside it; which of the objects end in the writing Session."""
        with Session(engine) as other:
            known = other.get(Customer, 1)
        assert known is not None and sqlalchemy.inspect(known).detached
        orders = [Order(item="x", customer=known), Order(item="y", customer=Customer(email="new@shop.test"))]
        with Session(engine) as session:
            write(session, orders)
            return [o in session for o in (known, *orders, orders[1].customer)]

    ours, theirs = twins
    for engine in (ours, theirs):
        turboalchemy.bulk_insert(engine, Customer, [{"email": "old@shop.test"}])

    def add_all(session: Session, orders: list[Order]) -> None:
        session.add_all(orders)
        session.flush()

    expected = scenario(theirs, add_all)
    assert expected == [True, True, True, True]
    assert scenario(ours, lambda session, orders: turboalchemy.bulk_insert(session, Order, orders)) == expected
    assert stored(ours, Order) == stored(theirs, Order) and stored(ours, Customer) == stored(theirs, Customer)


@pytest.mark.parametrize("case", ["held as another object", "in another open Session"])
@pytest.mark.parametrize("writer", ["add_all", "bulk_insert"])
def test_a_stored_object_the_session_cannot_take_in_is_refused_before_any_sql_as_add_all_refuses_it(
    twins, writer, case
):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Customer, [{"email": "old@shop.test"}])
    with Session(ours) as other, Session(ours) as session:
        known = other.get(Customer, 1)
        if case == "held as another object":
            other.close()  # known is detached now
            own = session.get(Customer, 1)  # the Session's own object for that row (held: the map is weak)
            assert own is not known
        with pytest.raises(sqlalchemy.exc.InvalidRequestError, match="already|another Session"):
            orders = [Order(item="x", customer=known)]
            if writer == "add_all":
                session.add_all(orders)
            else:
                turboalchemy.bulk_insert(session, Order, orders)
        # nothing written, even inside the Session's transaction (read on its connection: no autoflush)
        assert session.connection().exec_driver_sql("SELECT count(*) FROM orders").scalar() == 0


def test_a_failing_child_rolls_back_its_parents_and_leaves_the_objects_new(twins):
    ours, _ = twins
    rows = [Customer(email="p@shop.test", orders=[Order(item="ok"), Order(item=None)])]  # item is NOT NULL
    objects = [rows[0], *rows[0].orders]
    before = [{k: v for k, v in vars(o).items() if k != "_sa_instance_state"} for o in objects]
    with pytest.raises(BulkWriteError, match="orders") as caught:
        turboalchemy.bulk_insert(ours, Customer, rows)
    assert caught.value.table == "orders" and caught.value.committed == 0
    assert stored(ours, Customer) == [] and stored(ours, Order) == []
    assert rows[0].id is None and sqlalchemy.inspect(rows[0]).transient  # no key from a rolled-back write
    # every object holds what it held before the call: no key, default or foreign key left from the write
    assert [{k: v for k, v in vars(o).items() if k != "_sa_instance_state"} for o in objects] == before


class Other(DeclarativeBase):
    pass


tagging = Table(
    "tagging", Other.metadata, Column("post_id", ForeignKey("posts.id")), Column("label_id", ForeignKey("labels.id"))
)


class Post(Other):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(20))
    labels: Mapped[list[Label]] = relationship(secondary=tagging)


class Label(Other):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Folder(Other):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))
    children: Mapped[list[Folder]] = relationship()


class Box(Other):
    __tablename__ = "boxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crates: Mapped[list[Crate]] = relationship()


class Crate(Other):
    __tablename__ = "crates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    box_id: Mapped[int | None] = mapped_column(ForeignKey("boxes.id"))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "crate"}


class FragileCrate(Crate):
    __mapper_args__ = {"polymorphic_identity": "fragile"}


@pytest.mark.parametrize(
    "model, rows, named",
    [
        (Post, lambda: [Post(title="t", labels=[Label(name="l")])], r"Post\.labels is many-to-many"),
        (Folder, lambda: [Folder(children=[Folder()])], r"Folder\.children relates Folder rows to each other"),
        (Box, lambda: [Box(crates=[Crate(), FragileCrate()])], r"FragileCrate objects, a subclass of Crate"),
    ],
    ids=["many-to-many", "self-referential", "a subclass sharing its table"],
)
def test_what_the_unit_of_work_would_order_itself_is_refused_before_any_sql(tmp_path, model, rows, named):
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    Other.metadata.create_all(engine)
    with pytest.raises(SchemaMismatchError, match=named):
        turboalchemy.bulk_insert(engine, model, rows())
    with engine.connect() as conn:  # (each chunk of an Engine target commits: anything written would show)
        assert all(
            conn.execute(select(func.count()).select_from(t)).scalar() == 0 for t in Other.metadata.sorted_tables
        )
    engine.dispose()


def test_a_stored_child_in_a_new_parent_is_refused_it_would_take_an_update(twins):
    ours, _ = twins
    turboalchemy.bulk_insert(ours, Order, [{"item": "kept"}])
    with Session(ours) as session:
        kept = session.get(Order, 1)
        with pytest.raises(SchemaMismatchError, match=r"Customer\.orders holds an object that is already stored"):
            turboalchemy.bulk_insert(session, Customer, [Customer(email="n@shop.test", orders=[kept])])
    assert stored(ours, Customer) == []


class Desk(DeclarativeBase):
    pass


class Writer(Desk):
    __tablename__ = "writers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    drafts: Mapped[list[Draft]] = relationship()  # declared first: add_all's cascade walks it first
    books: Mapped[list[Book]] = relationship()


class Book(Desk):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    writer_id: Mapped[int | None] = mapped_column(ForeignKey("writers.id"))
    title: Mapped[str] = mapped_column(String(20))


class Draft(Desk):
    __tablename__ = "drafts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    writer_id: Mapped[int | None] = mapped_column(ForeignKey("writers.id"))
    book_id: Mapped[int | None] = mapped_column(ForeignKey("books.id"))
    book: Mapped[Book | None] = relationship()


def test_rows_go_in_the_order_add_alls_cascade_meets_them_one_relationship_at_a_time(twins):
    """The draft (first relationship) reaches the second book before the writer's books are walked, so add_all
    inserts that book first, and the ids say so."""
    ours, theirs = twins

    def graph() -> list[Writer]:
        first, second = Book(title="first"), Book(title="second")
        return [Writer(drafts=[Draft(book=second)], books=[first, second])]

    for engine in (ours, theirs):
        Desk.metadata.create_all(engine)
    with Session(theirs) as session:
        session.add_all(graph())
        session.commit()
    turboalchemy.bulk_insert(ours, Writer, graph())
    for model in (Writer, Book, Draft):
        assert stored(ours, model) == stored(theirs, model), model.__name__
    assert [r[2] for r in stored(ours, Book)] == ["second", "first"]


def test_from_asyncio_and_an_async_iterable_a_graph_counts_every_row(tmp_path):
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'graph.db'}")

    async def rows():
        for i in range(3):
            yield Customer(email=f"{i}@shop.test", orders=[Order(item="a"), Order(item="b")])

    async def empty():
        for _ in ():
            yield None

    async def load() -> tuple[int, list]:
        async with engine.begin() as conn:
            await conn.run_sync(Customer.metadata.create_all)
        written = await turboalchemy.abulk_insert(engine, Customer, rows(), chunk_size=2)
        nothing = await turboalchemy.abulk_insert(engine, Customer, empty(), returning=Customer.id)
        await engine.dispose()
        return written, nothing

    assert asyncio.run(load()) == (9, [])


@pytest.mark.parametrize("target_kind", ["session", "connection"])
def test_a_rolled_back_transaction_leaves_the_objects_new_again_and_a_retry_writes_them(twins, target_kind):
    """As after add_all and a rollback: the objects are transient again (their values kept), so writing them
    once more writes every row, children included, instead of taking them for stored."""
    ours, theirs = twins
    with Session(theirs) as session:
        session.add_all(parents_with_children())
        session.commit()
    rows = parents_with_children()
    if target_kind == "session":
        with Session(ours) as session:
            turboalchemy.bulk_insert(session, Customer, rows)
            assert all(c in session for c in rows)
            session.rollback()
    else:
        with ours.connect() as conn:
            turboalchemy.bulk_insert(conn, Customer, rows)
            conn.rollback()
    assert all(sqlalchemy.inspect(c).transient for c in rows)
    assert stored(ours, Customer) == []
    turboalchemy.bulk_insert(ours, Customer, rows)
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert stored(ours, Order) == stored(theirs, Order)


@pytest.mark.parametrize("target_kind", ["session", "connection"])
def test_when_a_later_chunk_fails_and_the_caller_rolls_back_the_earlier_chunks_objects_are_new_again(
    twins, target_kind
):
    ours, _ = twins
    rows = [*parents_with_children()[:4], Customer(email="c0@shop.test")]  # the last repeats a unique email
    with pytest.raises(BulkWriteError):
        if target_kind == "session":
            with Session(ours) as session:
                try:
                    turboalchemy.bulk_insert(session, Customer, rows, chunk_size=2)
                finally:
                    session.rollback()
        else:
            with ours.connect() as conn:
                try:
                    turboalchemy.bulk_insert(conn, Customer, rows, chunk_size=2)
                finally:
                    conn.rollback()
    assert all(sqlalchemy.inspect(c).transient for c in rows)  # chunks 1 and 2 were written, then rolled back
    assert stored(ours, Customer) == []


def test_a_graph_in_a_write_queue_batch_that_sqlite_rolls_back_whole_is_written_again_whole(tmp_path):
    """Another item of the batch ends SQLite's transaction (INSERT OR ROLLBACK), so the queue runs the graph's
    write again in a new one: its objects were made new again by the rollback, so the rerun writes every row,
    children with their parents' new keys, rather than taking them for stored."""
    theirs = create_engine(f"sqlite:///{tmp_path / 'theirs.db'}")
    ours = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'ours.db'}")
    for engine in (ours, theirs):
        Shop.metadata.create_all(engine)
    with Session(theirs) as session:
        session.add_all(parents_with_children())
        session.commit()
    rows = parents_with_children()
    with turboalchemy.WriteQueue(ours) as queue:
        queue.execute(text("CREATE TABLE guard (x INTEGER UNIQUE)"))
        queue.execute(text("INSERT INTO guard (x) VALUES (0)"))
        release = hold(queue)
        written: list[int] = []
        failed: list[BaseException] = []

        def write() -> None:
            try:
                written.append(queue.bulk_insert(Customer, rows))
            except BaseException as exc:
                failed.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        until(lambda: len(queue._pending) == 1)  # the graph's chunk waits first in the batch
        bad = queue.submit(text("INSERT OR ROLLBACK INTO guard (x) VALUES (0)"))
        release.set()
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            bad.result(5)
        writer.join(5)
        assert not writer.is_alive() and not failed, failed
        assert queue.stats.retried_batches == 1
    assert written == [len(stored(theirs, Customer)) + len(stored(theirs, Order))]
    assert stored(ours, Customer) == stored(theirs, Customer)
    assert stored(ours, Order) == stored(theirs, Order)
    for engine in (ours, theirs):
        engine.dispose()
