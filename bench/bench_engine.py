"""Engine benchmark: simulated page references per second, and memory per resident page.

    python bench/bench_engine.py            # all three measurements
    python bench/bench_engine.py --quick    # fewer references (a smoke run)

1. One process, LRU, a page-reference string of 1,000,000 references over
   10,000 pages with 1,000 frames. The pattern matters more than anything:
   the headline figure uses the locality model (phases of 50,000 references
   inside a 800-page working set that moves), the usual shape of real
   programs; uniform random references (a 90 % miss rate, every miss a
   swap-out and a swap-in) and a Zipf(1.2) string are printed beside it.
2. Four processes of the `mixed` generator workload on 64 MiB of RAM, which
   they overrun, so they swap: references per second of wall time.
3. Memory: the Python heap (tracemalloc peak) per simulated resident page,
   and the same run with `ram` a thousand times larger, to show memory
   follows the pages touched, not the size of RAM or of the address space.

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

    print("2. four processes, mixed generator workload, 64 MiB RAM (swapping)")
    s = settings("nprocs=4")
    specs = build(s.workload, s.nprocs, s.seed, s.page_size)
    t = time.perf_counter()
    r = simulate(s, specs)
    dt = time.perf_counter() - t
    refs = sum(p.refs for p in r.processes)
    print(
        f"   {refs / dt:>12,.0f} refs/s   ({refs:,} references in {dt:.2f} s; "
        f"{r.system['pswpout']:,} swap-outs, {r.system['pswpin']:,} swap-ins)"
    )

    print("3. memory per resident simulated page (tracemalloc peak, locality string)")
    for ram in ("4000k", "4000M"):
        tracemalloc.start()
        _, r = pageref_run("locality", n // 4, ram=ram)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        pages = r.processes[0].rss_peak_bytes // 4096
        print(
            f"   ram={ram:6s} peak {peak / 2**20:7.1f} MiB for {pages:,} resident pages "
            f"= {peak / max(pages, 1):,.0f} bytes/page (incl. the reference string itself)"
        )


if __name__ == "__main__":
    main()
