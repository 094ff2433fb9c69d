"""Every metric a run reports, declared once, and the files that hold them (the output contract the README documents).

``METRICS`` is the one list: each ``Metric`` says what it measures (label,
unit), whose it is (a process's, the machine's, or the job's files'),
where it is written (its key in ``metrics.json``, its column in
``timeseries.csv``, its column in ``summary.csv``), how it aggregates over
the processes of a job and over the seeds of a setting, and which direction
is better. From it come ``metrics.json``'s process records, the timeseries
header, ``summary.csv``'s metric columns and their values
(``summary_of``), the names ``objective`` and ``report.metrics`` accept,
the figure and report labels (``metric(name)``) and the README's metric
table (``vmexp.docs``). A new per-process metric is one declaration here
(plus the engine filling the ``ProcResult`` field it reads).

Every file is written to a temporary name in the run directory and renamed
into place, so a run that fails half-way leaves complete files or none;
``metrics.json`` is written last, so its presence marks a finished run
(a resumed sweep relies on that). Nothing here reads the wall clock:
``metrics.json``, ``syscalls.csv`` and ``timeseries.csv`` are byte-identical
for the same config and seed. Wall-clock facts go to ``run.json``.

Importing this module loads no part of the engine.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmexp.results import ProcResult, Result
from vmexp.status import stop_note
from vmexp.units import format_size

__all__ = [
    "COLUMNS",
    "FILE_METRICS",
    "METRICS",
    "SCHEMA",
    "SUMMARY_METRICS",
    "SYSCALL_COLUMNS",
    "TIMESERIES_COLUMNS",
    "Metric",
    "atomic_write",
    "metric",
    "metrics_dict",
    "objective_of",
    "summary_line",
    "summary_of",
    "write_run",
]

SCHEMA = 1
SYSCALL_COLUMNS = ["pid", "op", "time_s", "syscall", "addr", "length", "result"]


@dataclass(frozen=True)
class Metric:
    """One measured quantity and everywhere it appears.

    ``scope``: ``process`` (a field of each process record), ``system`` (a
    key of metrics.json's ``system``), ``job`` (computed from a job's other
    metrics or files). ``json``: its path in the process record or the
    system dict (None: not in metrics.json). ``series``: its column in
    timeseries.csv (None: not sampled), at ``series_pos``; ``series_label`` and ``series_unit``
    say what that column holds where it is not what ``label`` and ``unit`` say of the metric
    (a process's RSS at the sample's time, not at exit; a rate per second, not a count), for the
    README's timeseries table. ``column``: its summary.csv column
    (None: not summarised). ``over_processes``: how a job's summary combines
    the processes' values (``sum``; the summary of a machine-wide quantity
    comes from ``system``). ``over_seeds``: how the report pools the jobs of
    one setting (``mean``, shown with its standard deviation). ``better``:
    -1 when less is better, +1 when more is, 0 when neither. ``derive``
    computes a job metric from the job's summary so far and its metrics.json
    document; ``from_files`` from the job's directory (syscalls.csv).
    """

    name: str
    label: str
    unit: str  # "count", "bytes", "ratio", "s", "pages/s" (a rate), "" (a plain number) or "text"
    scope: str
    json: tuple[str, ...] | None = None
    series: str | None = None
    series_pos: int = 0  # the column's place in timeseries.csv (after time_s and pid)
    series_label: str = ""  # what the timeseries.csv column holds; the label when not given
    series_unit: str = ""  # its unit; the unit when not given
    column: str | None = None
    over_processes: str = "sum"
    over_seeds: str = "mean"
    better: int = -1
    # A name for a tick label or a legend, where the label would not fit (a bar per metric in
    # compare.png): at most 20 characters (tests/test_compare.py checks); the label when not given.
    short: str = ""
    digits: int | None = None
    derive: Callable[[dict[str, Any], dict[str, Any]], float] | None = None
    from_files: bool = False

    def __post_init__(self) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.label)
        if not self.series_label:
            object.__setattr__(self, "series_label", self.label)
        if not self.series_unit:
            object.__setattr__(self, "series_unit", self.unit)


def _p(name: str, label: str, unit: str, **kw: Any) -> Metric:
    """A per-process metric written in each process record of metrics.json under ``name``."""
    kw.setdefault("json", (name,))
    return Metric(name, label, unit, "process", **kw)


def _sys(name: str, label: str, unit: str, **kw: Any) -> Metric:
    kw.setdefault("json", (name,))
    return Metric(name, label, unit, "system", **kw)


def _job(name: str, label: str, unit: str, **kw: Any) -> Metric:
    return Metric(name, label, unit, "job", column=name, **kw)


def _ratio(a: str, b: str, digits: int) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    def f(summary: dict[str, Any], _doc: dict[str, Any]) -> float:
        return round(summary[a] / summary[b], digits) if summary[b] else 0.0

    return f


def _cpu_per_fault(summary: dict[str, Any], doc: dict[str, Any]) -> float:
    # Denning's L: mean CPU time between major faults (inf-free: 0 when there were none).
    cpu = sum(float(p["cpu_time_s"]) for p in doc["processes"])
    faults = summary["majflt"]
    return round(cpu / faults, 9) if faults else 0.0


def _machine_rss_peak(_summary: dict[str, Any], doc: dict[str, Any]) -> int:
    """The machine's peak RSS: the peak of the sum over processes, not the sum of their peaks.

    Every frame in use holds one process's anonymous page, so the frames in
    use, ``ram_bytes - free_bytes``, are the sum of the RSS at that moment,
    and its peak is ``ram_bytes - free_bytes_min``.
    """
    s = doc["system"]
    if "rss_peak_bytes" in s:
        return int(s["rss_peak_bytes"])
    return int(s["ram_bytes"]) - int(s["free_bytes_min"])


# mallinfo2's fields (in metrics.json's order): meaning, unit, and where the field appears besides.
_MALLINFO: dict[str, tuple[str, str, dict[str, Any]]] = {
    "arena": ("bytes of the brk heap", "bytes",
              {"series": "arena_bytes", "series_pos": 4, "column": "arena_bytes", "short": "heap (arena)",
               "series_label": "the process's brk heap (mallinfo2 arena) at the sample's time"}),
    "ordblks": ("free chunks in the heap", "count", {}),
    "smblks": ("free fastbin chunks", "count", {}),
    "hblks": ("mmapped chunks", "count", {}),
    "hblkhd": ("bytes in mmapped chunks", "bytes",
               {"series": "hblkhd_bytes", "series_pos": 5, "column": "hblkhd_bytes", "short": "mmapped (hblkhd)",
                "series_label": "bytes in the process's mmapped chunks (mallinfo2 hblkhd) at the sample's time"}),
    "usmblks": ("always 0 (kept for compatibility)", "bytes", {}),
    "fsmblks": ("bytes in free fastbin chunks", "bytes", {}),
    "uordblks": ("heap bytes in use", "bytes", {"column": "uordblks_bytes", "short": "in use (uordblks)"}),
    "fordblks": ("free heap bytes, the free top chunk included", "bytes",
                 {"column": "fordblks_bytes", "short": "free (fordblks)", "better": -1}),
    "keepcost": ("bytes at the top a trim could release", "bytes", {}),
}  # fmt: skip


def _mallinfo(field: str) -> Metric:
    meaning, unit, where = _MALLINFO[field]
    kw = {"better": 0, **where}
    return Metric(
        f"mallinfo.{field}", f"{meaning} at exit ({field})", unit, "process", json=("mallinfo", field), **kw
    )


METRICS: tuple[Metric, ...] = (
    # ---- each process's record in metrics.json, in the record's order
    _p("pid", "process id", "text", over_processes=""),
    _p("name", "process name", "text", over_processes=""),
    _p("exit", "how the process ended (ok, duration, oom-killed, double-free, invalid-pointer, ...)", "text", over_processes=""),
    _p("error", "the program error that stopped it, if any", "text", over_processes=""),
    _p("minflt", "minor faults", "count", series="minflt", series_pos=6, column="minflt",
       series_label="the process's minor faults so far"),
    _p("majflt", "major faults", "count", series="majflt", series_pos=7, column="majflt",
       series_label="the process's major faults so far"),
    _p("refs", "page references", "count", better=0),
    _p("ops", "workload operations executed", "count", better=0),
    _p("enomem", "allocations that failed (ENOMEM)", "count", column="enomem", short="ENOMEM"),
    _p("skipped_ops", "operations skipped (on a NULL block)", "count"),
    *(
        _p(call, f"{call} calls", "count", json=("syscalls", call), column=call, short=call)
        for call in ("brk", "mmap", "munmap", "mremap")
    ),
    *(_mallinfo(field) for field in _MALLINFO),
    _p("vsz_peak_bytes", "peak VSZ (sum of the processes' peaks)", "bytes", column="vsz_peak_bytes", short="peak VSZ"),
    _p(
        "rss_peak_process_bytes",
        "peak RSS, sum of the processes' own peaks (each at its own time)",
        "bytes",
        json=("rss_peak_bytes",),
        column="rss_peak_sum_bytes",
        short="sum of RSS peaks",
    ),
    _p("swap_peak_bytes", "peak bytes in swap", "bytes"),
    _p("vsz_bytes", "virtual size (VSZ)", "bytes", series="vsz_bytes", series_pos=2, better=0,
       series_label="the process's virtual size (VSZ) at the sample's time (0 once it has ended)"),
    _p("rss_bytes", "RSS at exit (sum over processes)", "bytes", series="rss_bytes", series_pos=1,
       column="rss_exit_bytes", short="RSS at exit", series_label="the process's RSS at the sample's time"),
    _p("page_table_bytes", "page-table memory at exit", "bytes"),
    _p(
        "page_table_peak_bytes",
        "page-table memory, sum of the processes' peaks",
        "bytes",
        column="page_table_peak_bytes",
        short="page tables",
    ),
    _p(
        "pswpin_process",
        "pages its major faults read from swap (the machine's pswpin adds their readahead)",
        "count",
        json=("pswpin",),
    ),
    _p("pswpout_process", "pages swapped out of the process", "count", json=("pswpout",)),
    _p("cpu_time_s", "CPU time (sum over processes)", "s", column="cpu_time_s", better=0, short="CPU time", digits=9),
    _p("blocked_time_s", "time blocked on the swap device", "s"),
    _p("start_s", "start time", "s", better=0),
    _p("end_s", "end time", "s", better=0),
    # ---- sampled per process only (timeseries.csv)
    Metric("swap_bytes", "bytes in swap", "bytes", "process", series="swap_bytes", series_pos=3,
           series_label="the process's bytes in swap at the sample's time"),
    # ---- the machine (metrics.json "system", filled by the engine in this order)
    _sys("sim_time_s", "simulated run time", "s", column="sim_time_s", short="run time"),
    _sys("cpu_utilization", "CPU utilisation", "ratio", column="cpu_utilization", better=+1, short="CPU", digits=6),
    _sys("swap_utilization", "swap device utilisation", "ratio", column="swap_utilization", better=0,
         short="swap device", digits=6),
    _sys("pswpin", "pages swapped in", "count", column="pswpin", short="swap-ins"),
    _sys("pswpout", "pages swapped out", "count", column="pswpout", short="swap-outs"),
    _sys("clean_drops", "clean pages dropped without a write (a copy in swap)", "count"),
    _sys("pgsteal_kswapd", "pages reclaimed by kswapd", "count", better=0),
    _sys("pgsteal_direct", "pages reclaimed by faulting processes (direct reclaim)", "count"),
    _sys("free_bytes_min", "lowest free memory", "bytes", better=+1),
    # (derive: for a metrics.json written before the engine recorded it)
    _sys("rss_peak_bytes", "peak RSS of the machine (the peak of the processes' sum)", "bytes",
         column="rss_peak_bytes", short="peak RSS", derive=_machine_rss_peak),
    _sys("swap_used_peak_bytes", "peak swap in use", "bytes"),
    _sys("oom_kills", "OOM kills", "count", column="oom_kills"),
    _sys("oom_kill_log", "the OOM killer's victims (pid, name, rss_bytes, swap_bytes, time_s)", "text"),
    # (only when they apply: policy=linux, swap_device=zram, a memory cgroup)
    _sys("vmstat", "Linux's reclaim counters (policy=linux), named as /proc/vmstat names them", "text"),
    _sys("zram", "zram's pool: pages stored, frames taken, peak (swap_device=zram)", "text"),
    _sys("memcg", "memory cgroups: limits, usage and swap peaks, OOM kills, each group's processes, a parent (cgroup.*)", "text"),
    _sys("ram_bytes", "RAM", "bytes", better=0),
    _sys("swap_size_bytes", "swap space", "bytes", json=("swap_bytes",), better=0),
    _sys("page_size", "page size", "bytes", better=0),
    _sys("watermarks_bytes", "kswapd's watermarks (min, low, high)", "bytes", better=0),
    _sys("swap_service_time_s", "swap service time of one page (S)", "s", column="swap_service_time_s", short="S"),
    _sys("deactivations", "times the load controller stopped a process, not distinct processes: one stopped "
         "twice counts 2 (machine.load_control)", "count",
         column="deactivations", better=0, short="deactivations", derive=lambda _s, _d: 0),  # before load control: none
    # ---- sampled for the machine (timeseries.csv rows with pid 0)
    Metric("free_bytes", "free memory", "bytes", "system", series="free_bytes", series_pos=8, better=+1,
           series_label="free memory at the sample's time"),
    Metric("swap_used_bytes", "swap in use", "bytes", "system", series="swap_used_bytes", series_pos=9,
           series_label="swap in use at the sample's time"),
    Metric("cpu_util", "CPU utilisation since the last sample", "ratio", "system", series="cpu_util", series_pos=10,
           better=+1),
    Metric("swap_util", "swap device utilisation since the last sample", "ratio", "system", series="swap_util",
           series_pos=11, better=0),
    Metric("pswpin_per_s", "pages swapped in per second since the last sample", "pages/s", "system",
           series="pswpin_per_s", series_pos=12),
    Metric("pswpout_per_s", "pages swapped out per second since the last sample", "pages/s", "system",
           series="pswpout_per_s", series_pos=13),
    # ---- a job's summary, derived
    _job("syscalls", "memory syscalls (brk+mmap+munmap+mremap)", "count", short="memory syscalls",
         derive=lambda s, _d: s["brk"] + s["mmap"] + s["munmap"] + s["mremap"]),
    _job("faults", "page faults (minor + major)", "count", short="page faults", derive=lambda s, _d: s["minflt"] + s["majflt"]),
    _job("fragmentation", "heap fragmentation at exit (free / arena, the free top chunk included)", "ratio",
         short="fragmentation", derive=_ratio("fordblks_bytes", "arena_bytes", 6)),
    _job("mean_time_between_faults_s", "mean CPU time between major faults (L)", "s", better=+1, short="L",
         derive=_cpu_per_fault),
    _job("unfinished", "processes still running at `duration`", "count", short="unfinished",
         derive=lambda _s, d: sum(1 for p in d["processes"] if p.get("exit") == "duration")),
    _job("brk_grows", "brk calls that grow the heap", "count", short="brk grows", from_files=True),
    _job("brk_trims", "brk calls that trim the heap", "count", better=0, short="brk trims", from_files=True),
    _job("brk_returned_bytes", "bytes returned by brk trims", "bytes", better=0, short="returned by trims",
         from_files=True),
    _job("objective", "objective (a weighted sum of summary metrics)", "", short="objective", from_files=True),
)  # fmt: skip

_BY_NAME = {m.name: m for m in METRICS}

# summary.csv's metric columns, in order; those computable from metrics.json alone are what
# ``objective`` may weight (the others need the job's files).
COLUMNS: tuple[str, ...] = tuple(m.column for m in METRICS if m.column)
SUMMARY_METRICS: tuple[str, ...] = tuple(m.column for m in METRICS if m.column and not m.from_files)
FILE_METRICS: tuple[str, ...] = tuple(m.column for m in METRICS if m.column and m.from_files)
TIMESERIES_COLUMNS: list[str] = [
    "time_s",
    "pid",
    *(m.series for m in sorted(METRICS, key=lambda m: m.series_pos) if m.series),
]


def metric(name: str) -> Metric:
    """The declaration of a summary column, a timeseries column or a metrics.json key."""
    for m in METRICS:
        if name in (m.column, m.series):
            return m
    got = _BY_NAME.get(name)
    if got is None:
        raise KeyError(f"{name!r} is not a declared metric")
    return got


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `path` so that readers see the old file, or the whole new one, never a part.

    The file gets the permissions of any other file the process creates (0o666 less the umask):
    mkstemp's temporary is 0o600, which would leave metrics.json, summary.csv and the report
    unreadable to everyone but their owner (a colleague, a web server, the host user of a
    container run as root), unlike the figures beside them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read from /proc where it is there (setting it to read it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: Path, *, recursive: bool = False) -> None:
    """Delete what ``atomic_write`` left in ``directory`` when its process was killed mid-write.

    SIGKILL (the host's OOM killer, a killed sweep) runs no cleanup, and the
    temporary's name is random, so a rerun in the same directory would not
    overwrite it: the run that starts over removes it, so that a resumed
    sweep leaves no half-written file behind. ``recursive`` also clears the
    subdirectories (a run's ``maps/``); only for a directory no other
    process writes in.
    """
    for tmp in directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


# The kinds of per-run figure, figures/KIND.png (``heap`` also draws heap_N.png, one per snapshot):
# here, where the files a run writes are named, so that clearing a used directory needs no plotting.
RUN_FIGURES = ("memory", "faults", "heap", "layout", "syscalls")

# Every file a run writes at the top of its directory, run.json first: a run that stops before it
# rewrites them (bad input, a crash) must not leave an earlier run's results beside its own
# run.json, and run.json goes first so that no "ok" vouches for files being removed.
_RUN_FILES = (
    "run.json",
    "metrics.json",
    "syscalls.csv",
    "timeseries.csv",
    "heap.csv",
    "settings.json",
    "error.txt",
    "explain.log",
    "heap_snapshots.csv",
)
_RUN_FIGURE = re.compile(rf"({'|'.join(RUN_FIGURES)}|heap_\d+)\.png")
_MAPS_FILE = re.compile(r"\d+\.txt")


def forget_previous_run(run_dir: Path) -> None:
    """Delete the files of an earlier run in ``run_dir``, before this run can fail.

    A run into a directory used before (``hydra.run.dir``, a sweep rerun
    without ``resume``) would otherwise leave the other run's crash report,
    narration, heap snapshots, maps of processes it does not have and
    figures beside its own results; a sweep then also took those figures
    for this job's and did not draw them. A run that fails (bad input, a
    crash) writes only its own run.json: the earlier run's metrics.json,
    CSV files and settings.json go too, so that a script reading the
    directory finds one run (``Run.metrics`` of a failed run says it
    failed) and never a failure's run.json beside another run's results.
    Only the names vmexp writes are touched: ``hydra.run.dir=.`` must not
    cost the user a file.
    """
    for name in _RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for sub, pattern in (("maps", _MAPS_FILE), ("figures", _RUN_FIGURE)):
        d = run_dir / sub
        if d.is_dir():
            for f in d.iterdir():
                if pattern.fullmatch(f.name) and f.is_file():
                    f.unlink()


_RECORD = [m for m in METRICS if m.scope == "process" and m.json is not None]


def _process(p: ProcResult) -> dict[str, Any]:
    """One process record, in the declared order (nested keys group under their first part)."""
    rec: dict[str, Any] = {}
    for m in _RECORD:
        assert m.json is not None
        if len(m.json) == 1:
            rec[m.json[0]] = getattr(p, m.json[0])
        else:
            outer, inner = m.json
            value = getattr(p, outer)[inner]
            rec.setdefault(outer, {})[inner] = int(value) if outer == "mallinfo" else value
    return rec


def metrics_dict(result: Result) -> dict[str, Any]:
    """The metrics.json document (contract: schema 1)."""
    return {"schema": SCHEMA, "system": result.system, "processes": [_process(p) for p in result.processes]}


def _total(procs: list[dict[str, Any]], path: tuple[str, ...]) -> int | float:
    total: int | float = 0
    for p in procs:
        total += p[path[0]] if len(path) == 1 else int(p[path[0]][path[1]])
    return total


def summary_of(doc: dict[str, Any], job: Path | None = None) -> dict[str, Any]:
    """One job's summary metrics (summary.csv's columns) from its metrics.json document.

    Process metrics are totalled over the processes, machine metrics taken
    from ``system``, job metrics derived in declaration order. The metrics
    that need the job's files (``FILE_METRICS``) are added when ``job`` is
    its directory.
    """
    procs = doc["processes"]
    system = doc["system"]
    out: dict[str, Any] = {}
    for m in METRICS:
        col = m.column
        if col is None:
            continue
        if m.from_files:
            if job is not None and col != "objective":
                out.update(_from_files(job))
            continue
        if m.scope == "system" and m.json is not None and m.json[0] in system:
            v = system[m.json[0]]
            out[col] = (
                round(float(v), m.digits) if m.digits is not None else (float(v) if m.unit == "s" else int(v))
            )
        elif m.derive is not None:
            out[col] = m.derive(out, doc)
        else:
            assert m.json is not None
            v = _total(procs, m.json)
            out[col] = round(float(v), m.digits) if m.digits is not None else int(v)
    return out


def objective_of(summary: dict[str, Any], weights: dict[str, Any]) -> float:
    """The weighted sum of summary metrics that ``objective`` defines (what Optuna minimises).

    summary_of writes Denning's L as 0 for a job without major faults, where
    it is undefined: infinitely long between faults, the best L there is. As
    a 0 it made such a job the worst trial for a weight that asks for a long L
    (``{mean_time_between_faults_s: -1}``) and the best for one that asks for
    a short L; it counts as infinite instead, as the report and compare read it.
    """
    total = 0.0
    for name, weight in weights.items():
        w, v = float(weight), float(summary.get(name, math.nan))
        if name == "mean_time_between_faults_s" and v == 0 and w:
            v = math.inf
        total += w * v
    return total


def _from_files(job: Path) -> dict[str, int]:
    """(grows, trims, bytes returned by trims) from syscalls.csv (glibc's brk(NULL) queries not counted).

    Raises ValueError naming the file and line for a row that is not one (a file cut off midway).
    """
    path = job / "syscalls.csv"
    grows = trims = returned = 0
    if path.is_file():
        with path.open() as fh:
            next(fh, None)
            for number, line in enumerate(fh, start=2):
                # pid,op,time_s,syscall,addr,length,result: a plain split is several times faster than csv here.
                parts = line.split(",")
                if len(parts) > 5 and parts[3] == "brk":
                    try:
                        length = int(parts[5])
                    except ValueError:
                        raise ValueError(
                            f"{path}:{number}: not a syscalls.csv row: {line.strip()!r}"
                        ) from None
                    if length > 0:
                        grows += 1
                    elif length < 0:
                        trims += 1
                        returned -= length
    return {"brk_grows": grows, "brk_trims": trims, "brk_returned_bytes": returned}


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


def summary_line(doc: dict[str, Any], out: Path | str) -> str:
    """The console's line for a finished run (also a notebook's heading of it, vmexp.api.Run)."""
    s = summary_of(doc)
    procs = doc["processes"]
    stopped = stop_note(doc)
    n = f"{len(procs)} process" + ("es" if len(procs) != 1 else "")
    head = f"{stopped};" if stopped else f"{n}, {s['sim_time_s']:.3f} s simulated:"
    return (
        f"{head} minflt {s['minflt']}, majflt {s['majflt']}, "
        f"brk {s['brk']}, mmap {s['mmap']}, munmap {s['munmap']}, "
        f"peak RSS {format_size(s['rss_peak_bytes'])}, swap-outs {s['pswpout']}, OOM kills {s['oom_kills']} -> {out}"
    )
