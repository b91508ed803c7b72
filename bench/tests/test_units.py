import pytest

from sqlite_bench.units import format_count, parse_scale, parse_scales


@pytest.mark.parametrize(
    "text, rows",
    [
        ("10K", 10_000),
        ("10k", 10_000),
        ("1.5M", 1_500_000),
        ("250000", 250_000),
        ("3M", 3_000_000),
        (" 2K ", 2_000),
        ("1B", 1_000_000_000),
        ("0.5K", 500),
    ],
)
def test_scales_accept_the_studys_spellings(text, rows):
    assert parse_scale(text) == rows


@pytest.mark.parametrize("text", ["", "ten", "10X", "-5K", "0", "1.5", "0.0001K", "5 M rows"])
def test_scales_refuse_what_is_not_a_row_count(text):
    with pytest.raises(ValueError):
        parse_scale(text)


def test_scale_lists_are_sorted_and_unique():
    assert parse_scales("10M,3M,5M,3M") == [3_000_000, 5_000_000, 10_000_000]


@pytest.mark.parametrize("rows, text", [(10_000, "10K"), (1_500_000, "1.5M"), (999, "999"), (12_345, "12,345")])
def test_counts_print_the_way_they_are_typed(rows, text):
    assert format_count(rows) == text
