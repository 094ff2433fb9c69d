"""When a run's figures are drawn: at once, or by its sweep, in parallel.

Under vmexp's launcher (the default) a job leaves its figures to the
launcher, which draws them in a process of their own while the next jobs
simulate (``vmexp.launcher``). Under Hydra's basic launcher a sweep's jobs
run one after another in the launching process: a job that drew its own
figures would keep the other cores idle while it drew. So in both cases
the job leaves its figures to the sweep, and what the launcher has not
drawn the sweep's aggregation (the ``on_multirun_end`` callback, or
``python -m vmexp.report SWEEP_DIR`` when Hydra skipped the callback)
draws at once, one process per core (``run_figures.draw_runs_figures``).
Jobs of the joblib, submitit and Ray launchers run in worker processes or
on other machines, already in parallel: they draw their own, as a single
run does.

A job's figures are pending when it finished (``run.json`` says ok), its
config asks for figures (``figures: true``) and its ``figures/`` holds no
PNG yet; a figure is drawn from the job's files alone, so it does not
matter which process draws it. This module imports no plotting library: a
job that leaves its figures for later does not pay matplotlib's import.
"""

from __future__ import annotations

import atexit
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vmexp.status import finished

if TYPE_CHECKING:
    from vmexp.config import Settings

__all__ = [
    "finish_background",
    "finish_in_background",
    "figures_later",
    "draw_job_figures",
    "pending_figures",
    "draw_pending_figures",
    "usable_cores",
    "wants_figures",
    "can_fork",
]

# The launchers whose jobs leave their figures to the sweep (see the module docstring).
_LEAVE_FIGURES = (".BasicLauncher", ".VmexpLauncher")

# Waits for figure processes a launcher left running when it returned (see finish_in_background).
_background: list[Callable[[], None]] = []


def finish_in_background(wait: Callable[[], None]) -> None:
    """Let the last jobs' figure processes run on while the sweep's end draws its own; ``wait`` joins them.

    vmexp's launcher returns once every job is done and the last figures
    have started, so that the sweep's figures and report are drawn beside
    them instead of after them. ``aggregate`` calls ``finish_background``
    before it looks for figures still to draw (a figure half written would
    look like one not drawn); the next batch of a sweeper and the end of the
    process call it too, so none is left behind.
    """
    if not _background:
        atexit.register(finish_background)
    _background.append(wait)


def finish_background() -> None:
    """Wait for every figure process a launcher left running (see ``finish_in_background``)."""
    while _background:
        _background.pop(0)()


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Fork copies only the calling thread: safe on Linux while this process runs no other.

    (A lock another thread holds would stay locked in the child.)
    """
    import threading

    return sys.platform == "linux" and threading.active_count() == 1


def figures_later() -> bool:
    """True in a multirun whose launcher or end draws the jobs' figures (vmexp's and Hydra's basic launchers)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False  # the Python API, the tests: no sweep to leave them to
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return False
    return str(hc.launcher.get("_target_", "")).endswith(_LEAVE_FIGURES)


def draw_job_figures(out: Path, settings: Settings) -> None:
    """A finished job's figures: drawn now, or left to its sweep when the sweep can draw them in parallel."""
    if figures_later():
        return
    from vmexp.report.run_figures import draw_run_figures

    draw_run_figures(out, settings)


def wants_figures(job: Path) -> bool:
    """A finished job whose config asks for figures and whose ``figures/`` holds none yet."""
    try:
        status = json.loads((job / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return False
    if not finished(status) or not (job / "metrics.json").is_file() or any((job / "figures").glob("*.png")):
        return False
    cfg = job / ".hydra" / "config.yaml"
    if not cfg.is_file():
        return False
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: Hydra's files are read for every job
    doc = yaml.load(cfg.read_text(), Loader=loader)
    return isinstance(doc, dict) and doc.get("figures") is True


def pending_figures(sweep_dir: Path) -> list[Path]:
    """The jobs of a sweep directory whose figures are still to be drawn, in job order."""
    jobs = sorted(
        (p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/config.yaml")),
        key=lambda j: (
            int(j.name.split("_", 1)[0]) if j.name.split("_", 1)[0].isdigit() else 1 << 62,
            j.name,
        ),
    )
    return [j for j in jobs if wants_figures(j)]


def draw_pending_figures(sweep_dir: Path, *, quiet: bool = False) -> int:
    """Draw the figures its jobs left to the sweep, in parallel where there are cores; returns how many jobs."""
    jobs = pending_figures(sweep_dir)
    if not jobs:
        return 0
    from vmexp.report.run_figures import draw_runs_figures

    n = min(len(jobs), usable_cores())
    if not quiet:
        print(
            f"sweep: drawing the figures of {len(jobs)} job{'s' if len(jobs) != 1 else ''}"
            + (f" in {n} processes" if n > 1 else ""),
            file=sys.stderr,
            flush=True,
        )
    draw_runs_figures(jobs, n_jobs=n)
    return len(jobs)
