"""The study's table, `bench_rows`, as a SQLAlchemy 2.x declarative model, and the SQL the raw path uses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, MetaData, String, Table, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class BenchRow(Base):
    """One measurement row: a UUID text key, a natural key for upserts, a numeric payload, timestamps."""

    __tablename__ = "bench_rows"

    row_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    entity_id: Mapped[int] = mapped_column(Integer)
    sub_entity_id: Mapped[int] = mapped_column(Integer)
    bucket_index: Mapped[int] = mapped_column(Integer)
    measurement_x: Mapped[float] = mapped_column(Float)
    measurement_y: Mapped[float] = mapped_column(Float)
    measurement_z: Mapped[float] = mapped_column(Float)
    category_id: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    # The upsert conflict target, declared once (the study's harness also created a second,
    # identical unique index at run time; we do not).
    __table_args__ = (
        UniqueConstraint("tenant_id", "entity_id", "sub_entity_id", "bucket_index", name="uq_bench_row_natural_key"),
    )


TABLE = BenchRow.__table__
COLUMNS: tuple[str, ...] = tuple(c.name for c in TABLE.columns)
NATURAL_KEY: tuple[str, ...] = ("tenant_id", "entity_id", "sub_entity_id", "bucket_index")
# What an upsert overwrites, as in the study: the payload and updated_at, never the keys or created_at.
UPDATE_COLUMNS: tuple[str, ...] = (
    "measurement_x",
    "measurement_y",
    "measurement_z",
    "category_id",
    "weight",
    "status",
    "updated_at",
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_INSERT_HEAD = (
    f"INSERT INTO {_quote(TABLE.name)} ({', '.join(map(_quote, COLUMNS))}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
INSERT_SQL = _INSERT_HEAD
UPSERT_SQL = f"{_INSERT_HEAD} ON CONFLICT ({', '.join(map(_quote, NATURAL_KEY))}) DO UPDATE SET " + ", ".join(
    f"{_quote(c)} = excluded.{_quote(c)}" for c in UPDATE_COLUMNS
)


SCHEMAS = ("study", "lean", "ordered")
# The study's separate tenant_id index duplicates the unique constraint's leading column.
REDUNDANT_INDEX = "ix_bench_rows_tenant_id"
# The natural key in the order rows arrive (n grows: bucket slowest, entity fastest).
ARRIVAL_ORDER = ("tenant_id", "bucket_index", "sub_entity_id", "entity_id")


def _ordered_table() -> Table:
    """bench_rows without the redundant index and with its unique constraint declared in arrival order:
    the same constraint (ON CONFLICT matches it by its set of columns), but inserts append at its right edge."""
    table = TABLE.to_metadata(MetaData())
    for constraint in [c for c in table.constraints if isinstance(c, UniqueConstraint)]:
        table.constraints.discard(constraint)
    table.indexes.clear()
    table.append_constraint(UniqueConstraint(*ARRIVAL_ORDER, name="uq_bench_row_natural_key"))
    return table


def create_schema(engine: Engine, schema: str = "study") -> None:
    """Create `bench_rows` if it does not exist. `study`: the published table. `lean`: without the index
    that duplicates the unique constraint's leading column. `ordered`: lean, with the unique constraint's
    columns in the order rows arrive. All three hold the same data and accept the same upserts."""
    if schema not in SCHEMAS:
        raise ValueError(f"schema must be one of {SCHEMAS}, not {schema!r}")
    if schema == "ordered":
        _ordered_table().create(engine, checkfirst=True)
        return
    Base.metadata.create_all(engine)
    if schema == "lean":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {REDUNDANT_INDEX}")
