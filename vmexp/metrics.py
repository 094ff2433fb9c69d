"""A run's results as files: the output contract of DESIGN.md, written atomically.

Every file is written to a temporary name in the run directory and renamed
into place, so a run that fails half-way leaves complete files or none;
``metrics.json`` is written last, so its presence marks a finished run
(a resumed sweep relies on that). Nothing here reads the wall clock:
``metrics.json``, ``syscalls.csv`` and ``timeseries.csv`` are byte-identical
for the same config and seed. Wall-clock facts go to ``run.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vmexp.libc.base import MALLINFO_FIELDS
from vmexp.results import ProcResult, Result

__all__ = [
    "SCHEMA",
    "SYSCALL_COLUMNS",
    "TIMESERIES_COLUMNS",
    "atomic_write",
    "summary_of",
    "SUMMARY_METRICS",
    "metrics_dict",
    "write_run",
]

SCHEMA = 1
SYSCALL_COLUMNS = ["pid", "op", "time_s", "syscall", "addr", "length", "result"]
TIMESERIES_COLUMNS = [
    "time_s",
    "pid",
    "rss_bytes",
    "vsz_bytes",
    "swap_bytes",
    "arena_bytes",
    "hblkhd_bytes",
    "minflt",
    "majflt",
    "free_bytes",
    "swap_used_bytes",
    "cpu_util",
    "swap_util",
    "pswpin_per_s",
    "pswpout_per_s",
]


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `path` so that readers see the old file, or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _process(p: ProcResult) -> dict[str, Any]:
    return {
        "pid": p.pid,
        "name": p.name,
        "exit": p.exit,
        "error": p.error,
        "minflt": p.minflt,
        "majflt": p.majflt,
        "refs": p.refs,
        "ops": p.ops,
        "enomem": p.enomem,
        "skipped_ops": p.skipped_ops,
        "syscalls": p.syscalls,
        "mallinfo": {k: int(p.mallinfo[k]) for k in MALLINFO_FIELDS},
        "vsz_peak_bytes": p.vsz_peak_bytes,
        "rss_peak_bytes": p.rss_peak_bytes,
        "swap_peak_bytes": p.swap_peak_bytes,
        "vsz_bytes": p.vsz_bytes,
        "rss_bytes": p.rss_bytes,
        "page_table_bytes": p.page_table_bytes,
        "page_table_peak_bytes": p.page_table_peak_bytes,
        "pswpin": p.pswpin,
        "pswpout": p.pswpout,
        "cpu_time_s": p.cpu_time_s,
        "blocked_time_s": p.blocked_time_s,
        "start_s": p.start_s,
        "end_s": p.end_s,
    }


def metrics_dict(result: Result) -> dict[str, Any]:
    """The metrics.json document (contract: schema 1)."""
    return {"schema": SCHEMA, "system": result.system, "processes": [_process(p) for p in result.processes]}


SUMMARY_METRICS = (
    "minflt",
    "majflt",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "syscalls",
    "rss_peak_bytes",
    "vsz_peak_bytes",
    "arena_bytes",
    "uordblks_bytes",
    "fordblks_bytes",
    "hblkhd_bytes",
    "fragmentation",
    "pswpin",
    "pswpout",
    "cpu_utilization",
    "swap_utilization",
    "sim_time_s",
    "oom_kills",
    "enomem",
    "page_table_peak_bytes",
    "mean_time_between_faults_s",
)


def summary_of(doc: dict[str, Any]) -> dict[str, float]:
    """One job's summary metrics (totals over its processes) from its metrics.json document.

    The names are summary.csv's metric columns; ``objective`` weights refer to them.
    """
    procs = doc["processes"]
    s = doc["system"]

    def total(key: str) -> int:
        return sum(int(p[key]) for p in procs)

    def mi(key: str) -> int:
        return sum(int(p["mallinfo"][key]) for p in procs)

    calls = {k: sum(int(p["syscalls"][k]) for p in procs) for k in ("brk", "mmap", "munmap", "mremap")}
    arena = mi("arena")
    faults = total("majflt")
    cpu = sum(float(p["cpu_time_s"]) for p in procs)
    return {
        "minflt": total("minflt"),
        "majflt": faults,
        **calls,
        "syscalls": sum(calls.values()),
        "rss_peak_bytes": total("rss_peak_bytes"),
        "vsz_peak_bytes": total("vsz_peak_bytes"),
        "arena_bytes": arena,
        "uordblks_bytes": mi("uordblks"),
        "fordblks_bytes": mi("fordblks"),
        "hblkhd_bytes": mi("hblkhd"),
        "fragmentation": round(mi("fordblks") / arena, 6) if arena else 0.0,
        "pswpin": int(s["pswpin"]),
        "pswpout": int(s["pswpout"]),
        "cpu_utilization": round(float(s["cpu_utilization"]), 6),
        "swap_utilization": round(float(s["swap_utilization"]), 6),
        "sim_time_s": float(s["sim_time_s"]),
        "oom_kills": int(s["oom_kills"]),
        "enomem": total("enomem"),
        "page_table_peak_bytes": total("page_table_peak_bytes"),
        # Denning's L: mean CPU time between major faults (inf-free: 0 when there were none).
        "mean_time_between_faults_s": round(cpu / faults, 9) if faults else 0.0,
    }


def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.9g}"
    return v


def write_run(run_dir: Path, result: Result) -> None:
    """All contract files of one run except figures; metrics.json last."""
    run_dir.mkdir(parents=True, exist_ok=True)
    syscalls = (
        (pid, op, f"{t / 1e9:.9f}", name, addr, length, res)
        for pid, op, t, name, addr, length, res in result.syscalls
    )
    atomic_write(run_dir / "syscalls.csv", _csv(SYSCALL_COLUMNS, syscalls))
    rows = ([_fmt(s.get(c, "")) for c in TIMESERIES_COLUMNS] for s in result.samples)
    atomic_write(run_dir / "timeseries.csv", _csv(TIMESERIES_COLUMNS, rows))
    for p in result.processes:
        atomic_write(run_dir / "maps" / f"{p.pid}.txt", "\n".join(p.maps) + "\n")
    heap_rows = ((p.pid, addr, size, state) for p in result.processes for addr, size, state in p.heap)
    atomic_write(run_dir / "heap.csv", _csv(["pid", "addr", "size", "state"], heap_rows))
    if result.heap_snapshots:
        snaps = (
            (f"{t / 1e9:.9f}", pid, addr, size, state) for t, pid, addr, size, state in result.heap_snapshots
        )
        atomic_write(run_dir / "heap_snapshots.csv", _csv(["time_s", "pid", "addr", "size", "state"], snaps))
    if result.explain is not None:
        atomic_write(run_dir / "explain.log", "\n".join(result.explain) + "\n")
    atomic_write(run_dir / "metrics.json", json.dumps(metrics_dict(result), indent=1) + "\n")
