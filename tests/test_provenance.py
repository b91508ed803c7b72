"""Published figures come from results files: every number in the README's "Measured" table is a value of the
results files that section cites, and those files were made from a clean tree at a recorded commit."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _values(data: object) -> set[int]:
    """Every number of a results file, rounded as a table prints it."""
    if isinstance(data, dict):
        return set().union(*(_values(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(_values(v) for v in data)) if data else set()
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {round(data)}
    return set()


def test_the_readmes_figures_are_in_the_results_files_it_cites():
    measured = _section((ROOT / "README.md").read_text(), "Measured")
    cited = sorted(set(re.findall(r"docs/results/[\w/-]+/results\.json", measured)))
    assert cited, "the Measured section names no results file"
    values: set[int] = set()
    for name in cited:
        data = json.loads((ROOT / name).read_text())
        commit = data["system"].get("git_commit") or ""
        assert commit and not commit.endswith("-dirty"), f"{name} was not made from a clean tree at a recorded commit"
        values |= _values(data)
    table = [line for line in measured.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    figures = [int(n.replace(",", "")) for line in table for n in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", line)]
    assert figures, "no figures found in the Measured table"
    missing = [f for f in figures if f not in values]
    assert not missing, f"README figures not in {cited}: {missing}"
