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
import re
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vmexp import __version__
from vmexp.config import ConfigError, Settings, register_configs, settings_json, validate
from vmexp.metrics import atomic_write, forget_previous_run, objective_of, summary_line, summary_of, write_run
from vmexp.status import exit_status, finished, note_failure, stop_note
from vmexp.units import format_duration
from vmexp.workload import build

__all__ = ["main", "run_settings", "exit_status", "USER_ERRORS", "install_error_handler"]

# Exceptions whose message is meant for the user as it is (WorkloadError and PolicyError are ConfigErrors).
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError,)


def _user_errors() -> tuple[type[BaseException], ...]:
    from vmexp.sim import SimError

    return (*USER_ERRORS, SimError)


class _Progress:
    """Prints simulated time now and then when a run takes more than a couple of seconds."""

    def __init__(self, total_ns: int | None, label: str) -> None:
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
                f"{self.label}simulated {format_duration(now_ns)}"
                + (f" of at most {format_duration(self.total)}" if self.total is not None else "")
                + f" "
                f"({t - self.t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


def run_settings(
    settings: Settings,
    out: Path,
    *,
    check: bool = False,
    quiet: bool = False,
    choices: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one validated experiment into ``out``; returns the metrics document.

    ``settings.json`` (the resolved settings, typed, with units) is written
    first, beside what the run writes; ``choices`` are the config-group
    options the run was composed from (``policy: lru``), recorded with it.
    """
    from vmexp.metrics import metrics_dict, remove_stale_temporaries
    from vmexp.sim import simulate

    # A stale "ok" from an earlier run in this directory must not vouch for files being rewritten.
    (out / "run.json").unlink(missing_ok=True)
    remove_stale_temporaries(out, recursive=True)
    atomic_write(out / "settings.json", settings_json(settings, choices))
    specs = build(settings.workload, settings.nprocs, settings.seed, settings.page_size)
    progress = None if quiet else _Progress(settings.stop_at, "")
    t0 = time.monotonic()
    result = simulate(settings, specs, check=check, progress=progress)
    wall = time.monotonic() - t0
    write_run(out, result)
    if settings.figures:
        from vmexp.report.deferred import draw_job_figures

        draw_job_figures(out, settings)  # or left to the sweep, which draws its jobs' figures in parallel
    doc = metrics_dict(result)
    stopped = stop_note(doc)
    _write_run_json(out, "stopped" if stopped else "ok", "", wall, len(specs), stopped)
    if result.explain is not None and not quiet:
        _print_explain(result.explain, out / "explain.log")
    return doc


# The narration's lines shown on the console; the rest is in explain.log (a default run narrates ~40 MB a second).
EXPLAIN_CONSOLE_LINES = 2000


def _print_explain(lines: list[str], log: Path) -> None:
    shown = lines[:EXPLAIN_CONSOLE_LINES]
    print("\n".join(shown))
    if len(lines) > len(shown):
        print(f"... {len(lines) - len(shown):,} more lines of the {len(lines):,} in {log}")


def _write_run_json(out: Path, status: str, error: str, wall: float, nprocs: int, stopped: str = "") -> None:
    doc = {
        "status": status,
        "error": error,
        "stopped": stopped,
        "wall_time_s": round(wall, 3),
        "host": platform.node(),
        "python": platform.python_version(),
        "vmexp": __version__,  # which simulator gave the results: metrics.json stays free of it
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
    return finished(info.get("status")) and (out / "metrics.json").is_file()


WARN_ENDED = 5  # processes named one per line when a run ends some early; the rest are counted


def _warn_late_snapshots(times: tuple[int, ...], doc: dict[str, Any], label: str) -> None:
    """Heap snapshots asked for after the run ended were not taken: say so rather than leave them out."""
    end = round(doc["system"]["sim_time_s"] * 1e9)
    late = [t for t in times if t > end]
    if late:
        when = ", ".join(format_duration(t) for t in late)
        print(
            f"vmexp: warning: {label}heap snapshot{'s' if len(late) != 1 else ''} at {when} not taken: "
            f"the run ended at {format_duration(end)}",
            file=sys.stderr,
        )


def _warn_ended(processes: list[dict[str, Any]], label: str, out: Path) -> None:
    """A warning per process that ended early (OOM-killed, failed), up to ``WARN_ENDED``, then one count.

    A run of a thousand processes that overruns its memory can lose hundreds
    to the OOM killer; a line for each would bury the summary above them.
    """
    ended = [p for p in processes if p["exit"] not in ("ok", "duration")]
    for p in ended[:WARN_ENDED]:
        why = f": {p['error']}" if p["error"] else ""
        print(f"vmexp: warning: {label}pid {p['pid']} ({p['name']}) ended {p['exit']}{why}", file=sys.stderr)
    rest = ended[WARN_ENDED:]
    if rest:
        kinds: dict[str, int] = {}
        for p in rest:
            kinds[p["exit"]] = kinds.get(p["exit"], 0) + 1
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        print(
            f"vmexp: warning: {label}{len(rest)} more processes ended early ({what}); "
            f"every process is in {out / 'metrics.json'}",
            file=sys.stderr,
        )


def _sweep_without_m(hc: Any) -> None:
    """A preset whose hydra.sweeper.params define a sweep is run with -m; without it, say so."""
    params = OmegaConf.select(hc, "sweeper.params", default=None)
    if not params:
        return
    swept = ", ".join(f"{k}={v}" for k, v in params.items())
    preset = str(hc.runtime.choices.get("experiment") or "")
    what = f"experiment={preset}" if preset and preset != "None" else "hydra.sweeper.params"
    args = _multirun_command(sys.argv[1:]) or what
    raise ConfigError(f"{what}: this preset is a sweep ({swept}): add -m (python run.py -m {args})")


def _multirun_command(argv: list[str]) -> str:
    """``argv`` (run.py's arguments, without -m) as the arguments of the sweep it asks for, for a shell.

    A sweep ignores ``hydra.run.dir``, a single run's directory, and writes into
    ``hydra.sweep.dir``: the directory the user chose is asked for by that key
    (unless the command gives one), or the advice would run the sweep somewhere else.
    ``--run`` would contradict ``-m``; the other flags (``-cn NAME``...) stay with their values.
    """

    def key(arg: str) -> str:
        return arg.lstrip("+~").split("=", 1)[0]

    sweep_dir = any(key(a) == "hydra.sweep.dir" for a in argv)
    out: list[str] = []
    for a in argv:
        if a in ("--run", "-r"):
            continue
        if key(a) == "hydra.run.dir":
            if sweep_dir:
                continue
            prefix = a[: len(a) - len(a.lstrip("+~"))]
            a = f"{prefix}hydra.sweep.dir={a.split('=', 1)[1]}" if "=" in a else a
        out.append(shlex.quote(a))
    return " ".join(out)


def objective_value(settings: Settings, doc: dict[str, Any]) -> float:
    """The weighted sum of summary metrics that ``objective`` defines (what Optuna minimises)."""
    return objective_of(summary_of(doc), dict(settings.objective))


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
        # Before anything can fail: a crash report of an earlier run here is not this one's.
        forget_previous_run(out)
        if not multirun:
            _sweep_without_m(hc)
        settings = validate(cfg)
        choices = {
            str(k): str(v)
            for k, v in hc.runtime.choices.items()
            if v is not None and not str(k).startswith("hydra/")
        }
        doc = run_settings(settings, out, quiet=multirun, choices=choices)
        print(f"{label}{summary_line(doc, out)}", flush=True)
        if multirun and settings.explain:
            # A sweep's jobs run side by side: their narrations, interleaved on one console, would
            # read as one nonsense story. Each stays in its job's file, and the console says where.
            print(f"{label}narration (explain=true): {out / 'explain.log'}", flush=True)
        _warn_ended(doc["processes"], label, out)
        _warn_late_snapshots(settings.heap_snapshots, doc, label)
        if settings.objective:
            value = objective_value(settings, doc)
            print(f"{label}objective = {value:.6g}", flush=True)
            return value
        return None
    except _user_errors() as e:
        msg = str(e)
        _write_run_json(out, "failed", msg, time.monotonic() - t0, 0)
        print(f"vmexp: error: {label}{msg}", file=sys.stderr, flush=True)
        if not multirun:
            raise SystemExit(2) from None
        note_failure()
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
        note_failure()
        return math.inf if cfg.get("objective") else None


# ---------------------------------------------------------------------------
# One-line errors for what Hydra rejects before the task function runs
# (unknown keys, values of the wrong type, unknown group options).
# ---------------------------------------------------------------------------


_SEE_HELP = "see python run.py --help for the valid keys"


def _component_hint(key: str, parent: Any) -> str | None:
    """An unknown key inside a component's section: list that component's parameters.

    A key that *is* one of the component's parameters reaches here too: the
    group's YAML file leaves it out (``workload=batch`` sets no ``volume``),
    and Hydra's struct mode refuses an override of a key the composed config
    does not have. Saying "not a parameter" and then listing it as valid
    would be a contradiction; what the user needs is Hydra's ``+``.
    """
    from vmexp.registry import ALLOCATORS, POLICIES, REGISTRIES

    section, _, name = key.rpartition(".")
    try:
        if section == "policy.params":
            policy = parent._get_parent()
            comp, what = POLICIES.get(str(policy.name)), "policy"
        elif section == "allocator":
            comp, what = ALLOCATORS.get(str(parent.name)), "allocator"
        else:
            last = section.rsplit(".", 1)[-1]
            reg = REGISTRIES.get(last) if section.startswith("workload") else None
            if section == "workload":
                reg = REGISTRIES["workload"]
            if reg is None:
                return None
            comp, what = reg.get(str(parent.get(reg.name_key, reg.default))), reg.what
        if name in _names(comp.params).split(", "):
            arg = _override_of(key)
            k, _, value = arg.partition("=")
            if key.startswith(f"{k}."):
                # section={...}: Hydra merges the mapping into the preset's section, it does not
                # replace it, and the preset's section has no such key.
                return (
                    f"{key}: a parameter of {what} {comp.name}, but {k}={{...}} is merged into this "
                    f"config's {k}, which does not set it; to replace {k}: '~{k}' '+{k}={value}'"
                )
            return (
                f"{key}: a parameter of {what} {comp.name} that this config does not set; "
                f"add it with '+': +{arg}"
            )
        return f"{key}: not a parameter of {what} {comp.name} (valid: {_names(comp.params)})"
    except Exception:  # the hint is a courtesy: any doubt, and the plain message stands
        return None


def _override_of(key: str) -> str:
    """The command-line override that set ``key``, a key below it or a section holding it.

    ``key=VALUE`` if none did (the key came from a file).
    """
    found = ""
    for arg in sys.argv[1:]:
        k, _, value = arg.lstrip("+~").partition("=")
        if k == key or k.startswith((f"{key}.", f"{key}[")):
            return arg.lstrip("+~")
        if key.startswith(f"{k}.") and value.lstrip().startswith("{") and len(arg) > len(found):
            found = arg.lstrip("+~")  # a mapping for a section above the key (not a group choice)
    return found or f"{key}=VALUE"


def _is_weights(key: str) -> bool:
    """Whether ``key`` is a map of names to weights (``objective``), whose keys are the user's."""
    from vmexp.config import Settings
    from vmexp.fields import iter_specs

    return any(k == key and spec.kind == "weights" for k, spec in iter_specs(Settings))


def _names(params: type) -> str:
    from vmexp.fields import declared

    return ", ".join(sorted(name for name, _f, _s in declared(params))) or "none"


def _unknown_key(key: str, parent: Any = None) -> str:
    hint = _component_hint(key, parent) if parent is not None else None
    if hint:
        return hint
    section, _, name = key.rpartition(".")
    if section and _is_weights(section):
        # objective={majflt: 1} merges into the empty map, which Hydra's struct mode refuses key by key.
        return f"{key}: {section}'s keys are yours to add, with '++': ++{key}=1 or ++{section}={{{name}: 1}}"
    if "." not in key:
        import difflib

        from vmexp.config import Settings
        from vmexp.fields import declared

        close = difflib.get_close_matches(key, sorted(n for n, _f, _s in declared(Settings)), n=1)
        if close:
            return f"{key}: unknown key (did you mean {close[0]}? {_SEE_HELP})"
    return f"{key}: unknown key ({_SEE_HELP})"


def _one_line(ex: BaseException) -> str:
    """One line, naming the key, for an error Hydra raised before the task function ran."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(ex).strip().splitlines()
    first = text[0] if text else type(ex).__name__
    if isinstance(ex, OSError) and ex.filename is not None:
        # Hydra making the run's or the sweep's directory (hydra.run.dir, hydra.sweep.dir, out_dir=):
        # mkdir's "[Errno 17] File exists" means a file is where the directory should be.
        if isinstance(ex, FileExistsError):
            return f"{ex.filename}: is a file, not a directory (the output directory cannot be made there)"
        return f"{ex.filename}: {ex.strerror}"
    if first.startswith("Ambiguous value for argument"):
        arg = first.split("'", 1)[1].rsplit("'", 1)[0] if "'" in first else ""
        key, _, value = arg.partition("=")
        return (
            f"{key}: {value} is several values: a sweep needs -m (python run.py -m {arg}); "
            f"a list is written {key}=[{value}], text with a comma {key}='\"{value}\"'"
        )
    override = getattr(ex, "override", None)
    if isinstance(override, str):  # hydra.errors.OverrideParseException
        arg = override
        key, _, value = arg.partition("=")
        reason = next((t.strip() for t in text if not t.startswith(("Error parsing", "See https"))), "")
        if "=" in value:
            return f"{key}: a value with '=' in it must be quoted: {key}='{value}' (Hydra's override syntax)"
        return f"{key}: {reason} in {arg!r} (Hydra's override syntax)"
    cause: BaseException | None = ex
    while cause is not None:
        if isinstance(cause, OmegaConfBaseException):
            key = getattr(cause, "full_key", None) or ""
            msg = str(getattr(cause, "msg", "") or cause).splitlines()[0].strip()
            if "not in struct" in msg or (msg.startswith("Key '") and "' not in '" in msg):
                return _unknown_key(key, getattr(cause, "parent_node", None))
            if _OMEGACONF_LIST.fullmatch(msg):
                return f"{key}: expected a list, written in brackets: {key}=[...]"
            if msg.startswith("Cannot assign ") and " to Dict[" in msg:
                return f"{key}: expected a mapping, written in braces: ++{key}='{{KEY: VALUE}}'"
            typed = _OMEGACONF_TYPE.fullmatch(msg)
            if typed is not None:  # OmegaConf's wording ("Value 'abc' of type 'str' ...") in ours
                expected = typed.group("type") or "bool"
                return f"{key}: expected {_EXPECTED.get(expected, expected)}, got {typed.group('value')!r}"
            return f"{key}: {msg}" if key else msg
        cause = cause.__cause__ or cause.__context__
    if "Could not override" in first:
        key = first.split("'")[1] if "'" in first else first
        return _unknown_key(key)
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
        hint = ""
        missing = (
            first.split("Could not find '", 1)[1].split("'", 1)[0] if "Could not find '" in first else ""
        )
        group, _, option = missing.rpartition("/")
        if option and option.lower() != option and option.lower() in options:
            hint = f"; names are lower case: {group}={option.lower()}"
        return f"{first} (valid: {', '.join(options)}{hint})" if options else first
    if "Could not load 'hydra/launcher/ray'" in first:  # ray_local's base config comes with the extra
        return f"{first} (the Ray launcher is an extra: pip install -e '.[ray]')"
    return first


# OmegaConf's type checks of the schema: "Value 'abc' of type 'str' could not be converted to Integer",
# "Value 'maybe' is not a valid bool (type str)".
_OMEGACONF_TYPE = re.compile(
    r"Value '(?P<value>.*)' (?:of type '\w+' could not be converted to (?P<type>\w+)|is not a valid (?P<bool>bool) \(type \w+\))"
)
_OMEGACONF_LIST = re.compile(r"Invalid value assigned: \w+ is not a ListConfig, list or tuple\.")
_EXPECTED = {"Integer": "an integer", "Float": "a number", "bool": "true or false"}


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


def _help_text() -> str:
    """``--help``'s text; empty when the command line does not ask for it.

    Hydra resolves the help template while it composes every config (merging
    it into its typed ``hydra.help`` node), not only for ``--help``; a run has
    no use for the text, which lists every component and every setting.
    """
    if not {"--help", "-h"} & set(sys.argv[1:]):
        return ""
    from vmexp.docs import help_text

    return help_text()


def register() -> None:
    from hydra.core.config_store import ConfigStore

    register_configs()
    # The help text is an interpolation (_help_text), built only when --help asks for it.
    ConfigStore.instance().store(
        group="hydra/help",
        name="vmexp",
        node={"app_name": "vmexp", "header": "", "footer": "", "template": "${vmexp_help:}"},
        provider="vmexp",
    )
    if not OmegaConf.has_resolver("vmexp_help"):
        OmegaConf.register_new_resolver("vmexp_help", _help_text)
    if not OmegaConf.has_resolver("vmexp_job"):
        OmegaConf.register_new_resolver("vmexp_job", _job_subdir)
    if not OmegaConf.has_resolver("vmexp_safe"):
        OmegaConf.register_new_resolver("vmexp_safe", _safe_name)


register()
