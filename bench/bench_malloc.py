"""Simulated malloc+free operations per second of the glibc model (and the free-list baselines).

    python bench/bench_malloc.py [--ops 400000] [--slots 2000] [--seed 1] [--allocator glibc] [--repeat 5]

The workload is a steady churn over a fixed number of slots: each step picks
a slot at random and frees its block if it holds one, else mallocs a new one.
Sizes are mixed the way allocation-heavy programs are (mostly small, a tail
of large ones): 70 % 8-256 bytes, 20 % 256 B-4 KiB, 8 % 4-64 KiB, 2 %
64 KiB-1 MiB.  The operations are drawn before the clock starts; the fake
kernel's page bookkeeping is part of what is measured, as it would be in a
simulation run.  Goal (issue 3): at least 300,000 operations per second on
one core of this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402

import vmexp.app  # noqa: E402,F401  (registers the config schema)
from tests.fakekernel import FakeKernel  # noqa: E402
from vmexp.libc.base import Kernel  # noqa: E402
from vmexp.libc.malloc import GlibcMalloc  # noqa: E402
from vmexp.libc.simple import make  # noqa: E402


def workload(n: int, slots: int, seed: int) -> tuple[list[int], list[int]]:
    """Slot picks and sizes for ``n`` steps, from one explicit Generator."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, slots, size=n)
    band = rng.random(n)
    sizes = np.where(
        band < 0.70,
        rng.integers(8, 257, size=n),
        np.where(
            band < 0.90,
            rng.integers(256, 4097, size=n),
            np.where(band < 0.98, rng.integers(4096, 65537, size=n), rng.integers(65536, 1 << 20, size=n)),
        ),
    )
    return picks.tolist(), sizes.tolist()


def sim_kernel() -> Kernel:
    """The simulator's own kernel (page tables, frames, LRU), one process, RAM enough for all."""
    import simpy

    from vmexp.config import validate
    from vmexp.kernel.system import System

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        s = validate(compose("config", overrides=["workload=pageref", "workload.refs=[1]", "ram=4G"]))
    system = System(s, simpy.Environment(), np.random.default_rng(0))
    return system.syscalls(system.new_process(1, "bench", None))


def run(allocator: str, n: int, slots: int, seed: int, kernel: str = "fake") -> tuple[int, float]:
    picks, sizes = workload(n, slots, seed)
    k: Kernel = FakeKernel(strict=False) if kernel == "fake" else sim_kernel()
    a = GlibcMalloc(k) if allocator == "glibc" else make(allocator, k)
    malloc, free = a.malloc, a.free
    held = [0] * slots
    t0 = time.perf_counter()
    for i in range(n):
        s = picks[i]
        p = held[s]
        if p:
            free(p)
            held[s] = 0
        else:
            held[s] = malloc(sizes[i])
    elapsed = time.perf_counter() - t0
    return n, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--ops", type=int, default=400_000, help="malloc+free operations to time")
    ap.add_argument("--slots", type=int, default=2000, help="blocks alive at most (the working set)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--allocator", default="glibc", choices=["glibc", "first_fit", "best_fit"])
    ap.add_argument("--repeat", type=int, default=5, help="runs; the best and the median are reported")
    ap.add_argument(
        "--kernel",
        default="fake",
        choices=["fake", "sim"],
        help="tests' fake kernel, or the simulator's own (sim)",
    )
    args = ap.parse_args()
    rates = sorted(
        n / t
        for n, t in (
            run(args.allocator, args.ops, args.slots, args.seed, args.kernel) for _ in range(args.repeat)
        )
    )
    print(
        f"{args.allocator} on the {args.kernel} kernel: {args.ops} malloc+free operations x {args.repeat}: "
        f"best {rates[-1]:,.0f} ops/s, median {rates[len(rates) // 2]:,.0f} ops/s"
    )


if __name__ == "__main__":
    main()
