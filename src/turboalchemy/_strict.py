"""STRICT tables from SQLAlchemy models: `strict_tables(Base.metadata)` before `create_all`.

SQLAlchemy renders `STRICT` for a table with `sqlite_strict=True`, but keeps the column types it would
declare anyway (VARCHAR(36), DATETIME, NUMERIC(10, 4), ...), which a STRICT table refuses: it takes only
INTEGER, REAL, TEXT, BLOB and ANY. So for STRICT tables only, each column is declared with the STRICT
type that holds what SQLAlchemy binds for its type on SQLite; values are bound exactly as before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, Table, types
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

from turboalchemy.errors import SchemaMismatchError


def strict_tables(target: Any) -> MetaData:
    """Mark every table of `target` (a MetaData, a declarative Base, or a mapped class) STRICT on SQLite and
    return its MetaData; call it before `metadata.create_all(engine)`. Other databases ignore the option.

    A STRICT table refuses a value whose type does not fit its column (text into an INTEGER column, say)
    instead of storing it as given; the fast path reports it as a BulkWriteError naming the row and column.
    """
    metadata = target if isinstance(target, MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise TypeError(f"strict_tables takes a MetaData, a declarative Base or a mapped class, not {target!r}")
    for table in metadata.tables.values():
        table.dialect_options["sqlite"]["strict"] = True
    return metadata


def strict_type(type_: types.TypeEngine[Any]) -> str:
    """The STRICT column type that holds what SQLAlchemy binds for `type_` on SQLite."""
    impl = type_
    while isinstance(impl, types.TypeDecorator):
        impl = impl.impl_instance
    if isinstance(impl, (types.Integer, types.Boolean)):
        return "INTEGER"
    if isinstance(impl, (types.Float, types.Numeric)):
        return "REAL"
    if isinstance(impl, types._Binary):
        return "BLOB"
    if isinstance(
        impl, (types.String, types.Date, types.DateTime, types.Time, types.Interval, types.Uuid, types.JSON, types.Enum)
    ):
        return "TEXT"
    return "ANY"


@compiles(CreateColumn, "sqlite")
def _strict_column(element: CreateColumn, compiler: Any, **kw: Any) -> str:
    column = element.element
    text: str = compiler.visit_create_column(element, **kw)
    table = column.table
    if not isinstance(table, Table) or not table.dialect_options["sqlite"]["strict"] or text is None:
        return text
    name = compiler.preparer.format_column(column)
    declared = compiler.dialect.type_compiler_instance.process(column.type, type_expression=column)
    head = f"{name} {declared}"
    if not text.startswith(head):
        raise SchemaMismatchError(f"cannot declare {table.name}.{column.name} for a STRICT table: {text!r}")
    return f"{name} {strict_type(column.type)}{text[len(head) :]}"
