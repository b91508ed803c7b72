"""sqlite-bench report: tables, valid PNG plots with the expected series, an HTML page that needs no network."""

from __future__ import annotations

import copy
import json
import re

import pytest
from matplotlib.image import imread

from sqlite_bench import concurrency, plots, results
from sqlite_bench.cli import before_after, report, scale_benchmark
from sqlite_bench.report import build_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small real runs of each benchmark, made once for the module."""
    base = tmp_path_factory.mktemp("runs")
    assert (
        before_after(
            [
                "--scales",
                "2K,4K",
                "--mode",
                "orm,raw,turbo",
                "--chunk-size",
                "1000",
                "--output-dir",
                str(base / "ba"),
                "--db-dir",
                str(base),
            ]
        )
        == 0
    )
    assert (
        scale_benchmark(
            [
                "--scales",
                "2K,4K",
                "--configs",
                "chunk_1000,chunk_5000",
                "--mode",
                "raw",
                "--output-dir",
                str(base / "scale"),
                "--db-dir",
                str(base),
            ]
        )
        == 0
    )
    assert (
        concurrency.main(
            ["--writers", "1,2", "--ops", "100", "--output-dir", str(base / "conc"), "--work-dir", str(base)]
        )
        == 0
    )
    return {name: results.load(base / name / results.FILENAME) for name in ("ba", "scale", "conc")}, base


def test_every_run_writes_its_own_report(runs):
    _, base = runs
    for name in ("ba", "scale", "conc"):
        assert (base / name / "report" / "report.html").stat().st_size > 1000


def test_the_report_has_the_study_layouts_and_valid_plots(runs, tmp_path):
    loaded, base = runs
    built = build_report(list(loaded.values()), tmp_path / "report")
    titles = [t.title for t in built.tables]
    for expected in (
        "headline",
        "raw ÷ orm",
        "configuration sweep",
        "transaction size against latency",
        "every checkpoint",
        "per-segment throughput",
        "concurrency",
    ):
        assert any(expected in t for t in titles), expected
    harness = {
        "throughput-per-config.png",
        "throughput-over-rows.png",
        "db-size-over-rows.png",
        "segments-over-rows.png",
        "rss-over-time.png",
    }
    # two harness runs: each gets its own plots (only the chunk sweep has a p99-against-chunk plot)
    # named for each run's --output-dir (its last folder, or its last two where two runs share the last)
    ba, scale = "ba", "scale"
    assert set(built.plots) == {f"{ba}-{n}" for n in harness} | {
        f"{scale}-{n}" for n in harness | {"p99-vs-chunk.png"}
    } | {"concurrency.png"}
    for name in built.plots:
        data = (tmp_path / "report" / name).read_bytes()
        assert data.startswith(PNG)
        height, width = imread(tmp_path / "report" / name).shape[:2]
        assert width > 400 and height > 200
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| turbo |" in markdown and "![" in markdown


def test_runs_are_named_by_their_last_folder_unless_two_share_it():
    from sqlite_bench.report import _run_tag

    def run(folder):
        return {"benchmark": "before_after", "command": f"python -m sqlite_bench.before_after --output-dir {folder}"}

    assert _run_tag(run("/tmp/ref/scale-1m"), 0, 2) == "scale-1m"  # a scratch folder does not name the run
    assert _run_tag(run("/tmp/a/chunk-5000"), 0, 2, depth=2) == "a/chunk-5000"
    assert _run_tag(run("docs/results/keys-1m/chunk-5000"), 0, 2) == "keys-1m/chunk-5000"


def test_the_growth_table_sets_each_cells_last_segment_against_its_first(runs, tmp_path):
    loaded, _ = runs
    data = loaded["ba"]
    built = build_report([data], tmp_path / "report")
    growth = next(t for t in built.tables if t.title.endswith("as the table grows"))
    expected = {}
    for cell in data["cells"]:
        for phase in ("insert", "upsert"):
            rates = [cp["segment"]["rows_per_s"] for cp in cell["checkpoints"] if cp["phase"] == phase]
            expected[(cell["path"], phase)] = f"{rates[-1] / rates[0]:.2f}"
    assert {(row[0], row[3]): row[6] for row in growth.rows} == expected
    assert len(growth.columns) == 7  # two segments: no second one to set against, so that column is left out


def test_a_run_over_several_tables_plots_each_tables_growth_in_its_own_panel(tmp_path):
    out = tmp_path / "keys"
    assert (
        before_after(
            [
                "--scales",
                "2K,4K,6K",
                "--phases",
                "insert",
                "--mode",
                "raw,engine",
                "--schema",
                "study,ordered",
                "--key",
                "uuid4,uuid7",
                "--chunk-size",
                "1000",
                "--output-dir",
                str(out),
                "--db-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = results.load(out / results.FILENAME)
    built = build_report([data], tmp_path / "report")
    assert "growth-by-table.png" in built.plots
    assert (tmp_path / "report" / "growth-by-table.png").read_bytes().startswith(PNG)
    labels = plots.growth_by_table(data["cells"], tmp_path / "g.png")
    assert sorted(labels) == sorted(plots.cell_label(c) for c in data["cells"])  # every cell, once
    growth = next(t for t in built.tables if t.title.endswith("as the table grows"))
    assert len(growth.rows) == 8 and all(row[7] != "-" for row in growth.rows)  # three segments: a second one


def test_the_plots_draw_one_series_per_cell(runs, tmp_path):
    loaded, _ = runs
    cells = [c for c in loaded["ba"]["cells"] if c["status"] == "done"]
    labels = plots.cumulative_over_rows(cells, tmp_path / "c.png")
    assert len(labels) == 3 and {label.split()[0] for label in labels} == {"orm", "raw", "turbo"}
    chunked = plots.p99_vs_chunk(loaded["scale"]["cells"], tmp_path / "p.png")
    assert chunked == ["raw"]


def test_the_html_needs_no_network(runs, tmp_path):
    loaded, _ = runs
    build_report(list(loaded.values()), tmp_path / "r")
    page = (tmp_path / "r" / "report.html").read_text()
    assert not re.search(r"https?://|<script|<link|@import|url\(", page)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r"src='([^']*)'", page))
    assert page.count("<img") == 12


def test_a_single_harness_run_keeps_plain_plot_names(runs, tmp_path):
    loaded, _ = runs
    built = build_report([loaded["ba"]], tmp_path / "one")
    assert "segments-over-rows.png" in built.plots and not any(n.startswith("before_after-") for n in built.plots)


def test_runs_from_several_machines_merge_into_one_table(runs, tmp_path):
    loaded, _ = runs
    other = copy.deepcopy(loaded["ba"])
    other["system"]["cpu_model"] = "Other CPU"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(loaded["ba"]))
    second.write_text(json.dumps(other))
    assert report([str(first), str(second), "--out", str(tmp_path / "merged")]) == 0
    markdown = (tmp_path / "merged" / "report.md").read_text()
    assert "### across machines" in markdown
    assert "Other CPU" in markdown and loaded["ba"]["system"]["cpu_model"] in markdown


def test_one_machine_with_sqlite_and_postgresql_runs_is_one_machine(runs, tmp_path):
    loaded, _ = runs
    server = copy.deepcopy(loaded["ba"])
    server["settings"]["db_url"] = "postgresql+psycopg://postgres@127.0.0.1/postgres"  # the same hardware
    built = build_report([loaded["ba"], server], tmp_path / "same")
    assert not [t for t in built.tables if t.title == "across machines"]


def test_the_cross_machine_table_says_the_chunk_size_and_each_phase(runs, tmp_path):
    loaded, _ = runs
    other = copy.deepcopy(loaded["ba"])
    other["system"]["machine"] = "elsewhere"
    built = build_report([loaded["ba"], other], tmp_path / "two")
    (cross,) = [t for t in built.tables if t.title == "across machines"]
    assert "chunk" in cross.columns and {row[cross.columns.index("phase")] for row in cross.rows} == {
        "insert",
        "upsert",
    }


def test_no_report_table_has_an_empty_column(runs, tmp_path):
    loaded, _ = runs
    built = build_report(list(loaded.values()), tmp_path / "all")
    for table in built.tables:
        for i, column in enumerate(table.columns):
            assert any(row[i] not in ("", "-") for row in table.rows), f"{table.title}: {column} is empty"


def test_p99_against_chunk_size_draws_only_the_chunk_configurations(tmp_path):
    def cell(config, chunk, p99):
        return {
            "path": "raw",
            "config": config,
            "chunk_size": chunk,
            "writers": 1,
            "schema": "study",
            "key": "uuid4",
            "variant": "fair",
            "checkpoints": [{"phase": "insert", "cumulative": {"batches": {"p99_ms": p99}}}],
        }

    pools_only = plots.p99_vs_chunk([cell("pool_8", 10_000, 900.0), cell("baseline", 5_000, 50.0)], tmp_path / "a.png")
    assert pools_only == []
    assert plots.p99_vs_chunk([cell("chunk_1000", 1_000, 5.0), cell("pool_8", 10_000, 900.0)], tmp_path / "b.png") == [
        "raw"
    ]


def test_no_two_of_eighty_series_share_a_colour_and_marker():
    styles = {(plots.series_style(i)["color"], plots.series_style(i)["marker"]) for i in range(80)}
    assert len(styles) == 80


def test_legends_sit_outside_the_axes(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: seen.append(fig))
    cells = [
        {
            "path": "raw",
            "config": f"chunk_{i}",
            "chunk_size": 1000 + i,
            "writers": 1,
            "schema": "study",
            "key": "uuid4",
            "variant": "fair",
            "checkpoints": [{"phase": "insert", "rows": r, "cumulative": {"rows_per_s": 1000.0 * r}} for r in (1, 2)],
        }
        for i in range(12)
    ]
    plots.cumulative_over_rows(cells, tmp_path / "c.png")
    (fig,) = seen
    fig.canvas.draw()
    (ax,) = fig.axes
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1  # beside the plotted area, covering nothing
    plt.close(fig)


def test_unreadable_results_are_refused(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{}")
    assert report([str(tmp_path / "bad.json"), "--out", str(tmp_path / "r")]) == 2


def test_the_read_benchmark_reports_every_mode_and_both_page_methods(tmp_path):
    from sqlite_bench import reads

    assert reads.main(["--rows", "3K", "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path)]) == 0
    data = results.load(tmp_path / "out" / results.FILENAME)
    results.validate(data)
    full = {c["path"]: c for c in data["cells"] if c["config"] == "full-read"}
    assert set(full) == set(reads.MODES)
    assert all(c["checkpoints"][0]["segment"]["rows_per_s"] > 0 for c in full.values())
    assert {(c["path"], c["config"]) for c in data["cells"] if c["config"] != "full-read"} == {
        (f"{method}_{kind}", "page_1") for method in ("offset", "keyset") for kind in ("orm", "core")
    }
    assert "page latency" in (tmp_path / "out" / "report" / "report.md").read_text()
    png = tmp_path / "out" / "report" / "reads-sqlite.png"
    assert png.read_bytes().startswith(PNG) and imread(png).shape[1] > 400
    labels = plots.reads(data, tmp_path / "again.png")
    assert set(labels) == set(reads.MODES) | {f"{m}_{k}" for m in ("offset", "keyset") for k in ("orm", "core")}


def test_the_read_benchmark_repeats_its_full_reads_interleaved_and_reports_ranges(tmp_path, capsys):
    from sqlite_bench import reads

    argv = ["--rows", "2K", "--modes", "core,fetchmany", "--repeat", "2"]
    assert reads.main([*argv, "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path)]) == 0
    data = results.load(tmp_path / "out" / results.FILENAME)
    results.validate(data)
    assert [c["id"] for c in data["cells"] if c["config"] == "full-read"] == [
        "core/full-read#1",
        "fetchmany/full-read#1",
        "fetchmany/full-read#2",
        "core/full-read#2",
    ]
    spread = {r["mode"]: r for r in reads.full_reads(data)}
    assert (
        spread["core"]["runs"] == 2
        and spread["core"]["rate"][1] <= spread["core"]["rate"][0] <= spread["core"]["rate"][2]
    )
    page_one = next(c for c in data["cells"] if c["id"] == "keyset_core/page_1")
    assert len(page_one["checkpoints"][0]["batch_latencies_ms"]) == 2 * 7  # both runs' timings, one cell
    assert "median (range)" in capsys.readouterr().out
    assert "median (range) over interleaved runs" in (tmp_path / "out" / "report" / "report.md").read_text()


def test_the_read_benchmark_reports_peak_memory_not_current_memory():
    """In a fresh process (the suite's own peak would hide it): 200 MiB allocated, then freed."""
    import subprocess
    import sys

    code = """
from sqlite_bench.reads import _peak_rss_mb
from sqlite_bench.monitor import memory_breakdown
before = memory_breakdown()["rss_mb"]
block = bytearray(200 * 2**20)
block[::4096] = b"x" * len(block[::4096])
del block
print(before, memory_breakdown()["rss_mb"], _peak_rss_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, now, peak = map(float, out.stdout.split())
    assert now < before + 100 < peak


def test_the_read_benchmark_builds_its_table_under_the_configuration_it_is_given(tmp_path):
    import sqlite3

    from rich.console import Console

    from sqlite_bench import reads

    reads._fill(str(tmp_path / "r.db"), 2_000, Console(quiet=True), "baseline+page_size=16384")
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert conn.execute("SELECT count(*) FROM bench_rows").fetchone()[0] == 2_000
    assert reads.read_all(str(tmp_path / "r.db"), "core", "baseline+page_size=16384")["seconds"] > 0


def test_repeated_runs_are_plotted_once_per_configuration_with_their_range(runs, tmp_path):
    """Plots of a --repeat run drew every run under one label: a configuration three times, and the bar that
    showed was the fastest run. Now the median run is drawn, with the runs' range as its error bar."""
    import copy

    from sqlite_bench.report import _median_runs

    data = copy.deepcopy(runs[0]["ba"])
    cells = [c for c in data["cells"] if c["status"] == "done"]
    repeated = []
    for run, factor in ((1, 0.8), (2, 1.0), (3, 1.3)):
        for cell in cells:
            twin = copy.deepcopy(cell)
            twin.update(id=f"{cell['id']}#{run}", repeat=run)
            for cp in twin["checkpoints"]:
                cp["cumulative"]["rows_per_s"] *= factor
            repeated.append(twin)
    drawn = _median_runs(repeated)
    assert len(drawn) == len(cells) and all(c["repeat"] == 2 for c in drawn)
    for cell, original in zip(drawn, cells):
        final = [cp for cp in original["checkpoints"] if cp["phase"] == "insert"][-1]["cumulative"]["rows_per_s"]
        low, high = cell["runs_range"]["insert"]
        assert (low, high) == pytest.approx((final * 0.8, final * 1.3))
    labels = plots.throughput_per_config(drawn, tmp_path / "bars.png")
    assert len(labels) == len(set(labels)) == len(cells)
    assert _median_runs(cells) == cells  # a single run is drawn as it is
