"""Workload generator benchmark: operations generated per second, per preset.

    python bench/bench_generators.py [--nprocs 4] [--seed 0] [--repeat 3]

For each preset of conf/workload (the generator and mix ones) it consumes
every process's whole operation stream, without simulating it, and prints
the number of operations, of page references they carry (the pages of
every TOUCH range) and the best rate over the repeats. The generator is
one part of a run's cost: the engine spends several microseconds per
operation, so generation should stay near a microsecond per operation.
Run it on an otherwise idle machine; it measures one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmexp.workload import build  # noqa: E402
from vmexp.workload.ops import TOUCH  # noqa: E402

PAGE = 4096


def measure(spec: dict[str, object], nprocs: int, seed: int) -> tuple[int, int, float]:
    """(operations, page references, seconds) for consuming every process's stream once."""
    t0 = time.perf_counter()
    procs = build(spec, nprocs, seed, PAGE)
    nops = refs = 0
    for p in procs:
        for op in p.ops:
            nops += 1
            if op[0] == TOUCH:
                refs += (op[3] + PAGE - 1) // PAGE
    return nops, refs, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'preset':<14}{'ops':>10}{'page refs':>12}{'seconds':>10}{'ops/s':>12}{'us/op':>8}")
    for path in sorted((ROOT / "conf" / "workload").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if spec.get("kind") not in ("generator", "mix"):
            continue
        best = min((measure(spec, args.nprocs, args.seed) for _ in range(args.repeat)), key=lambda r: r[2])
        nops, refs, secs = best
        print(
            f"{path.stem:<14}{nops:>10}{refs:>12}{secs:>10.3f}{nops / secs:>12,.0f}{secs / nops * 1e6:>8.2f}"
        )


if __name__ == "__main__":
    main()
