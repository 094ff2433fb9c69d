"""The application as a user drives it: configs compose, runs and sweeps write the contract, errors are one line."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import warm
from tests.conftest import CONF, ROOT, compose_cfg, settings
from vmexp.app import run_settings
from vmexp.config import ConfigError, validate
from vmexp.console import one_write_a_line

PY = sys.executable
SHORT = ["duration=0.3s"]  # keeps the default experiment to a fraction of a second of simulated time
TRACE = ROOT / "tests" / "traces" / "threshold_boundary.trace"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return warm.run(args, timeout=timeout, env=env)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# --- composition ---------------------------------------------------------------


@pytest.mark.parametrize("group", ["address_space", "machine", "policy", "allocator", "workload"])
def test_every_option_of_every_group_composes_and_validates(group: str) -> None:
    assert options(group), f"conf/{group}/ is empty"
    for name in options(group):
        extra = []
        if name == "trace":
            extra = [f"workload.path={TRACE}"]
        elif name == "pageref":
            extra = ["workload.refs=[1,2,3]"]
        elif group == "policy" and name == "opt":
            extra = ["workload=pageref", "workload.refs=[1,2,3]"]  # OPT needs the future
        s = settings(f"{group}={name}", *extra)
        assert s.nprocs >= 1


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")))
def test_every_preset_composes_states_its_question_and_has_a_sweep(preset: str) -> None:
    text = (ROOT / "experiments" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "Question" in text.split("\n\n")[0] or "question" in text
    cfg = compose_cfg(f"experiment={preset}")
    validate(cfg)
    assert cfg.question, f"experiments/{preset}.yaml sets no question"


def test_threshold_null_is_glibc_dynamic_and_a_size_is_mallopt() -> None:
    assert settings().allocator.mmap_threshold is None
    assert settings("threshold=64k").allocator.mmap_threshold == 65536
    assert settings("threshold=2M").allocator.mmap_threshold == 2 << 20


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("threshold=banana", "threshold: expected a size"),
        ("threshold=64M", "threshold: 64M is above glibc's maximum of 32M"),
        ("page_size=3000", "page_size: must be one of 4k, 16k, 64k, 2M"),
        ("ram=1k", "ram: 1k is smaller than one page"),
        ("nprocs=0", "nprocs: must be an integer >= 1"),
        ("duration=-1s", "duration: a duration cannot be negative"),
        ("swap=-4k", "swap: a size cannot be negative"),
        ("machine.min_free=64M", "machine.min_free: 64M leaves no RAM"),
        ("machine.swap_device=floppy", "machine.swap_device: 'floppy' is not one of hdd, ssd, nvme"),
        ("policy.scope=everywhere", "policy.scope: 'everywhere' is not one of global, local"),
        ("allocator.mmap_max=-1", "allocator.mmap_max: must be a non-negative integer"),
        ("machine.cost.minor_fault=slow", "machine.cost.minor_fault: expected a duration"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        settings(override)


# Bad values on run.py's command line (one line on stderr, exit status 2, nothing written): tests/test_errors.py.


# --- runs and sweeps -------------------------------------------------------------


def check_run_dir(d: Path, figures: bool = True) -> dict[str, object]:
    for name in ("metrics.json", "syscalls.csv", "timeseries.csv", "run.json"):
        assert (d / name).is_file(), f"{d} lacks {name}"
    assert list((d / "maps").glob("*.txt"))
    assert bool(list((d / "figures").glob("*.png"))) == figures
    with open(d / "syscalls.csv") as fh:
        assert next(csv.reader(fh)) == ["pid", "op", "time_s", "syscall", "addr", "length", "result"]
    m = json.loads((d / "metrics.json").read_text())
    assert m["schema"] == 1
    for p in m["processes"]:
        assert set(p["mallinfo"]) == {
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        }
        assert set(p["syscalls"]) == {"brk", "mmap", "munmap", "mremap"}
        assert p["rss_peak_bytes"] <= p["vsz_peak_bytes"]
    assert not list(d.glob("**/.*.tmp")), "a temporary file was left behind"
    return m


def test_single_run_writes_every_contract_file(tmp_path: Path) -> None:
    r = run(*SHORT, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    m = check_run_dir(tmp_path)
    assert len(m["processes"]) >= 2  # type: ignore[arg-type]
    import vmexp

    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "stopped" and info["vmexp"] == vmexp.__version__  # which simulator gave them
    # Results are shared: every file has the mode the umask gives (written to a temporary, then renamed).
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {
        str(f.relative_to(tmp_path)): f.stat().st_mode & 0o777 for f in tmp_path.rglob("*") if f.is_file()
    }
    assert modes and all(mode == 0o666 & ~mask for mode in modes.values()), modes


def test_a_run_into_a_used_directory_leaves_nothing_of_the_earlier_run(tmp_path: Path) -> None:
    # What an earlier run (a crash, explain=true, heap snapshots, 9 processes, figures) left...
    for name in ("error.txt", "explain.log", "heap_snapshots.csv", "maps/9.txt", "figures/heap_3.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("from the earlier run\n")
    # ...and files of the user's own, which vmexp never writes.
    for name in ("notes.txt", "figures/sketch.png", "maps/README"):
        (tmp_path / name).write_text("mine\n")
    r = run(*SHORT, "figures=false", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    check_run_dir(tmp_path)
    for name in ("error.txt", "explain.log", "heap_snapshots.csv", "maps/9.txt", "figures/heap_3.png"):
        assert not (tmp_path / name).exists(), name
    for name in ("notes.txt", "figures/sketch.png", "maps/README"):
        assert (tmp_path / name).read_text() == "mine\n", name
    # A failure on bad input does not leave the earlier crash report beside its own run.json either.
    (tmp_path / "error.txt").write_text("from the earlier run\n")
    assert run("threshold=banana", f"hydra.run.dir={tmp_path}").returncode == 2
    assert not (tmp_path / "error.txt").exists()


def test_a_run_that_fails_on_bad_input_leaves_no_earlier_results_beside_its_run_json(tmp_path: Path) -> None:
    # An earlier successful run's results (their content does not matter here)...
    earlier = ("metrics.json", "syscalls.csv", "timeseries.csv", "heap.csv", "settings.json", "maps/1.txt")
    for name in earlier:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("from the earlier run\n")
    (tmp_path / "run.json").write_text('{"status": "ok"}\n')
    (tmp_path / "notes.txt").write_text("mine\n")
    r = run("threshold=banana", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "threshold:" in r.stderr
    # ...are gone: the directory holds one run, the failed one, and says why it has no metrics.
    assert [name for name in earlier if (tmp_path / name).exists()] == []
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    import vmexp

    failed = vmexp.load(tmp_path)
    assert isinstance(failed, vmexp.Run) and failed.status == "failed"
    with pytest.raises(vmexp.VmexpError, match=r"no metrics\.json: the run failed: threshold:"):
        _ = failed.metrics


@pytest.mark.slow
def test_threshold_sweep_writes_summary_figures_and_report(tmp_path: Path) -> None:
    # The jobs' own figures are left out (figures=false): the launcher tests draw a sweep's, and the
    # sweep's figures and report are drawn either way.
    r = run("-m", "threshold=64k,128k,256k", *SHORT, "figures=false", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    jobs = sorted(d for d in tmp_path.iterdir() if (d / ".hydra").is_dir())
    assert len(jobs) == 3
    for d in jobs:
        check_run_dir(d, figures=False)
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert [r["threshold"] for r in rows] == ["64k", "128k", "256k"]
    assert all(r["status"] == "stopped" for r in rows)  # 0.3 s of a run that takes 2.5 s: cut short, and said
    # A lower threshold sends more requests to mmap.
    mmaps = [int(r["mmap"]) for r in rows]
    assert mmaps[0] > mmaps[2], mmaps
    assert list((tmp_path / "figures").glob("*.png"))
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()
    # No preset: the report asks what the swept key changes, not what the default workload does.
    assert "\n**Question.** What changes with `threshold`?\n" in (tmp_path / "report.md").read_text()
    # The report can be rebuilt from the directory alone.
    (tmp_path / "summary.csv").unlink()
    rr = warm.run_module("vmexp.report", [tmp_path])
    assert rr.returncode == 0, rr.stderr
    assert len(list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))) == 3


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_sweep_and_a_rerun_reports_only_its_own_jobs(tmp_path: Path) -> None:
    r = run("-m", "threshold=64k,banana", *SHORT, "figures=false", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode != 0
    rows = {r["threshold"]: r for r in csv.DictReader((tmp_path / "summary.csv").read_text().splitlines())}
    assert rows["64k"]["status"] == "stopped"  # 0.3 s
    assert rows["banana"]["status"] == "failed" and "threshold" in rows["banana"]["error"]
    assert "Traceback" not in r.stderr
    # Which job it was: the console line names it, as it names a job that ran.
    assert "vmexp: error: [job 1] threshold" in r.stderr, r.stderr
    # The same directory swept again with one job: job 0 anew, job 1 is the older sweep's and left out.
    r = run("-m", "threshold=32k", *SHORT, "figures=false", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    rows2 = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert [row["threshold"] for row in rows2] == ["32k"]
    assert "of an older sweep in this directory (the last one had 1 job); left out" in r.stderr
    assert "sweep: 1 job, 0 failed" in r.stderr


@pytest.mark.slow
def test_same_config_and_seed_give_byte_identical_results(tmp_path: Path) -> None:
    s = settings(*SHORT, "seed=7", "figures=false")
    run_settings(s, tmp_path / "a", quiet=True)
    run_settings(s, tmp_path / "b", quiet=True)
    for name in ("metrics.json", "syscalls.csv", "timeseries.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _read_one_line_then_leave(*args: str) -> subprocess.CompletedProcess[str]:
    """``python run.py ARGS | head -1``: the reader takes one line and closes the pipe."""
    proc = subprocess.Popen(
        [PY, "run.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    return subprocess.CompletedProcess(proc.args, proc.wait(timeout=300), first, err)


@pytest.mark.slow
def test_a_reader_that_leaves_early_does_not_fail_the_run_or_the_sweep(tmp_path: Path) -> None:
    # Each later print raised BrokenPipeError: the run failed, and so did every job of a sweep.
    # explain=true narrates 2,000 lines (more than a pipe holds) in 10 ms of the default workload.
    run_dir = tmp_path / "run"
    r = _read_one_line_then_leave(
        "duration=0.01s", "explain=true", "figures=false", f"hydra.run.dir={run_dir}"
    )
    assert r.returncode == 0 and "Error" not in r.stderr, r.stderr
    assert json.loads((run_dir / "run.json").read_text())["status"] == "stopped"
    r = _read_one_line_then_leave(
        "-m", "threshold=64k,128k", *SHORT, "figures=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"
    )
    assert r.returncode == 0 and "Error" not in r.stderr, r.stderr
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").read_text().splitlines()))
    assert [row["status"] for row in rows] == ["stopped", "stopped"]


def test_a_command_ends_without_the_interpreters_teardown_and_loses_nothing(tmp_path: Path) -> None:
    # vmexp.console.run_program skips the teardown of the modules (python -v reports it as
    # "# cleanup" lines) once the exit handlers have run; status, files and a buffered stdout are whole.
    def command(
        *args: str, via_runpy: bool = False, start: tuple[str, ...] = ("run.py",)
    ) -> tuple[subprocess.CompletedProcess[str], str]:
        out = tmp_path / "stdout.txt"
        if via_runpy:
            start = ("-c", "import runpy; runpy.run_path('run.py', run_name='__main__')")
        with out.open("w") as f:  # a file, not a pipe or a terminal: Python buffers it whole
            r = subprocess.run(
                [PY, "-v", *start, *args], cwd=ROOT, stdout=f, stderr=subprocess.PIPE, text=True
            )
        return r, out.read_text()

    r, out = command("duration=1ms", "figures=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0 and "# cleanup" not in r.stderr
    assert out.rstrip().endswith(f"-> {tmp_path / 'run'}") and (tmp_path / "run" / "metrics.json").is_file()
    r, _ = command("threshold=-1", f"hydra.run.dir={tmp_path / 'bad'}")
    assert r.returncode == 2 and "# cleanup" not in r.stderr
    assert (
        "threshold" in [line for line in r.stderr.splitlines() if not line.startswith(("#", "import "))][-1]
    )
    # Run by something that has work left after it (here runpy.run_path, as a profiler does): as usual.
    r, out = command("duration=1ms", "figures=false", f"hydra.run.dir={tmp_path / 'again'}", via_runpy=True)
    assert r.returncode == 0 and "# cleanup" in r.stderr and out.rstrip().endswith(f"-> {tmp_path / 'again'}")
    # The other command lines end the same way: python -m vmexp.compare, here two runs.
    fig = tmp_path / "compare.png"
    r, out = command(
        str(tmp_path / "run"), str(tmp_path / "again"), "-o", str(fig), start=("-m", "vmexp.compare")
    )
    assert r.returncode == 0 and "# cleanup" not in r.stderr
    assert out.rstrip().endswith(f"figure: {fig}") and fig.stat().st_size > 0, out


def test_cfg_shows_the_config() -> None:
    # --help is checked in tests/test_errors.py (test_help_explains_every_key_with_its_unit_and_default).
    c = run("--cfg", "job")
    assert c.returncode == 0
    cfg = yaml.safe_load(c.stdout)
    assert cfg["threshold"] is None and cfg["nprocs"] >= 2
    # --version is vmexp's (Hydra's flag printed only "Hydra 1.3.8"), with what results depend on.
    import vmexp

    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith(f"vmexp {vmexp.__version__} (Python "), v.stdout
    assert "hydra-core" in v.stdout and "simpy" in v.stdout


# Runs vmexp.cli.main as run.py does, each command in its own directory, first with Hydra's own
# get_mode (two compositions per command), then with vmexp's (vmexp.compose_once); prints, per
# command, how many times the config was composed and the exit status.
_COMPOSITIONS = r"""
import contextlib, io, json, os, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
import vmexp.cli
count = 0
impl = ConfigLoaderImpl._load_configuration_impl
def counting(self, *a, **k):
    global count
    count += 1
    return impl(self, *a, **k)
ConfigLoaderImpl._load_configuration_impl = counting
run_py, commands = json.loads(sys.stdin.read())
vmexps = vmexp.cli.compose_once
results = []
for how, cwd, argv in commands:
    vmexp.cli.compose_once = vmexps if how == "vmexp" else (lambda multirun: None)
    GlobalHydra.instance().clear()
    os.chdir(cwd)
    sys.argv = [run_py, *argv]
    count = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            vmexp.cli.main()
        except SystemExit as e:
            results.append([count, e.code])
sys.__stdout__.write(json.dumps(results))
"""


def test_a_command_composes_its_config_once_with_what_hydra_composes_twice(tmp_path: Path) -> None:
    """Hydra composed every command's config twice (get_mode, then run); the files must not change."""
    run_argv = ["figures=false", "duration=1ms", "hydra.run.dir=out"]
    sweep_argv = ["-m", "threshold=64k", "figures=false", "duration=1ms", "hydra.sweep.dir=out"]
    mode_argv = ["hydra.mode=MULTIRUN", "threshold=64k,128k", "figures=false", "duration=1ms"]
    commands = [
        (how, str(tmp_path / f"{how}-{name}"), argv)
        for how in ("hydra", "vmexp")
        for name, argv in (
            ("run", run_argv),
            ("sweep", sweep_argv),
            ("mode", [*mode_argv, "hydra.sweep.dir=out"]),
        )
    ]
    for _, cwd, _ in commands:
        Path(cwd).mkdir()
    r = subprocess.run(
        [PY, "-c", _COMPOSITIONS],
        input=json.dumps([str(ROOT / "run.py"), commands]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (h_run, h_sweep, h_mode), (v_run, v_sweep, v_mode) = (json.loads(r.stdout)[:3], json.loads(r.stdout)[3:])
    assert [h_run, h_sweep, h_mode] == [[2, 0], [3, 0], [4, 0]]  # a sweep's jobs compose their own
    # hydra.mode=MULTIRUN with a sweep's values: vmexp's first composition stops at Hydra's check of
    # sweep overrides, before it reads a file, and Hydra's get_mode finds the mode
    assert [v_run, v_sweep, v_mode] == [[1, 0], [2, 0], [5, 0]]

    def files(d: Path) -> dict[str, str]:
        return {
            str(p.relative_to(d)): p.read_text().replace(str(d), "DIR")
            for p in sorted(d.rglob("*.yaml"))  # Hydra's record of the composition, every job's
        }

    for name in ("run", "sweep", "mode"):
        hydras, vmexps = files(tmp_path / f"hydra-{name}"), files(tmp_path / f"vmexp-{name}")
        assert hydras and hydras == vmexps, name
    assert "- hydra.mode=RUN" in (tmp_path / "vmexp-run" / "out" / ".hydra" / "hydra.yaml").read_text()
    assert len(list((tmp_path / "vmexp-mode" / "out").glob("*/metrics.json"))) == 2  # a sweep, without -m


def test_objective_is_a_weighted_sum_of_summary_metrics(tmp_path: Path) -> None:
    s = settings(*SHORT, "figures=false", "+objective={rss_peak_bytes: 1e-6, syscalls: 0.5}")
    doc = run_settings(s, tmp_path, quiet=True)
    from vmexp.app import objective_value
    from vmexp.metrics import SUMMARY_METRICS, summary_of

    summary = summary_of(doc)
    assert tuple(summary) == SUMMARY_METRICS
    assert summary["syscalls"] == summary["brk"] + summary["mmap"] + summary["munmap"] + summary["mremap"]
    assert objective_value(s, doc) == pytest.approx(
        summary["rss_peak_bytes"] * 1e-6 + summary["syscalls"] * 0.5
    )


def test_an_objective_that_asks_for_a_long_time_between_faults_ranks_a_run_without_faults_best(
    tmp_path: Path,
) -> None:
    # Without major faults L is infinite (the report and compare say so), but the objective took
    # summary.csv's placeholder 0: the run that never faulted was Optuna's worst trial.
    from vmexp.app import objective_value

    s = settings("duration=0.05s", "nprocs=1", "figures=false", "+objective={mean_time_between_faults_s: -1}")
    doc = run_settings(s, tmp_path, quiet=True)
    assert doc["processes"][0]["majflt"] == 0
    assert objective_value(s, doc) == -math.inf


def test_an_unknown_objective_metric_is_named(tmp_path: Path) -> None:
    r = run(*SHORT, "+objective={happiness: 1}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "objective.happiness: not a summary metric" in r.stderr


def test_heap_snapshots_record_the_heap_at_the_chosen_times(tmp_path: Path) -> None:
    s = settings(*SHORT, "heap_snapshots=[0.1s,0.2s]")
    run_settings(s, tmp_path, quiet=True)
    rows = list(csv.DictReader((tmp_path / "heap_snapshots.csv").read_text().splitlines()))
    assert {r["time_s"] for r in rows} == {"0.100000000", "0.200000000"}
    # Each snapshot of a process tiles its heap: chunks are contiguous from the first one.
    first = [r for r in rows if r["time_s"] == "0.100000000" and r["pid"] == "1" and r["state"] != "mmapped"]
    for a, b in itertools.pairwise(first):
        assert int(a["addr"]) + int(a["size"]) == int(b["addr"])
    assert (tmp_path / "figures" / "heap_0.png").is_file() and (tmp_path / "figures" / "heap_1.png").is_file()


def test_heap_n_png_is_the_nth_snapshot_time_also_when_an_earlier_one_has_no_heap(tmp_path: Path) -> None:
    # At 0 s no process has a heap yet: its snapshot has no rows and no figure, and 50ms is still
    # heap_1.png (numbering only the times with rows made it heap_0.png, the name of the 0 s map).
    from vmexp.report.run_figures import draw_run_figures

    s = settings("duration=0.06s", "nprocs=1", "figures=false", "heap_snapshots=[50ms,0]")
    run_settings(s, tmp_path, quiet=True)
    for redraw in (s, None):  # the run's own drawing, and python -m vmexp.report's from settings.json
        drawn = draw_run_figures(tmp_path, redraw, only={"heap"})
        assert sorted(p.name for p in drawn) == ["heap.png", "heap_1.png"]
        for p in drawn:
            p.unlink()


def test_a_heap_snapshot_shows_the_heap_at_its_time_not_a_slice_later(tmp_path: Path) -> None:
    # A slice runs its operations at once; a snapshot taken between slices showed the heap up to a
    # quantum after its time: brk calls that syscalls.csv dates later, chunks at 0 s before any malloc.
    s = settings("duration=0.06s", "nprocs=2", "figures=false", "heap_snapshots=[0,0.05s]")
    run_settings(s, tmp_path, quiet=True)
    snaps = list(csv.DictReader((tmp_path / "heap_snapshots.csv").read_text().splitlines()))
    calls = list(csv.DictReader((tmp_path / "syscalls.csv").read_text().splitlines()))
    assert {r["time_s"] for r in snaps} == {"0.050000000"}  # at 0 s no process has a heap yet
    for pid in ("1", "2"):
        brk = [
            int(c["result"])
            for c in calls
            if c["pid"] == pid and c["syscall"] == "brk" and float(c["time_s"]) <= 0.05
        ]
        heap = [r for r in snaps if r["pid"] == pid and r["state"] != "mmapped"]
        assert max(int(r["addr"]) + int(r["size"]) for r in heap) == brk[-1]


def test_a_heap_snapshot_time_given_twice_is_taken_once(tmp_path: Path) -> None:
    # 50ms and 0.05s are the same time: heap_snapshots.csv listed every chunk of it twice.
    s = settings("duration=0.06s", "nprocs=1", "figures=false", "heap_snapshots=[50ms,0.05s]")
    assert s.heap_snapshots == (50_000_000,)
    run_settings(s, tmp_path, quiet=True)
    rows = (tmp_path / "heap_snapshots.csv").read_text().splitlines()[1:]
    assert rows and len(rows) == len(set(rows))


def test_a_heap_snapshot_after_the_end_of_the_run_is_reported_not_taken(tmp_path: Path) -> None:
    r = run(*SHORT, "figures=false", "heap_snapshots=[0.1s,2s,5s]", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "vmexp: warning: heap snapshots at 2 s, 5 s not taken: the run ended at 300 ms" in r.stderr, (
        r.stderr
    )
    rows = list(csv.DictReader((tmp_path / "heap_snapshots.csv").read_text().splitlines()))
    assert {row["time_s"] for row in rows} == {"0.100000000"}


def test_many_processes_ended_early_are_counted_not_listed(tmp_path: Path) -> None:
    # Nine processes of 1 MiB each on 2 MiB of RAM and 1 MiB of swap: the OOM killer takes seven.
    trace = tmp_path / "oom.trace"
    trace.write_text("".join(f"p{i}: malloc 0 1M\np{i}: touch 0\np{i}: compute 50ms\n" for i in range(1, 10)))
    r = run("workload=trace", f"workload.path={trace}", "ram=2M", "swap=1M", "figures=false",
            f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("vmexp: warning:")]
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    killed = [p for p in doc["processes"] if p["exit"] == "oom-killed"]
    assert len(killed) == 7
    assert len(warnings) == 6  # five named, then one line for the rest
    assert all("ended oom-killed" in line for line in warnings[:5])
    assert warnings[5].startswith("vmexp: warning: 2 more processes ended early (2 oom-killed)")


def test_explain_shows_the_start_of_a_long_narration_and_keeps_all_of_it_in_explain_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A default run narrates ~40 MB a second: the console gets the first lines and where the rest is."""
    import vmexp.app

    monkeypatch.setattr(vmexp.app, "EXPLAIN_CONSOLE_LINES", 5)
    belady = "[1,2,3,4,1,2,5,1,2,3,4,5]"
    s = settings("workload=pageref", f"workload.refs={belady}", "policy=fifo", "ram=12k", "machine.min_free=0",
                 "explain=true", "figures=false")  # fmt: skip
    run_settings(s, tmp_path)
    log = (tmp_path / "explain.log").read_text().splitlines()
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == log[:5]
    assert out[5] == f"... {len(log) - 5:,} more lines of the {len(log):,} in {tmp_path / 'explain.log'}"
    assert sum("fault" in line for line in log) == 9  # Belady's string, FIFO, 3 frames: all of it in the file


@pytest.mark.slow
def test_a_sweeps_jobs_keep_their_narration_in_their_own_files_and_the_console_says_where(
    tmp_path: Path,
) -> None:
    # Jobs running side by side would interleave their narrations on one console: it printed none
    # and did not say where they were.
    belady = "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]"
    # Unbuffered, as many CI runners and containers run Python: each print was two writes there.
    r = warm.run(["-m", "workload=pageref", belady, "policy=fifo,lru", "ram=12k", "machine.min_free=0",
                  "explain=true", "figures=false", f"hydra.sweep.dir={tmp_path}"],
                 env={**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    jobs = sorted(d for d in tmp_path.iterdir() if (d / ".hydra").is_dir())
    assert len(jobs) == 2
    for num, d in enumerate(jobs):
        log = (d / "explain.log").read_text().splitlines()
        assert sum("fault" in line for line in log) in (9, 10)  # FIFO's 9 or LRU's 10: the whole story
        assert f"[job {num}] narration (explain=true): {d / 'explain.log'}\n" in r.stdout, (
            f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        )
        assert log[0] not in r.stdout


def test_a_line_printed_unbuffered_reaches_the_console_in_one_write() -> None:
    # Under PYTHONUNBUFFERED a sweep's two jobs printing at once ran one's line into the other's
    # (its text, the other's text, then both newlines): print wrote the text and the newline
    # apart. The launcher makes each line one write before it forks the jobs.
    class Raw(io.RawIOBase):
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:  # bytes, bytearray or memoryview
            self.writes.append(bytes(b))
            return len(self.writes[-1])

    raw = Raw()
    stdout = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # what python -u makes
    old = sys.stdout
    sys.stdout = stdout
    try:
        print("[job 0] narration", flush=True)
        assert raw.writes == [b"[job 0] narration", b"\n"]  # the fault, as Python shows it
        raw.writes.clear()
        one_write_a_line()
        print("[job 0]", "narration", flush=True)  # four writes unbuffered: two words, a space, a newline
        print("[job 1] a line\n[job 1] and another", flush=True)
    finally:
        sys.stdout = old
    assert raw.writes == [b"[job 0] narration\n", b"[job 1] a line\n[job 1] and another\n"]
