"""tools/link_run_reports.py: a run's report.md ends up showing the reference report's committed plots."""

from __future__ import annotations

import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tools" / "link_run_reports.py"


def test_a_runs_local_plot_links_become_links_to_the_reference_plots(tmp_path):
    run = tmp_path / "keys-1m" / "chunk-5000" / "report"
    run.mkdir(parents=True)
    (run / "report.md").write_text("# run\n\n![growth](growth-by-table.png)\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keys-1m-chunk-5000-growth-by-table.png").write_bytes(b"png")
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True)
    assert "relinked 1" in out.stdout
    assert (
        run / "report.md"
    ).read_text() == "# run\n\n![growth](../../../report/keys-1m-chunk-5000-growth-by-table.png)\n"


def test_a_plot_missing_from_the_reference_report_stops_it(tmp_path):
    run = tmp_path / "scale-1m" / "report"
    run.mkdir(parents=True)
    (run / "report.md").write_text("![x](throughput.png)\n")
    (tmp_path / "report").mkdir()
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode != 0 and "no plot 'throughput.png'" in out.stderr
