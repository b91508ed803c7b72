"""explain: a statement's query plan as rows, with findings that each come with the CREATE INDEX to try.

The statement is compiled and bound exactly as it would run (its SQL and parameters are captured at
the cursor and the execution stopped there), then asked for its plan: EXPLAIN QUERY PLAN on SQLite,
EXPLAIN (FORMAT JSON) on PostgreSQL, with ANALYZE optionally (run in a savepoint that is rolled back).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Table, TextClause, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import visitors
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.schema import Column

from turboalchemy._targets import Target, bound
from turboalchemy.errors import UnsupportedTargetError

FindingKind = Literal["full_scan", "unindexed_foreign_key", "temp_sort"]
# a full scan, or an index SQLite builds for one query only because none exists (an unindexed join key)
_SQLITE_SCAN = re.compile(
    r"^(?:SCAN (?:TABLE )?(\S+)(?: AS (\S+))?|SEARCH (?:TABLE )?(\S+)(?: AS (\S+))? USING AUTOMATIC)"
)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    table: str
    columns: tuple[str, ...]
    message: str
    suggestion: str  # the CREATE INDEX statement that addresses it


@dataclass
class QueryPlan:
    dialect: str
    statement: str
    parameters: Any
    rows: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"plan ({self.dialect}):"]
        lines += [f"  {row.get('detail', row)}" for row in self.rows]
        for finding in self.findings:
            lines.append(f"finding [{finding.kind}] {finding.message}\n  try: {finding.suggestion}")
        return "\n".join(lines)


class _Captured(Exception):
    def __init__(self, statement: str, parameters: Any) -> None:
        self.statement, self.parameters = statement, parameters


@contextmanager
def _connection(target: Any) -> Any:
    with bound(target, "explain") as on:
        yield on.connection, on.runner


def _refuse_more_than_one(sql: str) -> None:
    """ValueError unless `sql` is one statement (a trailing ';' allowed): ';' counts outside quotes and comments."""
    i, n, quote = 0, len(sql), ""
    while i < n:
        c = sql[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            i = n if i < 0 else i
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif c == ";":
            rest = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql[i + 1 :], flags=re.DOTALL).strip().strip(";").strip()
            if rest:
                raise ValueError(
                    "explain takes one statement; this text holds more after ';', and they would run as themselves "
                    f"(not be explained): {rest[:60]!r}"
                )
            return
        i += 1


def _capture(conn: Connection, runner: Any, stmt: Any) -> tuple[str, Any]:
    """The SQL and parameters `stmt` would send, without running it."""

    def stop(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        raise _Captured(statement, parameters)

    event.listen(conn, "before_cursor_execute", stop)
    try:
        runner.execute(stmt)
    except _Captured as captured:
        return captured.statement, captured.parameters
    finally:
        event.remove(conn, "before_cursor_execute", stop)
    raise RuntimeError("the statement did not reach the database")


def explain(target: Target, stmt: Executable | str, *, analyze: bool = False) -> QueryPlan:
    """The plan of `stmt` (a SQLAlchemy statement or SQL text) on `target`, with findings.

    Findings: a full table scan on a filtered column, a join whose foreign key has no index, and a
    temporary sort for ORDER BY; each names the table and columns and suggests a CREATE INDEX.
    `analyze=True` (PostgreSQL) executes the statement inside a savepoint that is rolled back.
    SQL text must hold one statement: a second one after a ';' would run as itself, not be explained, so it is
    refused with ValueError.
    """
    if isinstance(stmt, str):
        stmt = text(stmt)
    if isinstance(stmt, TextClause):
        _refuse_more_than_one(stmt.text)
    with _connection(target) as (conn, runner):
        sql, parameters = _capture(conn, runner, stmt)
        dialect = conn.dialect.name
        if dialect == "sqlite":
            raw = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
            rows = [{"id": r[0], "parent": r[1], "detail": r[3]} for r in raw]
            scans, sorts = _sqlite_events(rows)
        elif dialect == "postgresql":
            options = "FORMAT JSON, ANALYZE" if analyze else "FORMAT JSON"
            savepoint = conn.begin_nested() if analyze else None
            try:
                document = conn.exec_driver_sql(f"EXPLAIN ({options}) " + sql, parameters).scalar_one()
            finally:
                if savepoint is not None:
                    savepoint.rollback()
            plan = document if isinstance(document, list) else json.loads(document)
            rows = _postgres_rows(plan[0]["Plan"])
            scans, sorts = _postgres_events(rows)
        else:
            raise UnsupportedTargetError(f"explain supports SQLite and PostgreSQL, not {dialect}")
        findings = _findings(conn, stmt, scans, sorts)
    return QueryPlan(dialect, sql, parameters, rows, findings)


# -- reading plans -------------------------------------------------------------------------------


def _sqlite_events(rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
    scans = []
    for row in rows:
        match = _SQLITE_SCAN.match(row["detail"])
        if match:
            scans.append(next(g for g in (match.group(2), match.group(1), match.group(4), match.group(3)) if g))
    return scans, any("TEMP B-TREE FOR ORDER BY" in r["detail"] for r in rows)


def _postgres_rows(node: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    relation = node.get("Relation Name")
    detail = node["Node Type"] + (f" on {relation}" if relation else "")
    if node.get("Alias") and node.get("Alias") != relation:
        detail += f" {node['Alias']}"
    for key in ("Filter", "Index Cond", "Hash Cond", "Join Filter"):
        if key in node:
            detail += f" ({key.lower()}: {node[key]})"
    if "Sort Key" in node:
        detail += f" (sort key: {', '.join(node['Sort Key'])})"
    row = {
        "depth": depth,
        "node": node["Node Type"],
        "relation": relation,
        "alias": node.get("Alias"),
        "detail": "  " * depth + detail,
        "estimated_rows": node.get("Plan Rows"),
        "cost": node.get("Total Cost"),
    }
    if "Actual Total Time" in node:
        row.update(actual_ms=node["Actual Total Time"], actual_rows=node.get("Actual Rows"))
    rows = [row]
    for child in node.get("Plans", []):
        rows += _postgres_rows(child, depth + 1)
    return rows


def _postgres_events(rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
    scans = [r["alias"] or r["relation"] for r in rows if r["node"] == "Seq Scan"]
    return scans, any(r["node"] in ("Sort", "Incremental Sort") for r in rows)


# -- from plan events to findings ----------------------------------------------------------------


def _tables(stmt: Any) -> dict[str, Table]:
    """Every table the statement reads, by the name or alias the SQL uses for it."""
    found: dict[str, Table] = {}
    for element in visitors.iterate(stmt):
        if isinstance(element, Table):
            found.setdefault(element.name, element)
        elif getattr(element, "is_derived_from", None) and isinstance(getattr(element, "element", None), Table):
            name = getattr(element, "name", None)
            if name:
                found[name] = getattr(element, "element")  # noqa: B009 - checked above to be a Table
    return found


def _columns(clause: Any) -> list[Column[Any]]:
    if clause is None:
        return []
    out: list[Column[Any]] = []
    for element in visitors.iterate(clause):
        column = element if isinstance(element, Column) else None
        if (
            column is None
            and hasattr(element, "_annotations")
            and isinstance(getattr(element, "element", None), Column)
        ):
            column = getattr(element, "element")  # noqa: B009 - an ORM-annotated column
        if column is not None and column.table is not None and column not in out:
            out.append(column)
    return out


def _indexed_leads(conn: Connection, table: str) -> set[str]:
    """Columns that lead some index (or the primary key) of `table`, as the live database has them."""
    inspector = inspect(conn)
    leads = set()
    primary = inspector.get_pk_constraint(table).get("constrained_columns") or []
    if primary:
        leads.add(primary[0])
    for index in inspector.get_indexes(table):
        names = [c for c in index.get("column_names") or [] if c]
        if names:
            leads.add(names[0])
    for unique in inspector.get_unique_constraints(table):
        if unique.get("column_names"):
            leads.add(unique["column_names"][0])
    return leads


def _create_index(conn: Connection, table: str, columns: list[str]) -> str:
    quote = conn.dialect.identifier_preparer.quote
    name = "ix_" + "_".join([table, *columns])
    return f"CREATE INDEX {quote(name)} ON {quote(table)} ({', '.join(quote(c) for c in columns)})"


def _findings(conn: Connection, stmt: Any, scans: list[str], sorted_in_temp: bool) -> list[Finding]:
    if not hasattr(stmt, "whereclause") and not hasattr(stmt, "_order_by_clauses"):
        return []  # plain text: the rows are all we can give
    tables = _tables(stmt)
    filtered = _columns(getattr(stmt, "whereclause", None))
    findings: list[Finding] = []
    scanned = {tables[s].name for s in scans if s in tables}
    by_name = {t.name: t for t in tables.values()}
    for table_name in sorted(scanned):
        leads = _indexed_leads(conn, table_name)
        columns = [c.name for c in filtered if c.table.name == table_name and c.name not in leads]
        if columns:
            findings.append(
                Finding(
                    "full_scan",
                    table_name,
                    tuple(columns),
                    f"{table_name} is read in full to filter on {', '.join(columns)}, which no index leads",
                    _create_index(conn, table_name, columns[:1] if len(columns) == 1 else columns),
                )
            )
        if len(tables) > 1:
            for fk in by_name[table_name].foreign_keys:
                if (
                    fk.column.table.name in {t.name for t in tables.values()}
                    and fk.parent.name not in leads
                    and fk.parent.name not in columns
                ):
                    findings.append(
                        Finding(
                            "unindexed_foreign_key",
                            table_name,
                            (fk.parent.name,),
                            f"{table_name} is scanned to join on foreign key {fk.parent.name} -> "
                            f"{fk.column.table.name}.{fk.column.name}, which has no index",
                            _create_index(conn, table_name, [fk.parent.name]),
                        )
                    )
    if sorted_in_temp:
        order = [c for clause in getattr(stmt, "_order_by_clauses", ()) for c in _columns(clause)]
        owners = {c.table.name for c in order}
        if len(owners) == 1:
            table_name = owners.pop()
            names = [c.name for c in order]
            # the planner may sort a small table even with an index in place: then there is nothing to add
            if names[0] not in _indexed_leads(conn, table_name):
                findings.append(
                    Finding(
                        "temp_sort",
                        table_name,
                        tuple(names),
                        f"rows are sorted in a temporary structure for ORDER BY {', '.join(names)}",
                        _create_index(conn, table_name, names),
                    )
                )
    return findings
