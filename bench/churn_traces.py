"""Random allocation traces that churn the heap and mappings: shapes the kernel model was not fitted to.

    python bench/churn_traces.py DIR [--count 24]
    python -m vmexp.validate kernel DIR/t8.trace --runs 3     # one of them against this machine's kernel

Each trace (``DIR/t<seed>.trace``) is one process of 200, 2 000 or 8 000
operations: blocks of bytes to tens of MiB allocated with ``malloc`` or
``calloc`` (most then written whole), freed, grown or shrunk with
``realloc``, and read or written in random ranges, with the live total held
under 16, 48, 96 or 160 MiB (the largest block is freed when it goes over).
The same seed gives the same trace. docs/kernel-truth.md ("Random churn traces")
has what they showed: the simulator against the real kernel in a
64 MiB group on zram and on a swap file, and how far the kernel's own runs
spread on them.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

MIB = 1 << 20


def churn_trace(seed: int) -> str:
    """One trace; its shape (footprint, length) is drawn from the seed too."""
    r = random.Random(seed)
    lines = [f"# bench/churn_traces.py, seed {seed}"]
    live: dict[int, int] = {}  # id -> size
    nid = 0
    target = r.choice([16, 48, 96, 160]) * MIB
    for _ in range(r.choice([200, 2000, 8000])):
        x = r.random()
        if x < 0.25 or not live:
            nid += 1
            kind = r.random()
            if kind < 0.4:
                size = r.randint(1, 4096)
            elif kind < 0.8:
                size = r.randint(4096, 256 * 1024)
            else:
                size = r.randint(MIB, min(32 * MIB, target))
            if r.random() < 0.15:
                n = r.randint(1, 64)
                each = max(1, size // n)
                lines.append(f"calloc {nid} {n} {each}")
                live[nid] = n * each
            else:
                lines.append(f"malloc {nid} {size}")
                live[nid] = size
            if r.random() < 0.7:
                lines.append(f"touch {nid}")
        elif x < 0.4:
            b = r.choice(list(live))
            lines.append(f"free {b}")
            del live[b]
        elif x < 0.5:
            b = r.choice(list(live))
            size = min(max(1, int(live[b] * r.choice([0.5, 1.5, 3.0]))), 48 * MIB)
            lines.append(f"realloc {b} {size}")
            live[b] = size
        else:
            b = r.choice(list(live))
            size = live[b]
            off = r.randrange(0, size)
            lines.append(f"touch {b} {off} {r.randint(1, size - off)} {r.choice('rw')}")
        if sum(live.values()) > target:
            b = max(live, key=lambda k: live[k])
            lines.append(f"free {b}")
            del live[b]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="where to write t0.trace, t1.trace, ...")
    ap.add_argument("--count", type=int, default=24, help="how many traces (seeds 0 to COUNT-1; default 24)")
    a = ap.parse_args()
    if a.count < 1:
        ap.error("--count must be at least 1")
    a.dir.mkdir(parents=True, exist_ok=True)
    for seed in range(a.count):
        (a.dir / f"t{seed}.trace").write_text(churn_trace(seed))
    print(f"{a.count} traces in {a.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
