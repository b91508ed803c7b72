"""Every public function given what a caller gets wrong (no target, a wrong kind of target, a file that is not a
database, a bad argument): one of our errors, or the ValueError/TypeError it refines, with a message; never an
AttributeError or a driver's raw error from deep inside."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

import turboalchemy
from turboalchemy.errors import TurboAlchemyError

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String))
EXPECTED = (TurboAlchemyError, ValueError, TypeError, FileNotFoundError)


def calls(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    missing = tmp_path / "missing.db"
    engine = turboalchemy.create_engine(f"sqlite:///{tmp_path / 'ok.db'}")
    metadata.create_all(engine)

    def run(coro):
        return asyncio.run(coro)

    async def drain(aiterator):
        return [row async for row in aiterator]

    return {
        "bulk_insert(None)": lambda: turboalchemy.bulk_insert(None, items, [{"name": "a"}]),
        "bulk_insert(a path)": lambda: turboalchemy.bulk_insert(str(tmp_path / "ok.db"), items, [{"name": "a"}]),
        "bulk_insert(an unknown column)": lambda: turboalchemy.bulk_insert(engine, items, [{"nope": 1}]),
        "bulk_insert(chunk_size=0)": lambda: turboalchemy.bulk_insert(engine, items, [{"name": "a"}], chunk_size=0),
        "bulk_insert(a row that is not a row)": lambda: turboalchemy.bulk_insert(engine, items, [42]),
        "bulk_insert(returning=an unknown column)": lambda: turboalchemy.bulk_insert(
            engine, items, [{"name": "a"}], returning="nope"
        ),
        "bulk_upsert(an unknown conflict key)": lambda: turboalchemy.bulk_upsert(
            engine, items, [{"id": 1, "name": "a"}], conflict=["nope"]
        ),
        "abulk_insert(a sync engine)": lambda: run(turboalchemy.abulk_insert(engine, items, [{"name": "a"}])),
        "create_engine(mysql)": lambda: turboalchemy.create_engine("mysql://x@localhost/y"),
        "create_engine(an unknown profile)": lambda: turboalchemy.create_engine("sqlite://", profile="fastest"),
        "create_engine(an unknown PRAGMA)": lambda: turboalchemy.create_engine("sqlite://", profile={"nope": 1}),
        "health(None)": lambda: turboalchemy.health(None),
        "health(a missing file)": lambda: turboalchemy.health(missing),
        "health(not a database)": lambda: turboalchemy.health(notes),
        "advise(not a database)": lambda: turboalchemy.advise(notes),
        "backup(a missing file)": lambda: turboalchemy.backup(missing, tmp_path / "out.db"),
        "backup(not a database)": lambda: turboalchemy.backup(notes, tmp_path / "out.db"),
        "backup(method=fast)": lambda: turboalchemy.backup(engine, tmp_path / "out.db", method="fast"),
        "migrate(no folder)": lambda: turboalchemy.migrate(engine, tmp_path / "nowhere"),
        "migrate(not a database)": lambda: turboalchemy.migrate(notes, tmp_path),
        "copy_database(paths)": lambda: turboalchemy.copy_database(str(missing), str(notes)),
        "explain(two statements)": lambda: turboalchemy.explain(engine, "SELECT 1; DELETE FROM items"),
        "explain(None)": lambda: turboalchemy.explain(None, "SELECT 1"),
        "keyset_page(no ORDER BY)": lambda: turboalchemy.keyset_page(engine, select(items), size=10),
        "keyset_page(size=0)": lambda: turboalchemy.keyset_page(engine, select(items).order_by(items.c.id), size=0),
        "stream(None)": lambda: list(turboalchemy.stream(None, select(items))),
        "astream(a sync engine)": lambda: run(drain(turboalchemy.astream(engine, select(items)))),
        "reader(None)": lambda: turboalchemy.reader(None),
        "pool_status(None)": lambda: turboalchemy.pool_status(None),
        "strict_tables(None)": lambda: turboalchemy.strict_tables(None),
        "WriteQueue(None)": lambda: turboalchemy.WriteQueue(None),
        "Repository(None)": lambda: turboalchemy.Repository(None, items),
    }


def _names() -> list[str]:
    """The cases' names, from a throwaway folder (each test builds its own)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return list(calls(Path(folder)))


@pytest.mark.parametrize("case", _names())
def test_a_public_call_given_the_wrong_thing_raises_one_of_our_errors(tmp_path, case):
    call = calls(tmp_path)[case]
    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    assert isinstance(error, EXPECTED), f"{case}: {type(error).__module__}.{type(error).__name__}: {error}"
    assert str(error).strip(), f"{case}: an error without a message"
