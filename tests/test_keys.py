"""turboalchemy.uuid7: valid RFC 9562 version 7, ordered across calls, unique under concurrency."""

import threading
import uuid

from sqlalchemy import create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session

import turboalchemy


def test_values_are_version_7_in_canonical_text_and_bytes():
    text = turboalchemy.uuid7()
    parsed = uuid.UUID(text)
    assert len(text) == 36 and str(parsed) == text
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    raw = turboalchemy.uuid7_bytes()
    assert len(raw) == 16 and uuid.UUID(bytes=raw).version == 7


def test_later_calls_sort_after_earlier_ones():
    values = [turboalchemy.uuid7() for _ in range(50_000)]
    assert values == sorted(values) and len(set(values)) == len(values)
    blobs = [turboalchemy.uuid7_bytes() for _ in range(10_000)]
    assert blobs == sorted(blobs)


def test_unique_across_threads():
    seen: list[str] = []

    def make() -> None:
        seen.extend(turboalchemy.uuid7() for _ in range(20_000))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 160_000 and len(set(seen)) == 160_000


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "events"
    id: Mapped[str] = turboalchemy.uuid7_primary_key()
    name: Mapped[str]


class Blob(Base):
    __tablename__ = "blobs"
    id: Mapped[bytes] = turboalchemy.uuid7_primary_key(as_bytes=True)
    name: Mapped[str]


def test_the_column_helper_fills_keys_through_the_orm_and_the_fast_path(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Event(name="orm"), Blob(name="orm")])
        session.commit()
    turboalchemy.bulk_insert(engine, Event, [{"name": f"bulk{i}"} for i in range(100)])
    turboalchemy.bulk_insert(engine, Blob, [{"name": f"bulk{i}"} for i in range(100)])
    with Session(engine) as session:
        ids = session.scalars(select(Event.id).order_by(Event.id)).all()
        names = session.scalars(select(Event.name).order_by(Event.id)).all()
        blobs = session.scalars(select(Blob.id)).all()
    assert len(ids) == 101 and names[0] == "orm" and names[1:] == [f"bulk{i}" for i in range(100)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert all(len(b) == 16 for b in blobs)
