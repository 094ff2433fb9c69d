"""``python -m vmexp.validate kernel TRACE [overrides...]``: the simulator beside the machine's real kernel.

The trace is replayed ``--runs`` times on this machine's kernel, each run
in a fresh memory cgroup limited to ``cgroup.memory_max`` (default 64M)
with swap (see :mod:`vmexp.validate.kernel`), and once in the simulator
(first: a mistake in its overrides is said before the real runs),
configured from the kernel's own settings as read inside the session:
``vm.page-cluster``, the swap device (zram, or a disk that is rotational
or not). The replay loop's minor and major faults are printed side by side
with the differences, as ``python -m vmexp.validate`` does for glibc. A
trace of several processes runs them at once in the one group on both
sides, as a container does (one replayer each, their loops started
together; the simulator on as many CPUs as the replayers may use), and
each process is compared, then the group's sum.

A disk is given to the simulator as fast as it is (``--device measured``,
the default): reads of the swap area past the page cache time a page and
the bandwidth (:func:`vmexp.validate.kernel.device_speed`). The preset its
kind names (``--device preset``: ``hdd`` for a rotational disk, 12.7 ms a
request) can be hundreds of times slower than a virtual disk that reports
rotational, and the simulated run that much longer; the kernel's reclaim
reads statistics flushed every 2 s of time, so the two then part
(docs/kernel-truth.md, "How long a run lasts").

The kernel's reclaim decides on memory cgroup statistics that a
machine-wide timer flushes every 2 s, at a phase against the run that no
run knows; ``--stats-every`` flushes them at one period on both sides
(:func:`stats_overrides`), and a DIFFER whose real runs spread widely says
so. ``--counters`` prints the swap and reclaim counters of /proc/vmstat
beside the simulator's (:func:`format_counters`); ``--figure`` draws each
real run's faults over its time beside the simulator's
(:mod:`vmexp.validate.kernel_figure`), which shows where they part;
``--nearby`` compares the simulator's median over limits a few pages
apart (:data:`NEARBY_PAGES`), since at one limit it is one draw.

Kernel facts become simulator overrides in one place,
:func:`simulator_overrides`. The simulator's keys for this
(``cgroup.memory_max``, ``policy=linux``, ``machine.page_cluster``,
``machine.swap_device=zram``) are switched on by
:data:`SIMULATOR_HAS_KERNEL_KEYS`; until then the closest keys of today's
simulator are used (``ram`` = the limit, ``policy=lru2q``, an ``ssd`` for
zram), and ``--keys`` overrides the switch for one run.

Exit status: 0 when the simulator agrees with the kernel (majflt within 2 %
and minflt within 1 %, or inside the real runs' range), 1 when it does not,
2 when either side could not be run. When the simulator's group OOM-kills
the process part way, the outcome is compared instead (:func:`_oom_outcome`):
0 if the kernel's group killed in any of its runs, 1 if in none. Where the
machine cannot run the real side (not root, no memory controller, no zram),
one line says what is missing and how to provide it.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

from vmexp.cliargs import Parser
from vmexp.console import keep_going_without_a_reader
from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size
from vmexp.validate import kernel as K
from vmexp.validate.kernel_figure import SAMPLE_EVERY, Timeline, simulated_timeline
from vmexp.validate.kernel_figure import draw as draw_figure
from vmexp.workload.traces import TraceError, parse_trace

if TYPE_CHECKING:
    from vmexp.validate.__main__ import SimulatorOOMKilled

__all__ = [
    "KERNEL_KEYS",
    "SIMULATOR_HAS_KERNEL_KEYS",
    "KernelSettings",
    "Verdict",
    "format_counters",
    "kernel_settings",
    "main",
    "simulator_overrides",
    "stats_overrides",
    "stats_period",
]

# True since the simulator has policy=linux, cgroup.memory_max / cgroup.swap_max,
# machine.page_cluster and machine.swap_device=zram (issue 11).
SIMULATOR_HAS_KERNEL_KEYS = True

# The overrides that describe the real side's set-up; they are consumed here, and passed
# on to the simulator only through simulator_overrides.
KERNEL_KEYS = (
    "cgroup.memory_max",
    "cgroup.swap_max",
    "cgroup.groups",
    "cgroup.limits",
    "cgroup.parent_max",
    "cgroup.version",
    "machine.page_cluster",
)

# What the replayer's pages cost zram. It writes every byte of a touched range as 0x5a, which zram
# stores as that one value without compressing it (page_same_filled); measured on this machine by
# the device's busy time (`python bench/kernel_truth.py zram --kind same`, five runs: 0 to 0.19 us a
# read, 0.53 to 1.18 us a write; tests/data/real_kernel/zram_device.json), where the simulator's
# defaults (machine.zram) are the costs of file data, 4.85 and 9.68 us, and made its runs of the
# replayer's traces last 1.5 to 2.4 times the kernel's, which moves what depends on time (the
# statistics flush: docs/kernel-truth.md, "A set of the operations the others leave out").
REPLAYER_ZRAM = ("machine.zram.read=190ns", "machine.zram.write=830ns")

_N = TypeVar("_N", int, float)
_T = TypeVar("_T")

DEFAULT_LIMIT = 64 << 20
# --stats-every's bounds: a read of memory.stat every 10 ms already takes a few per cent of a CPU
# from the replay beside it, and the kernel's own timer flushes every 2 s (FLUSH_TIME).
MIN_STATS_EVERY = 10_000_000
MAX_STATS_EVERY = 2_000_000_000
MAJFLT_TOLERANCE = 0.02
MINFLT_TOLERANCE = 0.01


class UsageError(ValueError):
    """An override the kernel side cannot use; the message names the key."""


@dataclass(frozen=True)
class KernelSettings:
    """What the overrides ask of the real side."""

    limit: int
    swap_max: int | None
    page_cluster: int | None
    rest: tuple[str, ...]
    groups: int = 1  # cgroup.groups: the trace's processes in that many groups, each of limit
    limits: tuple[int, ...] | None = None  # cgroup.limits: each group's own, in place of limit
    parent_max: int | None = None  # cgroup.parent_max: the groups inside one more, of this limit
    version: int | None = None  # cgroup.version, if given: must be the machine's (its groups are made so)

    @property
    def replay_limit(self) -> int | list[int]:
        """What the real side's groups are limited to: one group's limit, or each group's (a list)."""
        if self.limits is not None:
            return list(self.limits)
        return self.limit if self.groups == 1 else [self.limit] * self.groups

    def describe(self) -> str:
        """The groups' limits, as the header line names them."""
        if self.limits is not None:
            own = f"{self.groups} groups, limits " + ", ".join(format_size(x) for x in self.limits)
        else:
            each = f"{self.groups} groups, each " if self.groups > 1 else ""
            own = f"{each}limit {format_size(self.limit)}"
        return own if self.parent_max is None else f"{own}, in a parent of {format_size(self.parent_max)}"


def _override_size(key: str, value: str) -> int | None:
    if value.lower() in ("null", "none", "~", ""):
        return None
    try:
        return parse_size(value)
    except UnitError as e:
        raise UsageError(f"{key}={value}: {e}") from None


def _replay_size(key: str, value: str) -> int:
    """A group's limit for the real side: a size of at least 8 MiB."""
    limit = _override_size(key, value)
    if limit is None:
        raise UsageError(f"{key}=null: the real-kernel replay needs a limit (e.g. 64M)")
    if limit < 8 << 20:
        raise UsageError(f"{key}={value}: at least 8M (the replayer itself needs about 1 MiB)")
    return limit


def kernel_settings(overrides: Sequence[str]) -> KernelSettings:
    """Split the overrides into the kernel side's settings and the rest (passed to the simulator)."""
    limit: int | None = DEFAULT_LIMIT
    swap_max = None
    cluster = None
    groups: int | None = None
    limits: tuple[int, ...] | None = None
    parent_max: int | None = None
    version: int | None = None
    rest = []
    for ov in overrides:
        key, eq, value = ov.lstrip("+").partition("=")
        value = value.strip().strip("'\"")
        if key not in KERNEL_KEYS:
            rest.append(ov)
            continue
        if not eq:
            raise UsageError(f"{ov}: give a value ({key}=...)")
        if key == "cgroup.memory_max":
            limit = _replay_size(key, value)
        elif key == "cgroup.swap_max":
            swap_max = _override_size(key, value)
        elif key == "cgroup.groups":
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"cgroup.groups={value}: an integer, at least 1 (the groups side by side)")
            groups = int(value)
        elif key == "cgroup.limits":
            items = [x.strip() for x in value.strip("[]").split(",") if x.strip()]
            if not items:
                raise UsageError(f"cgroup.limits={value}: a list of sizes, one a group (e.g. [32M,96M])")
            limits = tuple(_replay_size(key, x) for x in items)
        elif key == "cgroup.parent_max":
            parent_max = None if _override_size(key, value) is None else _replay_size(key, value)
        elif key == "cgroup.version":
            if value not in ("1", "2"):
                raise UsageError(f"cgroup.version={value}: 1 or 2 (the machine's memory cgroup interface)")
            version = int(value)
        else:
            if not value.isdigit() or int(value) > 31:
                raise UsageError(f"machine.page_cluster={value}: an integer 0..31 (vm.page-cluster)")
            cluster = int(value)
    assert limit is not None
    if groups is None:  # as the simulator's cgroup.groups: as many as cgroup.limits gives, or one
        groups = len(limits) if limits is not None else 1
    if limits is not None and len(limits) != groups:
        raise UsageError(
            f"cgroup.limits: {len(limits)} limits for cgroup.groups={groups} "
            f"(leave cgroup.groups out, or set it to {len(limits)})"
        )
    return KernelSettings(limit, swap_max, cluster, tuple(rest), groups, limits, parent_max, version)


def stats_period(every: str | None) -> int | None:
    """``--stats-every``'s period in nanoseconds (None: not given), checked against its bounds."""
    if every is None:
        return None
    try:
        ns = parse_duration(every)
    except UnitError as e:
        raise UsageError(f"--stats-every {every}: {e}") from None
    if not MIN_STATS_EVERY <= ns <= MAX_STATS_EVERY:
        raise UsageError(
            f"--stats-every {every}: between {format_duration(MIN_STATS_EVERY)} and "
            f"{format_duration(MAX_STATS_EVERY)} (the kernel's own timer flushes every 2 s)"
        )
    return ns


def _policy(overrides: Sequence[str]) -> str | None:
    """The policy the last ``policy=`` override names, if any."""
    named = [o.partition("=")[2].strip() for o in overrides if o.lstrip("+").startswith("policy=")]
    return named[-1] if named else None


def stats_overrides(period: int | None, rest: Sequence[str], new_keys: bool | None) -> list[str]:
    """``--stats-every``'s simulator overrides: its statistics flushed at that period from the start.

    The kernel flushes the memory cgroup statistics that reclaim reads
    (the list sizes of ``inactive_is_low`` and of the refault distance's
    test) every 2 s on a machine-wide timer whose phase against a run is
    anything, and the simulator takes one phase (``stats_flush_first``);
    on traces that part when it falls, the comparison is then a draw.
    With the real side reading ``memory.stat`` (which flushes) at a known
    period, both decide on sizes equally old.
    """
    if period is None:
        return []
    if not (SIMULATOR_HAS_KERNEL_KEYS if new_keys is None else new_keys) or _policy(rest) not in (
        None,
        "linux",
    ):
        raise UsageError(
            f"--stats-every {_duration_arg(period)}: only policy=linux flushes statistics "
            "(policy.params.stats_flush)"
        )
    d = _duration_arg(period)
    return [f"policy.params.stats_flush={d}", f"policy.params.stats_flush_first={d}"]


def _duration_arg(ns: int) -> str:
    for unit, mult in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns % mult == 0:
            return f"{ns // mult}{unit}"
    return f"{ns}ns"


def _size_arg(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("k", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def simulator_overrides(
    facts: K.KernelFacts,
    limit: int,
    swap_max: int | None = None,
    *,
    new_keys: bool | None = None,
    speed: K.DeviceSpeed | None = None,
    groups: int = 1,
    limits: Sequence[int] | None = None,
    parent_max: int | None = None,
) -> list[str]:
    """The simulator's overrides that describe the kernel the real side ran on.

    With the simulator's kernel keys (``new_keys``, default
    :data:`SIMULATOR_HAS_KERNEL_KEYS`): a machine far larger than the
    group (1 GiB of RAM and of swap), the group's limit as
    ``cgroup.memory_max``, ``policy=linux``, the swap device as the kernel
    sees it (at the ``speed`` measured, if given, else the preset its kind
    names) and its ``vm.page-cluster``; zram at what the replayer's pages
    cost it (:data:`REPLAYER_ZRAM`). Without them: ``ram`` = the limit
    (no kswapd watermarks: a cgroup limit has none), ``policy=lru2q`` (the
    textbook policy closest to Linux's two lists) and zram as an ``ssd``.
    """
    new = SIMULATOR_HAS_KERNEL_KEYS if new_keys is None else new_keys
    sw = facts.swap
    device: str = sw.device if sw is not None else "ssd"
    if new:
        if speed is not None and sw is not None and device != "zram":
            device = speed.override(sw.rotational, sw.max_segments, sw.queue_depth)
        ov = [
            "nprocs=1",
            "ram=1G",
            "swap=1G",
            f"cgroup.memory_max={_size_arg(limit)}",
            "policy=linux",
            f"machine.swap_device={device}",
            *(REPLAYER_ZRAM if device == "zram" else ()),
            f"machine.page_cluster={facts.page_cluster}",
            "duration=1000000s",
        ]
        if swap_max is not None:
            ov.append(f"cgroup.swap_max={_size_arg(swap_max)}")
            if facts.cgroup == "v1":  # the real side's limit is memory.memsw.limit_in_bytes
                ov.append("cgroup.version=1")
        if groups > 1:
            ov.append(f"cgroup.groups={groups}")
        if limits is not None:
            ov.append(f"cgroup.limits=[{','.join(_size_arg(x) for x in limits)}]")
        if parent_max is not None:
            ov.append(f"cgroup.parent_max={_size_arg(parent_max)}")
        return ov
    return [
        "nprocs=1",
        f"ram={_size_arg(limit)}",
        "swap=1G",
        "policy=lru2q",
        f"machine.swap_device={'ssd' if device == 'zram' else device}",
        "machine.min_free=0",
        "duration=1000000s",
    ]


@dataclass(frozen=True)
class Verdict:
    minflt: bool
    majflt: bool

    @property
    def ok(self) -> bool:
        return self.minflt and self.majflt


def _mid_range(values: Sequence[_N]) -> tuple[_N, _N, _N]:
    """(median, min, max) of the real runs, the median being one of them (the upper middle run)."""
    v = sorted(values)
    return v[len(v) // 2], v[0], v[-1]


def _agrees(sim: int, real: list[int], tol: float) -> bool:
    mid, lo, hi = _mid_range(real)
    return lo <= sim <= hi or abs(sim - mid) <= tol * max(mid, 1)


def compare(real: list[K.KernelRun], sim_minflt: int, sim_majflt: int) -> Verdict:
    return Verdict(
        _agrees(sim_minflt, [r.minflt for r in real], MINFLT_TOLERANCE),
        _agrees(sim_majflt, [r.majflt for r in real], MAJFLT_TOLERANCE),
    )


def format_table(
    real: list[K.KernelRun],
    sim_minflt: int,
    sim_majflt: int,
    sim_spread: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> str:
    """The real runs beside the simulator's counts; ``sim_spread``: the (min, max) of its minflt and
    majflt over nearby limits (``--nearby``), whose medians the counts then are."""
    n = len(real)
    head = f"real kernel ({n} run{'s' if n != 1 else ''}): median [min..max]"
    sim_head = "simulator" if sim_spread is None else "simulator: median [min..max]"
    rows = (
        ("minflt", [r.minflt for r in real], sim_minflt),
        ("majflt", [r.majflt for r in real], sim_majflt),
    )
    sim_texts = [
        str(v) if sim_spread is None else f"{v} [{lo}..{hi}]"
        for (_, _, v), (lo, hi) in zip(rows, sim_spread or ((0, 0), (0, 0)), strict=True)
    ]
    width = max(12, len(sim_head) + 2, *map(len, sim_texts))
    out = [f"   {'':<8}{head:<40}{sim_head:>{width}}"]
    for (name, vals, v), sim_text in zip(rows, sim_texts, strict=True):
        mid, lo, hi = _mid_range(vals)
        real_text = f"{mid} [{lo}..{hi}]"
        rel = f"  ({(v - mid) / mid * 100:+.1f} %)" if mid else ""
        ok = _agrees(v, vals, MINFLT_TOLERANCE if name == "minflt" else MAJFLT_TOLERANCE)
        out.append(f" {' ' if ok else '!'} {name:<8}{real_text:<40}{sim_text:>{width}}{rel}")
    return "\n".join(out)


def _process_runs(real: Sequence[K.KernelRun], i: int) -> list[K.KernelRun]:
    """The real runs as process ``i`` of a group run saw them (its faults; the group's time)."""
    return [dataclasses.replace(r, minflt=r.procs[i][0], majflt=r.procs[i][1], procs=[]) for r in real]


def format_group(
    real: list[K.KernelRun],
    sims: Sequence[tuple[str, int, int]],
    groups: int = 1,
    nearby: Sequence[Sequence[tuple[int, int]]] = (),
) -> tuple[str, bool]:
    """Several processes replayed at once: a table per process (``sims``: its name and the
    simulator's minflt and majflt, in the order of the real runs' ``procs``), then the sums of
    the group (or of the ``groups`` side by side); and whether every one of them agrees.
    ``nearby``: each simulator run's (minflt, majflt) per process at the nearby limits; ``sims``
    then holds their medians, and each table the spread."""
    blocks, ok = [], True
    rows = [(f"process {name}", _process_runs(real, i), mn, mj) for i, (name, mn, mj) in enumerate(sims)]
    total = "the group" if groups == 1 else f"the {groups} groups"
    sums = [(sum(c[0] for c in run), sum(c[1] for c in run)) for run in nearby]
    if nearby:  # the group's median over the limits, not the sum of the processes' medians
        rows.append((total, real, *_medians(sums)))
    else:
        rows.append((total, real, sum(x[1] for x in sims), sum(x[2] for x in sims)))
    spreads = [_spread_of([run[i] for run in nearby]) for i in range(len(sims))] + [_spread_of(sums)]
    for (label, runs, mn, mj), spread in zip(rows, spreads, strict=True):
        blocks.append(f" {label}:\n{format_table(runs, mn, mj, spread)}")
        ok &= compare(runs, mn, mj).ok
    return "\n".join(blocks), ok


# --nearby: the simulator at the group's limits moved by these many pages. It is deterministic, and
# at one limit it lands on one side of every branch the kernel's runs take either way from run to
# run (where a sweep ends against the reclaim calls); a few pages move that and little else, so the
# median over them is what it predicts (docs/kernel-truth.md, "One limit is one draw"), as the
# agreement tests hold it (tests/test_kernel_agreement.py).
NEARBY_PAGES = (-16, -8, 0, 8, 16)


def _medians(counts: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The median minflt and majflt of several runs (each one of the runs' own: an odd number)."""
    return _mid_range([c[0] for c in counts])[0], _mid_range([c[1] for c in counts])[0]


def _spread_of(counts: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The (min, max) of the runs' minflt and majflt; None for no runs."""
    if not counts:
        return None
    minflt, majflt = [c[0] for c in counts], [c[1] for c in counts]
    return (min(minflt), max(minflt)), (min(majflt), max(majflt))


class _Simulated(NamedTuple):
    """What the simulated run says besides its faults."""

    seconds: float | None  # its length in simulated time
    cpu: float | None  # its processes' CPU time, summed
    counters: dict[str, int]  # named as /proc/vmstat names them
    timeline: Timeline  # its faults over time (--figure)


def _simulated(run_dir: str) -> _Simulated:
    """The simulated run's length, its processes' CPU time and its counters (metrics.json: ``pswpin``
    and ``pswpout`` in ``system``, the rest under its ``vmstat`` with ``policy=linux``)."""
    try:
        metrics = json.loads(Path(run_dir, "metrics.json").read_text(encoding="utf-8"))
        system, procs = metrics["system"], metrics["processes"]
    except (OSError, ValueError, KeyError, TypeError):
        return _Simulated(None, None, {}, [])
    seconds = system.get("sim_time_s")
    cpu = [p.get("cpu_time_s") for p in procs]
    counters = {k: v for k, v in {**system, **system.get("vmstat", {})}.items() if k in K.VMSTAT_KEYS}
    return _Simulated(
        float(seconds) if isinstance(seconds, int | float) else None,
        sum(cpu) if cpu and all(isinstance(c, int | float) for c in cpu) else None,
        counters,
        simulated_timeline(run_dir),
    )


def format_counters(real: Sequence[K.KernelRun], sim: dict[str, int]) -> str:
    """The swap and reclaim counters of /proc/vmstat around each real run beside the simulator's.

    They say where two runs part when the faults alone do not: pages read
    and read ahead, refaults activated, pages deactivated, scanned and
    stolen. ``pgactivate`` and ``pgdeactivate`` count the rest of the
    machine's LRU traffic too (its file pages), a few hundred to a few
    thousand pages a run.
    """
    n = len(real)
    head = f"real kernel ({n} run{'s' if n != 1 else ''}): median [min..max]"
    out = [f"   {'/proc/vmstat':<26}{head:<40}{'simulator':>12}"]
    for key in K.VMSTAT_KEYS:
        vals = [r.vmstat[key] for r in real if key in r.vmstat]
        if not vals and key not in sim:
            continue
        real_text = "{} [{}..{}]".format(*_mid_range(vals)) if vals else "-"
        sim_text = str(sim[key]) if key in sim else "-"
        out.append(f"   {key:<26}{real_text:<40}{sim_text:>12}")
    return "\n".join(out)


def _time_lines(real: list[K.KernelRun], sim: _Simulated) -> str:
    """How long each side took, and how much CPU: what depends on time in the kernel (its 2 s
    statistics flushes, writeback) follows the simulator only where the two are alike, and the CPU
    time says how much of a fault's length is the kernel's own work (machine.cost)."""
    mid, lo, hi = _mid_range([r.seconds for r in real])
    real_text = f"{mid:.2f} s [{lo:.2f}..{hi:.2f}] of wall time"
    sim_text = "unknown" if sim.seconds is None else f"{sim.seconds:.2f} s of simulated time"
    lines = [f"   {'time':<8}the kernel's runs {real_text}, the simulator's {sim_text}"]
    if all(r.cpu > 0 for r in real):  # 0: not measured (a run recorded before the replayer said it)
        mid, lo, hi = _mid_range([r.cpu for r in real])
        sim_text = "unknown" if sim.cpu is None else f"{sim.cpu:.3f} s"
        lines.append(
            f"   {'cpu':<8}the kernel's replay loops {mid:.3f} s [{lo:.3f}..{hi:.3f}], the simulator's {sim_text}"
        )
    return "\n".join(lines)


def _device_speed(facts: K.KernelFacts, device: str) -> tuple[K.DeviceSpeed | None, str]:
    """The swap disk's measured speed for the simulator (None: its preset), and a line that says so."""
    sw = facts.swap
    if sw is None or sw.kind == "zram" or device != "measured":
        return None, ""
    try:
        speed = K.device_speed(sw.name)
    except OSError as e:
        return (
            None,
            f"swap device: {sw.name} could not be timed ({e.strerror or e}): the simulator takes {sw.device}",
        )
    return speed, f"swap device: {sw.name}: {speed.describe()} (--device preset: {sw.device})"


def _pinned(
    facts: K.KernelFacts, cpus: list[int], irq: int | None, speed: K.DeviceSpeed | None
) -> tuple[list[str], str, K.DeviceSpeed | None]:
    """``--pin``: the simulator's keys for the CPU that takes the swap disk's interrupts, the line
    that says so, and the disk's speed as timed from that CPU (a process there waits for no wakeup
    from another)."""
    where = ", ".join(f"p{i + 1} on CPU {c}" for i, c in enumerate(cpus))
    if irq is None or irq not in cpus or facts.swap is None:
        why = "zram, no interrupts" if facts.swap and facts.swap.kind == "zram" else "none of one CPU found"
        return [], f"pinned: {where}, each process i on CPU i-1 of these ({why})", speed
    reads = K.read_ns_by_cpu(facts.swap.name, cpus)
    other = max((ns for c, ns in reads.items() if c != irq), default=reads[irq])
    wake = max(0, other - reads[irq])
    if speed is not None:
        speed = K.DeviceSpeed(reads[irq], speed.bandwidth)
    note = (
        f"pinned: {where}; the swap disk interrupts CPU {irq} only: a page read {reads[irq] / 1000:.1f} us "
        f"from it, {other / 1000:.1f} us from another (the simulator: machine.swap_irq_cpu={cpus.index(irq)}, "
        f"a wakeup {wake / 1000:.1f} us later off it)"
    )
    return [f"machine.swap_irq_cpu={cpus.index(irq)}", f"machine.cost.remote_wakeup={wake}ns"], note, speed


def _oom_outcome(
    sim: SimulatorOOMKilled, name: str, ops: int, real: list[K.KernelRun | None], sim_seconds: float | None
) -> int:
    """The simulator's group OOM-killed its process: say how many of the kernel's runs its group killed.

    A group whose reclaim finds every page on the active list kills, and
    whether it gets there depends on when the kernel's statistics flush
    falls (a timer's phase the simulator cannot know), so the kernel's
    group kills in some runs and not in others; a kill in any of them is
    the outcome the simulator gave (status 0), none is a difference (1).
    Where every run was killed (a process larger than its limits allow:
    a swap limit, no swap) the flush is not the reason, and the result
    does not name it.
    """
    when = f", {sim_seconds:.2f} s of simulated time" if sim_seconds is not None else ""
    print()
    print(
        f"   simulator: process {name} OOM-killed by its group's OOM killer in its operation {sim.ops} of {ops}{when}"
    )
    done = [r for r in real if r is not None]
    killed = len(real) - len(done)
    line = f"   real kernel: the group's OOM killer ended {killed} of {len(real)} run{'s' if len(real) != 1 else ''}"
    if done:
        mid, lo, hi = _mid_range([r.majflt for r in done])
        line += f"; {len(done)} finished, majflt {mid} [{lo}..{hi}]"
    print(line)
    print()
    if killed == len(real):
        print("RESULT: agree (OOM-killed on both sides, in every real run)")
        return 0
    if killed:
        print(
            "RESULT: agree (OOM-killed on both sides: whether the group's OOM killer fires depends on when "
            "the kernel's 2 s statistics flush falls; docs/kernel-truth.md)"
        )
        return 0
    print(
        f"RESULT: DIFFER (the simulator's process was OOM-killed in its group, none of the kernel's {len(real)} runs was)"
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    keep_going_without_a_reader()
    from vmexp.validate.__main__ import (
        SimulatorOOMKilled,
        SimulatorRunError,
        check_finished,
        check_overrides,
        read_run,
        run_simulator,
    )

    parser = Parser(
        prog="python -m vmexp.validate kernel",
        description="Replay a trace on this machine's kernel (in a memory cgroup, with swap) and in the simulator.",
    )
    parser.add_argument(
        "trace",
        help="an allocation trace (the README's trace format); its processes are replayed at once, in one group",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],  # else argparse calls the list required when the trace is missing
        help="Hydra overrides; cgroup.memory_max (default 64M), cgroup.swap_max and machine.page_cluster "
        "also set up the real side (on cgroup v1 cgroup.swap_max is memory.memsw.limit_in_bytes less the "
        "limit, and the simulator counts it so: cgroup.version=1)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="real-kernel runs, each in a new cgroup (default 3)"
    )
    parser.add_argument(
        "--swap",
        choices=("auto", "zram", "file", "loop", "existing"),
        default="auto",
        help="swap for the real side: the machine's own if it has one (auto), else a temporary 1 GiB zram; "
        "file: a new swap file in /var/tmp; loop: a loop device over one (another disk queue)",
    )
    parser.add_argument(
        "--device",
        choices=("measured", "preset"),
        default="measured",
        help="the simulator's swap device for a disk: as fast as reads of the swap area measure "
        "(measured), or the preset its kind names, hdd or ssd (preset)",
    )
    parser.add_argument(
        "--fresh-device",
        action="store_true",
        help="swapoff and swapon the swap device before every real run: each starts on the device as "
        "right after swapon, as the simulator's does (swapoff reads an existing swap's pages back first)",
    )
    parser.add_argument(
        "--stats-every",
        metavar="DURATION",
        help="flush the memcg statistics reclaim decides on at this period on both sides (e.g. 100ms; "
        f"{format_duration(MIN_STATS_EVERY).replace(' ', '')} to 2s): the real side reads the group's memory.stat that often, "
        "the simulator gets policy.params.stats_flush and stats_flush_first; without it the kernel's "
        "2 s timer flushes them at a phase no run can know",
    )
    parser.add_argument(
        "--counters",
        action="store_true",
        help="also print the swap and reclaim counters of /proc/vmstat around each real run (pswpin, "
        "swap_ra, workingset_activate_anon, pgdeactivate, pgscan_anon, ...) beside the simulator's",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="hold the replayers to this process's CPUs, the first on the first, as the simulator places "
        "its processes; where one CPU takes all the swap disk's interrupts, tell the simulator which "
        "(machine.swap_irq_cpu) and how much later a read wakes a process on another "
        "(machine.cost.remote_wakeup, timed here), and time the disk from that CPU",
    )
    parser.add_argument(
        "--nearby",
        action="store_true",
        help="also run the simulator with every limit moved by -16, -8, +8 and +16 pages and compare the "
        "median of the five runs (their range beside it): the simulator is deterministic, and at one limit "
        "it takes one side of branches the kernel's runs take either way from run to run "
        '(docs/kernel-truth.md, "One limit is one draw")',
    )
    parser.add_argument(
        "--figure",
        metavar="FILE",
        help="also draw each real run's major and minor faults over time beside the simulator's into FILE "
        "(.png unless its suffix names another format matplotlib writes; a directory gets kernel-faults.png): "
        f"the real runs are read every {SAMPLE_EVERY * 1000:.0f} ms as they go, which a lone replayer's "
        "run takes stopped before its loop and let go, as a trace of several processes always is",
    )
    parser.add_argument(
        "--keys",
        choices=("auto", "new", "today"),
        default="auto",
        help="the simulator's keys: its kernel keys (new), today's closest ones (today), or as the switch says",
    )
    args = parser.parse_intermixed_args(argv)  # TRACE --runs 5 cgroup.memory_max=32M, as meant
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    try:
        trace = parse_trace(args.trace)
        pids = list(trace.ops)  # the simulator numbers them 1, 2, ... in this order (first appearance)
        settings = kernel_settings(args.overrides)
        if settings.groups > len(pids):
            raise UsageError(
                f"cgroup.groups={settings.groups}: the trace has {len(pids)} process(es), one group at least each"
            )
        new_keys = None if args.keys == "auto" else args.keys == "new"
        period = stats_period(args.stats_every)
        stats = stats_overrides(period, settings.rest, new_keys)
        rest = check_overrides(args.trace, [*stats, *settings.rest])  # now, not after minutes of real runs
        figure = _figure_file(args.figure) if args.figure is not None else None
    except (TraceError, UsageError, SimulatorRunError) as e:
        print(f"vmexp.validate kernel: error: {e}", file=sys.stderr)
        return 2
    swap: Literal["zram", "file", "loop", "existing"] = args.swap
    if args.swap == "auto":
        swap = "existing" if K.swap_areas() else "zram"
    why = K.missing(swap)
    if why:
        print(f"vmexp.validate kernel: cannot run the real kernel here: {why}", file=sys.stderr)
        return 2
    poll = period / 1e9 if period is not None else None

    sim_oom: SimulatorOOMKilled | None = None
    kernel_oom: K.OOMKilledEveryTry | None = None  # a real run the kernel's group killed each try
    finished: list[K.KernelRun] = []  # the real runs that ran to their end, as they end
    nearby: list[list[tuple[int, int]]] = []  # --nearby: each run's (minflt, majflt) per process
    nearby_timelines: list[Timeline] = []  # and each run's faults over time, for --figure
    nearby_left: list[str] = []  # the limits where the simulator's group OOM-killed (left out)
    ended: list[K.KernelRun | None] = []
    real: list[K.KernelRun] = []
    try:
        with K.session(swap, cluster=settings.page_cluster) as facts:
            # The simulator first (seconds, configured from the session's facts): a bad override
            # or a run it cannot finish is said before the real runs' minutes, not after them.
            if settings.version is not None and f"v{settings.version}" != facts.cgroup:
                print(
                    f"vmexp.validate kernel: error: cgroup.version={settings.version}: this machine's memory "
                    f"cgroup is {facts.cgroup}, which the real runs use; leave the key out (the simulator "
                    "is given the machine's)",
                    file=sys.stderr,
                )
                return 2
            speed, device_note = _device_speed(facts, args.device)
            cpus = sorted(os.sched_getaffinity(0))
            irq = K.swap_interrupt_cpu(facts.swap.name) if facts.swap and facts.swap.kind != "zram" else None
            pin_ov: list[str] = []
            pin_note = ""
            if args.pin:
                pin_ov, pin_note, speed = _pinned(facts, cpus, irq, speed)
            given = {o.lstrip("+~").partition("=")[0] for o in rest}

            def overrides_at(pages: int) -> list[str]:
                """The simulator's overrides with every limit moved by ``pages`` pages (``--nearby``)."""
                d = pages * mmap.PAGESIZE
                ov = simulator_overrides(
                    facts,
                    settings.limit + d,
                    settings.swap_max,
                    new_keys=new_keys,
                    speed=speed,
                    groups=settings.groups,
                    limits=None if settings.limits is None else [x + d for x in settings.limits],
                    parent_max=None if settings.parent_max is None else settings.parent_max + d,
                )
                if (len(pids) > 1 or pin_ov) and "machine.ncpus" not in given:
                    ov.append(f"machine.ncpus={len(cpus)}")  # the CPUs they share
                ov += [o for o in pin_ov if o.partition("=")[0] not in given]
                return [*ov, "figures=false", *rest]  # rest begins with --stats-every's overrides

            sim_ov = overrides_at(0)
            with tempfile.TemporaryDirectory(prefix="vmexp-validate-kernel-") as tmp:
                run_dir = os.path.join(tmp, "run")
                run_simulator(args.trace, sim_ov, run_dir)
                procs = read_run(run_dir)
                try:
                    check_finished(run_dir)  # a process the simulator's OOM killer took did part of the trace
                except SimulatorOOMKilled as e:
                    if not e.group:  # the machine's OOM killer: ram too small, a mistake in the overrides
                        raise
                    sim_oom = e  # its group's, which the kernel's group may do too: compare that outcome
                simulated = _simulated(run_dir)
                if args.nearby and sim_oom is None:
                    print(
                        f"[simulator] {len(NEARBY_PAGES) - 1} more runs at nearby limits (--nearby)",
                        file=sys.stderr,
                        flush=True,
                    )
                    at_limit = [(procs[k].minflt, procs[k].majflt) for k in sorted(procs)]
                    nearby, nearby_timelines, nearby_left = _run_nearby(
                        args.trace, overrides_at, tmp, (at_limit, simulated.timeline)
                    )
            fresh = facts.swap if args.fresh_device else None

            def said(i: int, run: K.KernelRun | None) -> None:
                if run is not None:
                    finished.append(run)
                what = (
                    "OOM-killed in its group"
                    if run is None
                    else f"minflt {run.minflt} majflt {run.majflt} in {run.seconds:.2f} s"
                )
                print(f"[real run {i}/{args.runs}] {what}", file=sys.stderr, flush=True)

            def each(replay: Callable[..., list[_T]]) -> list[_T]:  # measure or outcomes: the same arguments
                return replay(
                    args.trace,
                    settings.replay_limit,
                    args.runs,
                    pids=pids,
                    swap_max=settings.swap_max,
                    fresh=fresh,
                    progress=said,
                    poll_stats=poll,
                    cpus=cpus if args.pin else None,
                    parent_max=settings.parent_max,
                    sample_every=SAMPLE_EVERY if figure is not None else None,
                )

            if sim_oom is None:
                try:
                    real = each(K.measure)
                except K.OOMKilledEveryTry as e:  # the simulator's process finished: that differs
                    kernel_oom = e
            else:
                ended = each(K.outcomes)
    except (K.KernelUnavailable, K.KernelRunError) as e:
        print(f"vmexp.validate kernel: error: {K.describe_failure(e)}", file=sys.stderr)
        return 2
    except SimulatorRunError as e:  # its message is the one line (describe_failure would prefix the class)
        print(f"vmexp.validate kernel: error: {e}", file=sys.stderr)
        return 2

    sw = facts.swap
    swap_text = f"{sw.kind} swap of {sw.size >> 20} MiB" if sw else "no swap"
    print(
        f"{args.trace}: the real kernel {facts.release} (cgroup {facts.cgroup}, {settings.describe()}, "
        f"{swap_text}, page-cluster {facts.page_cluster}, swappiness {facts.swappiness}) vs the simulator"
    )
    if device_note:
        print(device_note)
    if pin_note:
        print(pin_note)
    elif len(pids) > 1 and irq is not None:
        print(
            f"note: the swap disk interrupts CPU {irq} only: a process on another CPU waits longer for each "
            "read and, contending, faults more; --pin holds the replayers to CPUs and tells the simulator"
        )
    if args.fresh_device and sw is not None:
        print(f"swap device: {sw.name} swapped off and on again before every real run")
    if period is not None:
        print(
            f"statistics: flushed every {_duration_arg(period)} on both sides (the group's memory.stat read "
            "that often; the simulator's policy.params.stats_flush)"
        )
    print(f"simulator: {shlex.join(o for o in sim_ov if o != 'figures=false')}")  # as a shell takes it
    if figure is not None:
        runs = real or [r for r in ended if r is not None]
        try:
            drawn = draw_figure(
                figure,
                runs,
                simulated.timeline,
                [f"p{pid}" for pid in pids],
                f"{Path(args.trace).name}: page faults on the real kernel and in the simulator",
                f"Linux {facts.release}, {settings.describe()}, {swap_text}, page-cluster {facts.page_cluster}",
                [t for t in nearby_timelines if t is not simulated.timeline],
            )
            print(f"figure: {drawn}")
        except OSError as e:  # after minutes of runs, the comparison is still printed
            print(f"vmexp.validate kernel: error: --figure {figure}: {e.strerror or e}", file=sys.stderr)
    if sim_oom is not None:
        if args.nearby:
            print(
                "note: --nearby is not used when the simulator's group OOM-kills at the limit: the outcome is compared"
            )
        killed = pids[sim_oom.pid - 1]
        name = str(sim_oom.pid) if len(pids) == 1 else f"p{killed}"
        return _oom_outcome(sim_oom, name, len(trace.ops[killed]), ended, simulated.seconds)
    if kernel_oom is not None:
        group = sum(p.majflt for p in procs.values())
        print()
        print(f"   simulator: every process finished, majflt {group}")
        print(
            f"   real kernel: the group's OOM killer ended run {len(finished) + 1} each of the {kernel_oom.tries} "
            "times it was made" + (f" ({len(finished)} run(s) before it finished)" if finished else "")
        )
        print()
        print(
            "RESULT: DIFFER (the kernel's group OOM-killed the replayer in every try of a run; the simulator's "
            "processes finished)"
        )
        return 1
    reruns = sum(r.oom_reruns for r in real)
    if reruns:
        print(f"note: {reruns} real run(s) were OOM-killed in their cgroup at a swap-in and run again")
    if nearby:
        moved = ", ".join(f"{k:+d}" if k else "0" for k in NEARBY_PAGES)
        print(
            f"simulator: the median of {len(nearby)} runs, every limit moved by {moved} pages (--nearby)"
            + (
                f"; its group's OOM killer took a process at {', '.join(nearby_left)}: left out"
                if nearby_left
                else ""
            )
        )
    print()
    counts = (
        [_medians([run[i] for run in nearby]) for i in range(len(pids))]
        if nearby
        else [(procs[i].minflt, procs[i].majflt) for i in range(1, len(pids) + 1)]
    )
    if len(pids) == 1:
        spread = _spread_of([run[0] for run in nearby])
        print(format_table(real, *counts[0], spread))
        ok = compare(real, *counts[0]).ok
    else:
        table, ok = format_group(
            real,
            [(f"p{pid}", mn, mj) for pid, (mn, mj) in zip(pids, counts, strict=True)],
            settings.groups,
            nearby,
        )
        print(table)
    print(_time_lines(real, simulated))
    if args.counters:
        print()
        print(format_counters(real, simulated.counters))
    print()
    tol = f"majflt within {MAJFLT_TOLERANCE:.0%}, minflt within {MINFLT_TOLERANCE:.0%} or inside the real runs' range"
    if len(pids) > 1:
        tol += (
            ", for every process and the group" if settings.groups == 1 else ", for every process and in all"
        )
    print(f"RESULT: {'agree' if ok else 'DIFFER'} ({tol})")
    if not ok and period is None and _timer_may_decide(real, sim_ov):
        print(
            "hint: the real runs spread widely; the kernel's reclaim decides on statistics its 2 s timer "
            "flushes at a phase no run knows, and --stats-every 100ms flushes them at one period on both "
            'sides (docs/kernel-truth.md, "The statistics flushed at a known period")'
        )
    if not ok and len(pids) > 1 and args.pin and irq is not None:
        print(
            "note: held to CPUs, the process off the disk's interrupt CPU faults more on both sides, but the "
            "simulator's process on that CPU runs further ahead than the kernel's and the group faults less "
            '(why is open); docs/kernel-truth.md, "Which CPU the disk interrupts"'
        )
    elif not ok and len(pids) > 1 and settings.groups == 1:
        print(
            "note: processes contending for one group split the kernel's faults evenly, as the simulator's "
            "do, or one gets ahead and the group faults less (on zram, 5 runs in 8 of two 40 MiB processes); "
            'docs/kernel-truth.md, "Several processes in one group"'
        )
    return 0 if ok else 1


def _run_nearby(
    trace: str,
    overrides_at: Callable[[int], list[str]],
    tmp: str,
    at_limit: tuple[list[tuple[int, int]], Timeline],
) -> tuple[list[list[tuple[int, int]]], list[Timeline], list[str]]:
    """``--nearby``: the simulator at the limits :data:`NEARBY_PAGES` from the given ones (``at_limit``:
    the run at the given limit, each process's (minflt, majflt), and its timeline), as many at once as
    this process has CPUs. Returns each run's counts and timeline, in the order of the limits, and
    the limits (``+8 pages``) at which its group's OOM killer took a process, which are left out."""
    from concurrent.futures import ThreadPoolExecutor

    from vmexp.validate.__main__ import (
        SimulatorOOMKilled,
        SimulatorRunError,
        check_finished,
        read_run,
        run_simulator,
    )

    def one(pages: int) -> tuple[list[tuple[int, int]], Timeline] | None:
        if not pages:
            return at_limit
        run_dir = os.path.join(tmp, f"nearby{pages:+d}")
        try:
            run_simulator(trace, overrides_at(pages), run_dir)
            check_finished(run_dir)
        except SimulatorOOMKilled as e:
            if not e.group:
                raise
            return None
        except SimulatorRunError as e:  # e.g. a limit moved below what the processes need
            raise SimulatorRunError(f"--nearby, every limit moved by {pages:+d} pages: {e}") from None
        procs = read_run(run_dir)
        return [(procs[k].minflt, procs[k].majflt) for k in sorted(procs)], simulated_timeline(run_dir)

    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as ex:
        got = list(ex.map(one, NEARBY_PAGES))
    left = [f"{k:+d} pages" for k, run in zip(NEARBY_PAGES, got, strict=True) if run is None]
    kept = [run for run in got if run is not None]
    return [counts for counts, _ in kept], [timeline for _, timeline in kept], left


def _figure_file(path: str) -> Path:
    """``--figure``'s file, refused before any run when matplotlib cannot write its format."""
    from vmexp.api import VmexpError
    from vmexp.compare import figure_path

    try:
        out = figure_path(path, "kernel-faults.png")
    except VmexpError as e:
        raise UsageError(f"--figure {e}") from None
    where = out.parent.resolve()
    while not where.exists():  # draw makes the missing directories: the nearest existing one must take them
        where = where.parent
    if not where.is_dir() or not os.access(where, os.W_OK | os.X_OK):
        raise UsageError(f"--figure {out}: {where} is not a directory this user can write in")
    return out


def _timer_may_decide(real: Sequence[K.KernelRun], sim_ov: Sequence[str]) -> bool:
    """The real runs' major faults spread by more than the tolerance, and the simulator ran
    ``policy=linux`` (the one with statistics): where ``--stats-every`` may turn a draw into a comparison."""
    mid, lo, hi = _mid_range([r.majflt for r in real])
    return _policy(sim_ov) == "linux" and hi - lo > MAJFLT_TOLERANCE * max(mid, 1)
