"""Results files that cannot be written: the previous file stays intact, no temporary is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

WRITER = textwrap.dedent("""
    import resource, signal, sys
    from sqlite_bench import results
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        results.write_atomic(sys.argv[1], {"big": "x" * 100_000})
    except OSError as exc:
        print("refused:", exc.errno)
""")


def test_a_results_file_that_cannot_be_written_leaves_the_previous_one_intact(tmp_path):
    from sqlite_bench import results

    target = tmp_path / "results.json"
    results.write_atomic(target, {"generation": 1})
    before = target.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out = subprocess.run([sys.executable, str(script), str(target)], capture_output=True, text=True)
    assert out.stdout.startswith("refused: 27"), out.stdout + out.stderr  # EFBIG
    assert target.read_bytes() == before and json.loads(before)["generation"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # no half-written temporary left


def test_a_results_file_on_a_full_device_is_refused_whole(tmp_path):
    from sqlite_bench import results

    target = tmp_path / "results.json"
    results.write_atomic(target, {"generation": 1})
    before = target.read_bytes()
    real_fsync = os.fsync

    def full(fd):  # what /dev/full does to a write: ENOSPC at the point the data must reach the device
        raise OSError(28, "No space left on device")

    os.fsync = full
    try:
        try:
            results.write_atomic(target, {"generation": 2})
        except OSError as exc:
            assert exc.errno == 28
        else:
            raise AssertionError("the write should have failed")
    finally:
        os.fsync = real_fsync
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
