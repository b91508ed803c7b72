"""Graphs of objects: instances whose relationships hold new related objects, written as session.add_all would
write them, level by level: the tables other rows point to first (their keys come back through RETURNING),
then the rows that point to them with their foreign keys filled in, each level through the fast path.

What the unit of work would do some other way is refused before any SQL, naming the relationship: a
many-to-many relationship (its secondary table), a cycle between tables (a self-referential relationship),
and a related object that is already stored but would have to be UPDATEd to point at a new row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.interfaces import MANYTOONE, ONETOMANY

from turboalchemy.errors import SchemaMismatchError


@dataclass
class Level:
    """The new objects of one mapped class, and the foreign keys to copy into them from the objects they point
    to once those are written, as one flat list of triples: object, ((attribute to set, attribute read), ...),
    object pointed to. (Flat, not a list per object: a graph holds hundreds of thousands of objects, and every
    container that outlives the walk is one more object each of the garbage collector's full passes visits.)"""

    model: type[Any]
    objects: list[Any] = field(default_factory=list)
    links: list[Any] = field(default_factory=list)


@functools.lru_cache(maxsize=256)
def _attribute_of(mapper: Mapper[Any], column: Any) -> str:
    return str(mapper.get_property_by_column(column).key)


def holds_new_objects(model: Any, chunk: list[Any]) -> bool:
    """Whether any instance of the chunk holds related objects (which the flat path would refuse), by each
    instance's own class (a subclass may add relationships)."""
    keys_of: dict[type[Any], tuple[str, ...]] = {}
    for obj in chunk:
        cls: Any = type(obj)
        keys = keys_of.get(cls)
        if keys is None:
            keys = keys_of[cls] = tuple(edge.key for edge in _edges(cls))
        if not keys:
            continue
        state = vars(obj)
        for key in keys:
            value = state.get(key)
            if value is not None and value != []:
                return True
    return False


def _name(relationship: Any) -> str:
    return f"{relationship.parent.class_.__name__}.{relationship.key}"


def _stored(obj: Any) -> bool:
    return instance_state(obj).key is not None


@dataclass(frozen=True)
class _Edge:
    """What one relationship means for writing: which side goes first, and the attribute pairs to copy."""

    relationship: Any
    key: str
    many: bool
    points_out: bool  # many-to-one: the object points to the related one (related first)
    pairs: tuple[tuple[str, str], ...]  # (attribute set on the pointing object, attribute read on the pointed-to)
    first: type[Any]
    then: type[Any]


@functools.lru_cache(maxsize=256)
def _edges(model: Any) -> tuple[_Edge, ...]:
    """The model's relationships that save-update cascades along, in the mapper's order (add_all's order)."""
    mapper = inspect(model)
    out = []
    for relationship in mapper.relationships:
        other = relationship.mapper
        pairs = tuple(relationship.local_remote_pairs)
        if relationship.direction is MANYTOONE:
            copied = tuple((_attribute_of(mapper, mine), _attribute_of(other, theirs)) for mine, theirs in pairs)
            first, then, out_ = other.class_, mapper.class_, True
        elif relationship.direction is ONETOMANY:
            copied = tuple((_attribute_of(other, theirs), _attribute_of(mapper, mine)) for mine, theirs in pairs)
            first, then, out_ = mapper.class_, other.class_, False
        else:
            copied, first, then, out_ = (), mapper.class_, other.class_, False
        out.append(_Edge(relationship, relationship.key, bool(relationship.uselist), out_, copied, first, then))
    return tuple(out)


def _refuse(edge: _Edge) -> None:
    """Raise for a relationship bulk writes cannot follow the way the unit of work would."""
    relationship = edge.relationship
    if relationship.secondary is not None:
        raise SchemaMismatchError(
            f"{_name(relationship)} is many-to-many (through {relationship.secondary.name!r}); bulk writes "
            "fill foreign keys level by level and do not write secondary tables: insert the association "
            "rows with their own bulk_insert, or use session.add_all"
        )
    if edge.first is edge.then:
        raise SchemaMismatchError(
            f"{_name(relationship)} relates {edge.first.__name__} rows to each other; bulk writes go a table "
            "at a time, so a self-referential graph would need the unit of work's row ordering: use "
            "session.add_all"
        )
    if not relationship.cascade.save_update:
        raise SchemaMismatchError(
            f"{_name(relationship)} holds new objects but does not cascade save-update, so add_all would not write "
            "them either: write them with their own call"
        )


def levels(model: Any, chunk: list[Any]) -> tuple[list[Level], list[Any]]:
    """The chunk's graph as levels in the order they must be written, each level's objects in the order add_all
    would insert them: each object as it joins, then depth first what its save-update cascade reaches (the
    mapper's relationship order, each collection in order), as SQLAlchemy's cascade_iterator walks it; and the
    objects met that are stored already (pointed to, not written; a Session target takes them in, as add_all's
    cascade would). Raises SchemaMismatchError, before any SQL, for what bulk writes cannot do as the ORM would."""
    found: dict[type[Any], Level] = {}
    order: TopologicalSorter[type[Any]] = TopologicalSorter()
    used: dict[tuple[type[Any], type[Any]], Any] = {}  # (written first, then): the relationship that orders them
    checked: set[Any] = set()  # relationships already checked by _refuse
    seen: set[int] = set()
    stored: list[Any] = []

    def depend(then: Any, first: Any, relationship: Any) -> None:
        """Rows of class `then` point to new rows of class `first` (the objects' own classes, so a subclass's
        level is ordered too), which are written first."""
        if (first, then) not in used:
            used[(first, then)] = relationship
            order.add(then, first)

    def level_of(cls: Any) -> Level:
        level = found.get(cls)
        if level is None:
            if inspect(cls).inherits is not None:
                raise SchemaMismatchError(
                    f"the graph holds {cls.__name__} objects, a subclass of {inspect(cls).inherits.class_.__name__}; "
                    "bulk writes go a class at a time and would not order the rows of one table that two classes "
                    "share as the unit of work does: use session.add_all, or write the subclass's rows with their "
                    "own bulk_insert"
                )
            level = found[cls] = Level(cls)
            order.add(cls)
        return level

    def visit(obj: Any) -> bool:
        """Put a new object in its level (False: stored already, nothing to walk)."""
        if _stored(obj):  # stored already (or by an earlier chunk of the call, reached through a backref)
            stored.append(obj)
            return False
        level_of(type(obj)).objects.append(obj)
        return True

    def related(obj: Any, edge: _Edge) -> list[Any]:
        """The objects `edge` of `obj` holds that the walk has not met yet; every one of them is linked."""
        value = vars(obj).get(edge.key)
        if value is None or value == []:
            return []
        if edge.relationship not in checked:  # (not the edge itself: a dataclass hashes all its fields each time)
            _refuse(edge)
            checked.add(edge.relationship)
        fresh: list[Any] = []
        pairs = edge.pairs
        ordered: Any = None  # the last target class ordered against obj's (a collection is mostly of one)
        for target in value if edge.many else (value,):
            cls = type(target)
            if edge.points_out:  # obj points to target: its keys are copied from the target's
                level_of(type(obj)).links += (obj, pairs, target)
                if cls is not ordered and not _stored(target):  # (a stored one has its key: nothing to wait for)
                    depend(type(obj), cls, edge.relationship)
                    ordered = cls
            elif _stored(target):
                raise SchemaMismatchError(
                    f"{_name(edge.relationship)} holds an object that is already stored; pointing it at a "
                    "new row takes an UPDATE, which bulk_insert does not do: use session.add_all, or set its "
                    "foreign key and update it yourself"
                )
            else:  # target points to obj
                level_of(cls).links += (target, pairs, obj)
                if cls is not ordered:
                    depend(cls, type(obj), edge.relationship)
                    ordered = cls
            if id(target) not in seen:
                seen.add(id(target))
                fresh.append(target)
        return fresh

    def reached(obj: Any) -> Iterator[Any]:
        """What obj's relationships hold, one relationship at a time in the mapper's order (each looked at only
        once the objects of the one before are walked whole)."""
        cls: Any = type(obj)
        for edge in _edges(cls):
            yield from related(obj, edge)

    # The walk of SQLAlchemy's cascade_iterator: an object's relationships one at a time, in the mapper's order;
    # each object of a relationship, as it is met, walked whole before the next (depth first).
    done = object()
    for top in chunk:
        if id(top) in seen:
            continue
        seen.add(id(top))
        if not visit(top):
            continue
        stack = [reached(top)]
        while stack:
            target = next(stack[-1], done)
            if target is done:
                stack.pop()
            elif visit(target):
                stack.append(reached(target))
    try:
        sequence = list(order.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        names = [_name(used[(b, a)]) for a, b in zip(cycle, cycle[1:]) if (b, a) in used]
        raise SchemaMismatchError(
            f"the relationships {', '.join(names) or '(between ' + ', '.join(c.__name__ for c in cycle) + ')'} form a "
            "cycle between tables; bulk writes go a table at a time and cannot order its rows: use session.add_all"
        ) from None
    return [found[cls] for cls in sequence], stored


def _triples(links: list[Any]) -> Iterator[tuple[Any, Any, Any]]:
    return zip(links[0::3], links[1::3], links[2::3])


def fill_foreign_keys(level: Level) -> None:
    """Copy each object's foreign keys from the objects it points to, written (and keyed) by earlier levels."""
    for obj, pairs, target in _triples(level.links):
        state, source = vars(obj), vars(target)
        for attribute, key in pairs:
            state[attribute] = source[key] if key in source else getattr(target, key)


def unfill_foreign_keys(level: Level) -> None:
    """Take back what fill_foreign_keys set (the write rolled back: the objects stay new, as before the call)."""
    for obj, pairs, _target in _triples(level.links):
        state = vars(obj)
        for attribute, _key in pairs:
            state.pop(attribute, None)
