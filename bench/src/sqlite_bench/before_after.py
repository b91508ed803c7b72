"""`python -m sqlite_bench.before_after`: the study's ORM-vs-raw command, every path at equal chunks."""

import sys

from .cli import before_after

if __name__ == "__main__":
    sys.exit(before_after())
