"""The Hydra application: one job = validate, build the workload, simulate, write.

Errors a user can cause (a bad value, a missing trace, a malformed line)
end in one line on stderr that names the key or the line, and a non-zero
exit status, never a traceback. In a sweep a failing job does not stop the
others: its directory records the failure (``run.json``), the sweep's
summary marks it, and the command's exit status says that something failed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vmexp.config import ConfigError, Settings, register_configs, validate
from vmexp.kernel.policies.base import PolicyError
from vmexp.metrics import SUMMARY_METRICS, atomic_write, summary_of, write_run
from vmexp.units import format_duration, format_size
from vmexp.workload import WorkloadError, build

__all__ = ["main", "run_settings", "exit_status", "USER_ERRORS", "install_error_handler"]

# Exceptions whose message is meant for the user as it is.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, WorkloadError, PolicyError)

_failed_jobs = 0


def exit_status() -> int:
    """0, or 1 when a job of this invocation failed (a sweep goes on past failures)."""
    return 1 if _failed_jobs else 0


def _note_failure() -> None:
    global _failed_jobs
    _failed_jobs += 1


def _user_errors() -> tuple[type[BaseException], ...]:
    from vmexp.sim import SimError

    return (*USER_ERRORS, SimError)


class _Progress:
    """Prints simulated time now and then when a run takes more than a couple of seconds."""

    def __init__(self, total_ns: int, label: str) -> None:
        self.total = total_ns
        self.label = label
        self.t0 = time.monotonic()
        self.next = self.t0 + 2.0
        self.shown = False

    def __call__(self, now_ns: int) -> None:
        t = time.monotonic()
        if t >= self.next:
            self.next = t + 2.0
            self.shown = True
            print(
                f"{self.label}simulated {format_duration(now_ns)} of at most {format_duration(self.total)} "
                f"({t - self.t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


def run_settings(
    settings: Settings, out: Path, *, check: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Run one validated experiment into ``out``; returns the metrics document."""
    from vmexp.metrics import metrics_dict
    from vmexp.sim import simulate

    # A stale "ok" from an earlier run in this directory must not vouch for files being rewritten.
    (out / "run.json").unlink(missing_ok=True)
    specs = build(settings.workload, settings.nprocs, settings.seed, settings.page_size)
    progress = None if quiet else _Progress(settings.duration, "")
    t0 = time.monotonic()
    result = simulate(settings, specs, check=check, progress=progress)
    wall = time.monotonic() - t0
    write_run(out, result)
    if settings.figures:
        from vmexp.report.deferred import draw_job_figures

        draw_job_figures(out, settings)  # or left to the sweep, which draws its jobs' figures in parallel
    _write_run_json(out, "ok", "", wall, len(specs))
    if result.explain is not None and not quiet:
        print("\n".join(result.explain))
    return metrics_dict(result)


def _write_run_json(out: Path, status: str, error: str, wall: float, nprocs: int) -> None:
    doc = {
        "status": status,
        "error": error,
        "wall_time_s": round(wall, 3),
        "host": platform.node(),
        "python": platform.python_version(),
        "pid": os.getpid(),
        "nprocs": nprocs,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write(out / "run.json", json.dumps(doc, indent=1) + "\n")


def _complete(out: Path) -> bool:
    """A finished job: run.json says ok and metrics.json is there (both are written atomically, run.json last)."""
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("status") == "ok" and (out / "metrics.json").is_file()


def _summary_line(doc: dict[str, Any], out: Path) -> str:
    s = doc["system"]
    procs = doc["processes"]
    minflt = sum(p["minflt"] for p in procs)
    majflt = sum(p["majflt"] for p in procs)
    calls = {k: sum(p["syscalls"][k] for p in procs) for k in ("brk", "mmap", "munmap", "mremap")}
    rss = sum(p["rss_peak_bytes"] for p in procs)
    return (
        f"{len(procs)} processes, {s['sim_time_s']:.3f} s simulated: minflt {minflt}, majflt {majflt}, "
        f"brk {calls['brk']}, mmap {calls['mmap']}, munmap {calls['munmap']}, "
        f"peak RSS {format_size(rss)}, swap-outs {s['pswpout']}, OOM kills {s['oom_kills']} -> {out}"
    )


def _check_report(cfg: DictConfig) -> None:
    """report.metrics names, checked before any job runs rather than when the sweep is aggregated."""
    from vmexp.report.sweep import ReportError, figure_metrics

    try:
        figure_metrics({"report": {"metrics": list(cfg.get("report", {}).get("metrics") or [])}})
    except ReportError as e:
        raise ConfigError(str(e)) from None


def _check_objective(settings: Settings) -> None:
    unknown = sorted(set(settings.objective) - set(SUMMARY_METRICS))
    if unknown:
        raise ConfigError(
            f"objective.{unknown[0]}: not a summary metric (valid: {', '.join(SUMMARY_METRICS)})"
        )


def objective_value(settings: Settings, doc: dict[str, Any]) -> float:
    """The weighted sum of summary metrics that ``objective`` defines (what Optuna minimises)."""
    summary = summary_of(doc)
    return float(sum(w * summary[k] for k, w in settings.objective.items()))


def main(cfg: DictConfig) -> float | None:
    """The Hydra task function (run.py); returns the objective's value when one is defined."""
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    t0 = time.monotonic()
    label = f"[job {hc.job.num}] " if multirun else ""
    if cfg.get("resume") and _complete(out):
        print(f"{label}complete already, skipped (resume=true): {out}", flush=True)
        if cfg.get("objective"):
            return objective_value(validate(cfg), json.loads((out / "metrics.json").read_text()))
        return None
    try:
        settings = validate(cfg)
        _check_objective(settings)
        _check_report(cfg)
        doc = run_settings(settings, out, quiet=multirun)
        print(f"{label}{_summary_line(doc, out)}", flush=True)
        for p in doc["processes"]:
            if p["exit"] not in ("ok", "duration"):
                why = f": {p['error']}" if p["error"] else ""
                print(
                    f"vmexp: warning: {label}pid {p['pid']} ({p['name']}) ended {p['exit']}{why}",
                    file=sys.stderr,
                )
        if settings.objective:
            value = objective_value(settings, doc)
            print(f"{label}objective = {value:.6g}", flush=True)
            return value
        return None
    except _user_errors() as e:
        msg = str(e)
        _write_run_json(out, "failed", msg, time.monotonic() - t0, 0)
        print(f"vmexp: error: {msg}", file=sys.stderr, flush=True)
        if not multirun:
            raise SystemExit(2) from None
        _note_failure()
        return math.inf if cfg.get("objective") else None  # a failed trial is the worst one
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a bug or a resource problem: keep the sweep going, record everything
        msg = f"{type(e).__name__}: {e}"
        _write_run_json(out, "failed", msg, time.monotonic() - t0, 0)
        atomic_write(out / "error.txt", traceback.format_exc())
        print(f"vmexp: error: {label}{msg} (traceback in {out / 'error.txt'})", file=sys.stderr, flush=True)
        if not multirun:
            raise SystemExit(1) from None
        _note_failure()
        return math.inf if cfg.get("objective") else None


# ---------------------------------------------------------------------------
# One-line errors for what Hydra rejects before the task function runs
# (unknown keys, values of the wrong type, unknown group options).
# ---------------------------------------------------------------------------


def _one_line(ex: BaseException) -> str:
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException | None = ex
    while cause is not None:
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None) or ""
            msg = str(getattr(cause, "msg", "") or cause).splitlines()[0].strip()
            if "not in struct" in msg or (msg.startswith("Key '") and "' not in '" in msg):
                return f"{key}: unknown key (see python run.py --cfg job for the valid keys)"
            if "could not be converted" in msg:
                return f"{key}: {msg}"
            return f"{key}: {msg}" if key else msg
        cause = cause.__cause__ or cause.__context__
    text = str(ex).strip().splitlines()
    first = text[0] if text else type(ex).__name__
    if "Could not override" in first:
        key = first.split("'")[1] if "'" in first else first
        return f"{key}: unknown key (see python run.py --cfg job for the valid keys)"
    if "Could not find" in first or "In 'config'" in first:
        # Hydra lists the group's options one per line after "Available options in '...':".
        lines = [t.strip() for t in text[1:]]
        options: list[str] = []
        for i, t in enumerate(lines):
            if t.startswith("Available options"):
                options = [
                    o for o in lines[i + 1 :] if o and not o.startswith(("Config search path", "provider="))
                ]
                options = options[: next((j for j, o in enumerate(options) if ":" in o), len(options))]
                break
        return f"{first} (valid: {', '.join(options)})" if options else first
    return first


def install_error_handler() -> None:
    """Make Hydra's own errors one line, like ours (HYDRA_FULL_ERROR=1 still shows everything)."""
    import hydra._internal.utils as hu

    original = hu.run_and_report

    def run_and_report(func: Any) -> Any:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return original(func)
        try:
            return func()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as ex:
            print(f"vmexp: error: {_one_line(ex)}", file=sys.stderr, flush=True)
            sys.exit(2)

    hu.run_and_report = run_and_report


def _job_subdir(num: Any) -> str:
    """A job directory name a person can read: ``3_policy=clock,ram=16M``."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        overrides = []
    parts = []
    for ov in overrides:
        key, _, value = str(ov).partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key in ("resume",):
            continue
        value = os.path.basename(value.rstrip("/")) if "/" in value else value
        parts.append(f"{key}={value}")
    name = ",".join(parts)
    safe = "".join(c if c.isalnum() or c in "=,._-+" else "_" for c in name)[:120]
    return f"{num}_{safe}" if safe else str(num)


def _safe_name(name: Any) -> str:
    """A run name as one path component: no separators, no leading dots (it cannot leave outputs/)."""
    safe = "".join(c if c.isalnum() or c in "-_.+=," else "_" for c in str(name)).lstrip(".")[:60]
    return safe or "run"


def register() -> None:
    register_configs()
    if not OmegaConf.has_resolver("vmexp_job"):
        OmegaConf.register_new_resolver("vmexp_job", _job_subdir)
    if not OmegaConf.has_resolver("vmexp_safe"):
        OmegaConf.register_new_resolver("vmexp_safe", _safe_name)


register()
