"""Models the library tests write through: every type the fast path must process like the ORM."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import (
    JSON,
    REAL,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

FIXED = datetime(2020, 2, 2, 2, 2, 2, 2)


class Base(DeclarativeBase):
    pass


class Mood(enum.Enum):
    calm = "calm"
    busy = "busy"


class Shout(TypeDecorator):
    """A TypeDecorator whose bind step the fast path must apply (the ORM does)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.upper()


def _echo_name(context) -> str:
    return context.get_current_parameters()["name"] + "!"


class Every(Base):
    __tablename__ = "every"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    when: Mapped[datetime | None] = mapped_column(DateTime)
    day: Mapped[date | None] = mapped_column(Date)
    at: Mapped[time | None] = mapped_column(Time)
    flag: Mapped[bool | None] = mapped_column(Boolean)
    mood: Mapped[Mood | None] = mapped_column(Enum(Mood))
    doc: Mapped[dict | None] = mapped_column(JSON)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    span: Mapped[timedelta | None] = mapped_column(Interval)
    shout: Mapped[str | None] = mapped_column(Shout)
    ratio: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=7)
    stamped: Mapped[datetime] = mapped_column(
        DateTime, default=lambda: FIXED, onupdate=lambda: FIXED + timedelta(days=1)
    )
    echo: Mapped[str] = mapped_column(String, default=_echo_name)
    label: Mapped[str] = mapped_column("label text", String, default="x")  # attribute and column names differ


class Reading(Base):
    """A keyed table for upserts."""

    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[str] = mapped_column(String(20))
    slot: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(50))
    __table_args__ = (UniqueConstraint("sensor", "slot"),)


strict_meta = MetaData()
STRICT = Table(
    "strict_rows",
    strict_meta,
    Column("id", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("x", REAL),
    Column("s", Text),
    sqlite_strict=True,  # STRICT accepts only INTEGER, REAL, TEXT, BLOB and ANY
)

odd_meta = MetaData()
ODD = Table(
    'select "odd" table',
    odd_meta,
    Column("id", Integer, primary_key=True),
    Column("order", String),  # a reserved word
    Column("with space", Integer),
    Column('quote"d', String),
    UniqueConstraint("order", "with space"),
)
