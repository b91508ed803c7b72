"""The study's 11 configurations: parsed by name and group, and really in force on live connections."""

import pytest

from sqlite_bench.configs import CONFIGS, GROUPS, parse_configs


def test_there_are_the_studys_eleven_in_its_order():
    assert list(CONFIGS) == ["baseline", "optimized", "aggressive", "chunk_1000", "chunk_5000", "chunk_10000",
                             "chunk_25000", "chunk_50000", "pool_3", "pool_5", "pool_8"]


@pytest.mark.parametrize(
    "spec, names",
    [("all", list(CONFIGS)), ("presets", ["baseline", "optimized", "aggressive"]),
     ("pools", ["pool_3", "pool_5", "pool_8"]), ("chunks", GROUPS["chunks"]),
     ("baseline,pool_8", ["baseline", "pool_8"]), ("presets,baseline", ["baseline", "optimized", "aggressive"])],
)
def test_configs_parse_by_group_and_name(spec, names):
    assert [c.name for c in parse_configs(spec)] == names


def test_an_unknown_config_is_named_in_the_error():
    with pytest.raises(ValueError, match="'turbo_max'"):
        parse_configs("baseline,turbo_max")


@pytest.mark.parametrize(
    "name, chunk, sync, cache, mmap, writers",
    [("baseline", 5_000, 1, -4_096, 0, 1), ("optimized", 10_000, 1, -64_000, 268_435_456, 1),
     ("aggressive", 25_000, 0, -256_000, 268_435_456, 1), ("chunk_1000", 1_000, 1, -64_000, 268_435_456, 1),
     ("chunk_50000", 50_000, 1, -64_000, 268_435_456, 1), ("pool_3", 10_000, 1, -64_000, 268_435_456, 3),
     ("pool_8", 10_000, 1, -64_000, 268_435_456, 8)],
)
def test_the_studys_values(name, chunk, sync, cache, mmap, writers):
    config = CONFIGS[name]
    assert (config.chunk_size, config.writers) == (chunk, writers)
    assert config.profile.expected() == {"journal_mode": "wal", "synchronous": sync, "busy_timeout": 10_000,
                                              "cache_size": cache, "mmap_size": mmap, "temp_store": 2}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_configs_pragmas_read_back_from_a_live_connection(bench_engine, name):
    engine = bench_engine(name, CONFIGS[name])
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        live = {p: cursor.execute(f"PRAGMA {p}").fetchone()[0] for p in CONFIGS[name].profile.pragmas}
    assert live == CONFIGS[name].profile.expected()
    assert engine.pool.size() == CONFIGS[name].pool_size
