"""The write paths store the same thing, upsert really conflicts, and the ORM upsert respects SQLite's limits."""

import sqlite3

import pytest
from sqlalchemy import event

from sqlite_bench.generator import RowGenerator
from sqlite_bench.paths import PATHS, SERVER_ONLY, error_kind, parse_paths
from sqlite_bench.schema import COLUMNS

from .conftest import dump

SQLITE_PATHS = [p for p in PATHS if p not in SERVER_ONLY]  # copy_binary and adbc are PostgreSQL's


def _write(engine, path, phase, rows, chunk):
    writer = PATHS[path].open(engine)
    try:
        gen = RowGenerator(11)
        for part in gen.chunks(0, rows, chunk, phase):
            if hasattr(writer, "prepare"):
                writer.prepare(phase, part)
            getattr(writer, phase)(part)
    finally:
        writer.close()


@pytest.mark.parametrize("phases", [["insert"], ["insert", "upsert"]], ids=["insert", "insert+upsert"])
def test_orm_and_raw_leave_identical_tables(bench_engine, phases):
    engines = {path: bench_engine(path) for path in ("orm", "raw")}
    for path, engine in engines.items():
        for phase in phases:
            _write(engine, path, phase, 3_000, 1_000)
    orm, raw = (dump(engines[p].url.database) for p in ("orm", "raw"))
    assert len(orm) == 3_000
    assert orm == raw


@pytest.mark.parametrize("path", ["engine", "prebuilt", "prebuilt_multi"])
def test_the_limit_paths_store_what_raw_stores(bench_engine, path):
    """The paths that load their rows untimed (a staging table, ready tuples) still write the chunk they are given."""
    engines = {p: bench_engine(p) for p in ("raw", path)}
    for p, engine in engines.items():
        for phase in ("insert", "upsert"):
            _write(engine, p, phase, 3_000, 1_000)
    assert dump(engines[path].url.database) == dump(engines["raw"].url.database)


@pytest.mark.parametrize("path", ["prebuilt", "prebuilt_multi"])
def test_prebuilt_refuses_a_chunk_it_was_not_prepared_with(bench_engine, path):
    writer = PATHS[path].open(bench_engine(path))
    rows = list(RowGenerator(11).rows(0, 20))
    try:
        writer.prepare("insert", rows[:10])
        with pytest.raises(RuntimeError, match="prepare"):
            writer.insert(rows[10:])
        writer.insert(rows[:10])  # the same rows, sliced again: what a retried chunk sends
    finally:
        writer.close()


@pytest.mark.parametrize("path", SQLITE_PATHS)
def test_the_upsert_pass_conflicts_on_every_row(bench_engine, path):
    engine = bench_engine(path)
    _write(engine, path, "insert", 2_000, 500)
    before = {r[0]: r for r in dump(engine.url.database)}
    _write(engine, path, "upsert", 2_000, 500)
    after = {r[0]: r for r in dump(engine.url.database)}
    assert after.keys() == before.keys()  # same row_ids: every row updated in place, none inserted
    status_index = 2 * COLUMNS.index("status")  # dump() holds each value then its storage class
    assert all(row[status_index] == 1 for row in after.values())
    assert all(row[status_index] == 0 for row in before.values())


def test_prebuilt_multi_sends_a_chunk_as_turbo_does_many_rows_to_a_statement(bench_engine):
    """256 rows to an INSERT OR FAIL statement, the last one shorter: the statement shape turbo uses on SQLite."""
    engine = bench_engine("prebuilt_multi")
    writer = PATHS["prebuilt_multi"].open(engine)
    statements: list[str] = []
    writer.raw.dbapi.set_trace_callback(statements.append)
    try:
        rows = list(RowGenerator(11).rows(0, 600))
        writer.prepare("insert", rows)
        writer.insert(rows)
    finally:
        writer.raw.dbapi.set_trace_callback(None)
        writer.close()
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert [s.count("), (") + 1 for s in inserts] == [256, 256, 88]
    assert all(s.startswith("INSERT OR FAIL INTO") for s in inserts)


def test_prebuilt_multi_stores_what_raw_stores_on_postgresql(postgres_url):
    from sqlalchemy import create_engine, text

    from sqlite_bench.schema import create_schema

    engine = create_engine(postgres_url)
    tables = {}
    try:
        for path in ("raw", "prebuilt_multi"):
            with engine.begin() as connection:
                connection.execute(text("DROP TABLE IF EXISTS bench_rows"))
            create_schema(engine)
            _write(engine, path, "insert", 3_000, 1_000)
            _write(engine, path, "upsert", 2_000, 700)
            with engine.connect() as connection:
                tables[path] = connection.execute(text("SELECT * FROM bench_rows ORDER BY row_id")).all()
    finally:
        engine.dispose()
    assert len(tables["raw"]) == 3_000
    assert tables["prebuilt_multi"] == tables["raw"]


def test_orm_upsert_splits_statements_under_the_bound_parameter_limit(bench_engine):
    engine = bench_engine("limited")

    @event.listens_for(engine, "connect")
    def lower_limit(dbapi_connection, _record):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    engine.dispose()  # reconnect so the lowered limit applies
    writer = PATHS["orm"].open(engine)
    try:
        assert writer.rows_per_statement == 999 // 13
        gen = RowGenerator(11)
        writer.upsert(list(gen.rows(0, 5_000, "upsert")))  # 65,000 parameters in one chunk
    finally:
        writer.close()
    assert len(dump(engine.url.database)) == 5_000


@pytest.mark.parametrize("path", SQLITE_PATHS)
def test_a_failing_chunk_rolls_back_whole(bench_engine, path):
    engine = bench_engine(path)
    rows = list(RowGenerator(11).rows(0, 1_000))
    rows[700] = dict(rows[700], measurement_x=None)  # NOT NULL
    writer = PATHS[path].open(engine)
    prepare = getattr(writer, "prepare", lambda phase, rows: None)
    try:
        with pytest.raises(Exception) as failure:
            prepare("insert", rows)
            writer.insert(rows)
        assert error_kind(failure.value) == "integrity"
        prepare("insert", rows[:10])
        writer.insert(rows[:10])  # the writer is usable afterwards
    finally:
        writer.close()
    assert len(dump(engine.url.database)) == 10


def test_error_kinds():
    assert error_kind(sqlite3.OperationalError("database is locked")) == "locked"
    assert error_kind(sqlite3.IntegrityError("UNIQUE constraint failed")) == "integrity"
    assert error_kind(ValueError("x")) == "other"


@pytest.mark.parametrize(
    "spec, paths", [("both", ["orm", "raw"]), ("raw", ["raw"]), ("raw,orm", ["orm", "raw"]), ("all", SQLITE_PATHS)]
)
def test_modes_parse(spec, paths):
    assert parse_paths(spec) == paths


def test_an_unknown_mode_is_named():
    with pytest.raises(ValueError, match="'turbo9'"):
        parse_paths("orm,turbo9")


@pytest.mark.parametrize(
    "schema, key", [("lean", "uuid4"), ("study", "uuid7"), ("lean", "uuid7"), ("ordered", "uuid7")]
)
def test_table_variants_hold_the_same_logical_data_as_the_study_schema(tmp_path, schema, key):
    """lean drops one index and uuid7 changes only the key: every other value is the same."""
    from sqlite_bench.configs import CONFIGS, open_engine
    from sqlite_bench.schema import REDUNDANT_INDEX, create_schema

    dumps = {}
    for name, (s, k) in {"study": ("study", "uuid4"), "variant": (schema, key)}.items():
        engine = open_engine(CONFIGS["baseline"], str(tmp_path / f"{name}.db"))
        create_schema(engine, s)
        writer = PATHS["raw"].open(engine)
        for part in RowGenerator(11, key=k).chunks(0, 2_000, 500):
            writer.insert(part)
        writer.close()
        with engine.connect() as conn:
            names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert (REDUNDANT_INDEX in names) is (s == "study")
        for phase_part in RowGenerator(11, key=k).chunks(0, 2_000, 500, "upsert"):
            upserter = PATHS["raw"].open(engine)
            upserter.upsert(phase_part)  # every variant accepts the study's ON CONFLICT target
            upserter.close()
        engine.dispose()
        rows = dump(str(tmp_path / f"{name}.db"))
        dumps[name] = sorted(r[2:] if k == "uuid7" or key == "uuid7" else r for r in rows)  # r[0:2] is row_id
    assert dumps["variant"] == dumps["study"]
