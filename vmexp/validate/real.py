"""Replay a trace against the machine's real glibc: the ground truth the simulator is held to.

:func:`replay_real` runs one process of a trace through ``replayer.c`` (built
once with the system C compiler and cached), under strace, and returns what
the real glibc did: every brk/mmap/munmap/mremap with the operation that
caused it, mallinfo2 after the last operation, and the minor/major faults of
the replay loop alone. The API is stable; the glibc model's tests and
``python -m vmexp.validate`` rely on it::

    from vmexp.validate.real import replay_real, mallopt_from_overrides
    res = replay_real("tests/traces/trim.trace", **mallopt_from_overrides(["threshold=64k"]))
    res = replay_real("my.trace", **mallopt_from_settings(read_settings_json(run_dir)))
    res.syscalls   # [(op, "brk", addr, length, result), ...] as in syscalls.csv
    res.mallinfo   # {"arena": ..., ...} the ten mallinfo2 fields
    res.minflt, res.majflt

Why a separate C program rather than ctypes in this interpreter: Python's own
allocations would share the heap being measured. The replayer allocates
nothing itself (see the comment at its top), so the heap holds exactly the
trace's blocks plus glibc's 656-byte tcache structure, as in any C program.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from vmexp.config import ConfigError, Settings
from vmexp.libc.base import MALLINFO_FIELDS
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, TOUCH, Op
from vmexp.workload.traces import parse_trace

__all__ = [
    "MALLINFO_FIELDS",
    "OverrideError",
    "RealGlibcError",
    "RealResult",
    "ReplayError",
    "ReplayResult",
    "Syscall",
    "ToolMissing",
    "build_replayer",
    "MalloptSettings",
    "mallopt_from_overrides",
    "mallopt_from_settings",
    "parse_strace",
    "replay_real",
]

# (op, name, addr, length, result), with the meanings of syscalls.csv (README, Outputs).
Syscall = tuple[int, str, int, int, int]

_SOURCE = Path(__file__).with_name("replayer.c")
# -fno-builtin: the compiler must not fold malloc+memset into calloc or drop
# the replay's loads; -z now: symbols are bound before the replay, so lazy
# binding's first-call work (and its page faults) happens outside the loop.
_CFLAGS = ("-O2", "-std=gnu11", "-fno-builtin", "-Wall", "-Wl,-z,now")
_INT_MAX = (1 << 31) - 1
_TRACED = "brk,mmap,munmap,mremap,lseek"
_REPLAYED = frozenset((MALLOC, CALLOC, REALLOC, FREE, TOUCH))


class RealGlibcError(RuntimeError):
    """The real-glibc replay could not be done; the message says why."""


class ToolMissing(RealGlibcError):
    """A tool the replay needs (a C compiler, strace) is not installed or cannot run here."""


class ReplayError(RealGlibcError):
    """The replayer stopped: the trace is wrong at run time (e.g. a double free), or glibc aborted."""


OverrideError = ConfigError  # the error a bad override gives (kept for scripts that catch it by this name)


@dataclass(frozen=True)
class ReplayResult:
    """What one process of a trace did to memory.

    ``syscalls``: every brk/mmap/munmap/mremap in order, as
    ``(op, name, addr, length, result)``: ``op`` is the global index of the
    trace operation that caused it; for ``brk``, ``addr`` is the requested
    break (0 for ``brk(NULL)``), ``length`` the change of the break (0 for the
    query) and ``result`` the new break; for ``mmap``, ``addr`` is the new
    mapping's address and ``length`` its length; for ``munmap`` the unmapped
    range and result 0; for ``mremap``, ``addr`` is the old address,
    ``length`` the new length and ``result`` the (possibly moved) new
    address. ``None`` when the syscalls were not observed (no strace).

    ``mallinfo``: the ten mallinfo2 fields after the last operation.
    ``minflt``/``majflt``: page faults of the replay loop only.

    The simulator's run is read into the same type, so both sides of a
    validation compare field by field.
    """

    syscalls: list[Syscall] | None
    mallinfo: dict[str, int]
    minflt: int
    majflt: int

    def calls(self) -> list[tuple[int, str, int]]:
        """``(op, name, length)`` of each syscall: what must agree between glibc and the model
        (addresses depend on ASLR and cannot)."""
        return [(op, name, length) for op, name, _a, length, _r in self.syscalls or []]


RealResult = ReplayResult


class MalloptSettings(TypedDict):
    """The mallopt parameters of a run, as ``replay_real`` keyword arguments; None = not set."""

    mmap_threshold: int | None
    trim_threshold: int | None
    top_pad: int | None
    mmap_max: int | None


def mallopt_from_settings(settings: Settings | dict[str, Any]) -> MalloptSettings:
    """The ``replay_real`` keyword arguments of a run's resolved settings.

    ``settings`` is a validated ``Settings`` or a run's ``settings.json``
    document: ``threshold`` is ``M_MMAP_THRESHOLD`` (None keeps glibc's
    dynamic default); ``allocator.trim_threshold``, ``allocator.top_pad`` and
    ``allocator.mmap_max`` are the other mallopt parameters. The values were
    parsed and checked once, when the run's config was validated; a setting
    made in a YAML file reaches the real glibc as one made on the command line.
    """
    if isinstance(settings, Settings):
        a = settings.allocator
        return MalloptSettings(
            mmap_threshold=a.mmap_threshold,
            trim_threshold=a.trim_threshold,
            top_pad=a.top_pad,
            mmap_max=a.mmap_max,
        )
    values = settings.get("settings") or {}

    def value(key: str) -> int | None:
        v = (values.get(key) or {}).get("value")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    return MalloptSettings(
        mmap_threshold=value("threshold"),
        trim_threshold=value("allocator.trim_threshold"),
        top_pad=value("allocator.top_pad"),
        mmap_max=value("allocator.mmap_max"),
    )


def mallopt_from_overrides(overrides: Sequence[str]) -> MalloptSettings:
    """The mallopt settings that command-line overrides give a run: composed and validated as run.py does.

    A bad value is a ``ConfigError`` naming the key, as from ``run.py``.
    """
    from vmexp.config import compose_settings

    return mallopt_from_settings(compose_settings(list(overrides)))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vmexp"


def _compiler() -> str:
    for cand in (os.environ.get("CC"), "cc", "gcc"):
        if cand:
            found = shutil.which(cand)
            if found:
                return found
    raise ToolMissing("no C compiler found (looked for $CC, cc, gcc): install gcc to use the real glibc")


def build_replayer() -> Path:
    """The replayer executable, compiled on first use and cached.

    The cache key is a hash of the source, the flags and the compiler's
    version, so an edited source or a new compiler rebuilds; a concurrent
    build is harmless because each builds into its own file and renames.
    """
    cc = _compiler()
    try:
        ver = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolMissing(f"the C compiler {cc} does not run: {e}") from None
    src = _SOURCE.read_bytes()
    key = hashlib.sha256(src + "\0".join((ver, *_CFLAGS)).encode()).hexdigest()[:16]
    cache = _cache_dir()
    exe = cache / f"replayer-{key}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RealGlibcError(f"cannot create the cache directory {cache}: {e.strerror or e}") from None
    tmp = cache / f".replayer-{key}.{os.getpid()}.tmp"
    r = subprocess.run([cc, *_CFLAGS, "-o", str(tmp), str(_SOURCE)], capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
        raise RealGlibcError(f"cannot build the replayer with {cc}: {first}")
    os.replace(tmp, exe)
    return exe


@functools.cache
def _strace_command(strace_exe: str) -> tuple[str, ...]:
    """strace's options; ``--seccomp-bpf`` (strace >= 5.3) stops the tracee only on the traced
    calls, which makes a long replay about a third faster."""
    base = ("-f", "-qq", "-e", f"trace={_TRACED}")
    probe = subprocess.run(
        [strace_exe, "--seccomp-bpf", *base, "-o", os.devnull, "true"], capture_output=True
    )
    return (strace_exe, "--seccomp-bpf", *base) if probe.returncode == 0 else (strace_exe, *base)


def _records(ops: list[Op], op_index: list[int], *, timed: bool = False) -> bytes:
    """The replayer's input: a header, then six int64 per operation (see replayer.c).

    Block ids are renumbered densely so the replayer's tables are indexed
    directly. Operations that only pass time are left out unless ``timed``:
    glibc's malloc does not depend on time, so its validation need not
    wait, but the kernel's reclaim does (statistics flushed every 2 s,
    writes completing), so its validation spins for each ``compute``.
    """
    recs = array("q")
    ids: dict[int, int] = {}
    for op, g in zip(ops, op_index, strict=True):
        code = op[0]
        if code == COMPUTE and timed:
            recs.extend((g, code, 0, op[1], 0, 0))
            continue
        if code not in _REPLAYED:
            continue  # compute / sleep: time passes, memory does not change
        bid = ids.setdefault(op[1], len(ids))
        if code in (MALLOC, REALLOC):
            recs.extend((g, code, bid, op[2], 0, 0))
        elif code == CALLOC:
            recs.extend((g, code, bid, op[2], op[3], 0))
        elif code == FREE:
            recs.extend((g, code, bid, 0, 0, 0))
        elif code == TOUCH:
            recs.extend((g, code, bid, op[2], op[3], op[4]))
    if recs.itemsize != 8:
        raise RealGlibcError("array('q') is not 64-bit on this Python")
    return b"VMEXPRP1" + struct.pack("<qq", len(recs) // 6, len(ids)) + recs.tobytes()


# strace -f -o FILE prefixes each line with the pid; the arguments end at the last ") = ".
_STRACE_LINE = re.compile(r"^(?:\d+\s+)?(brk|mmap|munmap|mremap|lseek)\((.*)\)\s+=\s+(-?\w+)")


def _int(text: str) -> int:
    text = text.strip()
    if text == "NULL":
        return 0
    return int(text, 16) if text.startswith(("0x", "-0x")) else int(text)


def parse_strace(text: str) -> list[Syscall]:
    """The memory syscalls of the replay loop, from strace's output of a replayer run.

    Only the calls between the start marker ``lseek(-2, ...)`` and the end
    marker ``lseek(-3, ...)`` count: before the start are the dynamic
    loader's mappings and the replayer's own set-up. ``lseek(-1, INDEX, ...)``
    sets the operation that the next calls belong to.
    """
    out: list[Syscall] = []
    started = False
    op = -1
    cur_brk: int | None = None
    for line in text.splitlines():
        m = _STRACE_LINE.match(line)
        if m is None:
            continue
        name, args, res_text = m.group(1), m.group(2).split(","), m.group(3)
        if name == "lseek":
            fd = _int(args[0])
            if fd == -2:
                started = True
            elif fd == -1 and started:
                op = _int(args[1])
            elif fd == -3 and started:
                break
            continue
        res = _int(res_text)
        if name == "brk":
            req = _int(args[0])
            # A brk the kernel refuses returns the old break: a change of 0.
            length = 0 if req == 0 or cur_brk is None or res < 0 else res - cur_brk
            if res >= 0:
                cur_brk = res
            if started:
                out.append((op, "brk", req, length, res))
        elif not started:
            continue
        elif name == "mmap":
            out.append((op, "mmap", res if res != -1 else 0, _int(args[1]), res))
        elif name == "munmap":
            out.append((op, "munmap", _int(args[0]), _int(args[1]), res))
        else:  # mremap(old, old_len, new_len, flags)
            out.append((op, "mremap", _int(args[0]), _int(args[2]), res))
    return out


def _parse_output(stdout: str) -> tuple[dict[str, int], int, int]:
    values: dict[str, int] = {}
    for line in stdout.splitlines():
        key, _, val = line.partition(" ")
        if val.strip().lstrip("-").isdigit():
            values[key] = int(val)
    missing = [k for k in (*MALLINFO_FIELDS, "minflt", "majflt") if k not in values]
    if missing:
        raise ReplayError(f"the replayer's output lacks {', '.join(missing)}: {stdout.strip()[:200]!r}")
    return {k: values[k] for k in MALLINFO_FIELDS}, values["minflt"], values["majflt"]


def replay_real(
    trace_path: str | os.PathLike[str],
    *,
    mmap_threshold: int | None = None,
    trim_threshold: int | None = None,
    top_pad: int | None = None,
    mmap_max: int | None = None,
    pid: int = 1,
    strace: bool = True,
    timeout: float | None = None,
) -> ReplayResult:
    """Replay process ``pid`` of a trace against the real glibc; see :class:`ReplayResult`.

    The four settings are passed to ``mallopt`` before the first operation,
    only those that are not ``None`` (as the simulator's config does: any of
    them turns glibc's dynamic mmap threshold off). ``strace=False`` replays
    without observing the syscalls (``syscalls`` is then ``None``); with
    ``strace=True`` a missing strace raises :class:`ToolMissing`.

    Raises ``TraceError`` for a malformed trace, :class:`ReplayError` when
    the trace fails at run time (the message names its line),
    :class:`ToolMissing` / :class:`RealGlibcError` when the replay cannot be
    done on this machine.
    """
    trace = parse_trace(trace_path)
    if pid not in trace.ops:
        have = ", ".join(map(str, trace.ops))
        raise ReplayError(f"{trace_path}: no process {pid} in the trace (it has {have})")
    strace_exe = None
    if strace:
        strace_exe = shutil.which("strace")
        if strace_exe is None:
            raise ToolMissing("strace not found: install strace to see the real glibc's syscalls")
    exe = build_replayer()
    args = [str(exe)]
    for flag, value in (("-m", mmap_threshold), ("-t", trim_threshold), ("-p", top_pad), ("-x", mmap_max)):
        if value is not None:
            if not 0 <= value <= _INT_MAX:
                raise OverrideError(f"mallopt value {value} for {flag} is outside 0..{_INT_MAX}")
            args += [flag, str(value)]
    with tempfile.TemporaryDirectory(prefix="vmexp-real-") as tmp:
        rec_path = os.path.join(tmp, "records.bin")
        with open(rec_path, "wb") as fh:
            fh.write(_records(trace.ops[pid], trace.op_index[pid]))
        args.append(rec_path)
        strace_out = os.path.join(tmp, "strace.txt")
        cmd = args
        if strace_exe is not None:
            cmd = [*_strace_command(strace_exe), "-o", strace_out, *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReplayError(f"{trace_path}: the real replay took longer than {timeout} s") from None
        if r.returncode != 0:
            raise ReplayError(_failure(str(trace_path), r, trace.lines))
        syscalls = None
        if strace_exe is not None:
            with open(strace_out, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            if "lseek(-2," not in text:
                why = r.stderr.strip()[:200]
                raise ToolMissing(f"strace ran but saw no replay (is ptrace allowed here?): {why}")
            syscalls = parse_strace(text)
    mallinfo, minflt, majflt = _parse_output(r.stdout)
    return ReplayResult(syscalls, mallinfo, minflt, majflt)


def _failure(trace: str, r: subprocess.CompletedProcess[str], lines: list[int]) -> str:
    """One line saying why the replay stopped, pointing at the trace line when the replayer named an op."""
    err = r.stderr.strip()
    m = re.search(r"^op (\d+): (.*)$", err, re.MULTILINE)
    if m is not None:
        g = int(m.group(1))
        where = f"{trace}:{lines[g]}" if 0 <= g < len(lines) else trace
        return f"{where}: {m.group(2)} (real glibc replay, op {g})"
    # glibc's own aborts ("free(): double free detected in tcache 2") come with a signal.
    last = err.splitlines()[-1] if err else f"exit status {r.returncode}"
    return f"{trace}: the real glibc replay failed: {last}"
