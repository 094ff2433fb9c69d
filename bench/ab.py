"""Side-by-side timing of one command in two checkouts: before and after a change, same machine, same minutes.

    git worktree add /tmp/before main          # the code to compare against
    python bench/ab.py /tmp/before . -n 5 -- python run.py figures=false hydra.run.dir=/tmp/ab

The command runs in each checkout in turn (A, B, A, B, ...), so both see the
same machine load; each run's CPU time (user + system of the child, which a
busy neighbour disturbs far less than wall time) and wall time are recorded,
and the minimum and median of each are printed with B's ratio to A. Use it for
benchmarks that say "within 5 % of before": one number per side measured
minutes apart is not a comparison on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _once(cwd: Path, cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"ab: {' '.join(cmd)} failed in {cwd} (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (before)")
    ap.add_argument("b", type=Path, help="checkout B (after)")
    ap.add_argument("-n", type=int, default=5, help="runs per side (default 5)")
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.error("give the command after --")
    split = argv.index("--")
    a = ap.parse_args(argv[:split])
    cmd = argv[split + 1 :]
    if not cmd:
        ap.error("give the command after --")
    # The interpreter of the current venv unless the command names another.
    env_note = os.environ.get("VIRTUAL_ENV", sys.prefix)
    runs: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for i in range(a.n):
        for side, where in (("A", a.a), ("B", a.b)):
            runs[side].append(_once(where.resolve(), cmd))
            cpu, wall = runs[side][-1]
            print(f"run {i + 1} {side}: cpu {cpu:7.3f} s  wall {wall:7.3f} s", file=sys.stderr, flush=True)
    print(f"command: {' '.join(cmd)}   (python from {env_note})")
    print(f"{'':4s} {'cpu min':>9s} {'cpu median':>11s} {'wall min':>9s} {'wall median':>12s}")
    stats = {}
    for side in ("A", "B"):
        cpus = [c for c, _ in runs[side]]
        walls = [w for _, w in runs[side]]
        stats[side] = (min(cpus), statistics.median(cpus), min(walls), statistics.median(walls))
        print(
            f"{side:4s} {stats[side][0]:9.3f} {stats[side][1]:11.3f} {stats[side][2]:9.3f} {stats[side][3]:12.3f}"
        )
    ratio = [b / a if a else float("nan") for a, b in zip(stats["A"], stats["B"], strict=True)]
    print(f"{'B/A':4s} {ratio[0]:9.3f} {ratio[1]:11.3f} {ratio[2]:9.3f} {ratio[3]:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
