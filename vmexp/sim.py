"""The machine on SimPy: CPUs, processes executing their workloads, kswapd, sampling.

Performance design: SimPy events happen only where simulated
time passes and another process may run meanwhile. A process that holds a
CPU executes operations in a plain loop, adding their costs to the kernel's
slice clock, until its quantum is used up, it blocks on the swap device
(a major fault) or it sleeps; then one timeout moves simulated time by what
the slice consumed. A reference costs no event; a major fault costs about
three (the slice's timeout, the hand-over of the CPU, the wait).

Approximation, stated: the effects of a slice are applied at its start and
its time is charged at its end, so several CPUs' slices that overlap in time
are applied one after the other. On several CPUs a slice is therefore run
in stretches of at most ``machine.interleave`` (50 µs), one event each, so
that what one CPU's process does runs at most that far ahead of the
others': with whole 4 ms slices two processes contending for one memory
cgroup parted from the kernel's by 44 % in major faults, with 50 µs
stretches they agree (docs/kernel-truth.md, "Several processes in one
group"). Device requests carry their true arrival times, so the swap queue
still sees the load it would, and serves them in order of those times even
when one CPU's reaches it after a later one of another's (``SwapDevice``).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, cast

import numpy as np
import simpy

from vmexp.config import Settings, check_cgroup_capacity
from vmexp.kernel.fault import PLAIN_MASK, PLAIN_WANT
from vmexp.kernel.loadctl import LoadControl, WorkingSetSampler
from vmexp.kernel.observe import Checker, Narrator, Observer, Observers
from vmexp.kernel.pagetable import PTE_NONE
from vmexp.kernel.policies import policy_class
from vmexp.kernel.system import MM, SWAP_CLUSTER_MAX, ProcessKilled, Segfault, System
from vmexp.libc.base import MALLINFO_FIELDS, Allocator
from vmexp.libc.factory import make_allocator
from vmexp.results import ProcResult, Result
from vmexp.units import format_duration, format_size
from vmexp.workload import ProcSpec, WorkloadError
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, SLEEP, TOUCH, Op, describe

_ALLOCATIONS = (MALLOC, CALLOC, REALLOC)
# The operations that call the allocator: they also touch its state in the program's image (mm.hot_alloc).
_ALLOCATOR_CALLS = frozenset((MALLOC, CALLOC, REALLOC, FREE))
# The operations on a block, which use its entries in the program's tables of block ids (mm.id_tables).
_BLOCK_OPS = frozenset((MALLOC, CALLOC, REALLOC, FREE, TOUCH))

__all__ = ["simulate", "Result", "ProcResult", "SimError"]

RUNNING, BLOCKED, SLEEPING, DONE = 0, 1, 2, 3
NEVER = 1 << 63  # a time no run reaches (no heap snapshot due)
_ONES = b"\x01" * 4096
# Of a process's hot image pages (``mm.hot``), how many it touches after its last operation: the
# replayer's getrusage (perf record of the real kernel: vmexp.kernel.memcg).
EXIT_HOT = 4
_ZEROS = bytes(4096)


class SimError(RuntimeError):
    """A run that cannot go on (not a process's own failure); the message says why."""


class JobLimit(SimError):
    """The job hit job_timeout or job_memory; the sweep records it as failed and goes on."""


# Host bytes per page the simulator tracks (page-table entry, frame tables,
# policy entry), measured with bench/bench_engine.py; the job_memory guard
# multiplies by it.
BYTES_PER_TRACKED_PAGE = 400
# Host bytes per row of the time series held until the run ends (tracemalloc,
# median over a default run's rows); the same guard bounds them, so that a
# tiny sample_interval is refused instead of filling the host's memory.
BYTES_PER_SAMPLE_ROW = 400
# And per line of explain=true's narration: a str of ~60 characters (107 bytes),
# its list slot, and its copy when explain.log is written.
BYTES_PER_EXPLAIN_LINE = 170


class WorkloadFault(Exception):
    """The workload did something its process cannot survive (double free, use after free)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class Span:
    """Work the engine applied at once whose simulated time runs on: a slice, a kswapd batch.

    A process's slice executes at its start and its time passes afterwards
    (the performance design); the sampler spreads what the slice did (CPU
    time, faults, swap traffic) evenly over [start, end), so a sample taken
    in the middle of a slice sees the part of it that has happened and
    every utilisation sample stays within its bounds.
    """

    __slots__ = ("cpu", "dmaj", "dmin", "dpin", "dpout", "end", "pid", "start")

    def __init__(
        self, start: int, end: int, cpu: int, pid: int, dmin: int, dmaj: int, dpin: int, dpout: int
    ) -> None:
        self.start = start
        self.end = end
        self.cpu = cpu
        self.pid = pid
        self.dmin = dmin
        self.dmaj = dmaj
        self.dpin = dpin
        self.dpout = dpout

    def left(self, value: int, t: int) -> int:
        """The part of ``value`` still to come at ``t`` (spread evenly over the span)."""
        if t >= self.end:
            return 0
        return value * (self.end - max(t, self.start)) // (self.end - self.start)


class Machine:
    """CPUs as ids and a FIFO of waiters: round robin with no event when a CPU is free.

    A process goes back to the CPU it last ran on when that one is free, else to the lowest
    free one, and a waiter takes over the CPU of the process that yields it: so processes no
    more than the CPUs each keep their own, the first (by pid) on CPU 0, as the scheduler keeps
    busy tasks where their caches are. Which CPU matters only for ``machine.swap_irq_cpu``.
    """

    def __init__(self, env: simpy.Environment, ncpus: int) -> None:
        self.env = env
        self.idle = list(range(ncpus))
        self.ready: deque[simpy.Event] = deque()

    def acquire(self, last: int | None) -> int | simpy.Event:
        """A free CPU's id (``last`` if it is free), or an event whose value is the CPU handed over."""
        if self.idle and not self.ready:
            cpu = last if last in self.idle else min(self.idle)
            self.idle.remove(cpu)
            return cpu
        ev = self.env.event()
        self.ready.append(ev)
        return ev

    def release(self, cpu: int) -> None:
        if self.ready:
            self.ready.popleft().succeed(cpu)  # hand the CPU straight over
        else:
            self.idle.append(cpu)


class Process:
    """A simulated process: its memory (MM), its C library, its workload."""

    def __init__(self, sim: Simulation, pid: int, spec: ProcSpec, aslr: np.random.Generator | None) -> None:
        self.sim = sim
        self.pid = pid
        self.spec = spec
        self.cpu: int | None = None  # the CPU it runs on, or last ran on (Machine)
        sysm = sim.system
        # A trace names its block ids in advance: the program's tables of them are sized for those.
        tables = bool(sysm.memcgs) and sysm.memcgs[0].image_ids and isinstance(spec.ops, list)
        ids = len({op[1] for op in spec.ops if op[0] in _BLOCK_OPS}) if tables else 0
        self.mm: MM = sysm.new_process(pid, spec.name, aslr, bare=spec.refs is not None, ids=ids)
        self.id_of: dict[int, int] = {}  # block id -> its index in those tables, in order of first use
        self.kernel = sysm.syscalls(self.mm)
        self.clock = sysm.clock
        self.obs = sysm.obs
        self.refs = sysm.fault.refs
        self.cost_ref = sysm.fault.cost_ref
        self.pte = self.mm.pt.pte
        self.pte_bits = sysm.fault.mem.pte_bits
        self.shift = sysm.shift
        self.cost = sim.s.machine.cost
        self.handlers: dict[int, Callable[[Op], None]] = defaultdict(
            lambda: self._unknown,
            {
                MALLOC: self._malloc,
                CALLOC: self._calloc,
                REALLOC: self._realloc,
                FREE: self._free,
                TOUCH: self._touch,
                COMPUTE: self._compute,
                SLEEP: self._sleep,
            },
        )
        self.alloc: Allocator | None = (
            None if spec.refs is not None else make_allocator(sim.s.allocator, self.kernel)
        )
        self.ids: dict[int, tuple[int, int]] = {}
        self.null_ids: set[int] = set()  # ids whose allocation returned NULL
        self.short: set[int] = set()  # ids whose growing realloc failed
        self.skipped = 0  # operations on NULL blocks, skipped as a checking program would
        self.ops: Iterator[Op] = iter(spec.ops)
        self.op_index = spec.op_index
        self.nops = 0
        self.pending: tuple[Sequence[int], Sequence[int], int, int] | None = None
        self.budget = 0  # the running slice's budget, for handlers that start references at once
        self.compute_left = 0
        self.sleep_ns = 0
        if spec.refs is not None:
            vpns, writes = spec.refs
            lo, hi = min(vpns), max(vpns)
            lay = sim.s.layout
            if (hi + 1) << sysm.shift > lay.task_size:
                # The key the string came from (a trace of several processes: workload.path).
                key = "workload.path" if getattr(sim.s.workload, "path", None) else "workload.refs"
                raise SimError(
                    f"{key}: page {hi:,} of the reference string lies above the user address space "
                    f"({lay.name}: pages 0 to {(lay.task_size >> sysm.shift) - 1:,} of {format_size(1 << sysm.shift)})"
                )
            self.mm.aspace.map(lo << sysm.shift, (hi + 1) << sysm.shift, "pageref")
            self.pending = (vpns, writes, 0, len(vpns))
        self.blocked_ns = 0
        self.slept_ns = 0  # of the current slice's inline waits, the think time
        self.enomem = 0
        self.error = ""
        self.start_ns = spec.start_ns
        self.end_ns = -1
        self.final: ProcResult | None = None
        # heap_snapshots still to take, the next one last; a process records its own heap when its
        # slice clock reaches each time, as a slice runs its operations at once (see execute).
        self.snap_times = sorted(sim.s.heap_snapshots, reverse=True) if self.alloc is not None else []
        self.snap_due = self.snap_times[-1] if self.snap_times else NEVER
        # An operation fetched whose touches of the hot image pages run first; whether the touches
        # after the last operation are still to come (none without hot pages).
        self.held: Op | None = None
        self.exit_touches = bool(self.mm.hot)
        self.done = sim.env.event()
        self.suspended = False  # deactivated by load control
        self.resumed: simpy.Event | None = None

    # ---------------------------------------------------------- execution
    def execute(self, budget: int) -> int:
        """Run operations until the slice is used, the process blocks or sleeps, or the workload ends.

        The one operation interpreter: an operation either finishes at once
        (malloc, free...) or leaves work that spans slices (a touch's page
        references in ``pending``, ``compute_left``), which the loop resumes
        first. With an observer attached (explain, check) it is told of
        each operation and checks run after it; nothing else differs.

        A process with a program image in a memory cgroup touches the image
        pages every operation uses (``mm.hot``) before each operation (and
        the allocator's state, ``mm.hot_alloc``, before each malloc, calloc,
        realloc and free), and some after the last: as the real program
        does, it faults them back in after an operation that swept them out,
        and counts those faults.
        """
        clock = self.clock
        obs = self.obs
        mm = self.mm
        ops = self.ops
        op_index = self.op_index
        handlers = self.handlers
        self.budget = budget
        # The next heap snapshot in the slice clock's ns: a slice runs at once, so a snapshot taken
        # between slices would show operations that come after its time (one quantum later).
        snap_at = self.snap_due - int(self.sim.env.now)
        # A program image in a memory cgroup (mm.hot is part of mm.hot_alloc): else nothing of its own to touch.
        has_image = bool(mm.hot_alloc or mm.id_tables)
        while clock.used < budget:
            if mm.resched:
                mm.resched = False
                if self.sim.system.fault.user_return(mm) and not self.sim.wait_inline():
                    return BLOCKED
                continue
            if self.pending is not None:
                if self._resume_refs(budget):
                    return BLOCKED
                continue
            if self.compute_left:
                step = min(self.compute_left, budget - clock.used)
                clock.used += step
                self.compute_left -= step
                continue
            if clock.used >= snap_at:
                snap_at = self.heap_snapshots(clock.now()) - int(self.sim.env.now)
            op = self.held
            if op is None:
                op = next(ops, None)
                if op is None:
                    if not self.exit_touches:
                        return DONE
                    self.exit_touches = False
                    self._touch_own(mm.hot[-EXIT_HOT:])
                    if clock.block_until and not self.sim.wait_inline():
                        return BLOCKED
                    continue
                mm.op = op_index[self.nops] if op_index is not None else self.nops
                self.nops += 1
                if obs is not None:
                    obs.operation(mm, clock.now(), describe(op))
                own = (mm.hot_alloc if op[0] in _ALLOCATOR_CALLS else mm.hot) if has_image else ()
                writes = _ONES
                if has_image and mm.id_tables and op[0] in _BLOCK_OPS:
                    own, writes = self._with_id_entries(own, op)
                if own:
                    self._touch_own(own, writes)
                    # Straight on to the operation, unless the loop's head has something to do first.
                    if (
                        self.pending is not None
                        or clock.block_until
                        or clock.used >= budget
                        or clock.used >= snap_at
                    ):
                        self.held = op
                        if clock.block_until and not self.sim.wait_inline():
                            return BLOCKED
                        continue
            else:
                self.held = None
            handlers[op[0]](op)
            if obs is not None:
                self._after_op(obs)
            if clock.block_until and not self.sim.wait_inline():
                return BLOCKED
            if self.sleep_ns and not self._sleep_inline():
                return SLEEPING
        return RUNNING

    def heap_snapshots(self, now: int) -> int:
        """Record the heap for every snapshot time up to ``now``; the time of the next one.

        The heap changes only when the process runs an operation, so a
        snapshot taken at the first operation at or after its time (or when
        the run or the process ends) is the heap as it was at that time.
        """
        times = self.snap_times
        while times and times[-1] <= now:
            t = times.pop()
            assert self.alloc is not None  # only a process with a heap has snapshot times
            self.sim.snapshots.extend(
                (t, self.pid, a, size, state) for a, size, state in self.alloc.heap_walk()
            )
        self.snap_due = times[-1] if times else NEVER
        return self.snap_due

    def last_heap_snapshots(self, end: int) -> None:
        """The snapshots due before the process died (OOM) or the run ended at ``end``.

        A process that ran no operation since a snapshot's time (waiting
        for the CPU, the swap device or load control) had the heap it has
        now; one the OOM killer took had it until the kill.
        """
        if not self.snap_times:
            return
        if self.mm.killed:
            kills = [k for k in self.sim.system.oom.kills if k["pid"] == self.pid]
            if not kills:
                return  # ended by its own workload (segfault...): its operations took what was due
            end = min(end, round(kills[-1]["time_s"] * 1e9))
        self.heap_snapshots(end)

    def _resume_refs(self, budget: int) -> bool:
        """Go on with the page references of a touch; True if the process must block."""
        assert self.pending is not None
        vpns, writes, i, n = self.pending
        i = self.refs(self.mm, vpns, writes, i, n, budget)
        self.pending = (vpns, writes, i, n) if i < n else None
        return bool(self.clock.block_until) and not self.sim.wait_inline()

    def _after_op(self, obs: Observer) -> None:
        obs.step()
        if self.sim.check and self.alloc is not None and not self.mm.killed:
            heap_check = getattr(self.alloc, "check", None)
            if heap_check is not None:
                heap_check()

    def _sleep_inline(self) -> bool:
        """Think time, the same way: inline when nothing else is due before it ends."""
        clock = self.clock
        env = self.sim.env
        if self.sim.machine.ready or clock.now() + self.sleep_ns > env.peek():
            return False
        clock.wait(self.sleep_ns)
        self.slept_ns += self.sleep_ns
        self.sleep_ns = 0
        self.mm.switched_out()
        return True

    def _block(self, op: Op) -> tuple[int, int] | None:
        """The (pointer, size) of the op's id; None for an allocation that failed (skip the op)."""
        got = self.ids.get(op[1])
        if got is not None:
            return got
        if op[1] in self.null_ids:
            self.skipped += 1
            return None
        what = describe(op).split()[0]
        if self._allocated_before(op[1]):
            raise WorkloadFault(
                "use-after-free",
                f"{self._where()}: {what} of id {op[1]}, which is not allocated (it was freed: a use after free)",
            )
        # A pointer malloc never returned points at no mapping (an uninitialised or made-up
        # pointer): the MMU finds no VMA and Linux sends SIGSEGV, as for a touch past a block.
        raise WorkloadFault(
            "segfault",
            f"{self._where()}: {what} of id {op[1]}, which the trace never allocated (a wild pointer: SIGSEGV)",
        )

    def _allocated_before(self, ident: int) -> bool:
        """Whether an operation before this one allocated ``ident`` (it is not live now: it was freed).

        Asked only when an operation names an id that is not live, which
        ends the process; the trace's earlier operations are looked through
        then, rather than every freed id kept for the whole run (the
        generators never reuse an id: a long run frees millions). A
        generator's operations are not kept; it never names an id it did
        not allocate.
        """
        ops = self.spec.ops
        if not isinstance(ops, Sequence):
            return True
        return any(o[1] == ident and o[0] in _ALLOCATIONS for o in itertools.islice(ops, self.nops - 1))

    def _where(self) -> str:
        lines = self.spec.lines
        if lines is not None and 0 <= self.mm.op < len(lines):
            return f"operation {self.mm.op} (trace line {lines[self.mm.op]})"
        return f"operation {self.mm.op}"

    # One handler per operation code (``handlers[code](op)``).
    def _touch(self, op: Op) -> None:
        """Decode a touch into the page references it makes; the loop runs them."""
        got = self.ids.get(op[1]) or self._block(op)
        if got is None:
            return
        p, size = got
        off, length, w = op[2], op[3], op[4]
        if length < 0:
            off, length = 0, size
        elif op[1] in self.short and off + length > size:
            # A realloc that failed left the block at its old size.
            off, length = min(off, size), max(0, min(length, size - min(off, size)))
        if off < 0 or off + length > size:
            raise WorkloadFault(
                "segfault",
                f"{self._where()}: touch {op[1]} [{off}, {off + length}) is outside its {size}-byte block",
            )
        if length == 0:
            return
        shift = self.shift
        v0 = (p + off) >> shift
        n = ((p + off + length - 1) >> shift) - v0 + 1
        if n == 1 and self.obs is None and self.clock.used < self.budget:
            # One reference that the MMU lets through (most touches of a small object) is
            # answered here with the loop's own test and cost, as ``Syscalls.read`` and
            # ``write`` answer the allocator's: setting up the loop, even calling the method that
            # starts it, cost more than the reference (5 % of a default run's CPU).
            e = self.pte.get(v0, PTE_NONE)
            if e >= 0 and self.pte_bits[e] & PLAIN_MASK[w] == PLAIN_WANT[w]:
                on_hit = self.mm.policy.on_hit
                if on_hit is not None:
                    on_hit(e)
                self.clock.used += self.cost_ref
                self.mm.refs += 1
                self.pending = None
                return
        writes = _ONES if w else _ZEROS
        if n > len(writes):
            writes = bytes([w]) * n
        self._start_refs(range(v0, v0 + n), writes, n)

    def _start_refs(self, vpns: Sequence[int], writes: Sequence[int], n: int) -> None:
        """Run a touch's references now, or leave them to the loop.

        The loop would run them next anyway (nothing happens between), so
        calling the reference loop here saves a turn of it per touch. With an
        observer attached, or the slice spent, the loop's order is kept.
        """
        if self.obs is None and self.clock.used < self.budget:
            i = self.refs(self.mm, vpns, writes, 0, n, self.budget)
            self.pending = (vpns, writes, i, n) if i < n else None
        else:
            self.pending = (vpns, writes, 0, n)

    def _with_id_entries(self, own: Sequence[int], op: Op) -> tuple[Sequence[int], bytes]:
        """``own``, and the pages of the block's entries in the program's tables beyond their first pages.

        The replayer loads a block's state, pointer and size for every
        operation on it and stores them for an allocator call. The first page
        of each table is among ``own`` already.
        """
        ids = self.id_of
        i = ids.get(op[1])
        if i is None:
            i = ids[op[1]] = len(ids)
        shift = self.shift
        extra = [page0 + k for page0, entry in self.mm.id_tables if (k := (i * entry) >> shift)]
        if not extra:
            return own, _ONES
        w = b"\x01" if op[0] in _ALLOCATOR_CALLS else b"\x00"
        return (*own, *extra), _ONES[: len(own)] + w * len(extra)

    def _touch_own(self, vpns: Sequence[int], writes: bytes = _ONES) -> None:
        """The program's own hot pages (``mm.hot``, ``mm.hot_alloc``; ``writes``: which are stores, all by default).

        All resident: answered here, else by the loop.

        Seven references before every operation went through the whole
        reference loop: 40 % more CPU for a run of small operations in a
        group. When every page is a plain hit and the slice has room for
        all of them, this does what the loop would (the policy's hit, the
        references' cost, the count) without setting it up.
        """
        n = len(vpns)
        clock = self.clock
        cost = self.cost_ref
        if self.obs is None and clock.used < self.budget and clock.used + (n - 1) * cost <= self.budget:
            pte, bits = self.pte, self.pte_bits
            plain = True
            if writes is _ONES:  # the image's hot pages alone: all stores
                mask, want = PLAIN_MASK[1], PLAIN_WANT[1]
                for v in vpns:
                    e = pte.get(v, PTE_NONE)
                    if e < 0 or bits[e] & mask != want:
                        plain = False
                        break
            else:
                for v, w in zip(vpns, writes, strict=True):
                    e = pte.get(v, PTE_NONE)
                    if e < 0 or bits[e] & PLAIN_MASK[w] != PLAIN_WANT[w]:
                        plain = False
                        break
            if plain:
                on_hit = self.mm.policy.on_hit
                if on_hit is not None:
                    for v in vpns:
                        on_hit(pte[v])
                clock.used += n * cost
                self.mm.refs += n
                return
        self._start_refs(vpns, writes, n)

    def _compute(self, op: Op) -> None:
        self.compute_left += op[1]

    def _sleep(self, op: Op) -> None:
        self.sleep_ns = op[1]

    def _malloc(self, op: Op) -> None:
        assert self.alloc is not None
        self._not_live(op)
        self.clock.used += self.cost.malloc
        p = self.alloc.malloc(op[2])
        self._store(op[1], p, op[2])

    def _calloc(self, op: Op) -> None:
        assert self.alloc is not None
        self._not_live(op)
        self.clock.used += self.cost.malloc
        p = self.alloc.calloc(op[2], op[3])
        self._store(op[1], p, op[2] * op[3])

    def _free(self, op: Op) -> None:
        assert self.alloc is not None
        self.clock.used += self.cost.free
        got = self.ids.pop(op[1], None)
        self.short.discard(op[1])
        if got is None and op[1] in self.null_ids:
            return  # free(NULL): nothing to do, and the pointer is still NULL (a second free is one too)
        if got is None and self._allocated_before(op[1]):
            raise WorkloadFault(
                "double-free",
                f"{self._where()}: free of id {op[1]}, which is not allocated "
                "(glibc would abort: free(): double free detected)",
            )
        if got is None:
            # glibc 2.36 aborts so on free() of a stack, static or interior pointer
            # (malloc/malloc.c: __libc_free -> _int_free's alignment and size checks).
            raise WorkloadFault(
                "invalid-pointer",
                f"{self._where()}: free of id {op[1]}, which the trace never allocated "
                "(glibc would abort: free(): invalid pointer)",
            )
        self.alloc.free(got[0])

    def _realloc(self, op: Op) -> None:
        assert self.alloc is not None
        self.clock.used += self.cost.malloc
        old = self.ids.get(op[1])
        if old is None:
            p = self.alloc.realloc(0, op[2])
            self._store(op[1], p, op[2])
        elif op[2] == 0:
            self.alloc.realloc(old[0], 0)  # glibc frees and returns NULL
            del self.ids[op[1]]
        else:
            p = self.alloc.realloc(old[0], op[2])
            if p == 0:
                self.enomem += 1  # the old block stays valid, as in C, at its old size
                self.short.add(op[1])
            else:
                self.ids[op[1]] = (p, op[2])
                self.short.discard(op[1])

    def _unknown(self, op: Op) -> None:
        raise WorkloadError(f"{self._where()}: unknown operation code {op[0]}")

    def _store(self, ident: int, p: int, size: int) -> None:
        if p == 0:
            # ENOMEM: recorded, not fatal. The program is taken to check for
            # NULL: later touches of this id are skipped, its free is free(NULL).
            self.enomem += 1
            self.null_ids.add(ident)
            return
        self.null_ids.discard(ident)
        self.ids[ident] = (p, size)

    def _not_live(self, op: Op) -> None:
        if op[1] in self.ids:
            raise WorkloadFault(
                "bad-id",
                f"{self._where()}: {describe(op).split()[0]} of id {op[1]}, which is still allocated (free it first)",
            )

    # ------------------------------------------------------------- SimPy
    def run(self) -> Generator[simpy.Event, Any, None]:
        env = self.sim.env
        clock = self.clock
        machine = self.sim.machine
        m = self.sim.s.machine
        quantum = m.quantum
        interleave = m.interleave if m.ncpus > 1 else None
        irq_cpu = m.swap_irq_cpu
        stop_at = self.sim.s.stop_at
        if self.start_ns:
            yield env.timeout(self.start_ns)
        status = RUNNING
        while True:
            while self.suspended and not self.mm.killed:
                self.resumed = env.event()
                yield self.resumed
            got = machine.acquire(self.cpu)
            if isinstance(got, int):
                on = got
            else:
                yield got
                # The CPU handed over, read here: a checked run's wrapper does not send yield's value back.
                on = cast(int, got.value)
                self.mm.switched_out()  # another process ran meanwhile: a context switch
            self.cpu = on
            if self.mm.killed:
                machine.release(on)
                break
            if self.suspended:  # deactivated while it waited for the CPU
                machine.release(on)
                continue
            budget = quantum
            if stop_at is not None:
                # The run ends at stop_at: a slice is executed at its start (the performance
                # design), so one that began at the end, or ran past it, would put work done
                # after the end into metrics.json, and not into the time series' last row.
                budget = min(quantum, stop_at - int(env.now))
                if budget <= 0:
                    machine.release(on)
                    if self._at_end():
                        break  # its last slice ended at stop_at: it exits then, within the run
                    yield env.event()  # never: the run stops at this instant
            mm, stat = self.mm, self.sim.system.stat
            wake = m.cost.remote_wakeup if irq_cpu is not None and on != irq_cpu else 0
            # The slice in stretches of at most `interleave` on several CPUs: each is applied at its
            # start (the performance design), so the other CPUs' processes catch up after each.
            while True:
                step = budget if interleave is None else min(budget, interleave)
                clock.start(mm, wake)
                before = (mm.minflt, mm.majflt, stat.pswpin, stat.pswpout)
                self.sleep_ns = 0
                self.slept_ns = 0
                try:
                    status = self.execute(step)
                except ProcessKilled as e:
                    self.error = e.reason
                    status = DONE
                except Segfault as e:
                    self.error = str(e)
                    self._finish("segfault")
                    status = DONE
                except WorkloadFault as e:
                    self.error = str(e)
                    self._finish(e.status)
                    status = DONE
                self.sim.guard()
                waited = clock.waited
                used, block_until = clock.stop()
                sleep_ns = self.sleep_ns
                cpu = used - waited
                self.blocked_ns += waited - self.slept_ns
                if used:
                    now = int(env.now)
                    span = Span(
                        now,
                        now + used,
                        cpu,
                        self.pid,
                        mm.minflt - before[0],
                        mm.majflt - before[1],
                        stat.pswpin - before[2],
                        stat.pswpout - before[3],
                    )
                    spans = self.sim.spans
                    spans.append(span)
                    yield env.timeout(used)
                    spans.remove(span)
                budget -= used
                # Killed meanwhile by another CPU's process (its group's OOM killer): no more of it.
                if status != RUNNING or budget <= 0 or interleave is None or mm.killed:
                    break
            machine.release(on)
            if status == DONE:
                break
            if status == BLOCKED:
                wait = block_until - int(env.now)
                if wait > 0:
                    self.blocked_ns += wait
                    yield env.timeout(wait)
                mm.switched_out()
            elif status == SLEEPING:
                yield env.timeout(sleep_ns)
                mm.switched_out()
        if not self.mm.killed:
            self._finish("ok")
        elif self.final is None:
            self.last_heap_snapshots(int(env.now))
            self.final = self.snapshot()
        self.end_ns = int(env.now)
        if self.sim.loadctl is not None:
            self.sim.loadctl.finished(self.pid)
        self.done.succeed()

    def _at_end(self) -> bool:
        """Whether the workload has nothing left to do: no references, compute or operation to come.

        The next operation is looked at and put back, so a process whose
        work ended exactly when the run stops exits ``ok``, as it would have
        had its last slice asked for the next operation.
        """
        if self.pending is not None or self.compute_left or self.held is not None:
            return False
        op = next(self.ops, None)
        if op is None:
            return True
        self.ops = itertools.chain((op,), self.ops)
        return False

    def suspend(self) -> None:
        """Load control deactivates the process: it runs no more slices until resumed."""
        self.suspended = True
        self.sim.system.reclaim.deactivate(self.mm)

    def resume(self) -> None:
        self.suspended = False
        self.sim.system.reclaim.reactivate(self.mm)
        if self.resumed is not None and not self.resumed.triggered:
            self.resumed.succeed()

    def _finish(self, status: str) -> None:
        """Snapshot the process as it ends, then free its memory (exit)."""
        if self.final is None:
            self.mm.exit = status
            self.end_ns = self.clock.now()
            self.final = self.snapshot()
            self.sim.system.exit_process(self.mm, status)

    # ------------------------------------------------------------ results
    def mallinfo(self) -> dict[str, int]:
        if self.alloc is None:  # a bare page-reference process has no heap (mallinfo2 of an unused malloc)
            return dict.fromkeys(MALLINFO_FIELDS, 0) | {"ordblks": 1}
        return self.alloc.mallinfo2()

    def _killed_for(self) -> str:
        """Why the OOM killer chose this process while another one asked for memory ("" if it did not).

        The process that asked is told by the exception that ends its slice;
        a victim chosen for another one learns nothing, and its warning read
        "ended oom-killed" with no reason.
        """
        if self.mm.exit != "oom-killed":
            return ""
        kill = next((k for k in reversed(self.sim.system.oom.kills) if k["pid"] == self.pid), None)
        if kill is None or kill["for_pid"] == self.pid:
            return ""
        group = f" of memory cgroup {kill['memcg']}" if "memcg" in kill else ""
        return f"killed by the OOM killer{group} for pid {kill['for_pid']}, the process with the most memory"

    def snapshot(self, cpu_cut: int = 0) -> ProcResult:
        """The process's results now; ``cpu_cut``: CPU ns of its running slice that fall after the run's end.

        Taken inside the process's own slice when it dies of its workload
        (segfault, double free): its CPU time then counts that slice so far
        (the slice's time reaches ``cpu_ns`` only when the slice ends).
        """
        mm = self.mm
        ps = self.sim.system.page_size
        return ProcResult(
            pid=self.pid,
            name=mm.name,
            exit=mm.exit,
            error=self.error or self._killed_for(),
            minflt=mm.minflt,
            majflt=mm.majflt,
            refs=mm.refs,
            syscalls=dict(mm.syscalls),
            mallinfo=self.mallinfo(),
            heap=self.alloc.heap_walk() if self.alloc is not None else [],
            maps=mm.aspace.maps(),
            vsz_peak_bytes=mm.aspace.vsz_peak,
            rss_peak_bytes=mm.rss_peak * ps,
            swap_peak_bytes=mm.swap_peak * ps,
            rss_bytes=mm.rss * ps,
            vsz_bytes=mm.aspace.vsz,
            cpu_time_s=(self.clock.vtime(mm) - cpu_cut) / 1e9,
            blocked_time_s=self.blocked_ns / 1e9,
            start_s=self.start_ns / 1e9,
            end_s=(self.end_ns if self.end_ns >= 0 else int(self.sim.env.now)) / 1e9,
            ops=self.nops,
            enomem=self.enomem,
            skipped_ops=self.skipped,
            pswpin=mm.pswpin,
            pswpout=mm.pswpout,
            page_table_bytes=mm.pt.bytes,
            page_table_peak_bytes=mm.pt.pages_peak * mm.pt.table_bytes,
        )


class Simulation:
    """Builds the machine and the processes of one run and drives SimPy."""

    def __init__(self, settings: Settings, specs: list[ProcSpec], *, check: bool = False) -> None:
        self.s = settings
        self.env = simpy.Environment()
        # Its own root: the workload's streams are SeedSequence(seed).spawn(nprocs).
        ss = np.random.SeedSequence([settings.seed, 0x6B65726E])
        kernel_seq, aslr_seq = ss.spawn(2)
        self.system = System(settings, self.env, np.random.default_rng(kernel_seq))
        self.narrator = Narrator() if settings.explain else None
        self.check = check
        watchers = [o for o in (self.narrator, Checker(self.system) if check else None) if o is not None]
        self.system.observe(watchers[0] if len(watchers) == 1 else Observers(*watchers) if watchers else None)
        self.machine = Machine(self.env, settings.machine.ncpus)
        self.system.fault.wait_inline = self.wait_inline
        needs_future = policy_class(settings.policy.name).needs_future
        if needs_future and (len(specs) != 1 or specs[0].refs is None):
            raise SimError(
                f"policy={settings.policy.name}: {settings.policy.name.upper()} needs the future, "
                "so it runs only with workload=pageref (one process)"
            )
        aslr_rngs = [np.random.default_rng(s) for s in aslr_seq.spawn(len(specs))]
        self.procs = [
            Process(self, pid, spec, aslr_rngs[pid - 1] if settings.layout.aslr else None)
            for pid, spec in enumerate(specs, start=1)
        ]
        if needs_future:
            refs = specs[0].refs
            assert refs is not None
            self.procs[0].mm.policy.set_future(refs[0])
        self.samples: list[dict[str, Any]] = []
        self.max_rows = settings.job_memory // BYTES_PER_SAMPLE_ROW
        self.snapshots: list[tuple[int, int, int, int, str]] = []
        self.kswapd_event: simpy.Event | None = None
        self._last: dict[str, int] = {"t": 0, "cpu": 0, "busy": 0, "pswpin": 0, "pswpout": 0}
        # Where the latest sample's rows start, and ``_last`` before it (run() may replace it).
        self._sample_start: tuple[int, dict[str, int]] = (0, self._last)
        self.spans: list[Span] = []  # slices and kswapd batches whose time is still running
        self.loadctl: LoadControl | None = None
        self.ws_sampler: WorkingSetSampler | None = None
        if settings.machine.load_control == "ws":
            mem = self.system.mem
            self.ws_sampler = WorkingSetSampler(mem, self.system.mms, settings.machine.load_control_tau)
            self.system.fault.ws_note = self.ws_sampler.note
            self.loadctl = LoadControl(mem.nframes - mem.wmark_high)
            for p in self.procs:
                self.loadctl.admit(p.pid)
        self.progress: Any = None
        self.deadline = (
            None if settings.job_timeout is None else time.monotonic() + settings.job_timeout / 1e9
        )
        self.max_pages = settings.job_memory // BYTES_PER_TRACKED_PAGE

    def wait_inline(self) -> bool:
        """Wait for the swap device without SimPy when nothing else can happen meanwhile.

        If no process is waiting for a CPU and no event is due before the
        I/O completes, yielding would only make SimPy jump to the same time:
        advancing the slice clock instead is exact and costs no event. This is
        what makes a lone process's major faults cheap.
        """
        clock = self.system.clock
        until = clock.block_until
        if self.machine.ready or until > self.env.peek():
            return False
        wait = until - clock.now()
        if wait > 0:
            clock.wait(wait)
        clock.block_until = 0
        running = clock.running
        if running is not None and running.hot:  # a process without an image (a trace's string) makes no call
            running.switched_out()  # it slept: rseq on the way back (FaultHandler.user_return)
        return True

    def guard(self) -> None:
        """Stop a runaway job: wall-clock limit and the simulator's own memory (checked once per slice)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobLimit(
                f"job_timeout: the job ran longer than {format_duration(self.s.job_timeout or 0)} of wall time "
                f"(simulated time reached {int(self.env.now) / 1e9:.3f} s); raise job_timeout or shorten duration"
            )
        tracked = sum(len(p.mm.pt.pte) for p in self.procs)
        if tracked > self.max_pages:
            raise JobLimit(
                f"job_memory: the simulation tracks {tracked:,} pages, about "
                f"{format_size(tracked * BYTES_PER_TRACKED_PAGE)} of host memory, over job_memory="
                f"{format_size(self.s.job_memory)}; raise job_memory or shrink the workload"
            )
        if (
            self.narrator is not None
            and len(self.narrator.lines) * BYTES_PER_EXPLAIN_LINE > self.s.job_memory
        ):
            n = len(self.narrator.lines)
            raise JobLimit(
                f"explain: the narration reached {n:,} lines at {format_duration(int(self.env.now))} of simulated "
                f"time, about {format_size(n * BYTES_PER_EXPLAIN_LINE)} of host memory, over job_memory="
                f"{format_size(self.s.job_memory)}; shorten duration or leave explain off"
            )

    def _kswapd(self) -> Generator[simpy.Event, Any, None]:
        sysm = self.system
        cost = self.s.machine.cost.reclaim_page
        stop_at = self.s.stop_at
        while True:
            self.kswapd_event = self.env.event()
            yield self.kswapd_event
            self.kswapd_event = None
            while sysm.mem.nfree < sysm.mem.wmark_high:
                if stop_at is not None and int(self.env.now) >= stop_at:
                    yield self.env.event()  # never: the run stops at this instant (as Process.run)
                sysm.clock.start()
                pout = sysm.stat.pswpout
                freed = sysm.reclaim.kswapd(SWAP_CLUSTER_MAX)
                if freed == 0:
                    # Linux's path: the pages it could free are being written; sleep until one is done.
                    until = sysm.reclaim.writeback_until()
                    if until <= int(self.env.now):
                        break
                    yield self.env.timeout(until - int(self.env.now))
                    continue
                now = int(self.env.now)
                took = freed * cost + sysm.clock.used  # its writes' cost (zram's compression, swap_write) too
                span = Span(now, now + took, 0, 0, 0, 0, 0, sysm.stat.pswpout - pout)
                self.spans.append(span)
                yield self.env.timeout(took)
                self.spans.remove(span)

    def _wake_kswapd(self) -> None:
        ev = self.kswapd_event
        if ev is not None and not ev.triggered:
            ev.succeed()

    def _sampler(self) -> Generator[simpy.Event, Any, None]:
        """A sample every interval after the first, which ``run`` takes before anything runs."""
        interval = self.s.sample_interval
        while True:
            yield self.env.timeout(interval)
            self._take_sample()

    def _take_sample(self) -> None:
        """A sample, with the checks and progress that go with every one (the first included)."""
        self.sample()
        # Checked as the rows come, not from duration before the run: duration only bounds a run,
        # whose processes may end long before it (the held-out command's duration=1000000s).
        rows = len(self.samples)
        if rows > self.max_rows:
            raise JobLimit(
                f"sample_interval: timeseries.csv reached {rows:,} rows (a sample every "
                f"{format_duration(self.s.sample_interval)}) at {format_duration(int(self.env.now))} of simulated time, "
                f"about {format_size(rows * BYTES_PER_SAMPLE_ROW)} of host memory, over "
                f"job_memory={format_size(self.s.job_memory)}; raise sample_interval or job_memory"
            )
        if self.progress is not None:
            self.progress(int(self.env.now))

    def sample(self, final: bool = False) -> None:
        """One row per process and one for the system at ``env.now``.

        ``final``: the run's last row, when it stops. A slice is applied at
        its start, so one still running (cut by the end of a run stopped at
        ``duration``: a fault may take it past its budget) has done all its
        faults and swap traffic: the last row counts them, so that it holds
        the totals metrics.json reports. Its CPU time after the end is left
        out of both, so that no CPU is busier than always.
        """
        now = int(self.env.now)
        self._sample_start = (len(self.samples), self._last)
        ps = self.system.page_size
        t = now / 1e9
        # What the slices in progress did but has not yet happened at `now`.
        ahead: dict[int, tuple[int, int]] = {}
        cpu_ahead = pin_ahead = pout_ahead = 0
        for span in self.spans:
            if span.pid and not final:
                ahead[span.pid] = (span.left(span.dmin, now), span.left(span.dmaj, now))
            cpu_ahead += span.left(span.cpu, now)
            if not final:
                pin_ahead += span.left(span.dpin, now)
                pout_ahead += span.left(span.dpout, now)
        for p in self.procs:
            mm = p.mm
            if p.final is not None and p.end_ns >= 0 and p.end_ns < now - self.s.sample_interval:
                continue
            info = p.mallinfo() if p.final is None else p.final.mallinfo
            min_ahead, maj_ahead = ahead.get(p.pid, (0, 0))
            self.samples.append(
                {
                    "time_s": t,
                    "pid": p.pid,
                    "rss_bytes": mm.rss * ps,
                    "vsz_bytes": mm.aspace.vsz if not mm.killed else 0,
                    "swap_bytes": mm.swapents * ps,
                    "arena_bytes": info["arena"],
                    "hblkhd_bytes": info["hblkhd"],
                    "minflt": mm.minflt - min_ahead,
                    "majflt": mm.majflt - maj_ahead,
                }
            )
        sysm = self.system
        stat = sysm.stat
        last = self._last
        dt = now - last["t"]
        cpu = sum(p.mm.cpu_ns for p in self.procs) - cpu_ahead
        busy = sysm.dev.busy_by(now)
        pswpin, pswpout = stat.pswpin - pin_ahead, stat.pswpout - pout_ahead
        row: dict[str, Any] = {
            "time_s": t,
            "pid": 0,
            "free_bytes": sysm.mem.nfree * ps,
            "swap_used_bytes": sysm.space.used * ps,
            "cpu_util": (cpu - last["cpu"]) / (dt * self.s.machine.ncpus) if dt else 0.0,
            "swap_util": (busy - last["busy"]) / dt if dt else 0.0,
            "pswpin_per_s": (pswpin - last["pswpin"]) * 1e9 / dt if dt else 0.0,
            "pswpout_per_s": (pswpout - last["pswpout"]) * 1e9 / dt if dt else 0.0,
        }
        self.samples.append(row)
        self._last = {"t": now, "cpu": cpu, "busy": busy, "pswpin": pswpin, "pswpout": pswpout}

    def run(self) -> Result:
        env = self.env
        # The t = 0 sample sees the machine before any process has run. Taken by the sampler after
        # the processes' first slices, it showed their pages resident while its fault counts, which
        # are dated back to the sample's time (sample), were still zero.
        self._take_sample()
        if self.system.mem.wmark_min > 0:
            self.system.mem.wake_kswapd = self._wake_kswapd
            env.process(self._kswapd())
        for p in self.procs:
            env.process(self._checked(p) if self.check else p.run())
        env.process(self._sampler())
        if self.loadctl is not None:
            env.process(self._load_controller())
        all_done = env.all_of([p.done for p in self.procs])
        stop_at = self.s.stop_at
        env.run(until=all_done if stop_at is None else env.any_of([all_done, env.timeout(stop_at)]))
        end = int(env.now)
        if self._last["t"] == end and self.samples:
            # The sampler's turn fell on the instant the run ended (a duration, or processes done on
            # a multiple of sample_interval): the final sample replaces it, so that the time series
            # has one row per pid and time, and the last interval's rates are not divided by zero.
            rows, self._last = self._sample_start
            del self.samples[rows:]
        self.sample(final=True)
        cut = {span.pid: span.left(span.cpu, end) for span in self.spans if span.pid}
        for p in self.procs:
            if p.final is None:
                p.last_heap_snapshots(end)
        # Taken by each process as it reached the times: in order of time, then pid (heap_snapshots.csv).
        self.snapshots.sort(key=lambda row: (row[0], row[1]))
        for p in self.procs:
            if p.final is None:
                p.mm.exit = "duration"
                p.final = p.snapshot(cut.get(p.pid, 0))
        return self._result(end)

    def _load_controller(self) -> Generator[simpy.Event, Any, None]:
        """Every interval: measure the working sets, then deactivate or reactivate (vmexp.kernel.loadctl)."""
        assert self.loadctl is not None and self.ws_sampler is not None
        interval = self.s.machine.load_control_interval
        while True:
            yield self.env.timeout(interval)
            stop, start = self.loadctl.decide(self.ws_sampler.scan())
            for pid in stop:
                self.procs[pid - 1].suspend()
            for pid in start:
                self.procs[pid - 1].resume()

    def _checked(self, p: Process) -> Generator[simpy.Event, Any, None]:
        """p.run() with the invariant checks also between slices (kswapd may have run)."""
        last = -1
        for ev in p.run():
            self._check_machine()
            now = int(self.env.now)
            assert now >= last, f"p{p.pid}: time went back from {last} to {now} ns"
            last = now
            yield ev
        self._check_machine()

    def _check_machine(self) -> None:
        """The kernel's invariants and the machine's: no CPU idles while a process waits for one."""
        self.system.check()
        m = self.machine
        assert not (m.ready and m.idle), f"{len(m.ready)} processes wait for a CPU while {len(m.idle)} idle"

    def _result(self, end: int) -> Result:
        sysm = self.system
        ps = sysm.page_size
        mem, stat = sysm.mem, sysm.stat
        # The last sample was taken at `end`: the totals are what the samples add up to.
        assert self._last["t"] == end
        cpu, busy = self._last["cpu"], self._last["busy"]
        system = {
            "sim_time_s": end / 1e9,
            "cpu_utilization": cpu / (end * self.s.machine.ncpus) if end else 0.0,
            "swap_utilization": busy / end if end else 0.0,
            "pswpin": stat.pswpin,
            "pswpout": stat.pswpout,
            "clean_drops": stat.clean_drops,
            "pgsteal_kswapd": stat.pgsteal_kswapd,
            "pgsteal_direct": stat.pgsteal_direct,
            "free_bytes_min": mem.free_min * ps,
            # The machine's peak of resident memory (of the sum over processes, not a sum of peaks).
            "rss_peak_bytes": mem.pages_peak * ps,
            "swap_used_peak_bytes": sysm.space.used_peak * ps,
            "oom_kills": len(sysm.oom.kills),
            "oom_kill_log": sysm.oom.kills,
            "ram_bytes": mem.nframes * ps,
            "swap_bytes": sysm.space.nslots * ps,
            "page_size": ps,
            "watermarks_bytes": {
                "min": mem.wmark_min * ps,
                "low": mem.wmark_low * ps,
                "high": mem.wmark_high * ps,
            },
            "swap_service_time_s": sysm.dev.service / 1e9,
            "deactivations": self.loadctl.deactivations if self.loadctl is not None else 0,
            **sysm.report(),
        }
        procs = [p.final for p in self.procs if p.final is not None]
        return Result(
            processes=procs,
            system=system,
            samples=self.samples,
            syscalls=sysm.calls.log,
            explain=self.narrator.lines if self.narrator is not None else None,
            heap_snapshots=self.snapshots,
        )


def simulate(
    settings: Settings, specs: list[ProcSpec], *, check: bool = False, progress: Any = None
) -> Result:
    """Run one experiment; ``check`` runs the kernel's invariant checker after every step (tests)."""
    if not specs:
        raise WorkloadError("workload: no processes to run")
    check_cgroup_capacity(settings, [spec.refs is not None for spec in specs])
    sim = Simulation(settings, specs, check=check)
    sim.progress = progress
    return sim.run()
