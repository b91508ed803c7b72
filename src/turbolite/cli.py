"""`turbolite ...`: a thin command line over the library."""

from __future__ import annotations

import argparse
import sys

from .advise import advise


def doctor(args: argparse.Namespace) -> int:
    try:
        found = advise(args.database)
    except (OSError, ValueError) as exc:
        print(f"turbolite doctor: {exc}", file=sys.stderr)
        return 2
    print(f"turbolite doctor {args.database}")
    print(f"\nwrite-performance advice ({len(found)} item{'s' if len(found) != 1 else ''}):")
    for item in found:
        print(f"\n{item}")
    if not found:
        print("  none: keys, indexes and cache look right for fast writes")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turbolite", description="turbolite's tools for SQLite databases")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("doctor", help="read a database and report what slows it, with the fixes")
    check.add_argument("database", help="path to the SQLite file (opened read-only)")
    check.set_defaults(run=doctor)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
