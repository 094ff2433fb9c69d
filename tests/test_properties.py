"""Random workloads through the whole simulator, with every invariant checked after every step.

Hypothesis draws a machine (a few pages of RAM, little or no swap, any
policy, any allocator and mmap threshold) and a few processes whose
operations are random allocation calls with sizes picked at the edges that
matter (0, 1, page and tcache/fastbin boundaries, the mmap threshold +- 1,
sizes no machine can map) and random touches of the live blocks. The run uses
``simulate(..., check=True)``: the kernel's checker (no frame or swap slot
leaked or owned twice, resident + free = RAM, every present PTE maps back,
the policy tracks exactly the resident frames) and the allocator's own
``check`` run after every operation and every page reference. On top of
those, this file checks what neither checker covers: mallinfo2's identities
and the heap walk against mallinfo2 (computed here independently from the
walk), RSS <= VSZ, counters never negative and peaks never below the current
value.

Example counts come from a profile chosen by the ``HYPOTHESIS_PROFILE``
environment variable: ``ci`` (the default, a few seconds) or ``long``
(README, "Long property runs")::

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py tests/test_differential.py
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import vmexp.sim
from tests.conftest import settings as composed
from vmexp.config import Settings
from vmexp.kernel.observe import Checker
from vmexp.kernel.system import MM, System
from vmexp.libc.base import CHUNK_STATES, MALLINFO_FIELDS, Allocator, Kernel
from vmexp.libc.factory import make_allocator as real_make_allocator
from vmexp.sim import Result, simulate
from vmexp.workload import ProcSpec
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, TOUCH, Op

# ---------------------------------------------------------------------------------------------- profile

# Each profile: examples per property test. "long" is the documented large run.
PROFILES = {"ci": 40, "long": 3000}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE: {PROFILE!r} is not one of {', '.join(PROFILES)}")
for _name, _n in PROFILES.items():
    settings.register_profile(
        f"vmexp-properties-{_name}",
        max_examples=_n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
RUN = settings.get_profile(f"vmexp-properties-{PROFILE}")

KiB = 1024
MiB = 1024 * KiB

# ---------------------------------------------------------------------------------------------- sizes

# Request sizes whose chunk lands exactly on, or one byte past, a boundary of glibc's model:
# request2size(n) = max(32, (n + 8 + 15) & ~15), so n = T - 8 is the largest request whose chunk
# is T - 0 (heap) and n = T - 7 the smallest whose chunk is T + 16 (mmap when T is the threshold).
_THRESHOLDS = (64 * KiB, 128 * KiB, 256 * KiB)
EDGE_SIZES = sorted(
    {0, 1, 8, 24, 25, 40, 120, 121, 1032, 1033, 1040}
    | {n for ps in (4096,) for n in (ps - 1, ps, ps + 1, 2 * ps, 4 * ps - 24)}
    | {n for t in _THRESHOLDS for n in (t - 24, t - 23, t - 9, t - 8, t - 7, t - 1, t, t + 1)}
    | {32 * MiB - 8, 32 * MiB + 1}
)
# Sizes none of these machines maps: beyond RAM + swap (Linux's overcommit check), beyond the address
# space, or so large that request2size wraps as glibc's longs do.
HUGE_SIZES = (1 << 40, 1 << 47, 1 << 62, (1 << 63) - 1)

# Huge sizes one draw in seven: each one is an ENOMEM, and a program of only those touches nothing.
# Mid sizes by name as well as by range: hypothesis draws small integers far more often than large.
MID_SIZES = (8 * KiB, 32 * KiB, 64 * KiB, 96 * KiB, 160 * KiB, 256 * KiB)
sizes = st.one_of(
    st.sampled_from(EDGE_SIZES),
    st.integers(0, 2048),
    st.integers(0, 300 * KiB),
    st.sampled_from(MID_SIZES),
    st.sampled_from(MID_SIZES),
    st.sampled_from(MID_SIZES),
    st.sampled_from(HUGE_SIZES),
)

# ---------------------------------------------------------------------------------------------- workloads

# Touch at most this many bytes per operation: with the checker on after every page reference,
# a run's cost grows with pages touched times pages tracked.
MAX_TOUCH = 128 * KiB

# A touch: the block, where it starts (percent of the block), how long (bytes, cut at the block's end).
# Lengths are mostly whole pages' worth: hypothesis favours 0 and 1 in a plain integer range.
touch = st.tuples(
    st.just("touch"),
    st.integers(0, 1 << 16),
    st.integers(0, 99),
    st.one_of(st.sampled_from([4096, 16 * KiB, 64 * KiB, MAX_TOUCH]), st.integers(0, MAX_TOUCH)),
    st.booleans(),
)
# What a program does with a block it just got: nothing, writes its start, or writes all of it.
# Real programs use their memory, and memory must fill up for reclaim, swap and the OOM killer.
use = st.sampled_from(["none", "start", "all", "all"])
# Touches twice as likely as the other operations, for the same reason.
action = st.one_of(
    st.tuples(st.just("malloc"), sizes, use),
    st.tuples(st.just("calloc"), st.integers(0, 8), sizes, use),
    st.tuples(st.just("realloc"), st.integers(0, 1 << 16), sizes, use),
    st.tuples(st.just("free"), st.integers(0, 1 << 16)),
    touch,
    touch,
    st.tuples(st.just("touch_all"), st.integers(0, 1 << 16), st.booleans()),
    st.tuples(st.just("compute"), st.integers(0, 200_000)),
)


def ops_from(actions: list[tuple[Any, ...]]) -> list[Op]:
    """Operation tuples of a well-formed program: frees and touches name live ids only.

    Block sizes are tracked as the simulator tracks them (the requested size;
    count * size for calloc), so a touch stays inside its block.
    """
    ops: list[Op] = []
    live: dict[int, int] = {}
    next_id = 0

    def used(ident: int, how: str) -> None:
        size = live[ident]
        if how == "start" or (how == "all" and size > 2 * MAX_TOUCH):
            ops.append((TOUCH, ident, 0, min(size, MAX_TOUCH), 1))
        elif how == "all":
            ops.append((TOUCH, ident, 0, -1, 1))

    for a in actions:
        kind = a[0]
        if kind == "malloc":
            ops.append((MALLOC, next_id, a[1]))
            live[next_id] = a[1]
            used(next_id, a[2])
            next_id += 1
        elif kind == "calloc":
            ops.append((CALLOC, next_id, a[1], a[2]))
            live[next_id] = a[1] * a[2]
            used(next_id, a[3])
            next_id += 1
        elif kind == "compute":
            ops.append((COMPUTE, a[1]))
        elif not live:
            continue
        else:
            ident = sorted(live)[a[1] % len(live)]
            if kind == "realloc":
                ops.append((REALLOC, ident, a[2]))
                if a[2] == 0:
                    del live[ident]  # realloc(p, 0) frees p, as glibc does
                else:
                    live[ident] = a[2]
                    used(ident, a[3])
            elif kind == "free":
                ops.append((FREE, ident))
                del live[ident]
            elif kind == "touch":
                size = live[ident]
                off = size * a[2] // 100
                length = min(a[3], size - off)
                ops.append((TOUCH, ident, off, length, int(a[4])))
            elif live[ident] <= 2 * MAX_TOUCH:  # touch_all: the whole block, when it is not huge
                ops.append((TOUCH, ident, 0, -1, int(a[2])))
    return ops


procs = st.lists(st.lists(action, min_size=4, max_size=30), min_size=1, max_size=3)

# ---------------------------------------------------------------------------------------------- machines


@functools.cache
def base_settings(policy: str, allocator: str) -> Settings:
    """Composed once per (policy, allocator): Hydra composition costs ~50 ms, a run a few."""
    return composed(f"policy={policy}", f"allocator={allocator}", "workload=trace", "workload.path=unused")


@st.composite
def machines(draw: st.DrawFn) -> Settings:
    policy = draw(st.sampled_from(["fifo", "lru", "clock", "lru2q", "random", "lfu", "ws"]))
    allocator = draw(st.sampled_from(["glibc", "glibc", "glibc", "first_fit", "best_fit"]))
    base = base_settings(policy, allocator)
    # RAM + swap below glibc's first heap (33 pages) makes every allocation fail; above, processes
    # that use their blocks (up to 256 KiB at once) fill RAM quickly, then swap; the OOM killer runs.
    ram_pages = draw(st.sampled_from([24, 40, 64, 128]))
    swap_pages = draw(st.sampled_from([0, 64, 128, 512]))
    min_free = draw(st.sampled_from([0, 0, 2])) * 4096
    threshold = draw(st.sampled_from([None, 0, 64 * KiB, 128 * KiB, 256 * KiB]))
    mmap_max = draw(st.sampled_from([None, None, 0]))
    scope = draw(st.sampled_from(["global", "global", "local"]))
    return replace(
        base,
        ram=ram_pages * 4096,
        swap=swap_pages * 4096,
        seed=draw(st.integers(0, 1000)),
        # Short slices interleave the processes often, so their pages compete for frames.
        machine=replace(base.machine, min_free=min_free, quantum=draw(st.sampled_from([20_000, 4_000_000]))),
        policy=replace(base.policy, scope=scope),
        allocator=replace(base.allocator, mmap_threshold=threshold, mmap_max=mmap_max),
    )


# ---------------------------------------------------------------------------------------------- invariants


def heap_matches_mallinfo(alloc: Allocator, glibc: bool) -> None:
    """mallinfo2's identities, and its fields recomputed from the heap walk.

    For glibc (int_mallinfo): arena = the bytes of the non-mmapped chunks (the
    misaligned-break gap aside, which check() covers), ordblks = 1 + free
    chunks (the top counts as one), smblks/fsmblks = fastbin chunks/bytes,
    hblks/hblkhd = mmapped chunks/bytes, fordblks = top + free + fastbin
    bytes, keepcost = the top. Tcache chunks count as in use, as in glibc.
    """
    mi = alloc.mallinfo2()
    assert list(mi) == list(MALLINFO_FIELDS)
    assert all(v >= 0 for v in mi.values()), mi
    assert mi["uordblks"] + mi["fordblks"] == mi["arena"], mi
    walk = alloc.heap_walk()
    assert [c for c, _s, _st in walk] == sorted(c for c, _s, _st in walk)
    states: dict[str, list[int]] = {s: [] for s in CHUNK_STATES}
    for _c, size, state in walk:
        assert size > 0, walk
        states[state].append(size)
    for (c0, s0, _st0), (c1, _s1, _st1) in itertools.pairwise(walk):
        assert c0 + s0 <= c1, f"chunks overlap: {c0:#x}+{s0} > {c1:#x}"
    if not glibc:
        assert mi["fordblks"] == sum(states["free"]), mi
        return
    assert mi["ordblks"] >= 1, mi
    assert len(states["top"]) <= 1
    assert mi["ordblks"] == 1 + len(states["free"]), mi
    assert mi["smblks"] == len(states["fastbin"]) and mi["fsmblks"] == sum(states["fastbin"]), mi
    assert mi["hblks"] == len(states["mmapped"]) and mi["hblkhd"] == sum(states["mmapped"]), mi
    assert mi["keepcost"] == sum(states["top"]), mi
    assert mi["fordblks"] == sum(states["top"]) + sum(states["free"]) + sum(states["fastbin"]), mi
    arena_chunks = sum(sum(v) for k, v in states.items() if k != "mmapped")
    assert arena_chunks <= mi["arena"] <= arena_chunks + 4096, (arena_chunks, mi)
    assert mi["usmblks"] == 0


def extra_invariants(system: System, allocs: list[tuple[MM, Allocator]]) -> None:
    """What the kernel's checker does not cover: per-process counters and the heap's bookkeeping."""
    ps = system.page_size
    assert 0 <= system.mem.nfree <= system.mem.nframes
    assert 0 <= system.space.used <= system.space.nslots
    assert system.stat.pswpin >= 0 and system.stat.pswpout >= 0 and system.stat.clean_drops >= 0
    for mm in system.mms.values():
        for name in ("minflt", "majflt", "refs", "rss", "swapents", "pswpin", "pswpout"):
            assert getattr(mm, name) >= 0, (mm.pid, name, getattr(mm, name))
        assert all(n >= 0 for n in mm.syscalls.values()), mm.syscalls
        assert mm.rss_peak >= mm.rss and mm.swap_peak >= mm.swapents
        if not mm.killed:
            assert mm.rss * ps <= mm.aspace.vsz, f"p{mm.pid}: RSS {mm.rss * ps} > VSZ {mm.aspace.vsz}"
            assert mm.aspace.vsz_peak >= mm.aspace.vsz
    for mm, alloc in allocs:
        if not mm.killed:
            heap_matches_mallinfo(alloc, type(alloc).__name__ == "GlibcMalloc")


@contextmanager
def everything_checked() -> Iterator[list[tuple[MM, Allocator]]]:
    """Make the checker's step (after every operation, with check=True) also run extra_invariants.

    After every operation, not after every reference: references include the
    allocator's header writes in the middle of a malloc, where the heap's
    bookkeeping is half done.
    """
    allocs: list[tuple[MM, Allocator]] = []
    real_step = Checker.step

    def make_allocator(s: Any, kernel: Kernel) -> Allocator:
        a = real_make_allocator(s, kernel)
        allocs.append((kernel.mm, a))  # type: ignore[attr-defined]
        return a

    def step(self: Checker) -> None:
        real_step(self)
        extra_invariants(self.kernel, allocs)

    with (
        mock.patch("vmexp.sim.make_allocator", make_allocator),
        mock.patch.object(Checker, "step", step),
    ):
        yield allocs


def final_invariants(s: Settings, res: Result, specs: list[ProcSpec]) -> None:
    """After the run: every process ended in a known way, everything it held came back."""
    ps = s.page_size
    for p, _spec in zip(res.processes, specs, strict=True):
        assert p.exit in ("ok", "oom-killed"), (p.exit, p.error)
        assert p.rss_peak_bytes <= p.vsz_peak_bytes, p
        assert p.enomem >= 0 and p.minflt >= 0 and p.majflt >= 0
        assert p.rss_peak_bytes <= s.ram and p.swap_peak_bytes <= s.swap
    sysd = res.system
    assert sysd["oom_kills"] == sum(p.exit == "oom-killed" for p in res.processes)
    assert sysd["swap_used_peak_bytes"] <= s.swap
    assert 0 <= sysd["free_bytes_min"] <= s.ram // ps * ps
    # Every call the log holds is counted in its process's counters, and the reverse.
    for p in res.processes:
        logged = [c[3] for c in res.syscalls if c[0] == p.pid]
        assert {k: logged.count(k) for k in p.syscalls} == p.syscalls


# ---------------------------------------------------------------------------------------------- the properties


@RUN
@given(s=machines(), programs=procs)
def test_random_workloads_keep_every_invariant(s: Settings, programs: list[list[tuple[Any, ...]]]) -> None:
    specs = [ProcSpec(name=f"p{i}", ops=ops_from(a)) for i, a in enumerate(programs, 1)]
    note(f"ram {s.ram // 4096} pages, swap {s.swap // 4096}, {s.policy.name}/{s.policy.scope}, {s.allocator}")
    for sp in specs:
        note(f"{sp.name}: {sp.ops}")
    with everything_checked() as allocs:
        res = simulate(s, specs, check=True)
    assert len(allocs) == len(specs)
    final_invariants(s, res, specs)
    # What the run went through (--hypothesis-show-statistics): the examples must reach swap and OOM.
    for p in res.processes:
        event(f"exit {p.exit}")
    event(f"swapped out: {res.system['pswpout'] > 0}, in: {res.system['pswpin'] > 0}")
    event(f"ENOMEM: {any(p.enomem for p in res.processes)}")


@RUN
@given(s=machines(), programs=procs)
def test_every_frame_and_slot_comes_back_when_the_processes_exit(
    s: Settings, programs: list[list[tuple[Any, ...]]]
) -> None:
    """After the run nothing is resident and no swap slot is held: exit frees everything."""
    specs = [ProcSpec(name=f"p{i}", ops=ops_from(a)) for i, a in enumerate(programs, 1)]
    sim = vmexp.sim.Simulation(s, specs, check=False)
    sim.run()
    sysm = sim.system
    sysm.check()
    mem = sysm.mem
    assert mem.nfree == mem.nframes, f"{mem.nframes - mem.nfree} frames still held after every exit"
    assert sysm.space.used == 0, f"{sysm.space.used} swap slots still held after every exit"


@pytest.mark.parametrize("size", EDGE_SIZES + list(HUGE_SIZES))
def test_each_edge_size_alone_is_allocated_touched_and_freed_cleanly(size: int) -> None:
    """Each edge size once, deterministically, so a CI run covers all of them whatever hypothesis draws."""
    # 64 MiB of swap: Linux's overcommit check lets one request map up to RAM + swap (32 MiB + 1 fits).
    s = replace(base_settings("lru", "glibc"), ram=64 * 4096, swap=64 * MiB)
    ops: list[Op] = [(MALLOC, 0, size), (TOUCH, 0, 0, min(size, MAX_TOUCH), 1), (REALLOC, 0, size + 1)]
    ops += [(FREE, 0), (CALLOC, 1, 2, size), (FREE, 1)]
    with everything_checked():
        res = simulate(s, [ProcSpec(name="edge", ops=ops)], check=True)
    (p,) = res.processes
    assert p.exit == "ok", p.error
    # Sizes beyond RAM + swap or the address space come back as NULL (ENOMEM), recorded, never fatal.
    if size >= 1 << 40:
        assert p.enomem >= 2
    else:
        assert p.enomem == 0


def test_a_failed_malloc_of_zero_bytes_is_a_null_block() -> None:
    """8 pages of RAM and no swap: glibc's first heap (132 KiB) is more than RAM + swap, so even
    malloc(0) fails (ENOMEM; the real glibc returns NULL then too). The program's free of that id is
    free(NULL) and its touch of 0 bytes touches nothing: the process must end "ok", with 2 ENOMEM."""
    s = replace(base_settings("lru", "glibc"), ram=8 * 4096, swap=0)
    ops: list[Op] = [(MALLOC, 0, 0), (FREE, 0), (CALLOC, 1, 0, 8), (TOUCH, 1, 0, 0, 1), (FREE, 1)]
    (p,) = simulate(s, [ProcSpec(name="p", ops=ops)], check=True).processes
    assert (p.exit, p.error, p.enomem) == ("ok", "", 2)
