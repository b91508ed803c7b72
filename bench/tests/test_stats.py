import pytest

from sqlite_bench.stats import percentile, summarize


@pytest.mark.parametrize(
    "values, q, expected",
    [
        ([1, 2, 3, 4, 5], 50, 3),
        ([1, 2, 3, 4], 50, 2.5),
        (list(range(1, 101)), 99, 99.01),  # rank 98.01 between 99 and 100
        (list(range(1, 101)), 95, 95.05),
        ([10, 20], 25, 12.5),
        ([7], 99, 7),
        ([5, 1, 3], 0, 1),
        ([5, 1, 3], 100, 5),
    ],
)
def test_percentiles_interpolate_linearly_between_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_empty_input_and_bad_q():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summary_of_known_latencies():
    summary = summarize([100.0, 200.0, 300.0, 400.0])
    assert summary == {"count": 4, "p50_ms": 250.0, "p95_ms": 385.0, "p99_ms": 397.0, "avg_ms": 250.0, "max_ms": 400.0}


def test_summary_of_nothing_says_so():
    assert summarize([])["count"] == 0 and summarize([])["p99_ms"] is None
