"""The generator: deterministic, independent of chunking and start, conflicting on upsert, constant memory."""

import tracemalloc
import uuid

import pytest

from sqlite_bench.generator import RowGenerator, row_index


def test_same_seed_same_rows_and_a_fixed_tenant():
    a, b = RowGenerator(7), RowGenerator(7)
    assert list(a.rows(0, 2_500)) == list(b.rows(0, 2_500))
    assert {r["tenant_id"] for r in a.rows(0, 2_500)} == {a.tenant_id}
    assert RowGenerator(8).tenant_id != a.tenant_id


def test_rows_do_not_depend_on_chunk_size_or_where_a_run_starts():
    gen = RowGenerator(1)
    whole = list(gen.rows(0, 3_000))
    assert [r for chunk in gen.chunks(0, 3_000, 700) for r in chunk] == whole
    assert list(gen.rows(1_234, 3_000)) == whole[1_234:]
    assert gen.row(2_999) == whole[-1]


def test_natural_keys_follow_the_studys_layout():
    gen = RowGenerator(1)
    for n in (0, 999, 1_000, 123_456, 1_000_000, 2_345_678):
        row = gen.row(n)
        assert (row["entity_id"], row["sub_entity_id"], row["bucket_index"]) == (
            n % 1000,
            (n // 1000) % 1000,
            n // 1_000_000,
        )
        assert row_index(row["entity_id"], row["sub_entity_id"], row["bucket_index"]) == n


def test_keys_are_unique_uuid_text_of_36_characters():
    rows = list(RowGenerator(3).rows(0, 20_000))
    assert len({r["row_id"] for r in rows}) == 20_000
    assert len({(r["entity_id"], r["sub_entity_id"], r["bucket_index"]) for r in rows}) == 20_000
    assert all(len(r["row_id"]) == 36 and uuid.UUID(r["row_id"]).version == 4 for r in rows[:100])


def test_the_upsert_phase_regenerates_the_same_keys_with_a_new_payload():
    gen = RowGenerator(5)
    inserted, upserted = list(gen.rows(0, 2_000, "insert")), list(gen.rows(0, 2_000, "upsert"))

    def key(r):
        return r["row_id"], r["tenant_id"], r["entity_id"], r["sub_entity_id"], r["bucket_index"], r["created_at"]

    assert [key(r) for r in inserted] == [key(r) for r in upserted]
    assert all(r["updated_at"] is None and r["status"] == 0 for r in inserted)
    assert all(r["updated_at"] > r["created_at"] and r["status"] == 1 for r in upserted)
    changed = sum(a["measurement_x"] != b["measurement_x"] for a, b in zip(inserted, upserted))
    assert changed == 2_000


def test_chunks_never_exceed_their_size():
    sizes = [len(c) for c in RowGenerator(1).chunks(0, 2_500, 1_000)]
    assert sizes == [1_000, 1_000, 500]
    with pytest.raises(ValueError):
        next(RowGenerator(1).chunks(0, 10, 0))


def _peak_bytes(total: int) -> int:
    tracemalloc.start()
    try:
        for _chunk in RowGenerator(2).chunks(0, total, 1_000):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_row_count_grows():
    small, large = _peak_bytes(10_000), _peak_bytes(50_000)
    assert large < small * 1.25
    assert large < 8 * 1024 * 1024  # one chunk of 1,000 rows, not the stream
