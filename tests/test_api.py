"""The Python API (README "Python API", a contract): what a notebook relies on.

A run through ``vmexp.run`` is the run ``python run.py`` makes, to the byte;
it works from any working directory, lands in ``./outputs`` unless told
otherwise, can be called again and again, and a user error arrives as a
``VmexpError`` carrying the command's one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vmexp
from tests import warm
from vmexp.metrics import SYSCALL_COLUMNS, TIMESERIES_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CONTRACT = ("metrics.json", "syscalls.csv", "timeseries.csv")
SMALL = ["nprocs=2", "duration=0.2s", "figures=false"]
# Belady's string under FIFO (README "What you can do"): 9 faults with 3 frames, 10 with 4.
BELADY = [
    "workload=pageref",
    "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]",
    "policy=fifo",
    "machine.min_free=0",
    "figures=false",
]


def test_a_run_is_byte_identical_through_run_py_the_vmexp_command_and_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = ["threshold=64k", *SMALL]
    warm.run([*overrides, f"hydra.run.dir={tmp_path / 'run_py'}"]).check_returncode()
    command = shutil.which("vmexp", path=str(Path(PY).parent))
    assert command, "the vmexp console command is not installed beside this Python (pip install -e .)"
    subprocess.run(
        [command, *overrides, f"hydra.run.dir={tmp_path / 'command'}"], cwd=tmp_path, check=True, capture_output=True
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)  # far from the repository: the configs come with the package
    run = vmexp.run(overrides, out_dir="api", quiet=True)

    assert run.dir == tmp_path / "api"
    for name in (*CONTRACT, ".hydra/config.yaml"):
        reference = (tmp_path / "run_py" / name).read_bytes()
        assert (tmp_path / "command" / name).read_bytes() == reference, name
        assert (run.dir / name).read_bytes() == reference, name

    # The same numbers as tables: one row per process, nested counters as columns.
    doc = run.metrics
    assert doc["schema"] == 1
    procs = run.processes
    assert list(procs["pid"]) == [p["pid"] for p in doc["processes"]] == [1, 2]
    assert list(procs.columns[:3]) == ["pid", "name", "exit"]
    assert list(procs["brk"]) == [p["syscalls"]["brk"] for p in doc["processes"]]
    assert list(procs["arena"]) == [p["mallinfo"]["arena"] for p in doc["processes"]]
    assert procs["minflt"].sum() == run.summary["minflt"]
    assert list(run.timeseries.columns) == TIMESERIES_COLUMNS
    assert list(run.syscalls.columns) == SYSCALL_COLUMNS
    # syscalls.csv lists the very calls that metrics.json counts.
    counted = run.syscalls.groupby(["pid", "syscall"]).size()
    for p in doc["processes"]:
        for call, n in p["syscalls"].items():
            assert counted.get((p["pid"], call), 0) == n, (p["pid"], call)
    assert run.overrides == overrides
    assert run.status == "stopped"  # 0.2 s of simulated time: cut short, and said


def test_without_out_dir_runs_land_in_outputs_and_calls_in_a_row_never_share_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Page-reference runs take no time: two in a row would fall in the same second (and one
    # directory, named to the second) if nothing kept them apart.
    monkeypatch.chdir(tmp_path)
    three = vmexp.run([*BELADY, "ram=12k"], quiet=True)
    four = vmexp.run([*BELADY, "ram=16k"], quiet=True)
    assert three.dir.parent.parent == four.dir.parent.parent == tmp_path / "outputs" / "runs"
    assert three.dir != four.dir
    faults = [r.summary["minflt"] + r.summary["majflt"] for r in (three, four)]
    assert faults == [9, 10]  # Belady's anomaly, each run its own


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("threshold=banana", "threshold: expected a size such as 4096, 64k, 128K, 2M or 1G, got 'banana'"),
        ("foo=1", "foo: unknown key"),
        ("policy=nope", "In 'config': Could not find 'policy/nope'"),
    ],
)
def test_a_user_error_raises_vmexp_error_with_the_commands_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    with pytest.raises(vmexp.VmexpError) as err:
        vmexp.run([override], out_dir=tmp_path / "run")
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    assert "vmexp: error" not in capsys.readouterr().err  # said once, by the exception


@pytest.mark.parametrize("overrides", ["threshold='64k nprocs=2", 'workload.path="my trace'])
def test_an_override_string_with_an_open_quote_is_a_vmexp_error(tmp_path: Path, overrides: str) -> None:
    with pytest.raises(vmexp.VmexpError, match=r"^overrides: no closing quotation in "):
        vmexp.run(overrides, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_out_dir_that_is_a_file_is_named_and_left_alone(tmp_path: Path) -> None:
    # Not Python's "[Errno 17] File exists": the path, and that a file is where the directory would go.
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(vmexp.VmexpError, match="^" + re.escape(f"{notes}: is a file, not a directory")):
        vmexp.run(["figures=false"], out_dir=notes, quiet=True)
    assert notes.read_text() == "mine"


def test_an_out_dir_with_a_backslash_and_a_quote_is_the_directory_written(tmp_path: Path) -> None:
    # Hydra keeps a backslash in a quoted value as it is (only those before a quote are escaped):
    # doubling every one put the run in a directory named with two backslashes where the user wrote one.
    out = tmp_path / "it's a back\\slash"
    run = vmexp.run(["nprocs=1", "duration=0.02s", "figures=false"], out_dir=out, quiet=True)
    assert run.dir == out and (out / "metrics.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_an_out_dir_with_an_interpolation_is_refused_before_anything_runs(tmp_path: Path) -> None:
    # Hydra resolves the output directory a second time (hydra.runtime.output_dir), where no escape
    # survives: the run used to fail with "Interpolation key 'x' not found" after composing.
    with pytest.raises(vmexp.VmexpError, match=r"^out_dir: .*holds '\$\{'"):
        vmexp.run(["figures=false"], out_dir=tmp_path / "a${x}b", quiet=True)
    with pytest.raises(vmexp.VmexpError, match=r"^out_dir: "):
        vmexp.sweep(["threshold=64k,128k"], out_dir=tmp_path / "s${now:%H}", quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_flags_are_not_overrides(tmp_path: Path) -> None:
    with pytest.raises(vmexp.VmexpError, match=r"vmexp\.sweep\(\) is -m"):
        vmexp.run(["-m", "threshold=64k,128k"], out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_sweep_returns_after_aggregation_and_a_failed_job_is_reported_not_raised(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="1 of 3 jobs failed"):
        sw = vmexp.sweep(["threshold=64k,256k,banana", *SMALL], out_dir=tmp_path / "sw", quiet=True)
    assert sw.dir == tmp_path / "sw"
    for name in ("summary.csv", "report.md", "report.html"):
        assert (sw.dir / name).is_file(), name
    s = sw.summary
    assert list(s["threshold"]) == ["64k", "256k", "banana"]
    assert list(s["status"]) == ["stopped", "stopped", "failed"]  # 0.2 s runs
    assert "threshold" in sw.keys
    assert [r.status for r in sw.runs] == ["stopped", "stopped", "failed"]
    for i in (0, 1):
        assert sw.runs[i].summary["mmap"] == s.loc[i, "mmap"]
    # A higher mmap threshold serves more requests from the heap: fewer mmap calls.
    assert s.loc[0, "mmap"] > s.loc[1, "mmap"]
    assert list(sw.failed["threshold"]) == ["banana"]
    with pytest.raises(vmexp.VmexpError, match="the run failed: threshold:"):
        sw.runs[2].metrics  # noqa: B018

    loaded = vmexp.load(sw.dir)
    assert isinstance(loaded, vmexp.Sweep) and loaded == sw
    assert isinstance(vmexp.load(sw.runs[0].dir), vmexp.Run)

    # In a notebook: the jobs with their main metrics (counts as whole numbers although the failed
    # job's cells are empty), why a job failed, and the sweep's figures.
    page = sw._repr_html_()
    assert f"<code>{sw.dir}</code>: 3 jobs, 1 failed" in page
    assert f"<td>{int(s.loc[0, 'minflt'])}</td>" in page and ".0</td>" not in page
    assert "got &#x27;banana&#x27;</td>" in page or "got 'banana'</td>" in page
    assert page.count("<img ") == len(sw.figures) > 0
    # A failed job shows why, where reading its metrics raises.
    assert "the run failed: threshold:" in sw.runs[2]._repr_html_()


def test_a_run_in_a_notebook_shows_its_line_its_processes_and_its_figures(tmp_path: Path) -> None:
    from tests.conftest import settings
    from vmexp.app import run_settings

    overrides = [o for o in BELADY if o != "figures=false"]
    run_settings(settings(*overrides, "ram=12k"), tmp_path, quiet=True)
    run = vmexp.load(tmp_path)
    assert isinstance(run, vmexp.Run)
    page = run._repr_html_()
    # The console's line: FIFO's 9 faults on Belady's string with 3 frames (5 of them first touches).
    assert "1 process, " in page and "minflt 5, majflt 4," in page
    assert "<td>pageref</td>" in page and "<td>12 KiB</td>" in page  # peak RSS: 3 frames
    assert page.count("<img ") == len(run.figures) == 3


def test_a_sweep_that_cannot_start_raises(tmp_path: Path) -> None:
    with pytest.raises(vmexp.VmexpError, match=r"^foo: unknown key"):
        vmexp.sweep(["threshold=64k,128k", "foo=1"], out_dir=tmp_path / "sw", quiet=True)


def test_load_names_what_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(vmexp.VmexpError, match="neither a run"):
        vmexp.load(tmp_path)
    with pytest.raises(vmexp.VmexpError, match="no such directory"):
        vmexp.load(tmp_path / "missing")
    (tmp_path / "metrics.json").write_text("{}")  # the run's file rather than its directory
    with pytest.raises(vmexp.VmexpError, match=r"metrics\.json: not a directory \(a run's or a sweep's\)$"):
        vmexp.load(tmp_path / "metrics.json")


def test_a_directory_used_for_a_run_then_a_sweep_loads_as_what_was_written_last(tmp_path: Path) -> None:
    # out_dir="res" for a run, then for a sweep: the run's metrics.json stays at the top, and
    # load() (hence compare and the report command) took the sweep for the old run.
    import os

    for name in ("metrics.json", "run.json"):
        (tmp_path / name).write_text("{}")
        os.utime(tmp_path / name, (1_000_000_000, 1_000_000_000))
    (tmp_path / "multirun.yaml").write_text("{}")
    (tmp_path / "summary.csv").write_text("job,status\n")
    assert vmexp.load(tmp_path) == vmexp.Sweep(tmp_path)
    (tmp_path / "run.json").write_text("{}")  # and a run written there again, after the sweep
    assert vmexp.load(tmp_path) == vmexp.Run(tmp_path)


@pytest.mark.parametrize(("text", "why"), [("", "cannot be read"), ("a,b\n1,2\n", "not a sweep's summary")])
def test_a_summary_csv_that_is_empty_or_not_one_is_a_vmexp_error(tmp_path: Path, text: str, why: str) -> None:
    # pandas' EmptyDataError (or a KeyError for "status" in .failed) reached the user, and compare.
    (tmp_path / "summary.csv").write_text(text)
    sw = vmexp.load(tmp_path)
    assert isinstance(sw, vmexp.Sweep)
    for attribute in ("summary", "keys", "failed"):
        with pytest.raises(vmexp.VmexpError, match="^" + re.escape(f"{tmp_path / 'summary.csv'}: {why}")):
            getattr(sw, attribute)


@pytest.mark.slow
def test_the_docs_example_runs_from_a_directory_outside_the_repository(tmp_path: Path) -> None:
    r = subprocess.run(
        [PY, str(ROOT / "docs" / "api_example.py")], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*/metrics.json"))) == 1
    assert len(list((tmp_path / "outputs" / "sweeps").glob("*/*/summary.csv"))) == 1
    assert "sweep jobs: ['0_threshold=64k" in r.stdout
    assert "Settings that differ (1):" in r.stdout


def test_a_runs_summary_has_the_metric_columns_of_a_sweeps_summary_csv(tmp_path: Path) -> None:
    # README: run.summary is "the metric columns of a sweep's summary.csv", those counted from
    # syscalls.csv (brk grows and trims) included; objective is there only when a preset weighs.
    from vmexp.metrics import COLUMNS

    run = vmexp.run(["nprocs=1", "duration=0.05s", "figures=false"], out_dir=tmp_path / "run", quiet=True)
    assert set(run.summary) == set(COLUMNS) - {"objective"}
    brk = run.syscalls[run.syscalls["syscall"] == "brk"]
    assert run.summary["brk_grows"] == (brk["length"] > 0).sum() > 0
    assert run.summary["brk_trims"] == (brk["length"] < 0).sum()
    assert run.summary["brk_returned_bytes"] == -brk.loc[brk["length"] < 0, "length"].sum()


@pytest.mark.parametrize("text", ['{"schema": 1, "sys', "[]", '{"schema": 1}'])
def test_a_metrics_json_cut_off_or_not_one_is_a_vmexp_error(tmp_path: Path, text: str) -> None:
    # A partial copy, a full disk, an edit: the user's file, so one line naming it, not a JSONDecodeError.
    (tmp_path / "metrics.json").write_text(text)
    run = vmexp.load(tmp_path)
    assert isinstance(run, vmexp.Run)
    for attribute in ("metrics", "summary", "processes"):
        with pytest.raises(
            vmexp.VmexpError,
            match="^" + re.escape(f"{tmp_path / 'metrics.json'}: not a metrics.json document"),
        ):
            getattr(run, attribute)
