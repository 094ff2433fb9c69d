"""The 1M-reference page trace through ``run.py`` beside libCacheSim's C loop (issue 15).

    pip install -e '.[bench]'             # libcachesim: a benchmark dependency, never a runtime one
    python bench/bench_trace.py           # writes the trace, times both, prints the ratio
    python bench/bench_trace.py --refs 200000 --repeat 3

The trace: ``--refs`` references, Zipf (s = 0.9) over 10,000 pages,
shuffled so page numbers carry no order, one decimal page number per line
(the format both read). The cache: 1000 frames, LRU. ``run.py`` runs it as a
user would (``workload=pageref policy=lru ram=<1000 pages> machine.min_free=0
figures=false``); its start-up (Python, Hydra, the imports) is measured apart
on a 10-reference trace and subtracted, as the issue measures it. Both sides
are checked against an independent LRU (an OrderedDict): the fault count
(minflt + majflt) must equal its misses, and libCacheSim's miss ratio too.
Times are the minimum of ``--repeat`` runs, in wall seconds and in CPU
seconds (``run.py``'s process from ``getrusage``, libCacheSim's from
``time.process_time``); on a shared machine the CPU ratio is the one to
quote, wall time counts the other jobs too. Compare ratios from one
invocation, not absolute numbers across sessions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 1000


def write_trace(path: Path, refs: int, seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    n = 10_000
    p = 1.0 / np.arange(1, n + 1) ** 0.9
    pages = rng.permutation(n)[rng.choice(n, size=refs, p=p / p.sum())]
    path.write_text("\n".join(map(str, pages.tolist())) + "\n")
    return pages.tolist()  # type: ignore[no-any-return]


def lru_misses(pages: list[int], frames: int) -> int:
    resident: OrderedDict[int, None] = OrderedDict()
    misses = 0
    for page in pages:
        if page in resident:
            resident.move_to_end(page)
        else:
            misses += 1
            resident[page] = None
            if len(resident) > frames:
                resident.popitem(last=False)
    return misses


def run_py(trace: Path, out: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of ``python run.py`` on the trace, and the faults it counted."""
    cmd = [sys.executable, "run.py", "workload=pageref", f"workload.path={trace}", "policy=lru",
           f"ram={FRAMES * 4}k", "machine.min_free=0", "figures=false", f"hydra.run.dir={out}"]  # fmt: skip
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    doc = json.loads((out / "metrics.json").read_text())
    return wall, cpu, sum(p["minflt"] + p["majflt"] for p in doc["processes"])


def libcachesim_run(trace: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds of libCacheSim reading the text trace and running LRU(1000), and its miss ratio."""
    import libcachesim as lcs

    t0, c0 = time.perf_counter(), time.process_time()
    reader = lcs.TraceReader(str(trace), lcs.TraceType.PLAIN_TXT_TRACE)
    ratio, _ = lcs.LRU(cache_size=FRAMES).process_trace(reader)
    return time.perf_counter() - t0, time.process_time() - c0, float(ratio)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import libcachesim  # noqa: F401
    except ImportError:
        print("bench_trace: libcachesim is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pages = write_trace(d / "trace.txt", args.refs)
        write_trace(d / "tiny.txt", 10)
        expected = lru_misses(pages, FRAMES)
        ours, theirs, start = [], [], []
        for i in range(args.repeat):
            wall, cpu, faults = run_py(d / "trace.txt", d / f"run{i}")
            assert faults == expected, f"run.py counted {faults} faults, an LRU of {FRAMES} frames {expected}"
            ours.append((wall, cpu))
            start.append(run_py(d / "tiny.txt", d / f"tiny{i}")[:2])
            wall, cpu, ratio = libcachesim_run(d / "trace.txt")
            assert round(ratio * args.refs) == expected, (ratio, expected)
            theirs.append((wall, cpu))
    print(f"trace: {args.refs:,} references, {expected:,} LRU misses with {FRAMES} frames (both agree)")
    for k, what in ((0, "wall"), (1, "CPU")):
        sim = min(t[k] for t in ours) - min(t[k] for t in start)
        rate_ours, rate_theirs = args.refs / sim, args.refs / min(t[k] for t in theirs)
        print(
            f"{what:4s}  run.py {min(t[k] for t in ours):6.2f} s, start-up {min(t[k] for t in start):.2f} s "
            f"-> {rate_ours / 1e6:.3f} M refs/s;  libCacheSim {min(t[k] for t in theirs):.2f} s "
            f"-> {rate_theirs / 1e6:.3f} M refs/s;  ratio {rate_ours / rate_theirs:.3f} x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
