"""The tests' warm runner (tests/warm.py) gives what a fresh ``python run.py`` gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import warm
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["threshold=banana"], id="a bad value: exit 2, one line on stderr"),
        pytest.param(["--cfg", "job", "threshold=64k"], id="--cfg job: the config on stdout"),
    ],
)
def test_a_warm_command_gives_what_a_fresh_python_gives(args: list[str], tmp_path: Path) -> None:
    fresh = subprocess.run(
        [sys.executable, "run.py", *args, f"hydra.run.dir={tmp_path / 'fresh'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    forked = warm.run([*args, f"hydra.run.dir={tmp_path / 'warm'}"], timeout=300)
    assert (forked.returncode, forked.stdout, forked.stderr.replace("warm", "fresh")) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


def test_a_warm_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run_module("timeit", ["-n", "1", "import time; time.sleep(60)"], timeout=1)
    # The server goes on: the next command runs.
    assert warm.run(["threshold=banana", f"hydra.run.dir={tmp_path / 'next'}"]).returncode == 2


def test_a_warm_module_runs_as_python_m_runs_it(tmp_path: Path) -> None:
    r = warm.run_module("vmexp.compare", ["only-a"], cwd=tmp_path)
    fresh = subprocess.run(
        [sys.executable, "-m", "vmexp.compare", "only-a"], cwd=tmp_path, capture_output=True, text=True
    )
    assert (r.returncode, r.stdout, r.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert r.returncode == 2 and "vmexp.compare: error:" in r.stderr
