"""Write docs/reference/cli.md from the argument parsers themselves, so the CLI reference cannot drift.

`python tools/cli_reference.py` rewrites it; `--check` exits 1 (CI) when the file differs from what the
code would write.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "reference" / "cli.md"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps its subparsers here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: fix it, so the file is the same everywhere
    from sqlite_bench.cli import before_after_parser, scale_parser
    from turboalchemy._cli import build_parser

    parts = [
        "# Command-line reference\n",
        "Generated from the argument parsers by `python tools/cli_reference.py`; CI fails when it is out of date.\n",
        "## `turboalchemy`\n",
        "Installed with the library (`pip install turboalchemy`). Exit status: 0 fine, 1 a red flag or a busy "
        "checkpoint, 2 could not run.\n",
    ]
    parser = build_parser()
    parts.append("```text\n" + parser.format_help() + "```\n")
    for name, sub in _subcommands(parser):
        parts.append(f"### `turboalchemy {name}`\n")
        parts.append("```text\n" + sub.format_help() + "```\n")
    parts.append("## `sqlite_bench`\n")
    parts.append(
        "Installed with the benchmark (`pip install ./bench`); `sqlite-bench before-after` and "
        "`sqlite-bench scale` are the same commands.\n"
    )
    for title, build in (
        ("python -m sqlite_bench.before_after", before_after_parser),
        ("python -m sqlite_bench.scale_benchmark", scale_parser),
    ):
        parts.append(f"### `{title}`\n")
        parts.append("```text\n" + build().format_help() + "```\n")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python tools/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
