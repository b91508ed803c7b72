"""Published figures come from results files: every number in the README's "Measured" table is a value of the
results files that section cites, and those files were made from a clean tree at a recorded commit."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _values(data: object) -> set[int]:
    """Every number of a results file, rounded as a table prints it; of a list of raw latency samples only its
    median (tables print medians; thousands of samples would match any figure by chance)."""
    if isinstance(data, dict):
        out: set[int] = set()
        for key, value in data.items():
            if key == "batch_latencies_ms" and isinstance(value, list):
                out |= {round(statistics.median(value))} if value else set()
            else:
                out |= _values(value)
        return out
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


def _cited_files(section: str) -> list[str]:
    """The results files a section names: docs/results/<dir>/results.json, or a results folder (every
    results.json under it), written as a path or as a relative link from docs/."""
    names: set[str] = set()
    for found in re.findall(r"(?:docs/)?results/[\w./-]+", section):
        path = ROOT / ("docs/" + found.removeprefix("docs/"))
        if path.is_file() and path.name.endswith(".json"):
            names.add(str(path.relative_to(ROOT)))
        elif path.is_dir():
            names |= {str(p.relative_to(ROOT)) for p in path.rglob("results.json")}
    return sorted(names)


def _pages() -> list[Path]:
    return [ROOT / "docs" / "benchmark.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]


# Sections whose figures still rest on a run that has no clean results file, to be re-run (a ratchet: an entry
# that passes must be taken off, so the list only shrinks).
NOT_YET_SOURCED: set[tuple[str, str]] = set()


def _provenance_problems(page: Path, section: str) -> list[str]:
    title = section.splitlines()[0] if section else ""
    rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    figures = [int(n.replace(",", "")) for line in rows for n in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", line)]
    if not figures:
        return []
    cited = _cited_files(section)
    if not cited:
        return [f"{page.name} {title!r}: measured figures but no results file cited"]
    problems, values = [], set()
    for name in cited:
        data = json.loads((ROOT / name).read_text())
        commit = data["system"].get("git_commit") or ""
        if not commit or commit.endswith("-dirty"):
            problems.append(f"{page.name} {title!r}: {name} was not made from a clean tree")
        values |= _values(data)
    if missing := [f for f in figures if f not in values]:
        problems.append(f"{page.name} {title!r}: figures not in {cited}: {missing[:8]}")
    return problems


def test_every_measured_table_in_the_docs_cites_results_files_that_hold_its_figures():
    """A table of measured figures (rates written with thousands separators) must name, in its own section, the
    results files it comes from; each of its figures must be a value of those files, made from a clean tree."""
    problems, still_open = [], set()
    for page in _pages():
        for section in re.split(r"\n(?=## )", page.read_text()):
            found = _provenance_problems(page, section)
            key = (page.name, section.splitlines()[0] if section else "")
            if key in NOT_YET_SOURCED:
                still_open |= {key} if found else set()
            else:
                problems += found
    assert not problems, "\n".join(problems)
    assert still_open == NOT_YET_SOURCED, f"sourced now, take off NOT_YET_SOURCED: {NOT_YET_SOURCED - still_open}"
