"""A simulated power cut under SQLite: an APSW VFS shim over SQLite's own VFS that logs every write, truncate and
sync each file receives, so the disk as it would be after a power loss at any point of the run can be rebuilt.

What survives a power cut is what was synced: at a crash point, each file holds its contents as of its last
xSync, plus (in the "torn" mode) some of the writes made since, chosen at random and applied in their order, each
possibly cut short, as a disk may persist part of its volatile cache. A deleted file stays deleted (SQLite syncs
what matters before it deletes). The -shm file is left out: it is rebuilt from the WAL after a crash.

The connection runs on the real files throughout (reads see every write, as they would through the page cache);
only the rebuilt images are "after the crash". One run of a workload therefore yields every crash point.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw


@dataclass
class Op:
    kind: str  # "write", "truncate", "sync", "delete"
    file: str  # the file's base name (db, db-wal, ...)
    offset: int = 0
    data: bytes = b""


@dataclass
class Log:
    ops: list[Op] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops)

    def images(self, crashes: list[int], rng: random.Random | None = None) -> Iterator[tuple[int, dict[str, bytes]]]:
        """Each file as a power cut just before op `crash` leaves it, for every crash point in increasing order;
        with `rng`, some of the writes not yet synced survive as well (each possibly torn)."""
        durable: dict[str, bytearray] = {}
        pending: dict[str, list[Op]] = {}
        done = 0
        for crash in sorted(crashes):
            for op in self.ops[done:crash]:
                if op.kind == "delete":
                    durable.pop(op.file, None)
                    pending.pop(op.file, None)
                    continue
                durable.setdefault(op.file, bytearray())
                if op.kind == "sync":
                    for synced in pending.pop(op.file, []):
                        _apply(durable[op.file], synced)
                else:
                    pending.setdefault(op.file, []).append(op)
            done = max(done, crash)
            image = {name: bytearray(content) for name, content in durable.items()}
            if rng is not None:
                for name, ops in pending.items():
                    for op in ops:
                        if rng.random() < 0.5:
                            continue  # this write never reached the platter
                        if op.kind == "write" and rng.random() < 0.2:
                            op = Op("write", op.file, op.offset, op.data[: rng.randrange(len(op.data) + 1)])  # torn
                        _apply(image[name], op)
            yield crash, {name: bytes(c) for name, c in image.items() if not name.endswith("-shm")}

    def syncs(self, suffix: str) -> list[int]:
        """The op positions of every sync of the files ending in `suffix` (e.g. "-wal")."""
        return [i for i, op in enumerate(self.ops) if op.kind == "sync" and op.file.endswith(suffix)]


def _apply(content: bytearray, op: Op) -> None:
    if op.kind == "truncate":
        del content[op.offset :]
        return
    end = op.offset + len(op.data)
    if len(content) < op.offset:
        content.extend(b"\0" * (op.offset - len(content)))
    content[op.offset : end] = op.data


def write_image(image: dict[str, bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in image.items():
        (folder / name).write_bytes(content)


class _File(apsw.VFSFile):
    def __init__(self, log: Log, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)  # "" = the default VFS: the real file underneath
        filename = name.filename() if hasattr(name, "filename") else name
        self._log = log
        self._name = os.path.basename(filename) if filename else None  # None: a temporary file, not tracked

    def xWrite(self, data: bytes, offset: int) -> None:
        if self._name is not None:
            self._log.ops.append(Op("write", self._name, offset, bytes(data)))
        super().xWrite(data, offset)

    def xTruncate(self, size: int) -> None:
        if self._name is not None:
            self._log.ops.append(Op("truncate", self._name, size))
        super().xTruncate(size)

    def xSync(self, flags: int) -> None:
        if self._name is not None:
            self._log.ops.append(Op("sync", self._name))
        super().xSync(flags)


class PowerLossVFS(apsw.VFS):
    """Register once per run under a unique name; open connections with `vfs=vfs.name`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log = Log()
        super().__init__(name, "")

    def xOpen(self, name: Any, flags: list[int]) -> _File:
        return _File(self.log, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        self.log.ops.append(Op("delete", os.path.basename(filename)))
        super().xDelete(filename, syncdir)


# -- the workload: the transaction shapes turboalchemy's profiles run, through one APSW connection -------------

ROWS_PER_ITEM = 30


@dataclass
class Commit:
    items: list[int]  # the items (batches of rows) this transaction stored
    began: int  # log position at BEGIN IMMEDIATE
    acked: int  # log position when COMMIT returned: the caller was told it is stored


def _rows(item: int) -> list[tuple[int, int, str]]:
    return [(item, n, f"{item}:{n}:" + "x" * (150 + (item * 7 + n) % 200)) for n in range(ROWS_PER_ITEM)]


def workload(vfs: PowerLossVFS, path: Path, pragmas: dict[str, Any], transactions: int, seed: int) -> list[Commit]:
    """A profile's PRAGMAs, then a mix of the library's transaction shapes: one chunk per transaction (the fast
    path), group commits of items each in its own savepoint with some rolled back to it (the WriteQueue), whole
    transactions rolled back, and checkpoints between them. Returns the commits in order."""
    rng = random.Random(seed)
    conn = apsw.Connection(str(path), vfs=vfs.name)
    for name, value in {**pragmas, "mmap_size": 0}.items():  # reads through mmap would bypass the shim
        conn.execute(f"PRAGMA {name} = {value}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, item INTEGER NOT NULL, n INTEGER NOT NULL, pad TEXT)")
    conn.execute("CREATE INDEX t_item ON t (item)")
    commits: list[Commit] = []
    item = 0
    for _ in range(transactions):
        shape = rng.choices(["chunk", "group", "rollback", "checkpoint"], weights=[4, 4, 1, 1])[0]
        if shape == "checkpoint":
            conn.execute(f"PRAGMA wal_checkpoint({rng.choice(['PASSIVE', 'FULL', 'TRUNCATE'])})")
            continue
        began = len(vfs.log)
        conn.execute("BEGIN IMMEDIATE")
        stored = []
        for _ in range(1 if shape != "group" else rng.randint(2, 6)):
            item += 1
            if shape == "group":
                conn.execute("SAVEPOINT item")
            conn.executemany("INSERT INTO t (item, n, pad) VALUES (?, ?, ?)", _rows(item))
            if shape == "group" and rng.random() < 0.25:
                conn.execute("ROLLBACK TO item")  # a failed item: its neighbours commit without it
            else:
                stored.append(item)
            if shape == "group":
                conn.execute("RELEASE item")
        if shape == "rollback":
            conn.execute("ROLLBACK")
            continue
        conn.execute("COMMIT")
        if stored:  # a transaction whose every item rolled back stored nothing to look for
            commits.append(Commit(stored, began, len(vfs.log)))
    conn.close()  # the clean shutdown (a checkpoint, the WAL deleted) holds crash points too
    return commits


def check(folder: Path) -> tuple[str, dict[int, int] | None]:
    """integrity_check of a crashed image opened by SQLite (recovery runs), and each stored item's row count
    (None when the check failed); an item whose rows are not exactly what was written counts as -1."""
    import sqlite3

    conn = sqlite3.connect(folder / "app.db")
    try:
        integrity = "\n".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        if integrity != "ok":
            return integrity, None
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone():
            return integrity, {}
        items: dict[int, int] = {}
        for item, count, pads in conn.execute("SELECT item, count(*), group_concat(pad, '|') FROM t GROUP BY item"):
            expected = "|".join(r[2] for r in _rows(item))
            items[item] = count if pads is not None and sorted(pads.split("|")) == sorted(expected.split("|")) else -1
        return integrity, items
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}", None
    finally:
        conn.close()


def run(profile: str, crash_points: int, seed: int, workdir: Path, transactions: int = 150) -> dict[str, Any]:
    """One workload under `profile`, then every chosen crash point in both modes (only synced writes survive;
    some unsynced writes survive too, torn); returns the counts and every violation found."""
    import turboalchemy

    pragmas = dict(turboalchemy.PROFILES[profile].pragmas)
    vfs = PowerLossVFS(f"powerloss-{profile}-{seed}-{os.getpid()}")
    try:
        live = workdir / "live"
        live.mkdir(parents=True)
        commits = workload(vfs, live / "app.db", pragmas, transactions, seed)
    finally:
        vfs.unregister()
    log = vfs.log
    rng = random.Random(seed)
    step = max(1, len(log) // crash_points)
    points = sorted({*range(1, len(log) + 1, step), *(s + 1 for s in log.syncs("")), len(log)})
    points = points if len(points) <= crash_points * 2 else sorted(rng.sample(points, crash_points * 2))
    syncs = log.syncs("")  # any sync of the database or its WAL makes every commit acknowledged before it durable
    result: dict[str, Any] = {
        "profile": profile,
        "synchronous": pragmas.get("synchronous"),
        "seed": seed,
        "transactions": transactions,
        "commits": len(commits),
        "log_ops": len(log),
        "crash_points": len(points),
        "images": 0,
        "acknowledged": 0,
        "lost": 0,
        "lost_unsynced": 0,
        "max_lost": 0,
        "integrity_failures": 0,
        "violations": [],
    }
    for mode, mode_rng in (("synced only", None), ("torn", random.Random(seed + 1))):
        for crash, image in log.images(points, mode_rng):
            folder = workdir / f"crash-{mode.replace(' ', '-')}-{crash}"
            write_image(image, folder)
            integrity, items = check(folder) if "app.db" in image else ("ok", {})
            result["images"] += 1
            acked = sum(1 for c in commits if c.acked <= crash)
            result["acknowledged"] += acked
            last_sync = max((s for s in syncs if s < crash), default=-1)
            synced = sum(1 for c in commits if c.acked <= last_sync)
            if items is None:
                result["integrity_failures"] += 1
                result["violations"].append({"crash": crash, "mode": mode, "problem": integrity[:200]})
            else:
                # the survivors must be exactly the first m transactions, every row of each
                m = 0
                while m < len(commits) and all(items.get(i) == ROWS_PER_ITEM for i in commits[m].items):
                    m += 1
                expected = {i for c in commits[:m] for i in c.items}
                if set(items) != expected:
                    result["violations"].append(
                        {
                            "crash": crash,
                            "mode": mode,
                            "problem": f"not a prefix of the commits: {sorted(set(items) ^ expected)[:10]}",
                        }
                    )
                lost = max(0, acked - m)
                result["lost"] += lost
                result["max_lost"] = max(result["max_lost"], lost)
                result["lost_unsynced"] += max(0, acked - max(m, synced))
                if m < synced:
                    result["violations"].append(
                        {"crash": crash, "mode": mode, "problem": f"lost synced commits: kept {m} of {synced}"}
                    )
                if profile == "durable" and lost:
                    result["violations"].append(
                        {"crash": crash, "mode": mode, "problem": f"lost {lost} acknowledged commits"}
                    )
                if m > sum(1 for c in commits if c.began < crash):
                    result["violations"].append(
                        {"crash": crash, "mode": mode, "problem": "a commit that had not begun"}
                    )
            shutil.rmtree(folder)
    return result


if __name__ == "__main__":  # the published figures: python tests/reliability/powerloss.py --output FILE
    import argparse
    import json
    import subprocess
    import sys
    import tempfile
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crash-points", type=int, default=250)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    runs = []
    for profile in ("durable", "production"):
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                began = time.perf_counter()
                runs.append(
                    {
                        **run(profile, args.crash_points, seed, Path(tmp)),
                        "seconds": round(time.perf_counter() - began, 1),
                    }
                )
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "violations"}), file=sys.stderr)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    Path(args.output).write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "git_commit": commit,
                "apsw": apsw.apswversion(),
                "sqlite": apsw.sqlite_lib_version(),
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
