"""A small shop schema, the shape new users bring: serial ids left to the database, server defaults,
optional columns, natural keys that allow NULL, and the same table name in two schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, Numeric, String, Table, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Shop(DeclarativeBase):
    pass


class Customer(Shop):
    """An autoincrement id the rows leave out, a NOT NULL server default, an optional column."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(80), unique=True)
    tier: Mapped[str] = mapped_column(String(10), server_default=text("'basic'"))
    name: Mapped[str | None] = mapped_column(String(40))
    balance: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=Decimal("0"))
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Shop):
    """A child row: its foreign key is filled by the ORM from the relationship."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    item: Mapped[str] = mapped_column(String(20))
    customer: Mapped[Customer | None] = relationship(back_populates="orders")


class Tag(Shop):
    """A natural key whose columns may be NULL: ON CONFLICT treats NULLs as distinct, so no row conflicts."""

    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str | None] = mapped_column(String(10))
    grp: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(20))
    __table_args__ = (UniqueConstraint("code", "grp"),)


class Visit(Shop):
    """A naive DateTime column, given aware datetimes: stored as a bound value would be."""

    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    at: Mapped[datetime] = mapped_column(DateTime)


class Excluded(Shop):
    """A table named like the pseudo-table of an upsert's SET clause."""

    __tablename__ = "excluded"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    price: Mapped[int] = mapped_column(Integer)


# The same table name in two PostgreSQL schemas, with different column types (created by the tests).
schemas = MetaData()
PRICES_A = Table("prices", schemas, Column("id", Integer, primary_key=True), Column("v", Numeric(10, 0)), schema="a")
PRICES_B = Table("prices", schemas, Column("id", Integer, primary_key=True), Column("v", Numeric(10, 4)), schema="b")
