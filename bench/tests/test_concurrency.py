"""sqlite_bench.concurrency: every mode stores every write once and reports through the harness's results format."""

from __future__ import annotations

import pytest

from sqlite_bench import concurrency, results


@pytest.mark.parametrize("profile", ["production", "durable"])
def test_every_mode_stores_every_write_and_validates(tmp_path, profile, capsys):
    code = concurrency.main(
        [
            "--writers",
            "1,4",
            "--ops",
            "300",
            "--profile",
            profile,
            "--output-dir",
            str(tmp_path),
            "--work-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    data = results.load(tmp_path / results.FILENAME)
    results.validate(data)
    assert data["benchmark"] == "concurrency"
    assert [(c["path"], c["writers"]) for c in data["cells"]] == [(m, n) for n in (1, 4) for m in concurrency.MODES]
    for cell in data["cells"]:
        assert cell["status"] == "done" and cell["verification"]["passed"] and cell["verification"]["row_count"] == 300
        checkpoint = cell["checkpoints"][0]
        assert len(checkpoint["batch_latencies_ms"]) == 300 and checkpoint["errors"]["locked"] == 0
    assert "vs conn." in capsys.readouterr().out


def test_unknown_modes_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        concurrency.main(["--modes", "queue,fast", "--output-dir", str(tmp_path)])
