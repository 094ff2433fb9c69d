"""The Python API (a contract, the README's "Python API"): runs, sweeps and their results as DataFrames.

    import vmexp
    run = vmexp.run(["threshold=64k", "nprocs=2"])   # the same composition as python run.py
    run.metrics, run.processes, run.timeseries, run.syscalls, run.dir
    sw = vmexp.sweep(["threshold=64k,128k,256k"])    # as python run.py -m; returns after aggregation
    sw.summary, sw.runs, sw.dir
    vmexp.load("outputs/sweeps/...")                 # a Run or a Sweep from a directory

``run`` and ``sweep`` start the ``vmexp`` command (``vmexp.cli``, what
``python run.py`` runs) in a child Python with the caller's interpreter
and working directory, rather than Hydra in the caller's process. The
child composes the config, runs the jobs, writes the files and exits; the
API then reads those files. So a result is byte for byte what the command
line gives, and nothing of a run stays behind in a notebook: Hydra's global
state, the launchers' worker pools, the job's failure count, logging and
matplotlib's backend are the child's. The cost is the child's start-up
(one to two seconds), small beside a run.

A user error (a bad value, an unknown key, a trace that cannot be read)
raises :class:`VmexpError` whose message is the command's one-line error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from vmexp.status import FINISHED

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Run", "Sweep", "VmexpError", "directory_kind", "load", "run", "sweep"]

_ERROR = "vmexp: error: "

# The default directories are named to the second (outputs/runs/DATE/HH-MM-SS_NAME), the time the
# child reads once it has started. Two short runs in a row from one notebook could fall in the same
# second and the second would overwrite the first: a call never starts in the second that the
# previous call ended in (at most a second's wait, and only for calls that close together).
_not_before = 0.0


# What a notebook's view of a run or a sweep puts in its table (every column: run.processes, sw.summary).
_PROCESS_COLUMNS = (
    "pid", "name", "exit", "minflt", "majflt", "brk", "mmap", "munmap", "mremap", "rss_peak_bytes",
    "vsz_peak_bytes",
)  # fmt: skip
_SWEEP_COLUMNS = ("minflt", "majflt", "syscalls", "rss_peak_bytes", "pswpout", "fragmentation", "sim_time_s")


def _cell(size: bool) -> Any:
    """A cell formatter for a notebook's table: a failed job's NaN is blank, and a count stays a whole
    number (pandas makes a column with a NaN float: 6531.0); ``size`` writes bytes as KiB, MiB, ..."""
    from vmexp.units import format_size

    def cell(v: Any) -> str:
        if isinstance(v, float) and math.isnan(v):
            return ""
        if size:
            return format_size(int(v))
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    return cell


class VmexpError(Exception):
    """A user error, or a run that failed; the message is one line, as the command prints it."""


class Run:
    """One run's directory and its results, read when first asked for.

    ``metrics`` is metrics.json as a dict; ``processes`` has one row per
    process, the nested ``syscalls`` and ``mallinfo`` fields flattened into
    columns (``brk``, ``mmap``, ..., ``arena``, ``uordblks``, ...);
    ``timeseries`` and ``syscalls`` are the CSV files as DataFrames. Sizes
    in bytes, times in seconds (the README's "Outputs").
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.dir = Path(path).resolve()

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.dir == self.dir

    def __hash__(self) -> int:
        return hash(self.dir)

    @cached_property
    def info(self) -> dict[str, Any]:
        """run.json: status ("ok" or "failed"), error, wall-clock time, host ({} when missing)."""
        try:
            doc = json.loads((self.dir / "run.json").read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    @property
    def status(self) -> str:
        """ "ok", "stopped" (by ``duration``), "failed", or "incomplete" (no run.json: still running, or killed)."""
        return str(self.info.get("status", "incomplete"))

    @property
    def error(self) -> str:
        """The failed run's one-line error ("" for a run that did not fail)."""
        return str(self.info.get("error", ""))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """metrics.json (schema 1): {"schema", "system": {...}, "processes": [{...}, ...]}."""
        path = self.dir / "metrics.json"
        if not path.is_file():
            why = f": the run failed: {self.error}" if self.status == "failed" else f" (status {self.status})"
            raise VmexpError(f"{self.dir}: no metrics.json{why}")
        try:
            doc = json.loads(path.read_text())
        except ValueError as e:  # cut off (a full disk, a partial copy) or edited: the user's file, one line
            raise VmexpError(f"{path}: not a metrics.json document ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("processes"), list) or "system" not in doc:
            raise VmexpError(f"{path}: not a metrics.json document (no processes and system)")
        return doc

    @cached_property
    def summary(self) -> dict[str, float]:
        """The run's summary metrics (totals over its processes), the metric columns of a sweep's summary.csv.

        The run's directory goes with metrics.json, as the sweep's summary passes it: the metrics
        counted from its other files (brk grows and trims, from syscalls.csv) are in it too.
        """
        from vmexp.metrics import summary_of

        try:
            return summary_of(self.metrics, self.dir)
        except ValueError as e:  # syscalls.csv cut off: the error names the file and line
            raise VmexpError(str(e)) from None

    @cached_property
    def processes(self) -> pd.DataFrame:
        """One row per process: pid, name, exit, minflt, majflt, brk, mmap, ..., arena, ..., peaks."""
        import pandas as pd

        rows = []
        for p in self.metrics["processes"]:
            row: dict[str, Any] = {}
            for key, value in p.items():
                if isinstance(value, dict):
                    # syscalls.brk -> brk, mallinfo.arena -> arena (prefixed only if a name were taken)
                    row.update({(k if k not in p else f"{key}.{k}"): v for k, v in value.items()})
                else:
                    row[key] = value
            rows.append(row)
        return pd.DataFrame(rows)

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        """timeseries.csv: time_s, pid (0 = the system), then one column per sampled metric."""
        return self._csv("timeseries.csv")

    @cached_property
    def syscalls(self) -> pd.DataFrame:
        """syscalls.csv: pid, op, time_s, syscall, addr, length, result (every brk/mmap/munmap/mremap)."""
        return self._csv("syscalls.csv")

    @cached_property
    def config(self) -> dict[str, Any]:
        """The composed config the run used (.hydra/config.yaml)."""
        return _yaml_dict(self.dir / ".hydra" / "config.yaml")

    @cached_property
    def overrides(self) -> list[str]:
        """The overrides of its command line (.hydra/overrides.yaml)."""
        path = self.dir / ".hydra" / "overrides.yaml"
        doc = yaml.safe_load(path.read_text()) if path.is_file() else None
        return [str(o) for o in doc] if isinstance(doc, list) else []

    @property
    def figures(self) -> list[Path]:
        """The run's figures (PNG files), in name order."""
        return sorted((self.dir / "figures").glob("*.png"))

    def _repr_html_(self) -> str:
        """What a notebook shows for a run: the console's line, the processes, the figures.

        A run that failed, or whose files cannot be read, shows why instead of raising: a notebook
        would print a traceback where the user asked only to look.
        """
        import html

        from vmexp.metrics import summary_line
        from vmexp.report.embed import png_figure

        try:
            line = summary_line(self.metrics, self.dir)
            procs = self.processes
        except VmexpError as e:
            return f"<p><b>vmexp run</b>: {html.escape(str(e))}</p>"
        shown = [c for c in _PROCESS_COLUMNS if c in procs.columns]
        cells = {c: _cell(c.endswith("_bytes")) for c in shown}
        table = procs[shown].to_html(index=False, formatters=cells, border=0)
        return "\n".join(
            [f"<p><b>vmexp run</b> ({html.escape(self.status)}): {html.escape(line)}</p>", table]
            + [png_figure(f) for f in self.figures]
        )

    def _csv(self, name: str) -> pd.DataFrame:
        import pandas as pd

        path = self.dir / name
        if not path.is_file():
            self.metrics  # noqa: B018  (a failed run says why rather than "no such file")
            raise VmexpError(f"{self.dir}: no {name}")
        return pd.read_csv(path)


class Sweep:
    """A sweep's directory: ``summary`` (summary.csv as a DataFrame) and its jobs as ``runs``.

    ``summary`` has one row per job: its overrides as columns (``keys``),
    ``job``, ``status``, the summary metrics, ``error``. A value written
    ``null`` stays the string "null"; an empty cell (a failed job's
    metrics) is NaN.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.dir = Path(path).resolve()

    def __repr__(self) -> str:
        return f"Sweep({str(self.dir)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sweep) and other.dir == self.dir

    def __hash__(self) -> int:
        return hash(self.dir)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    @cached_property
    def summary(self) -> pd.DataFrame:
        import pandas as pd

        path = self.dir / "summary.csv"
        if not path.is_file():
            raise VmexpError(
                f"{self.dir}: no summary.csv (the sweep did not finish; python -m vmexp.report {self.dir} "
                "writes it from the jobs' files)"
            )
        rebuild = f"python -m vmexp.report {self.dir} writes it again from the jobs' files"
        try:
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except ValueError as e:  # pandas' EmptyDataError and ParserError: empty, cut off or edited
            raise VmexpError(f"{path}: cannot be read ({e}); {rebuild}") from None
        if "job" not in table.columns or "status" not in table.columns:
            raise VmexpError(f"{path}: not a sweep's summary (no job and status columns); {rebuild}")
        return table

    @property
    def keys(self) -> list[str]:
        """The override keys of the jobs (summary.csv's columns before ``job``)."""
        columns = list(self.summary.columns)
        return columns[: columns.index("job")] if "job" in columns else []

    @cached_property
    def runs(self) -> list[Run]:
        """Every job's Run, in job order."""
        from vmexp.report.sweep import find_jobs

        return [Run(job) for job, _ in find_jobs(self.dir)]

    @property
    def failed(self) -> pd.DataFrame:
        """The summary rows of the jobs that did not finish (status neither ok nor stopped)."""
        s = self.summary
        return s[~s["status"].isin(FINISHED)]

    @property
    def figures(self) -> list[Path]:
        """The sweep's comparison figures (PNG files), in name order."""
        return sorted((self.dir / "figures").glob("*.png"))

    def _repr_html_(self) -> str:
        """What a notebook shows for a sweep: its jobs with their main metrics, and its figures."""
        import html

        from vmexp.report.embed import png_figure

        try:
            s = self.summary
        except VmexpError as e:
            return f"<p><b>vmexp sweep</b>: {html.escape(str(e))}</p>"
        failed = len(self.failed)
        shown = [*self.keys, "status", *(c for c in _SWEEP_COLUMNS if c in s.columns)]
        if failed and "error" in s.columns:
            shown.append("error")
        cells = {c: _cell(c.endswith("_bytes")) for c in shown if c in _SWEEP_COLUMNS}
        head = (
            f"<p><b>vmexp sweep</b> <code>{html.escape(str(self.dir))}</code>: {len(s)} job"
            f"{'s' if len(s) != 1 else ''}, {failed} failed; the whole report: report.html there</p>"
        )
        table = s[shown].to_html(index=False, formatters=cells, border=0, na_rep="")
        return "\n".join([head, table] + [png_figure(f) for f in self.figures])


def load(path: str | os.PathLike[str]) -> Run | Sweep:
    """A run directory (it has metrics.json or run.json) as a Run; a sweep directory as a Sweep."""
    p = Path(path)
    if not p.is_dir():  # a file (metrics.json itself, say) is there but is not what is asked for
        raise VmexpError(
            f"{p}: not a directory (a run's or a sweep's)" if p.exists() else f"{p}: no such directory"
        )
    kind = directory_kind(p)
    if kind == "run":
        return Run(p)
    if kind == "sweep":
        return Sweep(p)
    raise VmexpError(
        f"{p}: neither a run (it would hold metrics.json) nor a sweep (summary.csv and job folders)"
    )


def directory_kind(p: Path) -> str | None:
    """ "run" (metrics.json or run.json), "sweep" (summary.csv, multirun.yaml or job folders), or None.

    One directory can hold both: ``out_dir=`` used for a run and then for a sweep (or the other way
    round) leaves the first one's files at the top. It is then what was written there last: a sweep
    written over a run is a sweep, though the run's metrics.json is still there.
    """

    def newest(names: tuple[str, ...]) -> float | None:
        times = [(p / n).stat().st_mtime for n in names if (p / n).is_file()]
        return max(times) if times else None

    run, sweep = newest(("metrics.json", "run.json")), newest(("summary.csv", "multirun.yaml"))
    if run is None and sweep is None and any(p.glob("*/.hydra/overrides.yaml")):
        return "sweep"  # job folders alone: a sweep cut short
    if run is not None and (sweep is None or run > sweep):
        return "run"
    return "sweep" if sweep is not None else None


def run(
    overrides: Sequence[str] | str = (), out_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False
) -> Run:
    """One run, as ``python run.py OVERRIDES``; into ``out_dir`` if given, else ``./outputs/runs/...``.

    ``quiet`` keeps the command's console output (its summary line, the
    progress of a long run) from being shown. Raises VmexpError when the
    run fails.
    """
    args = _checked(overrides)
    if out_dir is not None:
        args.append(_dir_override("hydra.run.dir", out_dir, args))
    code, errors, record = _launch(args, quiet, show_errors=False)  # the exception carries the error
    if code != 0 or "run_dir" not in record:
        raise VmexpError(_failure(code, errors))
    return Run(record["run_dir"])


def sweep(
    overrides: Sequence[str] | str = (), out_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False
) -> Sweep:
    """A sweep, as ``python run.py -m OVERRIDES``; returns once summary.csv, the figures and the report exist.

    Into ``out_dir`` if given, else ``./outputs/sweeps/...``. A job that
    fails does not stop the others (as on the command line): the Sweep is
    returned, ``Sweep.failed`` lists it, and a RuntimeWarning says so.
    Raises VmexpError when no sweep came of it (e.g. an unknown key).
    """
    args = _checked(overrides)
    if out_dir is not None:
        args.append(_dir_override("hydra.sweep.dir", out_dir, args))
    code, errors, record = _launch(["-m", *args], quiet, show_errors=True)
    where = record.get("sweep_dir")
    if where is None or not (Path(where) / "summary.csv").is_file():
        raise VmexpError(_failure(code, errors))
    result = Sweep(where)
    if code != 0:
        failed = result.failed
        first = next((str(e) for e in failed.get("error", []) if isinstance(e, str) and e), "")
        warnings.warn(
            f"{len(failed)} of {len(result.summary)} jobs failed" + (f" (first: {first})" if first else ""),
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def _checked(overrides: Sequence[str] | str) -> list[str]:
    """The overrides as a list; a string is split as a shell would (``"threshold=64k nprocs=2"``)."""
    try:
        items = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    except ValueError as e:  # shlex: "No closing quotation", "No escaped character"
        raise VmexpError(f"overrides: {str(e).lower()} in {overrides!r} (split as a shell would)") from None
    for o in items:
        if not isinstance(o, str):
            raise TypeError(f"overrides: expected strings such as 'threshold=64k', got {o!r}")
        if o.startswith("-"):
            raise VmexpError(
                f"{o}: the API takes overrides (key=value) only; vmexp.sweep() is -m, and "
                "vmexp.load(run.dir).config shows the composed config"
            )
    return items


def _dir_override(key: str, out_dir: str | os.PathLike[str], args: list[str]) -> str:
    if any(a.lstrip("+~").partition("=")[0] == key for a in args):
        raise VmexpError(f"{key}: given twice (out_dir= and an override); give one")
    path = str(Path(out_dir).resolve())
    if "${" in path:
        # Hydra resolves the output directory twice (hydra.run.dir, then hydra.runtime.output_dir,
        # which it sets from the first result): no quoting survives both.
        raise VmexpError(
            f"out_dir: {path!r} holds '${{', which Hydra reads as an interpolation; choose another name"
        )
    if all(c.isalnum() or c in "/._-+" for c in path):
        return f"{key}={path}"
    return f"{key}={hydra_quoted(path)}"


def hydra_quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value that Hydra reads back exactly.

    A path may hold a comma (Hydra: a sweep), ``=``, a quote, brackets or
    ``${`` (an interpolation), each of which the override grammar takes for
    syntax. Inside single quotes a quote is written ``\\'``, the backslashes
    right before a quote or the end are doubled (any other backslash stands
    for itself, so doubling every one would name another directory), and
    ``${`` is written ``\\${``.
    """
    text = re.sub(r"(\\+)(?='|\Z)", lambda m: m.group(1) * 2, value)
    return "'" + text.replace("'", "\\'").replace("${", "\\${") + "'"


def _failure(code: int, errors: list[str]) -> str:
    if errors:
        return errors[-1]
    return f"the vmexp command ended with status {code} and no error message"


# The child: the caller's vmexp (also when it was put on sys.path by hand rather than installed),
# and not a module of the working directory that happens to be called vmexp (-P).
_CHILD = (
    "import sys; p = sys.argv.pop(1); p in sys.path or sys.path.insert(0, p); "
    "from vmexp.cli import run; run()"
)


def _launch(args: list[str], quiet: bool, *, show_errors: bool) -> tuple[int, list[str], dict[str, Any]]:
    """Run the command in a child Python; (exit status, its error lines, where its jobs wrote)."""
    from vmexp.cli import RECORD_ENV

    global _not_before
    wait = _not_before - time.time()
    if wait > 0:
        time.sleep(wait)
    with tempfile.TemporaryDirectory(prefix="vmexp-api-") as tmp:
        record = Path(tmp) / "record.json"
        env = {**os.environ, RECORD_ENV: str(record), "PYTHONUNBUFFERED": "1"}
        package_parent = str(Path(__file__).resolve().parent.parent)
        cmd = [sys.executable, "-P", "-c", _CHILD, package_parent, *args]
        errors: list[str] = []
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env
        )
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, None if quiet else sys.stdout, None, True)),
            threading.Thread(
                target=_pump, args=(proc.stderr, None if quiet else sys.stderr, errors, show_errors)
            ),
        ]
        for t in pumps:
            t.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C or a notebook's interrupt: stop the child as Ctrl-C would
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        finally:
            for t in pumps:
                t.join()
            _not_before = math.floor(time.time()) + 1.0
        doc: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(record.read_text())
    return code, errors, doc


def _pump(src: IO[str], dst: IO[str] | None, errors: list[str] | None, show_errors: bool) -> None:
    """Copy the child's output line by line (a notebook shows it as it comes); keep its error lines."""
    for line in src:
        if errors is not None and line.startswith(_ERROR):
            errors.append(line[len(_ERROR) :].rstrip("\n"))
            if not show_errors:
                continue
        if dst is not None:
            dst.write(line)
            dst.flush()
    src.close()


def _yaml_dict(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text()) if path.is_file() else None
    return doc if isinstance(doc, dict) else {}
