"""Point each published run's report.md at the reference report's plots (the one set of PNGs committed).

Each run writes its own report/ (report.md, PNGs, report.html) beside its results.json; only the Markdown
is published. `make reference-report` rebuilds docs/results/report/ and then runs this, so the runs'
Markdown shows the plots that are in git instead of the local copies that are not.

    python tools/link_run_reports.py docs/results
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

IMAGE = re.compile(r"!\[([^\]]*)\]\(([\w.-]+\.png)\)")


def link(root: pathlib.Path) -> int:
    reference = root / "report"
    changed = 0
    for md in sorted(root.glob("**/report/report.md")):
        if md.parent == reference:
            continue
        prefix = str(md.parent.parent.relative_to(root)).replace(os.sep, "-")

        def relink(match: re.Match[str], md: pathlib.Path = md, prefix: str = prefix) -> str:
            alt, name = match.groups()
            for candidate in (f"{prefix}-{name}", name):
                if (reference / candidate).exists():
                    return f"![{alt}]({os.path.relpath(reference / candidate, md.parent)})"
            raise SystemExit(f"{md}: no plot {name!r} in {reference} (run make reference-report first)")

        text = md.read_text()
        linked = IMAGE.sub(relink, text)
        if linked != text:
            md.write_text(linked)
            changed += 1
    return changed


if __name__ == "__main__":
    print(f"relinked {link(pathlib.Path(sys.argv[1]))} run reports")
