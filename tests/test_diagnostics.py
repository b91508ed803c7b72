"""Query diagnostics on SQLite and PostgreSQL: each guard fires on a real N+1 and stays silent on the fix."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session, selectinload

import turboalchemy
from turboalchemy import NPlusOneError, NPlusOneWarning, QueryBudgetError

from .blog import Base, Post, User, seed

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A seeded blog on a real SQLite file or the local PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'blog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


def list_posts_naively(session) -> int:
    return sum(len(user.posts) for user in session.scalars(select(User)))  # one SELECT per user


def list_posts_eagerly(session) -> int:
    return sum(len(user.posts) for user in session.scalars(select(User).options(selectinload(User.posts))))


# -- counting -------------------------------------------------------------------------------------


def test_count_queries_counts_by_kind_and_stops_at_the_end_of_the_block(engine):
    with Session(engine) as session:
        with turboalchemy.count_queries(session) as counted:
            assert list_posts_naively(session) == 60
        assert counted.total == 21 and counted.by_kind["select"] == 21
        assert counted.seconds > 0
        session.scalars(select(User)).all()
        assert counted.total == 21  # nothing counted after the block


def test_an_executemany_counts_once_with_its_rows(engine):
    with engine.begin() as conn, turboalchemy.count_queries(engine) as counted:
        conn.execute(insert(Post), [{"id": 10_000 + i, "user_id": 1, "title": "t"} for i in range(25)])
    assert (counted.by_kind["insert"], counted.rows) == (1, 25)


def test_assert_max_queries_passes_within_budget_and_lists_statements_over_it(engine, assert_max_queries):
    with Session(engine) as session:
        with assert_max_queries(session, 2):
            list_posts_eagerly(session)
        with pytest.raises(QueryBudgetError, match=r"21 statements ran, at most 5 allowed:\n  1\. SELECT"):
            with assert_max_queries(session, 5):
                session.expire_all()
                list_posts_naively(session)


# -- N+1 ------------------------------------------------------------------------------------------


def test_the_guard_names_the_repeated_statement_and_the_line_that_ran_it(engine):
    with Session(engine) as session:
        with pytest.raises(NPlusOneError) as caught:
            with turboalchemy.no_n_plus_one(session, threshold=5):
                list_posts_naively(session)
    message = str(caught.value)
    assert "ran 20 times (threshold 5)" in message
    assert "FROM posts" in message and "posts.user_id" in message
    assert f"{Path(__file__).name}:" in message and "list_posts_naively" in message
    assert "selectinload" in message


def test_the_guard_is_silent_on_the_fixed_query(engine):
    with Session(engine) as session:
        with turboalchemy.no_n_plus_one(session, threshold=5) as report:
            assert list_posts_eagerly(session) == 60
    assert report.offenders == []


def test_the_guard_can_warn_instead(engine):
    with Session(engine) as session:
        with pytest.warns(NPlusOneWarning, match="N\\+1"):
            with turboalchemy.no_n_plus_one(session, threshold=5, action="warn"):
                list_posts_naively(session)


def test_raiseload_all_turns_a_lazy_load_into_an_error(engine):
    with Session(engine) as session:
        user = session.scalars(turboalchemy.raiseload_all(select(User)).limit(1)).one()
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = user.posts


# -- slow queries ---------------------------------------------------------------------------------

SLOW = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(0.05)",
}


def test_slow_queries_are_logged_with_their_fields_and_fast_ones_are_not(engine, caplog):
    caplog.set_level(logging.WARNING, logger="turboalchemy.slow_queries")
    hook = turboalchemy.log_slow_queries(engine, threshold_ms=20)
    with engine.connect() as conn:
        conn.execute(text(SLOW[engine.dialect.name]))
        conn.execute(text("SELECT 1"))
    hook.remove()
    with engine.connect() as conn:
        conn.execute(text(SLOW[engine.dialect.name]))  # after remove(): not logged
    (record,) = caplog.records
    fields = record.turboalchemy
    assert fields["duration_ms"] >= 20 and fields["kind"] == "select"
    assert fields["sql"].startswith(SLOW[engine.dialect.name][:20]) and fields["parameter_count"] == 0
    assert Path(__file__).name in fields["caller"]


# -- plans ----------------------------------------------------------------------------------------


def _kinds(plan) -> set[str]:
    return {f.kind for f in plan.findings}


def test_explain_finds_a_full_scan_on_a_filtered_column_and_is_silent_once_indexed(engine):
    stmt = select(User).where(User.email == "u3@example.org")
    with Session(engine) as session:
        plan = turboalchemy.explain(session, stmt)
        assert plan.rows and "full_scan" in _kinds(plan)
        (finding,) = [f for f in plan.findings if f.kind == "full_scan"]
        assert (finding.table, finding.columns) == ("users", ("email",))
        assert finding.suggestion == "CREATE INDEX ix_users_email ON users (email)"
        session.execute(text(finding.suggestion))
        assert "full_scan" not in _kinds(turboalchemy.explain(session, stmt))


def test_explain_finds_an_unindexed_foreign_key_in_a_join(engine):
    stmt = select(User.name, Post.title).join(Post, Post.user_id == User.id).where(User.name == "user3")
    with Session(engine) as session:
        plan = turboalchemy.explain(session, stmt)
        fk = [f for f in plan.findings if f.kind == "unindexed_foreign_key"]
        assert [(f.table, f.columns) for f in fk] == [("posts", ("user_id",))]
        session.execute(text(fk[0].suggestion))
        assert "unindexed_foreign_key" not in _kinds(turboalchemy.explain(session, stmt))


def test_explain_finds_a_temporary_sort_for_order_by(engine):
    stmt = select(User).order_by(User.name)
    with Session(engine) as session:
        plan = turboalchemy.explain(session, stmt)
        (sort,) = [f for f in plan.findings if f.kind == "temp_sort"]
        assert (sort.table, sort.columns) == ("users", ("name",))
        session.execute(text(sort.suggestion))
        assert "temp_sort" not in _kinds(turboalchemy.explain(session, stmt))


def test_explain_does_not_run_the_statement(engine):
    with Session(engine) as session:
        turboalchemy.explain(session, text("DELETE FROM posts"))
        assert session.scalar(text("SELECT count(*) FROM posts")) == 60


# -- pool -----------------------------------------------------------------------------------------


def test_pool_status_reports_checked_out_connections(engine):
    if engine.dialect.name == "sqlite":
        engine = create_engine(engine.url, pool_size=3, max_overflow=2)
    first, second = engine.connect(), engine.connect()
    try:
        status = turboalchemy.pool_status(engine)
        assert status["pool"] == "QueuePool" and status["checked_out"] == 2
        assert {"size", "checked_in", "overflow", "max_overflow"} <= status.keys()
    finally:
        first.close()
        second.close()
    assert turboalchemy.pool_status(engine)["checked_out"] == 0


def test_the_example_shows_the_n_plus_one_caught_and_fixed():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "n_plus_one.py")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "before: 51 queries" in out.stdout and "after: 2 queries" in out.stdout
    assert "NPlusOneError" in out.stdout


def test_an_automatic_index_sqlite_builds_for_one_query_counts_as_a_scan(tmp_path):
    """SQLite answers a join on an unindexed column with a one-query AUTOMATIC index: read it as a scan."""
    from sqlalchemy.orm import aliased

    from turboalchemy._diagnostics.explain import _sqlite_events

    engine = create_engine(f"sqlite:///{tmp_path / 'auto.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, users=50, posts_each=5)
        other = aliased(Post, name="other")
        plan = turboalchemy.explain(session, select(Post.id, other.id).join(other, other.title == Post.title))
    engine.dispose()
    automatic = [r["detail"] for r in plan.rows if "AUTOMATIC" in r["detail"]]
    assert automatic, plan.rows
    assert _sqlite_events([{"detail": automatic[0]}])[0] == ["other"]


SECOND_STATEMENTS = [
    "SELECT id FROM users; DELETE FROM posts",
    "SELECT id FROM users;\n/* c */ DROP TABLE posts;",
    "SELECT ';' AS semi FROM users; DELETE FROM posts",
]


@pytest.mark.parametrize("sql", SECOND_STATEMENTS)
def test_explain_refuses_a_second_statement_it_would_run_as_itself(engine, sql):
    """A diagnostic must never execute user SQL: the DELETE or DROP after the SELECT used to persist."""
    analyses = [False, True] if engine.dialect.name == "postgresql" else [False]  # analyze is PostgreSQL's
    for analyze in analyses:
        with pytest.raises(ValueError, match="explain takes one statement"):
            turboalchemy.explain(engine, sql, analyze=analyze)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posts")).scalar() > 0


def test_explain_takes_one_statement_with_quotes_comments_and_a_trailing_semicolon(engine):
    plan = turboalchemy.explain(engine, "SELECT id, ';' AS semi FROM users -- one; statement\nWHERE id > 1;  ")
    assert plan.statement.startswith("SELECT id") and plan.rows
