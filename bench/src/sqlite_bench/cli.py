"""Command lines: the study's `python -m sqlite_bench.before_after` and `...scale_benchmark`, and
`sqlite-bench` with one subcommand each. A thin layer over runner.py."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from .configs import CONFIGS, SQLITE_MODULES, config_named, parse_configs
from .generator import DEFAULT_SEED, KEYS, PHASES
from .paths import parse_paths
from .runner import Plan, plan_cells, resume, start
from .schema import SCHEMAS
from .units import parse_scale, parse_scales


def _phases(text: str) -> list[str]:
    phases = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        raise ValueError(f"phases are a comma list of {', '.join(PHASES)}")
    return [p for p in PHASES if p in phases]


def _choices(allowed: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = [p.strip() for p in text.split(",") if p.strip()]
        if not chosen or any(c not in allowed for c in chosen):
            raise ValueError(f"{what} is a comma list of {', '.join(allowed)}")
        return tuple(dict.fromkeys(chosen))

    parse.__name__ = what
    return parse


def _typed(parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _common(parser: argparse.ArgumentParser, *, scales: str, mode: str, phases: str, output_dir: str) -> None:
    parser.add_argument(
        "--scales",
        type=_typed(parse_scales),
        default=parse_scales(scales),
        help=f"row counts to checkpoint at, e.g. 10K,1.5M,2000000 (default {scales})",
    )
    parser.add_argument(
        "--mode",
        type=_typed(parse_paths),
        default=parse_paths(mode),
        help=f"write paths: orm, raw, both, all or a comma list (default {mode})",
    )
    parser.add_argument(
        "--phases",
        type=_typed(_phases),
        default=_phases(phases),
        help=f"insert, then upsert of the same keys with a new payload (default {phases})",
    )
    parser.add_argument(
        "--schema",
        type=_typed(_choices(SCHEMAS, "schema")),
        default=("study",),
        help="study (the published table), lean (without the index that duplicates the unique "
        "constraint's leading column), ordered (lean, unique constraint in arrival order); "
        "a comma list runs each side by side",
    )
    parser.add_argument(
        "--key",
        type=_typed(_choices(KEYS, "key")),
        default=("uuid4",),
        help="uuid4 (random, as the study) and/or uuid7 (time-ordered) primary keys",
    )
    parser.add_argument(
        "--sqlite",
        type=_typed(_choices(SQLITE_MODULES, "sqlite")),
        default=("stdlib",),
        help="the SQLite DB-API module(s): stdlib (the sqlite3 your Python links, as the study) and/or pysqlite3 "
        "(a recent SQLite bundled); a comma list runs each side by side, every ratio within one module",
    )
    parser.add_argument(
        "--chunk-size",
        type=_typed(parse_scale),
        default=None,
        help="rows per transaction for every path (default: the configuration's)",
    )
    parser.add_argument("--output-dir", default=output_dir, help=f"where results.json goes (default {output_dir})")
    parser.add_argument(
        "--resume",
        metavar="FILE",
        default=None,
        help="continue the run in FILE with the settings it was started with (other options are ignored)",
    )
    parser.add_argument(
        "--db-dir",
        default=tempfile.gettempdir(),
        help="where each cell's fresh temporary database directory is made (local disk)",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep each cell's database after it passes")
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="run on a PostgreSQL server instead (postgresql+psycopg://user@host/db): each cell gets "
        "a fresh database there, dropped when it passes; the configuration's chunk and pool "
        "sizes apply, its SQLite PRAGMAs do not",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (fixes keys and payloads)")
    parser.add_argument(
        "--sample-interval",
        type=float,
        default=1.0,
        help="seconds between RSS samples in the measured process; 0 turns the sampler off",
    )
    parser.add_argument(
        "--no-instrumentation",
        dest="instrumented",
        action="store_false",
        help="no sampler, no per-chunk latencies, no progress: to measure their overhead",
    )
    parser.add_argument(
        "--count-queries",
        action="store_true",
        help="run each cell's writes under turboalchemy.count_queries and record the statement counts",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every cell N times, interleaved (run 1 of every cell, then run 2, ...), each in its own process; "
        "tables then show the median and the range, and call a ratio a win only when the ranges do not overlap",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=10,
        help="times a chunk that hit 'database is locked' is retried whole before the cell fails",
    )


def before_after_parser(prog: str = "python -m sqlite_bench.before_after") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "ORM vs raw executemany (and turboalchemy's paths as they land) on the study's table, each path in "
            "a fresh process and database, every path at the same chunk size."
        ),
    )
    _common(parser, scales="10M,50M", mode="both", phases="insert,upsert", output_dir="results/before_after")
    parser.add_argument(
        "--config",
        type=_typed(lambda text: config_named(text).name),
        default="baseline",
        help=f"the SQLite configuration every path runs under: one of {', '.join(CONFIGS)}, "
        "optionally with PRAGMAs added, e.g. chunk_5000+wal_autocheckpoint=16384 (default baseline)",
    )
    parser.add_argument(
        "--study-chunks",
        action="store_true",
        help="also run the study's published set-up, ORM at 5K-row chunks and raw at 50K",
    )
    return parser


def scale_parser(prog: str = "python -m sqlite_bench.scale_benchmark") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "The study's configuration sweep: each configuration in a fresh process and database, "
            "checkpointed at every scale."
        ),
    )
    _common(parser, scales="3M,5M,10M", mode="orm", phases="insert", output_dir="results/scale")
    parser.add_argument(
        "--configs",
        type=_typed(parse_configs),
        default=parse_configs("all"),
        help="all, presets, chunks, pools or a comma list of names, each optionally with PRAGMAs added "
        "(chunk_5000+wal_autocheckpoint=16384) (default all)",
    )
    return parser


def _plan(args: argparse.Namespace, benchmark: str, configs: list[str], study_chunks: bool) -> Plan:
    return Plan(
        benchmark=benchmark,
        cells=plan_cells(
            args.mode,
            configs,
            chunk_size=args.chunk_size,
            study_chunks=study_chunks,
            schemas=args.schema,
            keys=args.key,
            repeat=args.repeat,
            sqlite=args.sqlite,
        ),
        scales=args.scales,
        phases=args.phases,
        seed=args.seed,
        sample_interval=args.sample_interval,
        instrumented=args.instrumented,
        max_retries=args.max_retries,
        count_queries=args.count_queries,
        db_dir=args.db_dir,
        keep_db=args.keep_db,
        db_url=_server(args),
    )


def _server(args: argparse.Namespace) -> str | None:
    if not args.db:
        return None
    if not args.db.startswith(("postgresql://", "postgresql+psycopg://")):
        raise SystemExit(f"--db takes a postgresql+psycopg:// URL, not {args.db!r}")
    if args.sqlite != ("stdlib",):
        raise SystemExit("--sqlite chooses the SQLite module; a --db PostgreSQL run has none to choose")
    return args.db.replace("postgresql://", "postgresql+psycopg://", 1)


def _resume(path: str, argv: list[str], module: str) -> int:
    try:
        return resume(path, argv, module)
    except (OSError, ValueError) as exc:
        print(f"cannot resume from {path}: {exc}", file=sys.stderr)
        return 2


def before_after(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = before_after_parser().parse_args(argv)
    if args.resume:
        return _resume(args.resume, argv, "sqlite_bench.before_after")
    plan = _plan(args, "before_after", [args.config], args.study_chunks)
    return start(plan, args.output_dir, argv, "sqlite_bench.before_after")


def scale_benchmark(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = scale_parser().parse_args(argv)
    if args.resume:
        return _resume(args.resume, argv, "sqlite_bench.scale_benchmark")
    plan = _plan(args, "scale_benchmark", [c.name for c in args.configs], False)
    return start(plan, args.output_dir, argv, "sqlite_bench.scale_benchmark")


def _load_all(paths: list[str]) -> list[dict[str, Any]] | None:
    """The results files, validated; None (after saying why on stderr) when one cannot be read."""
    from . import results as results_module

    try:
        return [results_module.load(p) for p in paths]
    except (OSError, ValueError) as exc:
        print(f"cannot read results: {exc}", file=sys.stderr)
        return None


def plot_curve(argv: list[str] | None = None) -> int:
    """`sqlite-bench plot-curve RESULTS... --out FILE.png`: per-segment throughput against rows."""
    from .plots import throughput_over_rows

    parser = argparse.ArgumentParser(prog="sqlite-bench plot-curve", description=plot_curve.__doc__)
    parser.add_argument("results", nargs="+", help="results.json files")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--phase", choices=PHASES, default="insert")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    loaded = _load_all(args.results)
    if loaded is None:
        return 2
    labels = throughput_over_rows(loaded, args.out, args.phase)
    print(f"{args.out}: {len(labels)} series")
    return 0


def report(argv: list[str] | None = None) -> int:
    """`sqlite-bench report RESULTS... --out DIR`: Markdown tables, PNG plots and one offline HTML page."""
    from .report import build_report

    parser = argparse.ArgumentParser(prog="sqlite-bench report", description=report.__doc__)
    parser.add_argument("results", nargs="+", help="results.json files (several machines merge into one table)")
    parser.add_argument("--out", required=True, help="folder for report.md, report.html and the plots")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    loaded = _load_all(args.results)
    if loaded is None:
        return 2
    built = build_report(loaded, args.out)
    print(f"{built.out / 'report.html'}: {len(built.tables)} tables, {len(built.plots)} plots")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`sqlite-bench before-after ...`, `sqlite-bench scale ...`, `sqlite-bench plot-curve ...`, `sqlite-bench report ...`."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {"before-after": before_after, "scale": scale_benchmark, "plot-curve": plot_curve, "report": report}
    if not argv or argv[0] not in commands:
        print(
            "usage: sqlite-bench {before-after,scale,plot-curve,report} [options]  (each takes --help)", file=sys.stderr
        )
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
