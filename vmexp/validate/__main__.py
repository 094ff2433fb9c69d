"""``python -m vmexp.validate TRACE [overrides...]``: the simulator beside the real glibc, call for call.

(``python -m vmexp.validate kernel TRACE [overrides...]`` compares page faults
with the machine's real kernel instead: see :mod:`vmexp.validate.kernel_cli`.)

The trace is replayed twice: through the simulator, run exactly as a user
runs it (``python -m vmexp`` is ``python run.py``, and works where vmexp is
installed, not only in a source checkout)::

    python -m vmexp workload=trace workload.path=TRACE nprocs=1 hydra.run.dir=TMP OVERRIDES...

and against this machine's glibc (``replay_real``), with the mallopt
settings the run resolved (its ``settings.json``: a threshold set in a
preset or a YAML file counts as one on the command line). The run's
``syscalls.csv`` and ``metrics.json`` (README.md, Outputs) are read back. Both are printed side by side: every
brk/mmap/munmap/mremap in order as (op, call, length), the ten mallinfo2
fields, the page faults. Addresses are not compared, since ASLR moves them
on every real run.

Exit status: 0 when the syscalls and mallinfo2 agree for every process,
1 when they differ (or the syscalls could not be observed because strace is
missing), 2 when either side could not be run or the simulator did not replay
the whole trace (a ``duration``, the OOM killer: :func:`check_finished`).
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmexp.api import hydra_quoted
from vmexp.cliargs import Parser
from vmexp.config import read_settings_json
from vmexp.console import keep_going_without_a_reader
from vmexp.validate.real import (
    MALLINFO_FIELDS,
    RealGlibcError,
    ReplayResult,
    Syscall,
    mallopt_from_settings,
    replay_real,
)
from vmexp.workload.traces import TraceError, parse_trace

__all__ = [
    "SimulatorOOMKilled",
    "SimulatorRunError",
    "Verdict",
    "check_comparable",
    "check_finished",
    "check_run_of",
    "check_overrides",
    "compare",
    "format_side_by_side",
    "main",
    "read_run",
    "run_simulator",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


class SimulatorRunError(RuntimeError):
    """The simulator's run did not produce results that can be read."""


class SimulatorOOMKilled(SimulatorRunError):
    """A simulated process was killed by an OOM killer before the end of its trace.

    ``group``: by its memory cgroup's (``cgroup.memory_max`` reached and
    reclaim made no progress), which the real kernel's group does too in
    some runs, so the kernel command compares that outcome instead of
    refusing; otherwise by the machine's (``ram`` too small).
    """

    def __init__(self, message: str, pid: int, ops: int, group: bool) -> None:
        super().__init__(message)
        self.pid = pid
        self.ops = ops  # operations of its trace it had begun (the last is the one it was killed in)
        self.group = group


def read_run(run_dir: str | os.PathLike[str]) -> dict[int, ReplayResult]:
    """Each process's results from a simulator run directory (``syscalls.csv`` + ``metrics.json``)."""
    d = Path(run_dir)
    try:
        metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        procs = metrics["processes"]
        calls: dict[int, list[Syscall]] = {}
        with open(d / "syscalls.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                pid = int(float(row["pid"]))
                calls.setdefault(pid, []).append(
                    (
                        int(float(row["op"])),
                        row["syscall"],
                        int(float(row["addr"])),
                        int(float(row["length"])),
                        int(float(row["result"])),
                    )
                )
        out: dict[int, ReplayResult] = {}
        for p in procs:
            pid = int(p["pid"])
            mallinfo = {k: int(p["mallinfo"][k]) for k in MALLINFO_FIELDS}
            out[pid] = ReplayResult(calls.get(pid, []), mallinfo, int(p["minflt"]), int(p["majflt"]))
        return out
    except FileNotFoundError as e:
        raise SimulatorRunError(f"{d}: the run wrote no {Path(str(e.filename)).name}") from None
    except (KeyError, ValueError, TypeError) as e:
        msg = f"metrics.json or syscalls.csv does not follow the output contract ({e!r})"
        raise SimulatorRunError(f"{d}: {msg}") from None


def check_finished(run_dir: str | os.PathLike[str]) -> None:
    """Refuse a simulator run in which a process did not replay the whole trace.

    A process stopped by ``duration``, killed by the OOM killer (a small
    ``ram`` or ``cgroup.memory_max``) or ended by a fault has done only part
    of what the real side did: compared call for call, it would DIFFER for a
    reason the comparison does not show (``run.py``'s warning about it is not
    printed here). The message names the process, how it ended and why, and
    what would let it finish; a fault of the trace itself (a double free, a
    touch outside a block) is the simulator's message, which names the line.
    """
    d = Path(run_dir)
    try:
        metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        ended = [
            (p["pid"], p["exit"], p.get("error") or "", p.get("ops", 0))
            for p in metrics["processes"]
            if p["exit"] != "ok"
        ]
        group_kills = {k["pid"] for k in metrics.get("system", {}).get("oom_kill_log", []) if k.get("memcg")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SimulatorRunError(f"{d}: metrics.json does not follow the output contract ({e!r})") from None
    for pid, how, why, ops in ended:
        if how == "duration":
            raise SimulatorRunError(
                f"the simulator's process {pid} was stopped by duration before the end of the trace: "
                "the comparison needs the whole trace (give no duration)"
            )
        if how == "oom-killed":
            raise SimulatorOOMKilled(
                f"the simulator's process {pid} was OOM-killed before the end of the trace ({why}): "
                "the comparison needs the whole trace (give it more ram or swap, or a larger cgroup.memory_max)",
                pid,
                ops,
                pid in group_kills,
            )
        raise SimulatorRunError(f"the simulator's process {pid} ended {how}: {why}")


def check_run_of(trace: str, run_dir: str, doc: dict[str, Any]) -> None:
    """Refuse a ``--run-dir`` run that did not replay TRACE, as far as its settings.json tells.

    Its ``workload.kind`` must be ``trace``; its ``workload.path`` must be
    TRACE's file when that path names a file here (a relative path written
    in another directory may not: then it cannot be told, and passes).
    Another run would be compared with TRACE's real replay, and its DIFFER
    would mean nothing.
    """
    values = doc.get("settings") or {}

    def value(key: str) -> object:
        entry = values.get(key)
        return entry.get("value") if isinstance(entry, dict) else None

    if value("workload.kind") != "trace":
        workload = (doc.get("choices") or {}).get("workload") or value("workload.kind")
        raise SimulatorRunError(f"--run-dir: {run_dir} is a run of workload={workload}, not of a trace")
    path = value("workload.path")
    if isinstance(path, str) and os.path.isfile(path) and not os.path.samefile(path, trace):
        raise SimulatorRunError(f"--run-dir: {run_dir} replayed {path}, not {trace} (its workload.path)")


def check_comparable(doc: dict[str, Any]) -> None:
    """Refuse a simulator run that models something the real side cannot be.

    The real side is this machine's glibc, with this machine's page size. A
    run of another allocator (``allocator=best_fit``), or with another
    ``page_size`` (glibc sizes its heap steps, trims and mmapped chunks in
    pages), DIFFERs from it whatever the model's fidelity; the header said
    "glibc defaults" above such a DIFFER, as if glibc had been compared.
    """
    values = doc.get("settings") or {}

    def value(key: str) -> object:
        entry = values.get(key)
        return entry.get("value") if isinstance(entry, dict) else None

    allocator = value("allocator.name") or (doc.get("choices") or {}).get("allocator")
    if allocator not in (None, "glibc"):
        raise SimulatorRunError(
            f"allocator={allocator}: the real side is glibc, so the comparison needs allocator=glibc "
            "(python -m vmexp.compare puts two simulator runs side by side)"
        )
    page_size = value("page_size")
    host = os.sysconf("SC_PAGE_SIZE")
    if isinstance(page_size, int) and page_size != host:
        raise SimulatorRunError(
            f"page_size={page_size}: the real glibc runs with this machine's pages of {host} bytes, "
            f"so the comparison needs page_size={host}"
        )


def check_overrides(trace: str, overrides: Sequence[str]) -> list[str]:
    """The overrides to give the simulator; refuses those that would make it run something else.

    ``run_simulator`` sets ``workload=trace``, ``workload.path=TRACE`` and
    ``hydra.run.dir``; an override given after them wins in Hydra, so
    ``workload.path=other.trace`` would compare the real glibc on TRACE with
    the simulator on another file and print a DIFFER that means nothing, and
    ``hydra.run.dir=D`` would write the run where it is not read back.
    Overrides that say what is already set (``workload=trace``, the same
    path) are harmless: they are left out of the list returned, so that the
    simulator may be given another file holding the same operations.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    rest = []
    for ov in overrides:
        try:
            sweep = parser.parse_override(ov).is_sweep_override()
        except HydraException:
            sweep = False  # not an override Hydra reads: the simulator's run says what is wrong with it
        if sweep:
            raise SimulatorRunError(
                f"{ov}: the comparison replays one configuration; give one value and run it once per value"
            )
        key, eq, value = ov.lstrip("+~").partition("=")
        value = value.strip().strip("'\"")
        if key == "experiment":
            # A preset is a sweep: run.py's advice (add -m, with validate's own temporary run
            # directory in the command it printed) does not apply to validate, which has no -m.
            raise SimulatorRunError(
                f"{ov}: a preset is a sweep, and the comparison replays one configuration; "
                f"give its settings one value each (python run.py --cfg job {ov} shows them)"
            )
        if key == "workload" and not (eq and value == "trace"):
            raise SimulatorRunError(
                f"{ov}: the comparison replays the trace on both sides (workload=trace); "
                "give no other workload"
            )
        if key == "workload.path" and not (eq and os.path.abspath(value) == os.path.abspath(trace)):
            raise SimulatorRunError(
                f"{ov}: the trace to replay is the first argument ({trace}); give it no other path"
            )
        if key == "hydra.run.dir":
            raise SimulatorRunError(
                f"{ov}: the simulator's run goes to a temporary directory; "
                "to compare a run you made yourself, give --run-dir RUN_DIR"
            )
        if key not in ("workload", "workload.path"):
            rest.append(ov)
    return rest


def run_simulator(trace: str, overrides: Sequence[str], run_dir: str, root: Path = REPO_ROOT) -> None:
    """Run the project's app on the trace, as a user would, into ``run_dir``.

    ``root`` is the directory that holds this ``vmexp`` package: run there,
    ``python -m vmexp`` imports the same vmexp as this command, from a source
    checkout (where run.py is beside it) or an installed wheel (where there
    is no run.py).
    """
    overrides = check_overrides(trace, overrides)
    cmd = [
        sys.executable,
        "-m",
        "vmexp",
        "workload=trace",
        f"workload.path={hydra_quoted(os.path.abspath(trace))}",  # the file's name is not syntax
        "nprocs=1",
        f"hydra.run.dir={hydra_quoted(run_dir)}",
        *overrides,
    ]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        last = lines[-1] if lines else ""
        if r.returncode == 2 and last.startswith("vmexp: error: "):
            raise SimulatorRunError(
                last.removeprefix("vmexp: error: ")
            )  # the user's mistake, as run.py names it
        raise SimulatorRunError(f"the simulator failed (exit {r.returncode}): {last}")


@dataclass(frozen=True)
class Verdict:
    """Whether the two sides agree, per criterion. ``syscalls`` is None when they were not observed."""

    syscalls: bool | None
    mallinfo: bool

    @property
    def ok(self) -> bool:
        return bool(self.syscalls) and self.mallinfo


def compare(real: ReplayResult, sim: ReplayResult) -> Verdict:
    """Syscalls agree when (op, call, length) agree one for one; mallinfo2 when all ten fields do."""
    calls = None if real.syscalls is None or sim.syscalls is None else real.calls() == sim.calls()
    return Verdict(calls, all(real.mallinfo[k] == sim.mallinfo[k] for k in MALLINFO_FIELDS))


def _call(c: tuple[int, str, int] | None) -> str:
    if c is None:
        return f"{'-':>6}  {'':<7}{'':>12}"
    return f"{c[0]:>6}  {c[1]:<7}{c[2]:>12}"


def _syscall_rows(real: list[tuple[int, str, int]], sim: list[tuple[int, str, int]]) -> list[str]:
    """Both call lists aligned: equal runs side by side, a missing or extra call against a dash."""
    rows: list[str] = []
    sm = difflib.SequenceMatcher(None, real, sim, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            rows += [f"   {_call(a)}    {_call(b)}" for a, b in zip(real[i1:i2], sim[j1:j2], strict=True)]
            continue
        left, right = real[i1:i2], sim[j1:j2]
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            rows.append(f" ! {_call(a)}    {_call(b)}")
    return rows


def format_side_by_side(
    real: ReplayResult,
    sim: ReplayResult,
    *,
    title: str = "",
    real_label: str = "real glibc",
    sim_label: str = "simulator",
    only_diff: bool = False,
) -> str:
    """The report of one process: syscalls, mallinfo2, faults, with ``!`` on every row that differs."""
    verdict = compare(real, sim)
    out: list[str] = [title] if title else []
    head = f"{'op':>6}  {'call':<7}{'length':>12}"
    out.append(f"   {real_label:<27}    {sim_label}")
    out.append(f"   {head}    {head}")
    if real.syscalls is None:
        out.append("   (not observed: strace is not installed)")
        out += [f"   {_call(None)}    {_call(c)}" for c in sim.calls()]
    else:
        rows = _syscall_rows(real.calls(), sim.calls())
        out += [r for r in rows if r.startswith(" !")] if only_diff else rows
    n_real = "?" if real.syscalls is None else str(len(real.syscalls))
    word = {None: "not compared", True: "agree", False: "DIFFER"}[verdict.syscalls]
    out.append(f"syscalls: {n_real} real, {len(sim.calls())} simulated: {word}")
    out.append("")
    out.append(f"   {'mallinfo2':<10}{real_label:>18}{sim_label:>18}")
    for k in MALLINFO_FIELDS:
        a, b = real.mallinfo[k], sim.mallinfo[k]
        out.append(f" {'!' if a != b else ' '} {k:<10}{a:>18}{b:>18}")
    out.append(f"mallinfo2: {'agree' if verdict.mallinfo else 'DIFFER'}")
    out.append("")
    for name, a, b in (("minflt", real.minflt, sim.minflt), ("majflt", real.majflt, sim.majflt)):
        rel = f"  ({(b - a) / a * 100:+.1f} %)" if a else ""
        out.append(f"   {name:<10}{a:>18}{b:>18}{rel}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    keep_going_without_a_reader()
    args_in = list(sys.argv[1:] if argv is None else argv)
    # A trace that is literally called "kernel" can still be given as ./kernel.
    if args_in and args_in[0] == "kernel":
        from vmexp.validate.kernel_cli import main as kernel_main

        return kernel_main(args_in[1:])
    parser = Parser(
        prog="python -m vmexp.validate",
        description="Replay a trace against the real glibc and through the simulator, side by side.",
    )
    parser.add_argument("trace", help="an allocation trace (the format: README.md, Trace format)")
    parser.add_argument(
        "overrides", nargs="*", default=[], help="settings as for run.py, e.g. threshold=64k (optional)"
    )  # a default, or argparse calls the list required when the trace is missing
    parser.add_argument(
        "--run-dir",
        help="use this simulator run directory (its settings.json gives the mallopt values), not a new run",
    )
    parser.add_argument("--only-diff", action="store_true", help="print only the syscalls that differ")
    parser.epilog = (
        "python -m vmexp.validate kernel TRACE [overrides]: page faults against the real kernel instead"
    )
    # Intermixed: "TRACE --only-diff threshold=64k" reads as meant; parse_args stops the
    # overrides at the first option and calls the rest "unrecognized arguments".
    args = parser.parse_intermixed_args(args_in)

    try:
        trace = parse_trace(args.trace)
        if args.run_dir and args.overrides:
            raise SimulatorRunError(
                "--run-dir: the run's settings.json says how it ran; give no settings with it"
            )
        with tempfile.TemporaryDirectory(prefix="vmexp-validate-") as tmp:
            run_dir = args.run_dir or os.path.join(tmp, "run")
            if not args.run_dir:
                run_simulator(args.trace, args.overrides, run_dir)
            sim = read_run(run_dir)
            doc = read_settings_json(Path(run_dir))
            if doc is None:
                raise SimulatorRunError(
                    f"{run_dir}: the run wrote no settings.json (run it again with this vmexp)"
                )
            if args.run_dir:
                check_run_of(args.trace, args.run_dir, doc)
            check_comparable(doc)
            check_finished(run_dir)
        settings = mallopt_from_settings(doc)
        use_strace = shutil.which("strace") is not None
        real = {
            pid: replay_real(args.trace, pid=pid, strace=use_strace, **settings) for pid in sorted(trace.ops)
        }
    except (TraceError, RealGlibcError, SimulatorRunError) as e:
        print(f"vmexp.validate: error: {e}", file=sys.stderr)
        return 2

    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else "glibc"
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None) or "glibc defaults"
    print(f"{args.trace}: real {libc} vs the simulator ({shown})")
    if not use_strace:
        print("note: strace is not installed, so the real syscalls cannot be observed")
    all_ok = True
    # The simulator numbers a trace's processes 1, 2, ... in the order they first appear
    # (build_trace), whatever their pPID: says; the real side replays each by its pPID.
    sim_pid = {pid: k for k, pid in enumerate(trace.ops, 1)}
    for pid, r in real.items():
        s = sim.get(sim_pid[pid])
        print()
        if s is None:
            print(f"process {pid}: the simulator's run has no process {sim_pid[pid]} (it has {sorted(sim)})")
            all_ok = False
            continue
        label = f"real {libc}"
        title = f"process {pid}" + (f" (the simulator's pid {sim_pid[pid]})" if sim_pid[pid] != pid else "")
        print(format_side_by_side(r, s, title=title, real_label=label, only_diff=args.only_diff))
        all_ok = all_ok and compare(r, s).ok
    print()
    print("RESULT: agree" if all_ok else "RESULT: DIFFER")
    return 0 if all_ok else 1


if __name__ == "__main__":
    from vmexp.console import run_program

    run_program(main)
