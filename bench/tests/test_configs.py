"""The study's 11 configurations: parsed by name and group, and really in force on live connections."""

import pytest
import sqlalchemy

from sqlite_bench.configs import CONFIGS, GROUPS, STUDY_PROFILES, config_named, parse_configs


def test_there_are_the_studys_eleven_in_its_order():
    assert list(CONFIGS) == [
        "baseline",
        "optimized",
        "aggressive",
        "chunk_1000",
        "chunk_5000",
        "chunk_10000",
        "chunk_25000",
        "chunk_50000",
        "pool_3",
        "pool_5",
        "pool_8",
    ]


@pytest.mark.parametrize(
    "spec, names",
    [
        ("all", list(CONFIGS)),
        ("presets", ["baseline", "optimized", "aggressive"]),
        ("pools", ["pool_3", "pool_5", "pool_8"]),
        ("chunks", GROUPS["chunks"]),
        ("baseline,pool_8", ["baseline", "pool_8"]),
        ("presets,baseline", ["baseline", "optimized", "aggressive"]),
    ],
)
def test_configs_parse_by_group_and_name(spec, names):
    assert [c.name for c in parse_configs(spec)] == names


def test_an_unknown_config_is_named_in_the_error():
    with pytest.raises(ValueError, match="'turbo_max'"):
        parse_configs("baseline,turbo_max")


@pytest.mark.parametrize(
    "name, chunk, sync, cache, mmap, writers",
    [
        ("baseline", 5_000, 1, -4_096, 0, 1),
        ("optimized", 10_000, 1, -64_000, 268_435_456, 1),
        ("aggressive", 25_000, 0, -256_000, 268_435_456, 1),
        ("chunk_1000", 1_000, 1, -64_000, 268_435_456, 1),
        ("chunk_50000", 50_000, 1, -64_000, 268_435_456, 1),
        ("pool_3", 10_000, 1, -64_000, 268_435_456, 3),
        ("pool_8", 10_000, 1, -64_000, 268_435_456, 8),
    ],
)
def test_the_studys_values(name, chunk, sync, cache, mmap, writers):
    config = CONFIGS[name]
    assert (config.chunk_size, config.writers) == (chunk, writers)
    assert config.profile.expected() == {
        "journal_mode": "wal",
        "synchronous": sync,
        "busy_timeout": 10_000,
        "cache_size": cache,
        "mmap_size": mmap,
        "temp_store": 2,
    }


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_configs_pragmas_read_back_from_a_live_connection(bench_engine, name):
    engine = bench_engine(name, CONFIGS[name])
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        live = {p: cursor.execute(f"PRAGMA {p}").fetchone()[0] for p in CONFIGS[name].profile.pragmas}
    assert live == CONFIGS[name].profile.expected()
    assert engine.pool.size() == CONFIGS[name].pool_size


def test_a_config_with_pragmas_added_keeps_the_rest_of_the_studys_set_up():
    variant = config_named("chunk_5000+wal_autocheckpoint=16384+synchronous=off")
    base = CONFIGS["chunk_5000"]
    assert variant.name == "chunk_5000+wal_autocheckpoint=16384+synchronous=off"
    assert (variant.chunk_size, variant.pool_size, variant.writers) == (base.chunk_size, base.pool_size, base.writers)
    assert variant.profile.expected() == {**base.profile.expected(), "wal_autocheckpoint": 16384, "synchronous": 0}
    assert [c.name for c in parse_configs("chunk_5000,chunk_5000+wal_autocheckpoint=16384")] == [
        "chunk_5000",
        "chunk_5000+wal_autocheckpoint=16384",
    ]


@pytest.mark.parametrize(
    "name, message",
    [
        ("turbo_max+wal_autocheckpoint=1", "'turbo_max'"),
        ("baseline+cache_size", "not PRAGMA=value"),
        ("baseline+wal_autocheckpoint=lots", "takes an integer"),
        ("baseline+key=1", "not one turboalchemy knows"),  # the allow-list: nothing unchecked reaches a PRAGMA
    ],
)
def test_a_bad_pragma_in_a_config_name_is_refused_with_the_reason(name, message):
    with pytest.raises(ValueError, match=message):
        config_named(name)


def test_added_pragmas_are_in_force_in_the_cells_process(tmp_path):
    from sqlite_bench import results
    from sqlite_bench.cli import scale_benchmark

    out = tmp_path / "out"
    assert (
        scale_benchmark(
            [
                "--scales",
                "2K",
                "--configs",
                "chunk_1000,chunk_1000+wal_autocheckpoint=16384",
                "--mode",
                "raw",
                "--output-dir",
                str(out),
                "--db-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    cells = {c["config"]: c for c in results.load(out / "results.json")["cells"]}
    assert "wal_autocheckpoint" not in cells["chunk_1000"]["profile_readback"]  # the study's set-up leaves it alone
    assert cells["chunk_1000+wal_autocheckpoint=16384"]["profile_readback"]["wal_autocheckpoint"] == 16384
    assert all(c["verification"]["passed"] for c in cells.values())


@pytest.mark.parametrize("name", sorted(STUDY_PROFILES))
def test_each_study_configuration_is_a_profile_the_library_applies_and_verifies(tmp_path, name):
    """The study's 11 set-ups live in the benchmark; the library's public Profile.install applies them."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    STUDY_PROFILES[name].install(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_profile_name_may_add_pragmas_checked_against_the_allow_list():
    from sqlite_bench.configs import profile_named

    assert profile_named("production").name == "production"
    bigger = profile_named("production+page_size=16384")
    assert bigger.pragmas["page_size"] == 16384 and bigger.pragmas["journal_mode"] == "WAL"
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profile_named("fast")
    with pytest.raises(ValueError, match="not one turboalchemy knows"):
        profile_named("production+page_sizes=1")
