"""Repository: ORM CRUD and the bulk fast path on one session, the study's hybrid repository."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from turboalchemy._targets import classify
from turboalchemy._write.bulk import bulk_insert, bulk_upsert

M = TypeVar("M")


class Repository(Generic[M]):
    """ORM for single rows, executemany for bulk; both in the session's transaction (the caller commits)."""

    def __init__(self, session: Session, model: type[M]) -> None:
        classify(session, frozenset({"session"}), "Repository")
        self.session = session
        self.model = model

    def get(self, ident: Any) -> M | None:
        return self.session.get(self.model, ident)

    def create(self, **values: Any) -> M:
        """Add one object through the ORM and flush it, so defaults and keys are filled in."""
        obj = self.model(**values)
        self.session.add(obj)
        self.session.flush()
        return obj

    def list(self, *where: Any, limit: int | None = None) -> list[M]:
        return list(self.session.scalars(select(self.model).where(*where).limit(limit)))

    def delete(self, obj: M) -> None:
        self.session.delete(obj)
        self.session.flush()

    @overload
    def bulk_insert(self, rows: Iterable[Any], *, chunk_size: int = ..., returning: None = ...) -> int: ...
    @overload
    def bulk_insert(self, rows: Iterable[Any], *, chunk_size: int = ..., returning: Any) -> builtins.list[Any]: ...

    def bulk_insert(
        self, rows: Iterable[Any], *, chunk_size: int = 5000, returning: Any = None
    ) -> int | builtins.list[Any]:
        """turboalchemy.bulk_insert in the session's transaction: the count, or with `returning=` the list."""
        written: int | builtins.list[Any] = bulk_insert(
            self.session, self.model, rows, chunk_size=chunk_size, returning=returning
        )
        return written

    @overload
    def bulk_upsert(
        self,
        rows: Iterable[Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = ...,
        chunk_size: int = ...,
        returning: None = ...,
    ) -> int: ...
    @overload
    def bulk_upsert(
        self,
        rows: Iterable[Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = ...,
        chunk_size: int = ...,
        returning: Any,
    ) -> builtins.list[Any]: ...

    def bulk_upsert(
        self,
        rows: Iterable[Any],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = None,
        chunk_size: int = 5000,
        returning: Any = None,
    ) -> int | builtins.list[Any]:
        """Upsert, then expire loaded objects so none shows a value the upsert replaced."""
        self.session.flush()
        self.session.expire_all()
        written: int | builtins.list[Any] = bulk_upsert(
            self.session, self.model, rows, conflict=conflict, update=update, chunk_size=chunk_size, returning=returning
        )
        return written
