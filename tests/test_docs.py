"""The documentation cannot rot: every Python block of the guides and the README runs, page by page in a
scratch folder (blocks of one page share their names, top to bottom), unless it is marked
`<!-- not run: REASON -->` with a stated reason; other code blocks (shell) must carry that mark. Every public
name is in the API reference, and the CLI reference is what the argument parsers would write."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import turboalchemy

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.parts)]
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!-- not run: (?P<reason>.+?) -->$")
OUTPUT = {"text"}  # shown output or help text, not code


def blocks(page: Path) -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, reason it is not run) for every fenced block of `page`."""
    lines = page.read_text().split("\n")
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, language = i, match.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = MARK.match(before)
        found.append((start + 1, language, "\n".join(lines[start + 1 : end]), mark.group("reason") if mark else None))
        i = end + 1
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs_and_every_other_block_says_why_not(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")  # a real module: SQLAlchemy resolves
    monkeypatch.setitem(sys.modules, module.__name__, module)  # the models' annotations through it
    namespace = module.__dict__
    for line, language, code, reason in blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if reason is not None:
            assert len(reason) > 10, f"{where}: say why the block is not run"
            continue
        if language in OUTPUT:
            continue
        assert language == "python", f"{where}: a {language or 'plain'} block must be marked <!-- not run: reason -->"
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the docs' own examples


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "reference" / "api.md").read_text()
    listed = set(re.findall(r"^::: turboalchemy\.(\w+)$", api, re.MULTILINE))
    assert listed == set(turboalchemy.__all__) - {"__version__"}


def test_the_cli_reference_is_what_the_parsers_would_write():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_reference.py"), "--check"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_every_cli_command_is_in_the_cli_reference():
    from turboalchemy._cli import build_parser

    reference = (ROOT / "docs" / "reference" / "cli.md").read_text()
    commands = re.search(r"\{([a-z,]+)\}", build_parser().format_usage()).group(1).split(",")
    assert commands and all(f"### `turboalchemy {c}`" in reference for c in commands)
