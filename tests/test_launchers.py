"""Sweeps that scale out and survive failure: every launcher gives the same results; failures, kills, resume."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import warm
from tests.conftest import ROOT
from vmexp.app import _complete

PY = sys.executable
TRACE = ROOT / "tests" / "traces" / "threshold_boundary.trace"
# Two jobs: each costs a launcher's start-up of a Python (submitit, joblib); the queueing of more
# jobs than processes is the vmexp launcher's test below (3 jobs, 2 at a time).
GRID = ["threshold=64k,256k", "seed=1", "duration=0.05s", "figures=false"]
JOBS = 2
CONTRACT = ("metrics.json", "syscalls.csv", "timeseries.csv")
# Every test here runs sweeps through a launcher: minutes, not seconds (python -m pytest -m "not slow" skips them).
pytestmark = pytest.mark.slow


def sweep(
    out: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return warm.run(
        ["-m", *args, f"hydra.sweep.dir={out}"], timeout=timeout, env={**os.environ, **(env or {})}
    )


def job_files(out: Path) -> dict[str, bytes]:
    return {
        f"{d.name}/{name}": (d / name).read_bytes()
        for d in sorted(out.iterdir())
        if (d / ".hydra").is_dir()
        for name in CONTRACT
    }


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Hydra's basic launcher: every job in turn, in the launching process."""
    out = tmp_path_factory.mktemp("basic")
    r = sweep(out, *GRID, "hydra/launcher=basic")
    assert r.returncode == 0, r.stderr
    files = job_files(out)
    assert len(files) == JOBS * len(CONTRACT)
    return files


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


LAUNCHERS = [
    pytest.param("joblib", {}, id="joblib"),
    pytest.param(
        "submitit_local",
        {},
        id="submitit_local",
        marks=pytest.mark.skipif(
            not _have("hydra_plugins.hydra_submitit_launcher"), reason="hydra-submitit-launcher not installed"
        ),
    ),
    pytest.param(
        "ray_local",
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)},
        id="ray_local",
        marks=pytest.mark.skipif(
            not _have("hydra_plugins.hydra_ray_launcher"),
            reason="Ray is an optional extra: pip install -e '.[ray]' (.ci/run tests it in a separate environment)",
        ),
    ),
]


@pytest.mark.parametrize(("launcher", "env"), LAUNCHERS)
def test_every_launcher_gives_the_basic_launchers_results(
    basic: dict[str, bytes], tmp_path: Path, launcher: str, env: dict[str, str]
) -> None:
    r = sweep(tmp_path, *GRID, f"hydra/launcher={launcher}", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert job_files(tmp_path) == basic
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert len(rows) == JOBS and all(row["status"] == "stopped" for row in rows)  # 0.05 s runs


def test_a_job_that_fails_in_the_simulation_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # job_timeout=1ns: the first slice of that job exceeds its wall-clock limit.
    r = sweep(tmp_path, "job_timeout=1ns,null", "duration=0.05s", "figures=false")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    rows = {
        row["job_timeout"]: row for row in csv.DictReader((tmp_path / "summary.csv").read_text().splitlines())
    }
    assert rows["1ns"]["status"] == "failed" and rows["1ns"]["error"].startswith("job_timeout:")
    assert rows["null"]["status"] == "stopped"
    failed_dir = next(d for d in tmp_path.iterdir() if d.name.startswith("0_"))
    assert json.loads((failed_dir / "run.json").read_text())["status"] == "failed"
    assert not (failed_dir / "metrics.json").exists()
    assert (tmp_path / "report.md").is_file() and "failed" in (tmp_path / "report.md").read_text()


def test_the_memory_guard_stops_a_runaway_job(tmp_path: Path) -> None:
    r = warm.run(
        [
            "job_memory=16M",
            "workload=pageref",
            "workload.refs=[1]",
            "figures=false",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert r.returncode == 0  # one page is far below the limit
    big = tmp_path / "big.txt"
    big.write_text("\n".join(str(i) for i in range(60_000)) + "\n")
    r = warm.run(
        [
            "job_memory=16M",
            "workload=pageref",
            f"workload.path={big}",
            "ram=1G",
            f"hydra.run.dir={tmp_path / 'b'}",
        ]
    )
    assert r.returncode != 0 and "job_memory:" in r.stderr and "Traceback" not in r.stderr


def test_a_killed_sweep_resumes_to_the_same_results(tmp_path: Path) -> None:
    # Three jobs, two at a time: the third has just started when the first to finish is complete
    # (run.json is written last; a job with metrics.json alone is not complete yet, and which of
    # the first two finishes first is up to the scheduler).
    args = ["threshold=64k,128k,256k", "duration=0.3s", "figures=false", "hydra.launcher.n_jobs=2"]
    whole = tmp_path / "whole"
    assert sweep(whole, *args).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [PY, "run.py", "-m", *args, f"hydra.sweep.dir={cut}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not any(map(_complete, cut.glob("*_*"))) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "summary.csv").exists(), "the sweep finished before it could be killed"
    r = sweep(cut, *args, "resume=true")
    assert r.returncode == 0, r.stderr
    assert "complete already, skipped" in r.stdout
    assert job_files(cut) == job_files(whole)
    assert not list(cut.glob("**/.*.tmp"))


def test_a_resumed_sweep_removes_what_a_write_killed_midway_left(tmp_path: Path) -> None:
    # SIGKILL during atomic_write leaves its randomly named temporary; the rerun must not keep it.
    args = ["threshold=64k,128k", "duration=0.05s", "figures=false"]
    out = tmp_path / "s"
    assert sweep(out, *args).returncode == 0
    whole = job_files(out)
    job = next(out.glob("1_*"))
    (job / "run.json").unlink()  # killed before its last write: incomplete, rerun on resume
    left = [
        job / ".metrics.json.k1ll3d.tmp",
        job / "maps" / ".1.txt.k1ll3d.tmp",
        out / ".summary.csv.k1ll3d.tmp",
    ]
    for p in left:
        p.write_text("half")
    r = sweep(out, *args, "resume=true")
    assert r.returncode == 0, r.stderr
    assert not [p for p in left if p.exists()]
    assert job_files(out) == whole


def test_two_hundred_jobs_aggregate_in_seconds(tmp_path: Path) -> None:
    # One real job, copied as 200 seeds (aggregation reads only the files).
    one = tmp_path / "one"
    r = sweep(one, "seed=0", "duration=0.05s", "figures=false")
    assert r.returncode == 0, r.stderr
    src = next(d for d in one.iterdir() if (d / "metrics.json").is_file())
    big = tmp_path / "big"
    for seed in range(200):
        d = big / f"{seed}_seed={seed}"
        shutil.copytree(src, d)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}", "duration=0.05s"]))
    t = time.monotonic()
    r = warm.run_module("vmexp.report", [big])
    elapsed = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((big / "summary.csv").read_text().splitlines()))
    assert len(rows) == 200
    assert list((big / "figures").glob("*.png")) and (big / "report.html").is_file()
    print(f"aggregated 200 jobs in {elapsed:.1f} s")


def test_the_default_launcher_runs_jobs_in_their_own_processes_and_draws_each_jobs_figures(
    tmp_path: Path,
) -> None:
    args = ["threshold=64k,128k,256k", "workload=trace", f"workload.path={TRACE}", "nprocs=1"]
    r = sweep(tmp_path / "vmexp", *args, "hydra.launcher.n_jobs=2")
    assert r.returncode == 0, r.stderr
    assert "Launching 3 jobs locally, 2 at a time" in r.stderr + r.stdout
    jobs = sorted(d for d in (tmp_path / "vmexp").iterdir() if (d / ".hydra").is_dir())
    pids = {json.loads((j / "run.json").read_text())["pid"] for j in jobs}
    assert len(jobs) == 3 and len(pids) == 3  # each job in a process of its own
    for j in jobs:
        assert {"memory.png", "faults.png", "heap.png", "layout.png", "syscalls.png"} <= {
            p.name for p in (j / "figures").glob("*.png")
        }
    assert (tmp_path / "vmexp" / "report.html").is_file()
    one = sweep(tmp_path / "basic", *args, "hydra/launcher=basic", "figures=false")
    assert one.returncode == 0, one.stderr
    by_num = lambda files: {(k.split("_", 1)[0], k.rsplit("/", 1)[1]): v for k, v in files.items()}  # noqa: E731
    assert by_num(job_files(tmp_path / "vmexp")) == by_num(job_files(tmp_path / "basic"))  # byte for byte


@pytest.mark.parametrize("value", ["0", "two"])
def test_a_bad_number_of_processes_is_one_line_naming_the_key(tmp_path: Path, value: str) -> None:
    r = sweep(
        tmp_path, "threshold=64k,128k", "duration=0.01s", "figures=false", f"hydra.launcher.n_jobs={value}"
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert "hydra.launcher.n_jobs" in line
    assert not list(tmp_path.glob("*/metrics.json"))


def test_a_job_whose_process_dies_is_reported_and_the_other_jobs_finish() -> None:
    # In a fresh interpreter: a test process runs threads (pytest-xdist's), and fork wants none.
    script = """
import os, signal
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
import vmexp.status
from vmexp.launcher import _Pool

def job(idx, overrides):
    if idx == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the host's OOM killer would
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=10 * idx)

returns = _Pool(2, OmegaConf.create({})).run([(0, ["seed=0"]), (1, ["seed=1"]), (2, ["seed=2"])], job)
print([r.return_value for r in returns], vmexp.status.exit_status())
"""
    r = subprocess.run([PY, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[-2] == "[0, None, 20] 1"
    assert "[job 1] seed=1: its process ended without a result (killed by signal 9)" in r.stderr


def test_ctrl_c_stops_every_job_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [PY, "run.py", "-m", "threshold=64k,128k,256k", "figures=false", f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/settings.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends to the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert "vmexp: interrupted" in err and "resume=true" in err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no job process outlives the command
        os.killpg(proc.pid, 0)
    assert not (tmp_path / "summary.csv").exists()
