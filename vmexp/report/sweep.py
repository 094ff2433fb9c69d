"""Aggregating a sweep: summary.csv, comparison figures, report — from the files the jobs wrote.

Hydra runs ``on_multirun_end`` once, in the launching process, and skips it
when a job raised; with the joblib, Ray or submitit launchers the jobs ran
elsewhere. So everything here reads the job directories (``.hydra/``,
``metrics.json``, ``syscalls.csv``, ``run.json``) and nothing comes from
memory: the same function serves the callback and ``python -m vmexp.report DIR``.

summary.csv has one row per job: its overrides as columns, ``job``,
``status``, then the metric columns ``vmexp.metrics`` declares (the names
``objective`` weights and ``report.metrics`` refer to), then ``error``. The
typed values each job ran with come from its ``settings.json``, which the
table and the report read (``SweepTable``): an override string is shown in
summary.csv as the user wrote it, never parsed here.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vmexp.config import read_settings_json
from vmexp.metrics import (
    COLUMNS,
    Metric,
    atomic_write,
    metric,
    objective_of,
    remove_stale_temporaries,
    summary_of,
)
from vmexp.metrics import METRICS as _DECLARED
from vmexp.report.lean import without_scipy_statistics
from vmexp.status import finished, note_failure

# libyaml's parser where PyYAML has one: the same safe constructors and the same values, about ten
# times faster. A sweep's end reads every job's .hydra/ files (its config.yaml alone: 0.34 s of
# CPU for the trim preset's 12 jobs with the pure-Python parser).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's parser (``CSafeLoader``) where it is available."""
    return yaml.load(text, Loader=_YAML_LOADER)


__all__ = [
    "SweepReport",
    "ReportError",
    "Metric",
    "METRICS",
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


# The label, unit and better direction of every summary.csv column, for the figures and the report
# (the declarations themselves are vmexp.metrics.METRICS).
METRICS: dict[str, Metric] = {m.column: m for m in _DECLARED if m.column}

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


def sweep_size(sweep_dir: Path) -> int | None:
    """How many jobs the sweep that last ran in ``sweep_dir`` launched; None when that cannot be told.

    Hydra's basic sweeper writes ``multirun.yaml`` before its first job:
    its ``hydra.sweeper.params`` and the command line's overrides
    (``hydra.overrides.task``) expand, as the sweeper expands them
    (``BasicSweeper.split_arguments``), into the jobs. Other sweepers
    (Optuna) decide as they go: None.
    """
    try:
        doc = load_yaml((sweep_dir / "multirun.yaml").read_text())
        hy = doc["hydra"]
        sweeper = hy.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
            return None
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        args += [str(t) for t in (hy.get("overrides") or {}).get("task") or []]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    except (
        ImportError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        yaml.YAMLError,
        HydraException,
    ):
        return None  # no multirun.yaml (a copied or hand-made directory), or one this cannot read
    return len(batches[0])


def find_jobs(sweep_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(job directory, its override strings) for every job of a sweep, in job order.

    A sweep run again into the same directory with other parameters leaves
    the older run's job folders beside the new ones: under the same job
    numbers, where the newer folder is the job and the other is reported
    and left out, and beyond the newer sweep's last job, where they are
    reported and left out too (``sweep_size``).
    """
    size = sweep_size(sweep_dir)
    found: dict[int | str, tuple[float, Path]] = {}
    for ov in sweep_dir.glob("*/.hydra/overrides.yaml"):
        job = ov.parent.parent
        num = job.name.split("_", 1)[0]
        key: int | str = int(num) if num.isdigit() else job.name
        if size is not None and isinstance(key, int) and key >= size:
            print(
                f"vmexp: warning: {job} is a job of an older sweep in this directory "
                f"(the last one had {size} job{'s' if size != 1 else ''}); left out",
                file=sys.stderr,
            )
            continue
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
        yield job, [str(o) for o in (load_yaml((job / ".hydra" / "overrides.yaml").read_text()) or [])]


def job_config(job: Path) -> dict[str, Any]:
    """The job's composed config as Hydra saved it ({} when missing)."""
    cfg = job / ".hydra" / "config.yaml"
    if not cfg.is_file():
        return {}
    doc = load_yaml(cfg.read_text())
    return doc if isinstance(doc, dict) else {}


def job_choices(job: Path) -> dict[str, str]:
    """The config-group options the job ran with (workload=mixed, policy=lru, ...), from Hydra's record.

    A group left unchosen (``experiment`` without a preset) is null there and left out here, not
    written "None".
    """
    path = job / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    doc = load_yaml(path.read_text()) or {}
    choices = ((doc.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    return {str(k): str(v) for k, v in choices.items() if v is not None and not str(k).startswith("hydra/")}


def _job_metrics(job: Path, cfg: dict[str, Any], settings: dict[str, Any] | None) -> dict[str, Any]:
    """The summary metrics of one job, or its failure.

    A job whose run.json says it finished but whose metrics.json is missing or cannot be read
    (deleted, or cut off by a full disk or a copy) is "incomplete", with the reason as its error:
    a finished status promises every output file, and the sweep's other jobs are still reported.
    """
    row: dict[str, Any] = {}
    status, error = "missing", ""
    run = job / "run.json"
    info = _json_file(run) if run.is_file() else None
    if isinstance(info, dict):
        status, error = str(info.get("status", "?")), str(info.get("error", ""))
    m = job / "metrics.json"
    doc = _json_file(m) if m.is_file() and status != "failed" else None
    if status == "failed":
        pass
    elif not (isinstance(doc, dict) and "processes" in doc and "system" in doc):
        if m.is_file():
            status, error = "incomplete", f"{m.name} cannot be read"
        elif status == "missing":
            status = "incomplete"  # neither file yet: still running, or killed
        else:
            status, error = "incomplete", f"{m.name} is missing (run.json says {status})"
    else:
        try:
            row.update(summary_of(doc, job))
        except ValueError as e:  # its syscalls.csv cut off: the job's counts are not all there
            return {"status": "incomplete", "error": str(e)}
        if settings is not None:
            weights = (settings["settings"].get("objective") or {}).get("value") or {}
        else:  # a job from before settings.json: Hydra's record of its config
            weights = cfg.get("objective") or {}
        if weights:
            row["objective"] = objective_of(row, weights)
        status = "ok" if status in ("ok", "missing") else status
    row["status"] = status
    row["error"] = error
    return row


def _json_file(path: Path) -> Any:
    """The document in ``path``, or None when it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_rows(sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(override keys, rows): one row per job, its overrides as columns, then the metrics.

    ``row["_settings"]`` is the job's settings.json (None when it wrote none).
    """
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
        settings = read_settings_json(job)
        row.update(_job_metrics(job, job_config(job), settings))
        row["_settings"] = settings
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
    # The jobs checked these when they started (vmexp.config: report.metrics); a directory
    # written otherwise, or by another version, is checked again here.
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
        what = "not a directory (a sweep's)" if sweep_dir.exists() else "no such sweep directory"
        raise FileNotFoundError(f"{sweep_dir}: {what}")
    keys, rows = summary_rows(sweep_dir)
    if not rows:
        raise FileNotFoundError(f"{sweep_dir}: no job directories (with .hydra/overrides.yaml) found")
    # An aggregation killed mid-write (the sweep resumed); its own files only: the last jobs' figure
    # processes may still be writing in the jobs' directories.
    remove_stale_temporaries(sweep_dir)
    from vmexp.report.deferred import draw_pending_figures, finish_background

    # summary.csv first: whatever fails after it, the numbers are on disk.
    summary = _write_summary(sweep_dir, keys, rows)
    cfg = _preset(sweep_dir, rows)
    wanted = figure_metrics(cfg)
    from vmexp.report.report import write_report
    from vmexp.report.sweep_figures import draw_sweep_figures

    # The sweep's figures and report are drawn while the launcher's processes draw the last jobs'
    # figures (the report shows the sweep's figures only); then whatever is left to draw, also when
    # the report failed.
    try:
        figures = draw_sweep_figures(sweep_dir, keys, rows, wanted, cfg)
        write_report(sweep_dir, keys, rows, figures, wanted, cfg)
    finally:
        finish_background()
        draw_pending_figures(sweep_dir, quiet=quiet)  # the jobs' own figures, left to the sweep's end
    failed = sum(1 for r in rows if not finished(r["status"]))
    if not quiet:
        stopped = sum(1 for r in rows if r["status"] == "stopped")
        cut = f", {stopped} stopped at duration" if stopped else ""
        print(
            f"sweep: {len(rows)} job{'s' if len(rows) != 1 else ''}, {failed} failed{cut} -> {summary}",
            file=sys.stderr,
        )
    return failed


class SweepReport(Callback):
    """Hydra callback: aggregate when a multirun ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Optuna minimises what the jobs return: without an objective every trial returns None and
        # Hydra reports each as "Return value must be float-castable", then "No trials are completed".
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        if "optuna" in sweeper.lower() and not config.get("objective"):
            print(
                "vmexp: error: objective: hydra/sweeper=optuna minimises objective, which is empty: "
                "give it summary metrics and weights, e.g. ++objective={majflt: 1}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an exception from a callback into a warning and exits 0; a report that could
        # not be written must say so in one line and make the command fail.
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            # A command line's sweep (run.py's process, where no user code draws with seaborn): the
            # launcher's processes import the plotting code this way too; a launcher that ran the
            # jobs in this process (one job, n_jobs=1, joblib, submitit) left it to this import.
            with without_scipy_statistics():
                failed = aggregate(sweep_dir)
        except (ReportError, FileNotFoundError) as e:
            print(f"vmexp: error: {e}", file=sys.stderr, flush=True)
            note_failure()
            return
        except Exception as e:  # a bug in the report: the jobs' results are safe, keep the trace
            atomic_write(sweep_dir / "report_error.txt", traceback.format_exc())
            print(
                f"vmexp: error: the sweep report failed: {type(e).__name__}: {e} (traceback in "
                f"{sweep_dir / 'report_error.txt'}; rebuild with python -m vmexp.report {sweep_dir})",
                file=sys.stderr,
                flush=True,
            )
            note_failure()
            return
        if failed:
            note_failure()
