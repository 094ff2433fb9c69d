"""Figure benchmark: CPU time to draw each figure of a default run and of the README sweep.

    python bench/bench_figures.py                      # data made in a temporary directory
    python bench/bench_figures.py --data /tmp/figdata  # made once there, reused by later calls
    python bench/bench_figures.py --repeat 5 --json out.json

What it draws, from run directories written with ``figures=false`` (so the
simulation is not measured, only the drawing):

1. the default run (``python run.py``): each of the run's figures, then
   ``draw_run_figures`` as the app calls it;
2. the README sweep (``python run.py -m threshold=64k,128k,256k``): the
   three jobs' figures one after another, the same three drawn in parallel
   when this version of vmexp can (``draw_runs_figures``), and the sweep's
   own figures and report (``aggregate``);
3. a short run (a 12-reference page-reference string) whose time series is
   too short to draw.

Times are CPU seconds of this process (``time.process_time``), the minimum
over ``--repeat`` drawings: the machine is shared, and the minimum of the
CPU time is what repeated runs agree on. The parallel drawing is a wall
time (its work happens in other processes), also the minimum over repeats.
Importing the figure modules is measured in fresh interpreters, after
the modules a run has imported already: what a run pays to draw its
figures, and what the end of a sweep pays on top for its own.

To compare two versions side by side, run this file from each checkout on
the same data (e.g. ``git worktree add --detach /tmp/old main``, copy this
file there, run both with the same ``--data``).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIGURES = ("memory", "faults", "heap", "layout", "syscalls")
SWEEP = ["threshold=64k,128k,256k"]
PAGEREF = [
    "workload=pageref",
    "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]",
    "policy=fifo",
    "ram=12k",
    "machine.min_free=0",
]


def make_data(data: Path) -> None:
    """The runs to draw, written once with figures=false (the simulation is not what is measured)."""
    run = [sys.executable, str(ROOT / "run.py")]
    if not (data / "default" / "metrics.json").is_file():
        subprocess.run([*run, "figures=false", f"hydra.run.dir={data / 'default'}"], check=True)
    if not (data / "pageref" / "metrics.json").is_file():
        subprocess.run([*run, "figures=false", *PAGEREF, f"hydra.run.dir={data / 'pageref'}"], check=True)
    if not (data / "sweep" / "summary.csv").is_file():
        subprocess.run([*run, "-m", "figures=false", *SWEEP, f"hydra.sweep.dir={data / 'sweep'}"], check=True)


def import_time() -> tuple[float, float]:
    """CPU seconds to import the figure modules in a fresh interpreter that has run a job's imports:
    (a run's figures, then a sweep's figures and report), each the minimum of three interpreters."""
    code = (
        "import time, vmexp.app, vmexp.sim, vmexp.metrics, vmexp.workload\n"
        "t = time.process_time()\n"
        "import vmexp.report.run_figures\n"
        "t1 = time.process_time()\n"
        "import vmexp.report.sweep, vmexp.report.sweep_figures, vmexp.report.report\n"
        "print(t1 - t, time.process_time() - t1)\n"
    )
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
        )
        runs.append([float(x) for x in out.stdout.split()])
    return min(r[0] for r in runs), min(r[1] for r in runs)


def cpu_min(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def wall_min(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def per_figure(run_dir: Path, repeat: int) -> dict[str, float]:
    """CPU seconds of each figure of one run (load_run included once, as its own row)."""
    import matplotlib

    from vmexp.report import run_figures as rf
    from vmexp.report.style import STYLE

    out = {"load": cpu_min(lambda: rf.load_run(run_dir), repeat)}
    data = rf.load_run(run_dir)
    title = rf._title(data, None)
    with matplotlib.rc_context(STYLE):
        for name in FIGURES:
            fn = getattr(rf, f"{name}_figure")
            out[name] = cpu_min(functools.partial(fn, data, title), repeat)
    out["draw_run_figures"] = cpu_min(lambda: rf.draw_run_figures(run_dir), repeat)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="directory for the runs (made when missing, reused after)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="vmexp-benchfig-")
        args.data = Path(tmp.name)
    args.data.mkdir(parents=True, exist_ok=True)
    make_data(args.data)
    scratch = Path(tempfile.mkdtemp(prefix="vmexp-benchfig-draw-"))
    try:
        for name in ("default", "pageref", "sweep"):
            shutil.copytree(args.data / name, scratch / name)
        run_import, sweep_import = import_time()
        res: dict[str, Any] = {"code": str(ROOT), "repeat": args.repeat, "import_run": run_import,
                               "import_sweep": sweep_import}  # fmt: skip
        res["default"] = per_figure(scratch / "default", args.repeat)
        res["pageref"] = per_figure(scratch / "pageref", args.repeat)
        jobs = sorted(p.parent for p in (scratch / "sweep").glob("*/metrics.json"))
        res["sweep_jobs"] = [per_figure(j, args.repeat) for j in jobs]

        from vmexp.report import run_figures as rf
        from vmexp.report.sweep import aggregate

        res["sweep_runs_serial"] = sum(j["draw_run_figures"] for j in res["sweep_jobs"])
        parallel = getattr(rf, "draw_runs_figures", None)
        if parallel is not None:
            res["sweep_runs_parallel_wall"] = wall_min(lambda: parallel(jobs), args.repeat)
        res["sweep_aggregate"] = cpu_min(lambda: aggregate(scratch / "sweep", quiet=True), args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if tmp is not None:
            tmp.cleanup()

    print(f"vmexp figures, {ROOT}; CPU seconds, min of {args.repeat}")
    print(f"{'':28s} {'default':>9s} {'pageref':>9s} " + " ".join(f"{'job ' + str(i):>9s}" for i in range(3)))
    for row in ("load", *FIGURES, "draw_run_figures"):
        cells = [res["default"][row], res["pageref"][row], *(j[row] for j in res["sweep_jobs"])]
        print(f"{row:28s} " + " ".join(f"{c:9.3f}" for c in cells))
    print(f"{'import: run figures':28s} {res['import_run']:9.3f}")
    print(f"{'import: sweep figures+report':28s} {res['import_sweep']:9.3f}")
    print(f"{'sweep: 3 jobs one by one':28s} {res['sweep_runs_serial']:9.3f}")
    if "sweep_runs_parallel_wall" in res:
        print(f"{'sweep: 3 jobs in parallel':28s} {res['sweep_runs_parallel_wall']:9.3f}  (wall)")
    print(f"{'sweep: figures + report':28s} {res['sweep_aggregate']:9.3f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
