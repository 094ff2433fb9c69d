"""Engine benchmark: simulated page references per second, and memory per resident page.

    python bench/bench_engine.py            # all three measurements
    python bench/bench_engine.py --quick    # fewer references (a smoke run)

1. One process, LRU, a page-reference string of 1,000,000 references over
   10,000 pages with 1,000 frames. The pattern matters more than anything:
   the headline figure uses the locality model (phases of 50,000 references
   inside a 800-page working set that moves), the usual shape of real
   programs; uniform random references (a 90 % miss rate, every miss a
   swap-out and a swap-in) and a Zipf(1.2) string are printed beside it.
2. Four processes of generator workloads that swap: `working_set` (loops
   over 8 MiB each, 28 MiB of RAM: a few thousand swap-ins, the CPU stays
   busy) and the default `mixed` experiment (many small operations, so its
   rate is bound by the allocator and the generator, not by paging).
3. Memory: the simulation's Python heap (tracemalloc peak minus what was
   there before) per page touched, with `ram` 40M, 4000M and 1T: memory
   follows the pages touched, not the size of RAM.

Run it on an otherwise idle machine; it measures one core.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vmexp.app  # noqa: E402,F401  (registers the schema)
from vmexp.config import Settings, validate  # noqa: E402
from vmexp.sim import Result, simulate  # noqa: E402
from vmexp.workload import ProcSpec, build  # noqa: E402


def settings(*overrides: str) -> Settings:
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return validate(compose("config", overrides=list(overrides)))


def reference_string(kind: str, n: int, pages: int, seed: int = 1) -> tuple[list[int], bytes]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        vpns = rng.integers(0, pages, n)
    elif kind == "zipf":
        vpns = (rng.zipf(1.2, n) - 1) % pages
    else:  # locality: phases of 50k references in an 800-page window that moves
        phases = max(1, n // 50_000)
        base = np.repeat(rng.integers(0, pages - 800, phases), -(-n // phases))[:n]
        vpns = base + rng.integers(0, 800, n)
    writes = (rng.random(n) < 0.3).astype(np.uint8).tobytes()
    return [int(v) + 0x1000 for v in vpns], writes


def pageref_run(kind: str, n: int, ram: str = "4000k") -> tuple[float, Result]:
    s = settings(
        "workload=pageref",
        "workload.refs=[1]",
        "policy=lru",
        f"ram={ram}",
        "machine.min_free=0",
        "swap=1G",
        "duration=100000s",
    )
    vpns, writes = reference_string(kind, n, 10_000)
    t = time.perf_counter()
    r = simulate(s, [ProcSpec(name=kind, refs=(vpns, writes))])
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 references instead of 1,000,000")
    args = ap.parse_args()
    n = 100_000 if args.quick else 1_000_000

    print(f"1. one process, LRU, {n:,} references over 10,000 pages, 1,000 frames")
    for kind in ("locality", "zipf", "uniform"):
        dt, r = pageref_run(kind, n)
        p = r.processes[0]
        print(
            f"   {kind:9s} {n / dt:>12,.0f} refs/s   ({dt:.2f} s; {p.minflt:,} minor, {p.majflt:,} major faults)"
        )

    print("2. four processes of generator workloads, swapping")
    for label, overrides in (
        (
            "working_set, 28 MiB RAM",
            ["workload=working_set", "ram=28M", "workload.refs=400000", "duration=1000s"],
        ),
        ("mixed (the default), 64 MiB RAM", []),
    ):
        s = settings("nprocs=4", *overrides)
        specs = build(s.workload, s.nprocs, s.seed, s.page_size)
        t = time.perf_counter()
        r = simulate(s, specs)
        dt = time.perf_counter() - t
        refs = sum(p.refs for p in r.processes)
        ops = sum(p.ops for p in r.processes)
        print(
            f"   {label:32s} {refs / dt:>12,.0f} refs/s  {ops / dt:>10,.0f} ops/s   ({refs:,} references in {dt:.2f} s; "
            f"{r.system['pswpout']:,} swap-outs, {r.system['pswpin']:,} swap-ins)"
        )

    print("3. host memory per simulated page (tracemalloc peak of the simulation, inputs excluded)")
    for ram in ("40M", "4000M", "1T"):
        vpns, writes = reference_string("locality", n // 4, 10_000)
        s = settings(
            "workload=pageref",
            "workload.refs=[1]",
            "policy=lru",
            f"ram={ram}",
            "machine.min_free=0",
            "swap=1G",
            "duration=100000s",
        )
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        r = simulate(s, [ProcSpec(name="mem", refs=(vpns, writes))])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        touched = len(set(vpns))
        print(
            f"   ram={ram:6s} peak {(peak - base) / 2**20:6.1f} MiB for {touched:,} pages touched "
            f"= {(peak - base) / touched:,.0f} bytes/page"
        )


if __name__ == "__main__":
    main()
