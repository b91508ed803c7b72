"""Memory as the measured process sees it: a background RSS sampler and a breakdown of one reading."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

import psutil

MB = 1024 * 1024


def _sqlite_library() -> ctypes.CDLL | None:
    """The SQLite library the sqlite3 module uses, if shared, to ask for SQLite's own heap size."""
    name = ctypes.util.find_library("sqlite3")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_libversion.restype = ctypes.c_char_p
    except (OSError, AttributeError):
        return None
    import sqlite3

    # A statically linked _sqlite3 would have its own copy whose heap we cannot see: refuse to guess.
    return lib if lib.sqlite3_libversion().decode() == sqlite3.sqlite_version else None


_SQLITE = _sqlite_library()


def memory_breakdown() -> dict[str, float | None]:
    """RSS now, split into anonymous memory (Python heap and SQLite's page cache) and file pages
    (mostly the database mapped by mmap_size), plus SQLite's own heap where it can be read."""
    fields: dict[str, float] = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:")):
                    key, value = line.split(":", 1)
                    fields[key] = int(value.split()[0]) * 1024 / MB
    except OSError:
        fields["VmRSS"] = psutil.Process().memory_info().rss / MB
    return {
        "rss_mb": round(fields.get("VmRSS", 0.0), 1),
        "rss_anon_mb": round(fields["RssAnon"], 1) if "RssAnon" in fields else None,
        "rss_file_mb": round(fields["RssFile"] + fields.get("RssShmem", 0.0), 1) if "RssFile" in fields else None,
        "sqlite_heap_mb": round(_SQLITE.sqlite3_memory_used() / MB, 1) if _SQLITE else None,
    }


class RssSampler:
    """Reads this process's RSS every `interval` seconds on a daemon thread and keeps every sample."""

    def __init__(self, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError("sampling interval must be positive")
        self.interval = interval
        self._process = psutil.Process()
        self._origin = time.monotonic()
        self._samples: list[tuple[float, float]] = []
        self._taken = 0
        self.background = 0  # readings taken by the sampler's own thread (checkpoints take theirs too)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.sample()
            self.background += 1
            if self._stop.wait(self.interval):
                return

    def sample(self) -> float:
        """Take one reading now (also called at every checkpoint) and return it in MB."""
        rss = self._process.memory_info().rss / MB
        self._samples.append((round(time.monotonic() - self._origin, 3), round(rss, 1)))
        return rss

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def take(self) -> list[tuple[float, float]]:
        """The samples since the previous take: (seconds since start, RSS MB)."""
        new = self._samples[self._taken :]
        self._taken += len(new)
        return new
