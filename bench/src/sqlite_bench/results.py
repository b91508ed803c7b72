"""The one results format: creating it, folding checkpoints into it, writing it atomically, resuming it.

A results file holds the run's settings, the machine, and one entry per cell (write path x
configuration x chunk size) with its checkpoints. Cumulative figures are computed here from the
stored per-segment figures and raw batch latencies, so a resumed run's numbers are exact.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .stats import summarize

SCHEMA_VERSION = 1
FILENAME = "results.json"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_results(
    benchmark: str, command: str, settings: dict[str, Any], system: dict[str, Any], cells: list[dict[str, Any]]
) -> dict[str, Any]:
    now = utc_now()
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": benchmark,
        "command": command,
        "created_at": now,
        "updated_at": now,
        "invocations": [{"command": command, "started_at": now, "resumed": False}],
        "settings": settings,
        "system": system,
        "cells": cells,
    }


def new_cell(
    cell_id: str,
    path: str,
    config: str,
    chunk_size: int,
    writers: int,
    variant: str,
    profile: dict[str, Any],
    schema: str = "study",
    key: str = "uuid4",
    sqlite: str = "stdlib",
) -> dict[str, Any]:
    return {
        "id": cell_id,
        "path": path,
        "config": config,
        "schema": schema,
        "key": key,
        "sqlite": sqlite,
        "chunk_size": chunk_size,
        "writers": writers,
        "variant": variant,
        "status": "pending",
        "attempts": 0,
        "work_dir": None,
        "db_path": None,
        "profile": profile,
        "profile_readback": None,
        "checkpoints": [],
        "rss_samples": [],
        "verification": None,
        "error": None,
        "started_at": None,
        "finished_at": None,
    }


def table_variant(cell: dict[str, Any]) -> tuple[str, str]:
    """A cell's table variant, (schema, key); files from before the variants existed ran the study's."""
    return cell.get("schema", "study"), cell.get("key", "uuid4")


def sqlite_module(cell: dict[str, Any]) -> str:
    """The SQLite DB-API module a cell ran through (stdlib or pysqlite3); files from before --sqlite ran stdlib."""
    return str(cell.get("sqlite", "stdlib"))


def variant(cell: dict[str, Any]) -> tuple[str, str, str]:
    """What a cell's peers must share besides path, config and chunk: its table variant and its SQLite module."""
    return (*table_variant(cell), sqlite_module(cell))


def path_label(cell: dict[str, Any]) -> str:
    """The cell's path, with its table variant and module where they are not the study's ('raw +lean +uuid7')."""
    return cell["path"] + "".join(
        f" +{v}" for v, default in zip(variant(cell), ("study", "uuid4", "stdlib")) if v != default
    )


def add_checkpoint(cell: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Append one checkpoint reported by a cell process, with cumulative figures for its phase."""
    phase = event["phase"]
    earlier = [c for c in cell["checkpoints"] if c["phase"] == phase]
    segment_latencies = event["batch_latencies_ms"]
    latencies = [x for c in earlier for x in c["batch_latencies_ms"]] + segment_latencies
    segment = {
        "rows": event["segment_rows"],
        "wall_s": round(event["wall_s"], 4),
        "generation_s": round(event["generation_s"], 4),
        "write_s": round(event["write_s"], 4),
        "rows_per_s": _rate(event["segment_rows"], event["write_s"]),
        "wall_rows_per_s": _rate(event["segment_rows"], event["wall_s"]),  # end to end, generation included
        "batches": summarize(segment_latencies),
        "peak_rss_mb": event["peak_rss_mb"],
    }
    totals = {k: sum(c["segment"][k] for c in earlier) + segment[k] for k in ("wall_s", "generation_s", "write_s")}
    cumulative = {
        "rows": event["rows"],
        **{k: round(v, 4) for k, v in totals.items()},
        "rows_per_s": _rate(event["rows"], totals["write_s"]),
        "wall_rows_per_s": _rate(event["rows"], totals["wall_s"]),
        "batches": summarize(latencies),
        "peak_rss_mb": max([c["segment"]["peak_rss_mb"] for c in earlier] + [segment["peak_rss_mb"]]),
    }
    checkpoint = {
        "phase": phase,
        "rows": event["rows"],
        "at": utc_now(),
        "segment": segment,
        "cumulative": cumulative,
        "errors": event["errors"],
        "retries": event["retries"],
        "memory": event["memory"],
        "files": event["files"],
        "batch_latencies_ms": segment_latencies,
    }
    if "activity" in event:  # what the cell process reports it did (threads, connections, pid, sampler)
        checkpoint["activity"] = event["activity"]
    cell["checkpoints"].append(checkpoint)
    return checkpoint


def _rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else 0.0


def write_atomic(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Replace `path` with `data` as JSON so a crash leaves either the old file or the new one, whole."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data["updated_at"] = utc_now()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file, refusing one written by an incompatible version of the suite."""
    data = json.loads(Path(path).read_text())
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: results schema version {version!r}, this suite reads {SCHEMA_VERSION}")
    return data


def json_schema() -> dict[str, Any]:
    """The JSON Schema every results file conforms to (shipped as results.schema.json)."""
    return json.loads(resources.files(__package__).joinpath("results.schema.json").read_text())


def validate(data: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `data` does not conform (needs the `jsonschema` package)."""
    import jsonschema

    jsonschema.validate(data, json_schema())
