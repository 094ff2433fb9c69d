"""The default launcher (``hydra/launcher=vmexp``): a sweep's jobs and their figures on this machine's cores.

Hydra's basic launcher runs a sweep's jobs one after another in the
launching process: the README sweep used one core for its three
simulations, then drew their figures. Here each job runs in a forked
process, ``n_jobs`` at a time (one per core by default), and each
finished job's figures are drawn in a process of their own while the
remaining jobs simulate (in two processes a job: the heap maps and the
layout, the rest), so on two cores the figures of the first jobs cost no
time at all. The simulations go first: they are the longest pieces of
work, and a figure process started before them would leave a job to run
alone at the end. The launcher returns once the last job is
done and the last figures have started: the sweep's own figures and
report are drawn beside them (``vmexp.report.deferred.finish_in_background``).

While the first processes work, the launching process imports the plotting
code (matplotlib, seaborn, pandas: about 0.8 s of CPU without scipy). The sweep's
report needs it at the end anyway (``on_multirun_end``), and the figure
processes forked after that start with it imported.

A job's files depend only on its config and seed, so they are the same
byte for byte whichever process runs it and in which order (the tests
compare every launcher). Where fork is not available (not Linux) or not
safe (this process runs threads: a lock another thread holds would stay
locked in the child), or with one job or one core, the jobs run one by one
in this process as under the basic launcher, and the sweep draws their
figures at its end (``vmexp.report.deferred``).
"""

from __future__ import annotations

import importlib
import logging
import math
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.config_source import ConfigSource
from hydra.types import HydraContext, RunMode, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from vmexp.console import one_write_a_line
from vmexp.report.deferred import (
    can_fork,
    finish_background,
    finish_in_background,
    usable_cores,
    wants_figures,
)
from vmexp.report.lean import without_scipy_statistics
from vmexp.status import note_failure

__all__ = ["launch", "n_jobs_of", "share_compositions", "LaunchError"]

log = logging.getLogger(__name__)

# What the launching process imports while its first children work (see the module docstring).
_PLOTTING = ("vmexp.report.run_figures", "vmexp.report.report")
# A job's figures are drawn in two processes of about equal work (the heap maps and the layout, the
# rest: 0.7-0.8 s of CPU each for the README sweep's jobs), so that the last job's figures take half
# the time after it ends.
_FIGURE_PARTS = (("heap", "layout"), ("memory", "faults", "syscalls"))


class LaunchError(RuntimeError):
    """A sweep that cannot be launched as asked, or a job that failed before vmexp's own code ran; one line."""


def n_jobs_of(value: Any) -> int:
    """``hydra.launcher.n_jobs`` as a number of processes (null: one per usable core)."""
    if value is None:
        return usable_cores()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise LaunchError(
        f"hydra.launcher.n_jobs: expected a number of processes (1 or more) or null, got {value!r}"
    )


class _ComposedOnce(ConfigLoader):
    """Hydra's config loader, keeping the job configs a sweeper composed for the launcher to take.

    Hydra's basic sweeper composes every job's config before it launches a
    batch (``Sweeper.validate_batch_is_legal``, to fail early) and throws it
    away; the launcher then composed it again. A composition costs about
    0.15 s of CPU (the defaults tree, the YAML files, a deep copy of the
    ConfigStore), as much as the whole simulation of a small job: a fifth of
    the CPU of the belady preset's sweep went to composing each of its 21
    configs twice. The configs are the same either way: a job's config
    depends only on the master config and the job's overrides (its
    ``${now:}`` values come from the master's resolver cache, which the
    sweeper filled before it validated), and the launcher takes each config
    once (``take_sweep_config``), so no job sees another's changes. A
    sweeper that does not validate (Optuna's) leaves nothing to take, and
    the launcher composes as before.
    """

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.composed: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def take_sweep_config(self, master_config: DictConfig, sweep_overrides: Sequence[str]) -> DictConfig:
        """The job's config: the one the sweeper composed, else a new composition."""
        cfg = self.composed.pop((id(master_config), tuple(sweep_overrides)), None)
        return cfg if cfg is not None else self.loader.load_sweep_config(master_config, list(sweep_overrides))

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        cfg = self.loader.load_sweep_config(master_config, sweep_overrides)
        self.composed[(id(master_config), tuple(sweep_overrides))] = cfg
        return cfg

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        return self.loader.load_configuration(
            config_name, overrides, run_mode, from_shell, validate_sweep_overrides
        )

    def get_search_path(self) -> ConfigSearchPath:
        return self.loader.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        return self.loader.get_group_options(group_name, results_filter, config_name, overrides)

    def compute_defaults_list(self, config_name: str | None, overrides: list[str], run_mode: RunMode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)

    def __getattr__(self, name: str) -> Any:  # anything else Hydra's own loader has
        return getattr(self.loader, name)


def share_compositions(hydra_context: HydraContext) -> None:
    """Let the launcher reuse the job configs the sweeper composes (``_ComposedOnce``).

    The launcher's ``setup`` calls this with the context it shares with the
    sweeper that made it (Hydra gives both the same ``HydraContext``).
    """
    if not isinstance(hydra_context.config_loader, _ComposedOnce):
        hydra_context.config_loader = _ComposedOnce(hydra_context.config_loader)


def _run_one(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    overrides: Sequence[str],
    idx: int,
) -> JobReturn:
    """One job, as Hydra's basic launcher runs it (its config composed once, see ``_ComposedOnce``)."""
    loader = hydra_context.config_loader
    if isinstance(loader, _ComposedOnce):
        sweep_config = loader.take_sweep_config(config, overrides)
    else:
        sweep_config = loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def launch(
    config: DictConfig,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    n_jobs: Any = None,
) -> list[JobReturn]:
    """Run the jobs of one batch of a sweep; their returns in job order."""
    finish_background()  # a sweeper's earlier batch (Optuna's trials): its figures first, then the next jobs
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    n = min(len(job_overrides), n_jobs_of(n_jobs))
    parallel = n > 1 and can_fork()
    log.info(f"Launching {len(job_overrides)} jobs locally" + (f", {n} at a time" if parallel else ""))
    jobs = [(initial_job_idx + i, list(overrides)) for i, overrides in enumerate(job_overrides)]
    for idx, overrides in jobs:
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
    if not parallel:
        runs = []
        for idx, overrides in jobs:
            runs.append(_run_one(hydra_context, task_function, config, overrides, idx))
            configure_log(config.hydra.hydra_logging, config.hydra.verbose)
        return runs
    _preload()
    one_write_a_line()  # the jobs print to one console at once
    pool = _Pool(n, config)
    try:
        runs = pool.run(
            jobs,
            lambda idx, overrides: _portable(_run_one(hydra_context, task_function, config, overrides, idx)),
        )
    finally:  # each child took its job's config from its own copy; this process's copies are not needed
        if isinstance(hydra_context.config_loader, _ComposedOnce):
            hydra_context.config_loader.composed.clear()
    if pool.running:  # the last jobs' figures: the sweep's end draws its own beside them, then waits
        finish_in_background(pool.drain)
    return runs


def _preload() -> None:
    """Import what every job imports (the engine, every registered component) once, before the forks.

    Each child would import them on its own: about half a second of CPU a
    job, paid again by every job, where the launching process pays it once
    while the other cores are still idle.
    """
    import vmexp.sim  # noqa: F401
    from vmexp.registry import REGISTRIES

    for registry in REGISTRIES.values():
        registry.discover()


def _import_plotting() -> None:
    """Import the plotting code the figure processes and the report use, without scipy's statistics.

    This runs while the first jobs have both cores, so its CPU is taken from
    them; seaborn's scipy statistics, half of it, are never used by a figure
    (``vmexp.report.lean``). Only this process (the command line's launcher,
    where no user code draws) and its children see that.
    """
    # Ctrl-C waits for the end of the import (at most a second; the jobs stop at once, they have
    # SIGINT too): a KeyboardInterrupt in the middle of an extension module's initialisation can
    # leave it half made, and the interpreter once aborted at exit after that (CI, the Ctrl-C test).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with without_scipy_statistics():
            for module in _PLOTTING:
                importlib.import_module(module)
    except Exception:  # only a head start: the report imports them again and says what failed
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _portable(ret: JobReturn) -> JobReturn:
    """A job's return that pickles: its configs as plain trees.

    A job's config is typed by vmexp's schema, a class made at start-up
    (``vmexp.config``), which pickle cannot name; the launching process has
    the same class, but pickle looks a class up by module and name. Hydra's
    sweepers read only the return value.
    """
    for key in ("cfg", "hydra_cfg"):
        node = getattr(ret, key)
        if isinstance(node, DictConfig):
            setattr(ret, key, OmegaConf.create(OmegaConf.to_container(node, resolve=False)))
    return ret


def _child(conn: Connection, work: Callable[[], Any]) -> None:
    """The body of a forked process: do the work, send ("ok", result) or ("error", one line) back."""
    try:
        result: tuple[str, Any] = ("ok", work())
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group; the launcher reports it once
        raise SystemExit(130) from None
    except BaseException as e:  # anything else is the parent's to report
        result = ("error", f"{type(e).__name__}: {e}")
    try:
        conn.send(result)
    except Exception as e:  # a result that does not pickle
        conn.send(("error", f"its result could not be sent back: {type(e).__name__}: {e}"))
    finally:
        conn.close()


@dataclass
class _Task:
    idx: int
    overrides: list[str]
    figures_of: Path | None = None  # None: the job itself; else the job directory whose figures to draw
    kinds: tuple[str, ...] = ()  # which of its figures (run_figures.FIGURES)

    def name(self) -> str:
        return f"[job {self.idx}] {' '.join(filter_overrides(self.overrides))}".rstrip()


class _Pool:
    """At most ``n`` forked processes: every job first, each finished job's figures after."""

    def __init__(self, n: int, config: DictConfig) -> None:
        self.n = n
        self.config = config
        self.ctx = multiprocessing.get_context("fork")
        self.running: dict[Connection, tuple[BaseProcess, _Task]] = {}

    def run(
        self, jobs: list[tuple[int, list[str]]], run_job_fn: Callable[[int, list[str]], JobReturn]
    ) -> list[JobReturn]:
        """Every job; returns once they are done and the last figures have started (``drain`` waits for those)."""
        queue: deque[_Task] = deque(_Task(idx, overrides) for idx, overrides in jobs)
        results: dict[int, JobReturn] = {}
        warmed = False
        try:
            while True:
                while queue and len(self.running) < self.n:
                    task = queue.popleft()
                    self._start(
                        task,
                        partial(_draw, task.figures_of, task.kinds)
                        if task.figures_of
                        else partial(run_job_fn, task.idx, task.overrides),
                    )
                if not warmed:  # the children have the cores; this process imports what comes next
                    warmed = True
                    _import_plotting()
                # Checked after starting, not before waiting: once the last figures have started,
                # the sweep's own figures and report can be drawn beside them (it waited for one
                # figure process to end first, leaving a core idle at the very end).
                if not queue and all(task.figures_of is not None for _proc, task in self.running.values()):
                    break
                for conn in wait(list(self.running)):
                    task, status, value = self._finish(conn)  # type: ignore[arg-type]
                    if task.figures_of is not None:
                        _figures_done(task, status, value)
                        continue
                    ret = self._job_return(task, status, value)
                    results[task.idx] = ret
                    job_dir = _output_dir(ret)
                    if job_dir is not None and wants_figures(job_dir):
                        queue.extend(
                            _Task(task.idx, task.overrides, job_dir, kinds) for kinds in _FIGURE_PARTS
                        )
        except BaseException:
            self._stop_all()
            raise
        return [results[idx] for idx, _ in jobs]

    def drain(self) -> None:
        """Wait for the figure processes still running when ``run`` returned."""
        try:
            while self.running:
                for conn in wait(list(self.running)):
                    _figures_done(*self._finish(conn))  # type: ignore[arg-type]
        except BaseException:
            self._stop_all()
            raise

    def _start(self, task: _Task, work: Callable[[], Any]) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_child, args=(send, work), name=f"vmexp job {task.idx}")
        proc.start()
        send.close()  # the child holds the sending end: its exit is the end of the pipe here
        self.running[recv] = (proc, task)

    def _finish(self, conn: Connection) -> tuple[_Task, str, Any]:
        proc, task = self.running.pop(conn)
        try:
            status, value = conn.recv()
        except EOFError:  # it died before it could answer: a signal (the host's OOM killer, kill -9)
            proc.join()
            code = proc.exitcode
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            status, value = "died", f"its process ended without a result ({why})"
        finally:
            conn.close()
        proc.join()
        return task, status, value

    def _job_return(self, task: _Task, status: str, value: Any) -> JobReturn:
        if status == "ok":
            assert isinstance(value, JobReturn)
            return value
        if status == "error":  # Hydra's part of the job failed (composing its config): as basic does
            raise LaunchError(f"{task.name()}: {value}")
        # The job's process died: the other jobs and the report go on; the job has no run.json, so
        # summary.csv and the report show it as incomplete, and the command's status is 1.
        print(f"vmexp: error: {task.name()}: {value}", file=sys.stderr, flush=True)
        note_failure()
        value = math.inf if self.config.get("objective") else None  # a lost trial is the worst one
        return JobReturn(overrides=task.overrides, status=JobStatus.COMPLETED, _return_value=value)

    def _stop_all(self) -> None:
        for conn, (proc, _task) in self.running.items():
            proc.terminate()
            proc.join()
            conn.close()
        self.running.clear()


def _figures_done(task: _Task, status: str, value: Any) -> None:
    if status != "ok":
        print(f"vmexp: warning: {task.figures_of}: figures not drawn: {value}", file=sys.stderr, flush=True)


def _draw(job_dir: Path, kinds: tuple[str, ...]) -> int:
    from vmexp.report.run_figures import draw_run_figures

    return len(draw_run_figures(job_dir, only=kinds))


def _output_dir(ret: JobReturn) -> Path | None:
    try:
        return Path(str(ret.hydra_cfg.hydra.runtime.output_dir))  # type: ignore[union-attr]
    except Exception:
        return None
