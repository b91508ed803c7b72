"""What a model's table is, asked in one place: the Table behind a model, the names rows may use for its
columns, and its unique keys (the primary key, unique constraints and unique indexes on plain columns)."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Table, UniqueConstraint, inspect
from sqlalchemy.schema import Column

from turboalchemy.errors import SchemaMismatchError

Model: TypeAlias = type[Any] | Table
"""A mapped class (declarative, dataclass-mapped or imperatively mapped) or a Core Table."""


def table_of(model: object) -> Table:
    """The Table behind a mapped class (or the Table itself); SchemaMismatchError for anything else."""
    if isinstance(model, Table):
        return model
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise SchemaMismatchError(f"{model!r} is neither a Table nor a mapped class with a __table__")
    return table


def key_map(model: object, table: Table) -> dict[str, str]:
    """Every name a row may use for a column (attribute key, column key, column name) -> column key."""
    names = {c.key: c.key for c in table.columns} | {c.name: c.key for c in table.columns}
    if not isinstance(model, Table):
        for attr in inspect(model).column_attrs:
            if len(attr.columns) == 1 and attr.columns[0].table is table:
                names[attr.key] = attr.columns[0].key
    return names


def unique_keys(table: Table) -> list[frozenset[str]]:
    """The column-key sets the database holds unique: primary key, unique constraints, unique column indexes."""
    sets = [frozenset(c.key for c in table.primary_key.columns)] if table.primary_key.columns else []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            sets.append(frozenset(c.key for c in constraint.columns))
    for index in table.indexes:
        if index.unique and all(isinstance(e, Column) for e in index.expressions):
            sets.append(frozenset(c.key for c in index.columns))
    return sets
