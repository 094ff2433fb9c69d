"""The ``vmexp`` command (and ``python run.py``, ``python -m vmexp``): the Hydra application.

One entry for all three, so that they compose the same config tree and
run the same job function: the same overrides give the same files.

The config tree is ``conf/`` at the top of the repository. The package
reaches it through ``vmexp/conf``, a symbolic link to ``../conf`` in the
source tree and a real directory in a wheel (the link is followed when the
wheel is built), so a plain ``pip install .`` carries the configs and the
command works from any directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from itertools import islice
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vmexp import app
from vmexp.compose_once import compose_once
from vmexp.console import keep_going_without_a_reader, run_program

__all__ = ["conf_dir", "main", "run", "task"]

# vmexp.api starts this command in a child process and names a file here; every job writes
# where its results went into it (see vmexp.api). Unset for a user's command: nothing is written.
RECORD_ENV = "VMEXP_API_RECORD"

_handler_installed = False


def conf_dir() -> Path:
    """The config tree shipped with the package (``conf/`` of the repository in a source checkout)."""
    return (Path(__file__).resolve().parent / "conf").resolve()


def _record(path: str) -> None:
    """Tell vmexp.api where this job writes (atomically: the jobs of a sweep may run in parallel)."""
    hc = HydraConfig.get()
    doc = {"run_dir": str(Path(hc.runtime.output_dir).resolve())}
    if hc.mode == RunMode.MULTIRUN:
        doc["sweep_dir"] = str((Path(hc.runtime.cwd) / str(hc.sweep.dir)).resolve())
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)


def task(cfg: DictConfig) -> float | None:
    """Hydra's task function: one job (vmexp.app.main)."""
    record = os.environ.get(RECORD_ENV)
    if record:
        _record(record)
    return app.main(cfg)


def _print_version() -> None:
    """vmexp's version, and those of what its results depend on (a bug report wants all of them)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    deps = ", ".join(f"{name} {v(name)}" for name in ("hydra-core", "omegaconf", "simpy", "numpy"))
    from vmexp import __version__

    print(f"vmexp {__version__} (Python {platform.python_version()}; {deps})")


def _flags_first(parser: argparse.ArgumentParser, argv: list[str]) -> list[str] | None:
    """``argv`` with Hydra's flags (and their values) before the overrides; None if a token is unknown.

    Hydra's parser takes its overrides as one positional list, so argparse refuses overrides on both
    sides of a flag: ``python run.py hydra.sweep.dir=X -m threshold=64k,128k`` ended in
    "unrecognized arguments: threshold=64k,128k". The overrides keep their order among themselves.
    """
    actions = {name: a for a in parser._actions for name in a.option_strings}
    flags: list[str] = []
    overrides: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            overrides.append(token)
            continue
        action = actions.get(token.split("=", 1)[0])
        if action is None or action.nargs not in (None, 0):  # unknown, or an optional value (--info)
            return None
        flags.append(token)
        if action.nargs is None and "=" not in token:  # its value is the next token
            flags.extend(islice(tokens, 1))
    return flags + overrides


def _check_flags() -> bool:
    """Check Hydra's flags as Hydra will, in one line on error; True if ``-m`` was given.

    A misused flag (``--bogus``, ``--cfg bogus``) is one line, as every other bad input is. Hydra
    parses its flags with argparse, whose usage block of a dozen lines came before the error. The
    same parser (Hydra's own, so the flags stay Hydra's) is run first with argparse's error
    report replaced; it has no side effects (``--help`` is a plain flag in it). Flags given after
    overrides are moved before them in ``sys.argv``, where Hydra's parser reads them.
    """
    try:  # where hydra.main takes it from in Hydra 1.3; another release parses as it parses
        from hydra._internal.utils import get_args_parser
    except ImportError:
        return "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]
    parser = get_args_parser()

    def error(message: str) -> NoReturn:
        print(f"vmexp: error: {message} (see --help)", file=sys.stderr, flush=True)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]
    ordered = _flags_first(parser, sys.argv[1:])
    if ordered is not None:
        sys.argv[1:] = ordered
    return bool(parser.parse_args(sys.argv[1:]).multirun)


def _groups(conf: Path, parent: str = "") -> dict[str, list[str]]:
    """The config groups under ``conf`` (not Hydra's own) with their options, as Hydra lists them."""
    found: dict[str, list[str]] = {}
    for d in sorted(p for p in (conf / parent).iterdir() if p.is_dir()):
        group = f"{parent}/{d.name}" if parent else d.name
        if group == "hydra":
            continue
        options = sorted(f.stem for f in d.iterdir() if f.suffix == ".yaml" and f.is_file())
        if options:
            found[group] = options
        found.update(_groups(conf, group))
    return found


def _plain_help(conf: Path) -> str:
    """``--help`` alone, without Hydra: the same text, in a quarter of the time.

    Hydra composes the whole config for ``--help`` and lists every config group twice (once for a
    placeholder vmexp's template does not use), copying its config repository for each of some 90
    lookups: 2.1 s of CPU where composing takes 0.5 s. With no overrides on the command line, nothing
    can add a group (a plugin's groups come with ``hydra.searchpath=...``), so the groups are the
    shipped tree's. tests/test_errors.py holds this text to Hydra's, which ``--help`` with any override
    still prints.
    """
    from string import Template

    from vmexp.docs import help_text

    groups = _groups(conf)
    listing = "".join(f"{g}: {', '.join(groups[g])}\n" for g in sorted(groups))
    return Template(help_text()).substitute(APP_CONFIG_GROUPS=listing)


def main() -> None:
    """Parse the command line as Hydra does (overrides, ``-m``, ``--cfg``, ``--help``) and run."""
    global _handler_installed
    keep_going_without_a_reader()
    if not _handler_installed:
        app.install_error_handler()
        _handler_installed = True
    if "--version" in sys.argv[1:]:  # Hydra's own flag would print only Hydra's version
        _print_version()
        sys.exit(0)
    compose_once(multirun=_check_flags())
    conf = conf_dir()
    if not (conf / "config.yaml").is_file():
        print(f"vmexp: error: {conf / 'config.yaml'} is missing (reinstall vmexp)", file=sys.stderr)
        sys.exit(2)
    if sys.argv[1:] in (["--help"], ["-h"]):
        print(_plain_help(conf))
        sys.exit(0)
    try:
        hydra.main(version_base="1.3", config_path=str(conf), config_name="config")(task)()
    except (
        ValueError
    ) as e:  # Hydra's check of its own flags, before run_and_report ("Only one of --run, ...")
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"vmexp: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C: files are written whole or not at all, so a sweep can resume
        print(
            "vmexp: interrupted; a sweep goes on from where it stopped with the same command and resume=true",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    sys.exit(app.exit_status())


def run() -> NoReturn:
    """``main`` as the whole process (``vmexp``, ``run.py``, ``python -m vmexp``): see ``run_program``.

    A command that drew figures has imported matplotlib, pandas and seaborn, and the interpreter
    took 0.25-0.3 s to take them apart after the last file was written: 4-5 % of the README sweep,
    all of it on its critical path (bench/README.md, twelfth pass).
    """
    run_program(main, caller=sys._getframe(1))
