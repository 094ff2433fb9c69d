"""Aggregating a sweep: summary.csv, comparison figures, report — from the files the jobs wrote.

Hydra runs ``on_multirun_end`` once, in the launching process, and skips it
when a job raised; with the joblib, Ray or submitit launchers the jobs ran
elsewhere. So everything here reads the job directories (``.hydra/overrides.yaml``,
``metrics.json``, ``run.json``) and nothing comes from memory: the same
function serves the callback and ``python -m vmexp.report DIR``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vmexp.metrics import atomic_write

__all__ = ["SweepReport", "aggregate", "summary_rows", "find_jobs", "METRICS"]

# Summary metrics of one job (totals over its processes), in column order,
# with a label and unit for figures and the report.
METRICS: dict[str, tuple[str, str]] = {
    "minflt": ("minor faults", "count"),
    "majflt": ("major faults", "count"),
    "brk": ("brk calls", "count"),
    "mmap": ("mmap calls", "count"),
    "munmap": ("munmap calls", "count"),
    "mremap": ("mremap calls", "count"),
    "rss_peak_bytes": ("peak RSS (sum over processes)", "bytes"),
    "vsz_peak_bytes": ("peak VSZ (sum over processes)", "bytes"),
    "arena_bytes": ("heap (arena) at exit", "bytes"),
    "uordblks_bytes": ("in-use heap bytes at exit", "bytes"),
    "fordblks_bytes": ("free heap bytes at exit", "bytes"),
    "hblkhd_bytes": ("mmapped chunk bytes at exit", "bytes"),
    "fragmentation": ("heap fragmentation (free / arena)", "ratio"),
    "pswpin": ("pages swapped in", "count"),
    "pswpout": ("pages swapped out", "count"),
    "cpu_utilization": ("CPU utilisation", "ratio"),
    "swap_utilization": ("swap device utilisation", "ratio"),
    "sim_time_s": ("simulated run time", "s"),
    "oom_kills": ("OOM kills", "count"),
    "enomem": ("allocations that failed (ENOMEM)", "count"),
    "page_table_peak_bytes": ("peak page-table memory", "bytes"),
}


def find_jobs(sweep_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(job directory, its override strings) for every job of a sweep, in job order."""
    found = []
    for ov in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job = ov.parent.parent
        overrides = [str(o) for o in (yaml.safe_load(ov.read_text()) or [])]
        num = job.name.split("_", 1)[0]
        found.append((int(num) if num.isdigit() else 1 << 30, job.name, job, overrides))
    for _, _, job, overrides in sorted(found):
        yield job, overrides


def _job_metrics(job: Path) -> dict[str, Any]:
    """The summary metrics of one job, or its failure."""
    row: dict[str, Any] = {}
    status, error = "missing", ""
    run = job / "run.json"
    if run.is_file():
        info = json.loads(run.read_text())
        status, error = info.get("status", "?"), info.get("error", "")
    m = job / "metrics.json"
    if m.is_file() and status != "failed":
        doc = json.loads(m.read_text())
        procs = doc["processes"]
        s = doc["system"]

        def total(key: str) -> int:
            return sum(int(p[key]) for p in procs)

        def mi(key: str) -> int:
            return sum(int(p["mallinfo"][key]) for p in procs)

        arena = mi("arena")
        row.update(
            minflt=total("minflt"),
            majflt=total("majflt"),
            brk=sum(p["syscalls"]["brk"] for p in procs),
            mmap=sum(p["syscalls"]["mmap"] for p in procs),
            munmap=sum(p["syscalls"]["munmap"] for p in procs),
            mremap=sum(p["syscalls"]["mremap"] for p in procs),
            rss_peak_bytes=total("rss_peak_bytes"),
            vsz_peak_bytes=total("vsz_peak_bytes"),
            arena_bytes=arena,
            uordblks_bytes=mi("uordblks"),
            fordblks_bytes=mi("fordblks"),
            hblkhd_bytes=mi("hblkhd"),
            fragmentation=round(mi("fordblks") / arena, 6) if arena else 0.0,
            pswpin=s["pswpin"],
            pswpout=s["pswpout"],
            cpu_utilization=round(s["cpu_utilization"], 6),
            swap_utilization=round(s["swap_utilization"], 6),
            sim_time_s=s["sim_time_s"],
            oom_kills=s["oom_kills"],
            enomem=total("enomem"),
            page_table_peak_bytes=total("page_table_peak_bytes"),
        )
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
            row[key] = value
            if key not in keys:
                keys.append(key)
        row["job"] = job.name
        row.update(_job_metrics(job))
        rows.append(row)
    return keys, rows


def _write_summary(sweep_dir: Path, keys: list[str], rows: list[dict[str, Any]]) -> Path:
    columns = [*keys, "job", "status", *METRICS, "error"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    path = sweep_dir / "summary.csv"
    atomic_write(path, buf.getvalue())
    return path


def aggregate(sweep_dir: Path, *, quiet: bool = False) -> int:
    """summary.csv, figures and report of a sweep directory; returns the number of failed jobs."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep directory")
    keys, rows = summary_rows(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"{sweep_dir}: no job directories (with .hydra/overrides.yaml) found")
    summary = _write_summary(sweep_dir, keys, rows)
    from vmexp.report.report import write_report
    from vmexp.report.sweep_figures import draw_sweep_figures

    figures = draw_sweep_figures(sweep_dir, keys, rows)
    write_report(sweep_dir, keys, rows, figures)
    failed = sum(1 for r in rows if r["status"] != "ok")
    if not quiet:
        print(f"sweep: {len(rows)} jobs, {failed} failed -> {summary}", file=sys.stderr)
    return failed


class SweepReport(Callback):
    """Hydra callback: aggregate when a multirun ends; note each job as it finishes."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        return None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from vmexp import app

        failed = aggregate(Path(str(config.hydra.sweep.dir)))
        if failed:
            app._note_failure()
