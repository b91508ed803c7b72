"""advise: read a SQLite database's schema and statistics and say what slows its writes, with the fix.

Advice is text plus the exact SQL or model change; nothing is changed. Effects quoted are measured on
the benchmark's study table (see the README) or estimated from the database's own numbers.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from turboalchemy import _driver
from turboalchemy._sqlite import WITH_CONNECTION, reading
from turboalchemy._sqlite import quote as _quote
from turboalchemy._targets import FileTarget

if TYPE_CHECKING:
    from turboalchemy._writequeue import WriteQueue

_USED_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)")
_SAMPLE = 2_000


@dataclass(frozen=True)
class Advice:
    rule: str  # random_primary_key | redundant_index | scattering_index_order | unused_index |
    #            many_indexes_over_cache | small_transactions
    table: str | None
    message: str
    effect: str
    fix: str  # the exact SQL, or the model change

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}\n  effect: {self.effect}\n  fix: {self.fix}"


def _tables(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()


def _indexes(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    out = []
    for _seq, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({_quote(table)})"):
        columns = [r[2] for r in conn.execute(f"PRAGMA index_info({_quote(name)})")]
        out.append(
            {"name": name, "unique": bool(unique), "origin": origin, "partial": bool(partial), "columns": columns}
        )
    return out


def _append_fraction(values: list[Any]) -> float:
    """Share of values, in insertion order, larger than every value before them: inserts that land at
    the B-tree's right edge. Time-ordered keys give ~1.0, random keys ~0, a badly ordered index between."""
    if len(values) < 2:
        return 1.0
    appended, highest = 0, values[0]
    for value in values[1:]:
        if value > highest:
            appended, highest = appended + 1, value
    return appended / (len(values) - 1)


def _random_keys(conn: sqlite3.Connection, table: str, sql: str) -> Advice | None:
    if "WITHOUT ROWID" in sql.upper():
        return None
    info = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    pk = [r for r in info if r[5]]
    if len(pk) != 1 or pk[0][2].upper() in ("INTEGER",):
        return None  # composite keys are out of scope; an INTEGER primary key is the rowid itself
    column = pk[0][1]
    values = [
        r[0] for r in conn.execute(f"SELECT {_quote(column)} FROM {_quote(table)} ORDER BY rowid LIMIT {_SAMPLE}")
    ]
    if len(values) < 100 or any(not isinstance(v, (str, bytes)) for v in values):
        return None
    ordered = _append_fraction(values)
    if ordered >= 0.9:
        return None  # keys grow with insertion order: UUIDv7, ULID, timestamps
    return Advice(
        "random_primary_key",
        table,
        f"{table}.{column} is a text/blob primary key whose values look random (only {ordered:.1%} of the first "
        f"{len(values):,} rows had a key larger than all before them): inserts land on random pages of the key's B-tree",
        "measured on the benchmark's study table at 1M rows: UUIDv7 keys inserted 1.4-2.0x as fast as UUIDv4, the most "
        "with small transactions (README, 'Writes that stay fast'); the gap widens as the key's B-tree outgrows the "
        "page cache",
        f"generate new keys in time order: in the model, `{column}: Mapped[str] = turboalchemy.uuid7_primary_key()` "
        "(or default=turboalchemy.uuid7); existing keys can stay",
    )


def _redundant(table: str, indexes: list[dict[str, Any]]) -> list[Advice]:
    advice = []
    for index in indexes:
        if index["unique"] or index["partial"] or index["origin"] != "c":
            continue  # unique and constraint indexes enforce something; partial ones cover other rows
        for other in indexes:
            if other is index or other["partial"]:
                continue
            cols, longer = index["columns"], other["columns"]
            if (
                len(cols) <= len(longer)
                and longer[: len(cols)] == cols
                and (len(cols) < len(longer) or other["unique"] or other["name"] < index["name"])
            ):
                advice.append(
                    Advice(
                        "redundant_index",
                        table,
                        f"index {index['name']} on ({', '.join(cols)}) is a prefix of {other['name']} on "
                        f"({', '.join(longer)}): any lookup it serves, the longer index serves too",
                        "one B-tree fewer to update on every insert, update of those columns and delete "
                        "(the benchmark's study table without it: see README)",
                        f"DROP INDEX {_quote(index['name'])}",
                    )
                )
                break
    return advice


def _scattering_order(conn: sqlite3.Connection, table: str, sql: str, indexes: list[dict[str, Any]]) -> list[Advice]:
    """Multi-column indexes whose column order sends rows arriving in sequence to scattered pages, when
    another order of the same columns would take them in order (appended at the index's right edge)."""
    if "WITHOUT ROWID" in sql.upper():
        return []
    advice = []
    for index in indexes:
        columns = index["columns"]
        if len(columns) < 2 or index["partial"] or any(c is None for c in columns):
            continue
        listed = ", ".join(_quote(c) for c in columns)
        rows = conn.execute(f"SELECT {listed} FROM {_quote(table)} ORDER BY rowid LIMIT {_SAMPLE}").fetchall()
        if len(rows) < 100 or _append_fraction_rows(rows) >= 0.9:
            continue
        changes = [sum(a[i] != b[i] for a, b in zip(rows, rows[1:])) for i in range(len(columns))]
        order = sorted(range(len(columns)), key=lambda i: changes[i])  # slowest-changing column first
        if (
            order == list(range(len(columns)))
            or _append_fraction_rows([tuple(r[i] for i in order) for r in rows]) < 0.9
        ):
            continue
        better = [columns[i] for i in order]
        kind = "unique constraint" if index["origin"] == "u" else "primary key" if index["origin"] == "pk" else "index"
        if index["origin"] == "c":
            unique = "UNIQUE " if index["unique"] else ""
            fix = (
                f"DROP INDEX {_quote(index['name'])}; CREATE {unique}INDEX {_quote(index['name'])} ON "
                f"{_quote(table)} ({', '.join(_quote(c) for c in better)})"
            )
        else:
            fix = (
                f"declare the {kind} with its columns in arrival order: "
                f"UniqueConstraint({', '.join(repr(c) for c in better)}) (a new table or a migration that copies "
                "the rows); ON CONFLICT targets name the same columns and keep working"
            )
        advice.append(
            Advice(
                "scattering_index_order",
                table,
                f"{kind} {index['name']} on ({', '.join(columns)}) receives rows out of order: its column "
                f"{columns[changes.index(max(changes))]} changes fastest as rows arrive, so consecutive inserts land on "
                f"scattered pages; in the order ({', '.join(better)}) they would append",
                "measured on the benchmark's study table at 1M rows (UUIDv7 keys both ways): 1.6-3.7x the insert throughput, "
                "the most with small transactions and a small page cache, and flat as the table grows (README, 'Writes "
                "that stay fast'). Queries filtering on a leading prefix of the old order lose it",
                fix,
            )
        )
    return advice


def _append_fraction_rows(rows: list[tuple[Any, ...]]) -> float:
    try:
        return _append_fraction(rows)
    except TypeError:
        return 1.0  # mixed types that do not compare: no advice rather than a wrong one


def _used_indexes(conn: sqlite3.Connection, statements: Iterable[str]) -> set[str]:
    used = set()
    for statement in statements:
        text = statement.strip()
        if not text or text.split(None, 1)[0].upper() not in ("SELECT", "WITH", "UPDATE", "DELETE"):
            continue
        try:
            rows = conn.execute("EXPLAIN QUERY PLAN " + text, [None] * text.count("?")).fetchall()
        except _driver.Error:
            continue  # named parameters or a statement for another database: nothing to learn
        for row in rows:
            match = _USED_INDEX.search(row[3])
            if match:
                used.add(match.group(1))
    return used


def _cache_bytes(conn: sqlite3.Connection, page_size: int) -> int:
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    return int(-cache * 1024 if cache < 0 else cache * page_size)


def advise(
    target: FileTarget | Connection,
    *,
    statements: Iterable[str] | None = None,
    rows_per_transaction: int | None = None,
    queue: WriteQueue | None = None,
) -> list[Advice]:
    """What slows writes to this SQLite database (a path, Engine or Connection), each with its fix.

    `statements`: SQL seen in use (e.g. `count_queries(engine, keep_statements=True).statements`);
    indexes none of them uses are reported. `rows_per_transaction`: the write batch size in use, or
    `queue`: a WriteQueue whose statistics (mean items per commit, once it has committed 100 batches) say it.
    """
    if rows_per_transaction is None and queue is not None and queue.stats.batches >= 100:
        rows_per_transaction = max(1, round(queue.stats.mean_batch))
    seen = list(statements) if statements is not None else None
    found: list[Advice] = []
    with reading(target, "advise", WITH_CONNECTION) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        db_bytes = conn.execute("PRAGMA page_count").fetchone()[0] * page_size
        cache = _cache_bytes(conn, page_size)
        used = _used_indexes(conn, seen) if seen is not None else set()
        for table, sql in _tables(conn):
            indexes = _indexes(conn, table)
            random_key = _random_keys(conn, table, sql)
            if random_key:
                found.append(random_key)
            found.extend(_redundant(table, indexes))
            found.extend(_scattering_order(conn, table, sql, indexes))
            if seen is not None:
                for index in indexes:
                    if index["origin"] == "c" and not index["unique"] and index["name"] not in used:
                        found.append(
                            Advice(
                                "unused_index",
                                table,
                                f"index {index['name']} on ({', '.join(index['columns'])}) was used by none of the "
                                f"{len(seen)} statements seen",
                                "one B-tree fewer to update per write; confirm against all of the application's queries first",
                                f"DROP INDEX {_quote(index['name'])}",
                            )
                        )
            trees = len(indexes) + (0 if "WITHOUT ROWID" in sql.upper() else 1)
            if len(indexes) >= 3 and db_bytes > cache:
                found.append(
                    Advice(
                        "many_indexes_over_cache",
                        table,
                        f"{table} has {len(indexes)} indexes ({trees} B-trees written per insert) and the database "
                        f"({db_bytes / 2**20:,.1f} MiB) is larger than the page cache ({cache / 2**20:,.1f} MiB)",
                        f"estimated: inserts with scattered keys miss the cache in up to {trees} B-trees each; "
                        "throughput falls as the table grows (the benchmark: less than half by 1M rows)",
                        f"PRAGMA cache_size = -{max(db_bytes // 1024, 1):d}  -- or drop the indexes writes do not need",
                    )
                )
    if rows_per_transaction is not None and rows_per_transaction < 1_000:
        found.append(
            Advice(
                "small_transactions",
                None,
                f"writes commit every {rows_per_transaction} rows: each commit pays a WAL write and sync",
                "measured on the benchmark's study table at 500K rows: 1K-row transactions ran at 0.44x the speed of 5K-row "
                "ones where inserts scatter (README); where keys arrive in order, commits this small cost little",
                "batch writes: turboalchemy.bulk_insert(..., chunk_size=5000), or the WriteQueue's group commit",
            )
        )
    return found
