"""Runs a plan of cells, each in a fresh subprocess, writing the results file after every checkpoint.

`--resume FILE` reopens a results file: finished cells are kept as they are, an interrupted cell
continues from its last checkpoint in its own database (rows committed after that checkpoint are
removed first), and nothing runs twice.
"""

from __future__ import annotations

import ctypes
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from . import results
from .configs import config_named
from .server import create_database, database_exists, drop_database, is_server, redact
from .summary import print_summary
from .sysinfo import system_info
from .units import format_count

STUDY_CHUNKS = {"orm": 5_000, "raw": 50_000}


@dataclass
class Plan:
    """What to run: a benchmark name, its cells, and the settings every cell shares."""

    benchmark: str
    cells: list[dict[str, Any]]
    scales: list[int]
    phases: list[str]
    seed: int
    sample_interval: float = 1.0
    instrumented: bool = True
    max_retries: int = 10
    count_queries: bool = False
    db_dir: str = field(default_factory=tempfile.gettempdir)
    keep_db: bool = False
    db_url: str | None = None  # a PostgreSQL server: each cell gets a fresh database there instead of a file

    def settings(self) -> dict[str, Any]:
        return {
            "scales": self.scales,
            "phases": self.phases,
            "seed": self.seed,
            "sample_interval": self.sample_interval,
            "instrumented": self.instrumented,
            "max_retries": self.max_retries,
            "count_queries": self.count_queries,
            "db_dir": self.db_dir,
            "keep_db": self.keep_db,
            "db_url": self.db_url,
        }


def plan_cells(
    paths: list[str],
    configs: list[str],
    *,
    chunk_size: int | None = None,
    study_chunks: bool = False,
    schemas: tuple[str, ...] = ("study",),
    keys: tuple[str, ...] = ("uuid4",),
    repeat: int = 1,
    sqlite: tuple[str, ...] = ("stdlib",),
) -> list[dict[str, Any]]:
    """Every path under every config at one chunk size, for each table variant (schema x key) and SQLite
    module (`sqlite`: stdlib, pysqlite3; a cell id ends in +pysqlite3 for the latter); with
    study_chunks, also the study's unequal set-up (ORM at 5K-row chunks, raw at 50K) where it differs.
    With `repeat` > 1, the whole set again and again, interleaved (run 1 of every cell, then run 2, ...), each
    cell its own process, ids ending in #1, #2, ..."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    once = [
        {**cell, "id": cell["id"] + ("" if module == "stdlib" else f"+{module}"), "sqlite": module}
        for module in sqlite
        for cell in _plan_once(paths, configs, chunk_size, study_chunks, schemas, keys)
    ]
    if repeat == 1:
        return once
    cells = []
    for run in range(1, repeat + 1):
        for cell in once:
            cells.append({**cell, "id": f"{cell['id']}#{run}", "repeat": run})
    return cells


def _plan_once(
    paths: list[str],
    configs: list[str],
    chunk_size: int | None,
    study_chunks: bool,
    schemas: tuple[str, ...],
    keys: tuple[str, ...],
) -> list[dict[str, Any]]:
    cells = []
    for name in configs:
        config = config_named(name)
        chunk = chunk_size or config.chunk_size
        wanted = [(p, chunk, "fair") for p in paths]
        if study_chunks:
            wanted += [
                (p, STUDY_CHUNKS[p], "study-chunks") for p in paths if p in STUDY_CHUNKS and STUDY_CHUNKS[p] != chunk
            ]
        for schema in schemas:
            for key in keys:
                table = "".join(f"+{v}" for v, default in ((schema, "study"), (key, "uuid4")) if v != default)
                for path, size, variant in wanted:
                    cell_id = f"{path}/{name}" + ("" if size == config.chunk_size else f"@{size}") + table
                    cells.append(
                        results.new_cell(
                            cell_id,
                            path,
                            name,
                            size,
                            config.writers,
                            variant,
                            dict(config.profile.pragmas),
                            schema,
                            key,
                        )
                    )
    return cells


class RateColumn(ProgressColumn):
    """Rows per second over rich's recent progress updates (the cell reports every 0.25 s)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "- rows/s")


def wide_console(stderr: bool = False) -> Console:
    """A console that keeps table rows on one line when output goes to a file or a CI log."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = 140
    return console


def _die_with_parent() -> None:
    """In the child: receive SIGKILL if the runner dies, so no orphan keeps writing to a cell's DB."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Runner:
    def __init__(
        self, data: dict[str, Any], results_path: Path, *, err: Console | None = None, out: Console | None = None
    ) -> None:
        self.data = data
        self.path = results_path
        self.settings = data["settings"]
        self.err = err or wide_console(stderr=True)
        self.out = out or wide_console()

    def save(self) -> None:
        results.write_atomic(self.path, self.data)

    def run(self) -> int:
        """Run every unfinished cell; print the summary; 0 if every cell passed verification."""
        self.save()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=self.err,
            transient=False,
        ) as progress:
            for cell in self.data["cells"]:
                if cell["status"] in ("done", "failed"):
                    progress.console.print(f"[dim]kept {cell['id']}: {cell['status']} in an earlier run[/]")
                    continue
                self.run_cell(cell, progress)
        print_summary(self.data, self.out)
        self.out.print(f"results: {self.path}")
        write_report(self.data, self.path.parent / "report", self.out)
        return 0 if all(c["status"] == "done" for c in self.data["cells"]) else 1

    def _prepare(self, cell: dict[str, Any], console: Console) -> None:
        """Resume the cell in its database if it has checkpoints and the database survived; else start fresh."""
        db = cell.get("db_path")
        if cell["checkpoints"] and db and (database_exists(db) if is_server(db) else Path(db).exists()):
            last = cell["checkpoints"][-1]
            console.print(f"resuming {cell['id']} after its {last['phase']} checkpoint at {format_count(last['rows'])}")
            return
        if cell["work_dir"]:
            shutil.rmtree(cell["work_dir"], ignore_errors=True)
            if is_server(db):
                drop_database(db)  # type: ignore[arg-type]
            if cell["checkpoints"]:
                console.print(f"[yellow]{cell['id']}: its database is gone; starting the cell again[/]")
        cell["checkpoints"], cell["rss_samples"] = [], []
        safe = cell["id"].replace("/", "-").replace("@", "-")
        if self.settings["db_dir"]:
            Path(self.settings["db_dir"]).mkdir(parents=True, exist_ok=True)  # --db-dir may name a new folder
        cell["work_dir"] = tempfile.mkdtemp(prefix=f"sqlite_bench-{safe}-", dir=self.settings["db_dir"])
        server = self.settings.get("db_url")
        cell["db_path"] = create_database(server, safe) if server else str(Path(cell["work_dir"]) / "bench.db")

    def run_cell(self, cell: dict[str, Any], progress: Progress) -> None:
        console = progress.console
        self._prepare(cell, console)
        cell.update(
            status="running",
            attempts=cell["attempts"] + 1,
            started_at=cell["started_at"] or results.utc_now(),
            error=None,
            verification=None,
        )
        self.save()
        spec = {
            "path": cell["path"],
            "config": cell["config"],
            "chunk_size": cell["chunk_size"],
            "schema": cell.get("schema", "study"),
            "key": cell.get("key", "uuid4"),
            "sqlite": cell.get("sqlite", "stdlib"),
            "writers": cell["writers"],
            "db_path": cell["db_path"],
            "completed": cell["checkpoints"],
            "count_queries": self.settings.get("count_queries", False),
            **{
                k: self.settings[k]
                for k in ("scales", "phases", "seed", "sample_interval", "instrumented", "max_retries")
            },
        }
        spec_file = Path(cell["work_dir"]) / "cell.json"
        spec_file.write_text(json.dumps(spec))
        total = self.settings["scales"][-1]
        tasks: dict[str, TaskID] = {}
        for phase in self.settings["phases"]:
            done_rows = max((c["rows"] for c in cell["checkpoints"] if c["phase"] == phase), default=0)
            tasks[phase] = progress.add_task(f"{cell['id']} {phase}", total=total, completed=done_rows)

        proc = subprocess.Popen(
            [sys.executable, "-m", "sqlite_bench.cell", str(spec_file)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "progress":
                progress.update(tasks[event["phase"]], completed=event["rows"])
            elif kind == "started":
                cell["profile_readback"] = event["profile"]
                cell["sqlite_version"] = event.get("sqlite_version")
            elif kind == "resumed" and event["trimmed"]:
                console.print(f"  removed {event['trimmed']:,} rows committed after that checkpoint")
            elif kind == "checkpoint":
                cell["rss_samples"].extend(event.pop("rss_samples"))
                cp = results.add_checkpoint(cell, event)
                cum = cp["cumulative"]
                progress.update(tasks[cp["phase"]], completed=cp["rows"])
                self.save()
                p99 = cum["batches"]["p99_ms"]
                console.print(
                    f"  {cell['id']} {cp['phase']} @ {format_count(cp['rows'])}: {cum['rows_per_s']:,.0f} rows/s "
                    f"(segment {cp['segment']['rows_per_s']:,.0f}), p99 "
                    f"{'-' if p99 is None else f'{p99:,.0f} ms'}, peak RSS {cum['peak_rss_mb']:,.0f} MB, "
                    f"db {cp['files']['db_bytes'] / 2**20:,.0f} MB"
                )
            elif kind == "queries":
                cell["queries"] = event
            elif kind == "verified":
                cell["verification"] = event
            elif kind == "error":
                cell["error"] = f"{event['kind']}: {event['message']}"
        code = proc.wait()
        for task in tasks.values():
            progress.remove_task(task)

        verification = cell["verification"]
        if code == 0 and verification and verification["passed"]:
            cell["status"] = "done"
        else:
            cell["status"] = "failed"
            if not cell["error"]:
                cell["error"] = (
                    f"verification failed: {'; '.join(verification['problems'])}"
                    if verification
                    else f"cell process exited with code {code}"
                )
            console.print(f"[red]{cell['id']} failed: {cell['error']}[/]")
        cell["finished_at"] = results.utc_now()
        if cell["status"] == "done" and not self.settings["keep_db"]:
            shutil.rmtree(cell["work_dir"], ignore_errors=True)
            if is_server(cell["db_path"]):
                drop_database(cell["db_path"])
        elif cell["status"] == "failed":
            where = redact(cell["db_path"]) if is_server(cell["db_path"]) else cell["work_dir"]
            console.print(f"  its database is kept for inspection in {where}")
        self.save()


def publish(data: dict[str, Any], out: Path, console: Console, show: Any) -> int:
    """End a standalone benchmark: save its results, show its table, write its report; exit 0 if every cell passed."""
    results.write_atomic(out / results.FILENAME, data)
    show(data, console)
    console.print(f"results: {out / results.FILENAME}")
    write_report(data, out / "report", console)
    return 0 if all(c["status"] == "done" for c in data["cells"]) else 1


def write_report(data: dict[str, Any], folder: Path, console: Console) -> None:
    """The run's report (tables, plots, offline HTML) next to its results; a plotting failure is only reported."""
    from .report import build_report

    try:
        built = build_report([data], folder)
    except Exception as exc:  # the results are safe on disk; `sqlite-bench report` can retry
        console.print(f"[yellow]report not written: {type(exc).__name__}: {exc}[/]")
        return
    console.print(f"report: {built.out / 'report.html'} ({len(built.plots)} plots)")


def start(plan: Plan, output_dir: str, argv: list[str], module: str) -> int:
    """Begin a new run in OUTPUT_DIR/results.json (an older file there is kept under a dated name)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / results.FILENAME
    err = wide_console(stderr=True)
    if target.exists():
        kept = target.with_name(f"results-{results.utc_now().replace(':', '')}.json")
        target.rename(kept)
        err.print(f"an earlier {target} was kept as {kept.name}")
    command = shlex.join(["python", "-m", module, *argv])
    data = results.new_results(plan.benchmark, command, plan.settings(), system_info(plan.db_dir), plan.cells)
    return Runner(data, target, err=err).run()


def resume(path: str, argv: list[str], module: str) -> int:
    """Continue the run recorded in PATH with the settings it was started with."""
    data = results.load(path)
    command = shlex.join(["python", "-m", module, *argv])
    data["invocations"].append({"command": command, "started_at": results.utc_now(), "resumed": True})
    Path(data["settings"]["db_dir"]).mkdir(parents=True, exist_ok=True)
    return Runner(data, Path(path)).run()
