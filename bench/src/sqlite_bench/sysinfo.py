"""What a result needs to be compared across machines: hardware, filesystem, versions, commit."""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy

_LIMITS = [name for name in dir(sqlite3) if name.startswith("SQLITE_LIMIT_")]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def filesystem_of(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """The mount that holds `path`: its mount point, device and filesystem type."""
    target = os.path.realpath(path)
    best = None
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and (
            best is None or len(mount) > len(best.mountpoint)
        ):
            best = part
    if best is None:
        return {"mountpoint": None, "device": None, "fstype": None}
    return {"mountpoint": best.mountpoint, "device": best.device, "fstype": best.fstype}


def git_commit() -> str | None:
    """The commit of the source tree this package was loaded from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "") if out else None


def sqlite_info() -> dict[str, Any]:
    """The SQLite library's version, compile options and run-time limits, read from a live connection."""
    conn = sqlite3.connect(":memory:")
    try:
        options = [row[0] for row in conn.execute("PRAGMA compile_options")]
        limits = {name[len("SQLITE_LIMIT_") :].lower(): conn.getlimit(getattr(sqlite3, name)) for name in _LIMITS}
    finally:
        conn.close()
    return {"version": sqlite3.sqlite_version, "compile_options": options, "limits": limits}


def system_info(db_dir: str | os.PathLike[str]) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "machine": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(memory.total / 1024**3, 1),
        "os": platform.system(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite_info(),
        "db_dir": os.path.realpath(db_dir),
        "db_filesystem": filesystem_of(db_dir),
        "git_commit": git_commit(),
    }
