"""python -m vmexp.compare: two runs, or two sweeps, side by side — checked on Belady's string.

On 1,2,3,4,1,2,5,1,2,3,4,5 FIFO takes 9 faults with 3 frames and 10 with
4; LRU takes 10 and 8 (Belady 1969; Mattson et al. 1970). Those are the
numbers the comparison must put side by side.
"""

from __future__ import annotations

import csv
import html
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vmexp
from tests import warm
from vmexp.compare import compare, render

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BELADY = [
    "workload=pageref",
    "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]",
    "machine.min_free=0",
    "figures=false",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("runs")
    return {
        "fifo3": vmexp.run([*BELADY, "policy=fifo", "ram=12k"], out_dir=d / "fifo3", quiet=True).dir,
        "fifo4": vmexp.run([*BELADY, "policy=fifo", "ram=16k"], out_dir=d / "fifo4", quiet=True).dir,
        # 5 frames hold all 5 pages: 5 first-touch faults, nothing evicted, no major fault.
        "fifo5": vmexp.run([*BELADY, "policy=fifo", "ram=20k"], out_dir=d / "fifo5", quiet=True).dir,
    }


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sweeps")
    return {
        "fifo": vmexp.sweep([*BELADY, "policy=fifo", "ram=12k,16k"], out_dir=d / "fifo", quiet=True).dir,
        # 16k written as bytes: the join is by value.
        "lru": vmexp.sweep([*BELADY, "policy=lru", "ram=12k,16384"], out_dir=d / "lru", quiet=True).dir,
    }


def compare_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return warm.run_module("vmexp.compare", args, cwd=cwd, timeout=300)


def test_a_comparison_in_a_notebook_is_the_commands_text_and_its_figure(results: dict[str, Path]) -> None:
    c = compare(results["fifo3"], results["fifo4"])
    page = c._repr_html_()
    assert page.startswith("<pre>A: ") and html.escape(render(c)) in page
    assert page.count("<img ") == 1 and "src='data:image/png;base64,iVBORw0KGgo" in page  # a PNG


def test_two_runs_differ_in_ram_and_by_one_fault(results: dict[str, Path]) -> None:
    c = compare(results["fifo3"], results["fifo4"])
    assert c.kind == "runs"
    assert c.settings == [("ram", "12 KiB", "16 KiB")]  # from settings.json: typed, shown with its unit
    m = c.metrics
    assert m.loc["minflt", "A"] + m.loc["majflt", "A"] == 9
    assert m.loc["minflt", "B"] + m.loc["majflt", "B"] == 10
    assert m.loc["minflt", "diff"] + m.loc["majflt", "diff"] == 1
    for name, row in m.iterrows():
        if row["A"]:
            assert row["ratio"] == pytest.approx(row["B"] / row["A"]), name


@pytest.mark.slow
def test_two_sweeps_are_joined_on_the_swept_key(sweeps: dict[str, Path]) -> None:
    c = compare(sweeps["fifo"], sweeps["lru"])
    assert c.kind == "sweeps"
    assert c.keys == ["ram"]
    assert ("policy.name", "fifo", "lru") in c.settings
    assert all(k != "ram" for k, _, _ in c.settings)  # the join key is not a difference
    faults = c.metrics[c.metrics["metric"] == "faults"]
    assert list(faults["ram"]) == ["12k", "16k"]
    assert list(faults["A"]) == [9, 10]  # FIFO: Belady's anomaly
    assert list(faults["B"]) == [10, 8]  # LRU: a stack algorithm
    assert list(faults["diff"]) == [1, -2]
    assert list(faults["ratio"]) == pytest.approx([10 / 9, 0.8])
    assert not c.only_a and not c.only_b


def test_the_command_compares_two_runs_and_draws_the_figure(results: dict[str, Path], tmp_path: Path) -> None:
    r = compare_cli(results["fifo3"], results["fifo4"], "-o", "runs.png", "--csv", "runs.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "Settings that differ (1):" in lines
    assert any(line.split() == ["ram", "12", "KiB", "16", "KiB"] for line in lines)
    assert (tmp_path / "runs.png").stat().st_size > 10_000
    with (tmp_path / "runs.csv").open() as fh:
        rows = {row["metric"]: row for row in csv.DictReader(fh)}
    assert float(rows["minflt"]["A"]) + float(rows["majflt"]["A"]) == 9


@pytest.mark.slow
def test_the_command_compares_two_sweeps(sweeps: dict[str, Path], tmp_path: Path) -> None:
    r = compare_cli(sweeps["fifo"], sweeps["lru"], "-o", "sweeps.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Joined on: ram" in r.stdout
    block = r.stdout.split("faults — ")[1].splitlines()[:4]
    assert [line.split()[:3] for line in block[2:4]] == [["12k", "9", "10"], ["16k", "10", "8"]]
    assert (tmp_path / "sweeps.png").stat().st_size > 10_000


def test_equal_metrics_are_named_once_and_undefined_ones_are_not_zero(results: dict[str, Path]) -> None:
    text = render(compare(results["fifo3"], results["fifo3"]))
    assert "Settings: the same on both sides" in text
    assert "Equal on both sides: minflt, majflt" in text
    c = compare(results["fifo5"], results["fifo3"])
    assert c.metrics.loc["minflt", "A"] + c.metrics.loc["majflt", "A"] == 5
    assert c.metrics.loc["majflt", "A"] == 0
    # Without a major fault the mean CPU time between them is undefined: not 0 s, and no ratio.
    m = c.metrics.loc["mean_time_between_faults_s"]
    assert math.isnan(m["A"]) and m["B"] > 0 and math.isnan(m["ratio"])
    assert re.search(
        r"^  mean_time_between_faults_s +— +[0-9.]+ (ns|µs|ms|s) +— +—$", render(c), re.MULTILINE
    )


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("fifo3", "sweep", "A is a run and B is a sweep: compare two runs or two sweeps"),
        ("fifo3", "empty", "B: {empty}: neither a run"),
        ("missing", "fifo3", "A: {missing}: no such directory"),
    ],
)
def test_wrong_inputs_are_one_line_errors(
    results: dict[str, Path], tmp_path: Path, a: str, b: str, message: str
) -> None:
    paths = {
        **results,
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "sweep": tmp_path / "sweep",
    }
    paths["empty"].mkdir()
    shutil.copytree(results["fifo3"], paths["sweep"] / "0_ram=12k")  # a sweep of one job
    r = compare_cli(paths[a], paths[b], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    expected = "vmexp.compare: error: " + message.format(**{k: str(v) for k, v in paths.items()})
    assert r.stderr.startswith(expected) and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.slow
def test_sweeps_with_no_swept_key_in_common_cannot_be_joined(sweeps: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(sweeps["lru"], other)
    summary = other / "summary.csv"
    summary.write_text(summary.read_text().replace("ram,", "swap,", 1))
    with pytest.raises(vmexp.VmexpError, match=r"share no swept key \(A: ram; B: swap\)"):
        compare(sweeps["fifo"], other)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-figure", "--csv", "folder"], "--csv: folder: Is a directory"),
        (["-o", "file/compare.png"], "-o: file: is a file, not a directory"),
        (["-o", "compare.txt"], "-o: compare.txt: not a figure format matplotlib writes"),
    ],
)
def test_an_output_that_cannot_be_written_is_a_one_line_error(
    results: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    from vmexp.compare import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    assert main([str(results["fifo3"]), str(results["fifo4"]), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vmexp.compare: error: {message}") and err.count("\n") == 1, err


def test_the_command_names_the_files_it_wrote(
    results: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # matplotlib adds .png to a name without a suffix; a directory gets compare.png; missing folders are made.
    from vmexp.compare import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    for given, written in [
        ("plain", "plain.png"),
        ("folder", "folder/compare.png"),
        ("new/b.png", "new/b.png"),
    ]:
        assert main([str(results["fifo3"]), str(results["fifo4"]), "-o", given, "--csv", "t/x.csv"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[-1] == f"figure: {written}" and out[-3] == "table: t/x.csv"
        assert (tmp_path / written).stat().st_size > 10_000 and (tmp_path / "t" / "x.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "new", "plain.png", "t"]


def test_the_runs_figure_shows_every_metric_name_whole_and_keeps_its_key_off_the_bars(
    results: dict[str, Path],
) -> None:
    # Unnamed metrics used their long labels ("page faults (minor + major)", "heap fragmentation at
    # exit (free / arena, ...)"), cut off at the figure's left edge; the colour key sat on the last bars.
    import matplotlib.pyplot as plt

    from vmexp.compare import _draw_runs
    from vmexp.metrics import COLUMNS, metric

    assert all(len(metric(c).short) <= 20 for c in COLUMNS), [metric(c).short for c in COLUMNS]
    fig = _draw_runs(compare(results["fifo3"], results["fifo4"]))
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        bars_ax = fig.axes[0]
        names = [t for t in bars_ax.get_yticklabels() if t.get_text()]
        assert "page faults" in [t.get_text() for t in names]
        assert all(t.get_window_extent(renderer).x0 >= 0 for t in names)  # inside the figure
        key = bars_ax.get_legend().get_window_extent(renderer)
        assert key.y1 < bars_ax.get_window_extent(renderer).y0  # below the axes, not on a bar
    finally:
        plt.close(fig)


def test_a_failed_job_does_not_hide_the_settings_two_sweeps_differ_in(
    results: dict[str, Path], tmp_path: Path
) -> None:
    # A job that failed before writing settings.json has only .hydra/config.yaml ("0.1s", not
    # "100 ms"): every key seemed to vary within its sweep, and no difference was shown at all.
    import json

    import yaml

    from vmexp.report.sweep import _write_summary, summary_rows

    def sweep(where: Path, jobs: list[tuple[str, str]], swap: int | None = None) -> Path:
        for i, (ram, run) in enumerate(jobs):
            job = where / f"{i}_ram={ram}"
            if run:
                shutil.copytree(results[run], job)
                if swap is not None:  # a setting the whole sweep ran with, other than A's
                    doc = json.loads((job / "settings.json").read_text())
                    doc["settings"]["swap"]["value"] = swap
                    (job / "settings.json").write_text(json.dumps(doc))
            else:
                (job / ".hydra").mkdir(parents=True)
                overrides = yaml.safe_load((results["fifo3"] / ".hydra" / "overrides.yaml").read_text())
                overrides = [o if not o.startswith("ram=") else f"ram={ram}" for o in overrides]
                (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                config = yaml.safe_load((results["fifo3"] / ".hydra" / "config.yaml").read_text())
                (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "ram": ram}))
                (job / "run.json").write_text(
                    json.dumps({"status": "failed", "error": "ram: expected a size"})
                )
        _write_summary(where, *summary_rows(where))
        return where

    a = sweep(tmp_path / "a", [("12k", "fifo3"), ("16k", "fifo4"), ("banana", "")])
    b = sweep(tmp_path / "b", [("12k", "fifo3"), ("16k", "fifo4")], swap=512 << 20)
    c = compare(a, b)
    assert c.keys == ["ram"]
    assert c.settings == [("swap", "256 MiB", "512 MiB")]


def test_means_of_counts_past_four_digits_are_written_out_not_in_e_notation() -> None:
    # Two seeds of B average to 5,159.5 minor faults: B − A was printed "-2.703e+04".
    import pandas as pd

    from vmexp.compare import Comparison

    rows = [{"threshold": "128k", "metric": "minflt", "A": 32190.0, "B": 5159.5, "diff": -27030.5,
             "ratio": 5159.5 / 32190, "n_a": 1, "n_b": 2}]  # fmt: skip
    c = Comparison("sweeps", Path("a"), Path("b"), [], pd.DataFrame(rows), ["threshold"])
    line = next(t for t in render(c).splitlines() if t.lstrip().startswith("128k"))
    assert line.split() == ["128k", "32,190", "5,160", "-27,030", "0.16"]


def test_a_workload_that_differs_is_named_on_both_sides(results: dict[str, Path], tmp_path: Path) -> None:
    # pageref's config has a name, mixed's has none: the group's row was added on B's side only,
    # and read "workload  (none)  mixed", as if run A had no workload.
    mixed = vmexp.run(["nprocs=1", "duration=0.02s", "figures=false"], out_dir=tmp_path / "mixed", quiet=True)
    settings = {k: (a, b) for k, a, b in compare(results["fifo3"], mixed.dir).settings}
    assert settings["workload"] == ("pageref", "mixed")
    assert settings["policy.name"] == ("fifo", "linux") and "policy" not in settings  # said once


def test_a_reader_that_stops_reading_is_no_error_and_the_figure_is_still_drawn(
    results: dict[str, Path], tmp_path: Path
) -> None:
    # python -m vmexp.compare A B | head: the first print into the closed pipe was a BrokenPipeError
    # traceback, and neither --csv nor the figure was written.
    closed_stdout = (
        "import os, sys; sys.path.insert(0, sys.argv.pop(1)); r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
        "from vmexp.compare import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [str(ROOT), str(results["fifo3"]), str(results["fifo4"]), "-o", "f.png", "--csv", "t.csv"]
    r = subprocess.run(
        [PY, "-c", closed_stdout, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert (r.returncode, r.stderr) == (0, "")
    assert (tmp_path / "f.png").is_file() and (tmp_path / "t.csv").is_file()


def test_a_run_without_its_timeseries_still_gets_its_figure(
    results: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A run copied without timeseries.csv: the table printed, then a VmexpError traceback and no figure.
    from vmexp.compare import main

    a = tmp_path / "a"
    shutil.copytree(results["fifo3"], a)
    (a / "timeseries.csv").unlink()
    monkeypatch.chdir(tmp_path)
    assert main([str(a), str(results["fifo4"]), "-o", "f.png"]) == 0
    assert capsys.readouterr().err == "" and (tmp_path / "f.png").stat().st_size > 10_000


def test_runs_too_short_for_their_sampling_say_so_under_the_time_series(results: dict[str, Path]) -> None:
    # Belady's string runs in under a millisecond, sampled every 10 ms: the faults "so far" stayed at
    # 0 for the whole run and jumped at its end, with nothing to say that this is the sampling.
    import matplotlib.pyplot as plt

    from vmexp.compare import _draw_runs

    fig = _draw_runs(compare(results["fifo3"], results["fifo4"]))
    try:
        fig.canvas.draw()
        notes = [t for ax in fig.axes for t in ax.texts if "Too few samples" in t.get_text()]
        assert len(notes) == 1 and "A (2) and B (2) sample times" in notes[0].get_text().replace("\n", " ")
        box = notes[0].get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width
    finally:
        plt.close(fig)


def test_a_one_letter_metric_name_is_spelled_out_below_the_bars(results: dict[str, Path]) -> None:
    # Denning's L and S: the bars were labelled "L" and "S" and nothing said what they were.
    import matplotlib.pyplot as plt

    from vmexp.compare import _draw_runs

    fig = _draw_runs(compare(results["fifo3"], results["fifo4"]))
    try:
        fig.canvas.draw()
        bars_ax = fig.axes[0]
        names = [t.get_text() for t in bars_ax.get_yticklabels() if t.get_text()]
        assert "L" in names, names
        (key,) = [t for t in bars_ax.texts if t.get_text().startswith("L: ") or "; L: " in t.get_text()]
        assert "L: mean CPU time between major faults (L)" in key.get_text()
        box = key.get_window_extent()
        assert box.y0 >= 0 and box.x1 <= fig.bbox.x1  # inside the figure
    finally:
        plt.close(fig)


def test_the_sweep_figures_key_does_not_cover_its_title(sweeps: dict[str, Path]) -> None:
    # A figure of one or two panels is narrow: the key, at the top right, sat on the title's line
    # and covered "against sweep A".
    import matplotlib.pyplot as plt

    from vmexp.compare import _draw_sweeps

    fig = _draw_sweeps(compare(sweeps["fifo"], sweeps["fifo"]))  # nothing differs: one panel
    try:
        fig.canvas.draw()
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
        key = fig.legends[0].get_window_extent()
        title = fig.get_suptitle()
        assert title.startswith("Sweep B against sweep A")
        assert not key.overlaps(fig._suptitle.get_window_extent())  # type: ignore[union-attr]
        assert all(not key.overlaps(ax.get_window_extent()) for ax in fig.axes if ax.get_visible())
        assert fig.bbox.x0 <= key.x0 and key.x1 <= fig.bbox.x1 and key.y0 >= fig.bbox.y0
    finally:
        plt.close(fig)
