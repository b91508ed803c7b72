"""Row counts as people type them (10K, 1.5M, 250000) and as tables print them."""

from __future__ import annotations

import re

_SCALE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMbB]?)\s*$")
_FACTOR = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}


def parse_scale(text: str) -> int:
    """'10K' -> 10000, '1.5M' -> 1500000, '2500' -> 2500; raises ValueError on anything else."""
    match = _SCALE.match(text)
    if not match:
        raise ValueError(f"not a row count: {text!r} (use e.g. 10K, 1.5M or 250000)")
    number, suffix = match.groups()
    value = float(number) * _FACTOR[suffix.upper()]
    if value != int(value) or value <= 0:
        raise ValueError(f"not a positive whole number of rows: {text!r}")
    return int(value)


def parse_scales(text: str) -> list[int]:
    """A comma list of row counts, sorted and without repeats: '5M,1M,5M' -> [1000000, 5000000]."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("no scales given")
    return sorted({parse_scale(p) for p in parts})


def format_count(n: int) -> str:
    """1500000 -> '1.5M', 10000 -> '10K', 999 -> '999'."""
    for factor, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= factor and n % (factor // 10) == 0:
            return f"{n / factor:g}{suffix}"
    return f"{n:,}"
