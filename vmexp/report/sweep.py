"""Aggregating a sweep: summary.csv, comparison figures, report — from the files the jobs wrote.

Hydra runs ``on_multirun_end`` once, in the launching process, and skips it
when a job raised; with the joblib, Ray or submitit launchers the jobs ran
elsewhere. So everything here reads the job directories (``.hydra/``,
``metrics.json``, ``syscalls.csv``, ``run.json``) and nothing comes from
memory: the same function serves the callback and ``python -m vmexp.report DIR``.

summary.csv has one row per job: its overrides as columns, ``job``,
``status``, then the summary metrics of ``vmexp.metrics.summary_of`` (the
names ``objective`` weights refer to), then a few derived here from the
job's files (``EXTRA_METRICS``), then ``error``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vmexp.metrics import SUMMARY_METRICS, atomic_write, summary_of

__all__ = [
    "SweepReport",
    "ReportError",
    "Metric",
    "METRICS",
    "EXTRA_METRICS",
    "COLUMNS",
    "DEFAULT_FIGURE_METRICS",
    "aggregate",
    "summary_rows",
    "find_jobs",
    "job_config",
    "job_choices",
    "metric",
]


class ReportError(ValueError):
    """A sweep that cannot be reported as asked (e.g. an unknown name in report.metrics); one line."""


@dataclass(frozen=True)
class Metric:
    """How a summary column reads: its label, its unit, and which way is better.

    ``better`` is -1 when less is better (faults, syscalls, memory), +1 when
    more is better (CPU utilisation), 0 when neither is (the comparison then
    says highest and lowest, not best and worst). ``short`` names it in a
    legend beside other metrics.
    """

    label: str
    unit: str  # "count", "bytes", "ratio", "s" or "" (a plain number)
    better: int = -1
    short: str = ""


METRICS: dict[str, Metric] = {
    "minflt": Metric("minor faults", "count", short="minor faults"),
    "majflt": Metric("major faults", "count", short="major faults"),
    "brk": Metric("brk calls", "count", short="brk"),
    "mmap": Metric("mmap calls", "count", short="mmap"),
    "munmap": Metric("munmap calls", "count", short="munmap"),
    "mremap": Metric("mremap calls", "count", short="mremap"),
    "syscalls": Metric("memory syscalls (brk+mmap+munmap+mremap)", "count", short="syscalls"),
    "rss_peak_bytes": Metric("peak RSS (sum of the processes' peaks)", "bytes", short="peak RSS"),
    "vsz_peak_bytes": Metric("peak VSZ (sum of the processes' peaks)", "bytes", short="peak VSZ"),
    "arena_bytes": Metric("brk heap (arena) at exit", "bytes", short="heap (arena)"),
    "uordblks_bytes": Metric("heap bytes in use at exit (uordblks)", "bytes", 0, "in use (uordblks)"),
    "fordblks_bytes": Metric("free heap bytes at exit (fordblks)", "bytes", short="free (fordblks)"),
    "hblkhd_bytes": Metric("mmapped chunk bytes at exit (hblkhd)", "bytes", 0, "mmapped (hblkhd)"),
    "fragmentation": Metric("heap fragmentation at exit (free / arena)", "ratio", short="fragmentation"),
    "pswpin": Metric("pages swapped in", "count", short="swap-ins"),
    "pswpout": Metric("pages swapped out", "count", short="swap-outs"),
    "cpu_utilization": Metric("CPU utilisation", "ratio", +1, "CPU"),
    "swap_utilization": Metric("swap device utilisation", "ratio", 0, "swap device"),
    "sim_time_s": Metric("simulated run time", "s", short="run time"),
    "oom_kills": Metric("OOM kills", "count", short="OOM kills"),
    "enomem": Metric("allocations that failed (ENOMEM)", "count", short="ENOMEM"),
    "page_table_peak_bytes": Metric("peak page-table memory", "bytes", short="page tables"),
    "mean_time_between_faults_s": Metric("mean CPU time between major faults (L)", "s", +1, "L"),
    # Derived here from the job's files (EXTRA_METRICS):
    "faults": Metric("page faults (minor + major)", "count", short="faults"),
    "brk_grows": Metric("brk calls that grow the heap", "count", short="brk grows"),
    "brk_trims": Metric("brk calls that trim the heap", "count", 0, "brk trims"),
    "brk_returned_bytes": Metric("bytes returned by brk trims", "bytes", 0, "returned by trims"),
    "rss_exit_bytes": Metric("RSS at exit (sum over processes)", "bytes", short="RSS at exit"),
    "cpu_time_s": Metric("CPU time (sum over processes)", "s", short="CPU time"),
    "swap_service_time_s": Metric("swap service time of one page (S)", "s", short="S"),
    "objective": Metric("objective (the preset's cost)", "", short="objective"),
    "unfinished": Metric("processes still running at `duration`", "count", short="unfinished"),
}

EXTRA_METRICS = (
    "faults",
    "brk_grows",
    "brk_trims",
    "brk_returned_bytes",
    "rss_exit_bytes",
    "cpu_time_s",
    "swap_service_time_s",
    "objective",
    "unfinished",
)
COLUMNS = (*SUMMARY_METRICS, *EXTRA_METRICS)

# The sweep figures when a preset names none (report.metrics empty).
DEFAULT_FIGURE_METRICS = [
    "minflt",
    "majflt",
    "syscalls",
    "rss_peak_bytes",
    "fragmentation",
    "cpu_utilization",
    "sim_time_s",
]


def metric(name: str) -> Metric:
    """The description of a column; one that vmexp.metrics added later still reads sensibly."""
    got = METRICS.get(name)
    if got is not None:
        return got
    unit = "bytes" if name.endswith("_bytes") else "s" if name.endswith("_s") else ""
    return Metric(name.replace("_", " "), unit, short=name)


def find_jobs(sweep_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(job directory, its override strings) for every job of a sweep, in job order.

    A sweep run again into the same directory with other parameters leaves
    the older run's job folders beside the new ones, under the same job
    numbers; of two folders with one number the newer one is the job, and
    the other is reported and left out.
    """
    found: dict[int | str, tuple[float, Path]] = {}
    for ov in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job = ov.parent.parent
        num = job.name.split("_", 1)[0]
        key: int | str = int(num) if num.isdigit() else job.name
        when = ov.stat().st_mtime
        old = found.get(key)
        if old is not None:
            stale = job if when < old[0] else old[1]
            print(
                f"vmexp: warning: {stale} is an older job {num} of this sweep directory; left out",
                file=sys.stderr,
            )
            if when < old[0]:
                continue
        found[key] = (when, job)
    order = sorted(found, key=lambda k: (0, k, "") if isinstance(k, int) else (1, 0, k))
    for k in order:
        job = found[k][1]
        yield job, [str(o) for o in (yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or [])]


def job_config(job: Path) -> dict[str, Any]:
    """The job's composed config as Hydra saved it ({} when missing)."""
    cfg = job / ".hydra" / "config.yaml"
    if not cfg.is_file():
        return {}
    doc = yaml.safe_load(cfg.read_text())
    return doc if isinstance(doc, dict) else {}


def job_choices(job: Path) -> dict[str, str]:
    """The config-group options the job ran with (workload=mixed, policy=lru, ...), from Hydra's record."""
    path = job / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    choices = ((doc.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    return {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra/")}


def _brk_history(job: Path) -> tuple[int, int, int]:
    """(grows, trims, bytes returned by trims) from syscalls.csv (glibc's brk(NULL) queries not counted)."""
    path = job / "syscalls.csv"
    grows = trims = returned = 0
    if not path.is_file():
        return 0, 0, 0
    with path.open() as fh:
        next(fh, None)
        for line in fh:
            # pid,op,time_s,syscall,addr,length,result: a plain split is several times faster than csv here.
            parts = line.split(",")
            if len(parts) > 5 and parts[3] == "brk":
                length = int(parts[5])
                if length > 0:
                    grows += 1
                elif length < 0:
                    trims += 1
                    returned -= length
    return grows, trims, returned


def _job_metrics(job: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The summary metrics of one job, or its failure."""
    row: dict[str, Any] = {}
    status, error = "missing", ""
    run = job / "run.json"
    if run.is_file():
        info = json.loads(run.read_text())
        status, error = str(info.get("status", "?")), str(info.get("error", ""))
    m = job / "metrics.json"
    if m.is_file() and status != "failed":
        doc = json.loads(m.read_text())
        summary = summary_of(doc)
        row.update(summary)
        procs = doc["processes"]
        grows, trims, returned = _brk_history(job)
        row.update(
            faults=int(summary["minflt"] + summary["majflt"]),
            brk_grows=grows,
            brk_trims=trims,
            brk_returned_bytes=returned,
            rss_exit_bytes=sum(int(p.get("rss_bytes", 0)) for p in procs),
            cpu_time_s=round(sum(float(p.get("cpu_time_s", 0.0)) for p in procs), 9),
            swap_service_time_s=float(doc["system"].get("swap_service_time_s", 0.0)),
            unfinished=sum(1 for p in procs if p.get("exit") == "duration"),
        )
        weights = cfg.get("objective") or {}
        if weights:
            row["objective"] = sum(float(w) * float(summary.get(k, math.nan)) for k, w in weights.items())
        status = "ok" if status in ("ok", "missing") else status
    elif status == "missing":
        status = "incomplete"
    row["status"] = status
    row["error"] = error
    return row


def summary_rows(sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(override keys, rows): one row per job, its overrides as columns, then the metrics."""
    rows: list[dict[str, Any]] = []
    keys: list[str] = []
    for job, overrides in find_jobs(sweep_dir):
        row: dict[str, Any] = {}
        for o in overrides:
            key, _, value = o.partition("=")
            key = key.lstrip("+~")
            if key.startswith("hydra.") or key == "resume":
                continue
            if key in COLUMNS or key in ("job", "status", "error"):
                key = f"cfg.{key}"  # an override named like a metric (objective=...) must not hide the metric
            row[key] = value
            if key not in keys:
                keys.append(key)
        row["job"] = job.name
        row.update(_job_metrics(job, job_config(job)))
        rows.append(row)
    return keys, rows


def _write_summary(sweep_dir: Path, keys: list[str], rows: list[dict[str, Any]]) -> Path:
    columns = [*keys, "job", "status", *COLUMNS, "error"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    path = sweep_dir / "summary.csv"
    atomic_write(path, buf.getvalue())
    return path


def _preset(sweep_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The config the jobs share (the first job that has one), for the report's question and settings."""
    for r in rows:
        cfg = job_config(sweep_dir / r["job"])
        if cfg:
            return cfg
    return {}


def figure_metrics(cfg: dict[str, Any]) -> list[str]:
    """The preset's ``report.metrics`` (entries may join metrics with ``|`` into one figure), checked."""
    asked = [str(m) for m in ((cfg.get("report") or {}).get("metrics") or [])]
    for entry in asked:
        for name in entry.split("|"):
            if name not in COLUMNS:
                raise ReportError(
                    f"report.metrics: {name!r} is not a summary.csv column (valid: {', '.join(COLUMNS)})"
                )
    return asked or list(DEFAULT_FIGURE_METRICS)


def aggregate(sweep_dir: Path, *, quiet: bool = False) -> int:
    """summary.csv, figures and report of a sweep directory; returns the number of failed jobs."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep directory")
    keys, rows = summary_rows(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"{sweep_dir}: no job directories (with .hydra/overrides.yaml) found")
    from vmexp.report.deferred import draw_pending_figures

    draw_pending_figures(sweep_dir, quiet=quiet)  # the jobs' own figures, left to the sweep's end
    # summary.csv first: whatever fails after it, the numbers are on disk.
    summary = _write_summary(sweep_dir, keys, rows)
    cfg = _preset(sweep_dir, rows)
    wanted = figure_metrics(cfg)
    from vmexp.report.report import write_report
    from vmexp.report.sweep_figures import draw_sweep_figures

    figures = draw_sweep_figures(sweep_dir, keys, rows, wanted, cfg)
    write_report(sweep_dir, keys, rows, figures, wanted, cfg)
    failed = sum(1 for r in rows if r["status"] != "ok")
    if not quiet:
        print(f"sweep: {len(rows)} jobs, {failed} failed -> {summary}", file=sys.stderr)
    return failed


class SweepReport(Callback):
    """Hydra callback: aggregate when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an exception from a callback into a warning and exits 0; a report that could
        # not be written must say so in one line and make the command fail.
        from vmexp import app

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            failed = aggregate(sweep_dir)
        except (ReportError, FileNotFoundError) as e:
            print(f"vmexp: error: {e}", file=sys.stderr, flush=True)
            app._note_failure()
            return
        except Exception as e:  # a bug in the report: the jobs' results are safe, keep the trace
            atomic_write(sweep_dir / "report_error.txt", traceback.format_exc())
            print(
                f"vmexp: error: the sweep report failed: {type(e).__name__}: {e} (traceback in "
                f"{sweep_dir / 'report_error.txt'}; rebuild with python -m vmexp.report {sweep_dir})",
                file=sys.stderr,
                flush=True,
            )
            app._note_failure()
            return
        if failed:
            app._note_failure()
