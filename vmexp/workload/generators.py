"""Synthetic workloads: seeded generators of allocation, access and compute operations.

``build_generated`` turns a ``kind: generator`` spec (every process runs the
same generator) or a ``kind: mix`` spec (a list of generators, each with a
share of the processes) into one ``ProcSpec`` per process. The keys are
documented in ``conf/workload/*.yaml``; every one is checked here and a bad
one raises ``WorkloadError`` with a one-line message naming it.

The model of one process (the unit of time is the *step*):

- A step frees the blocks whose lifetime ends at this step, sleeps when a
  think interval is due, allocates one block (malloc, calloc, or instead a
  realloc of a live block), writes the ``init`` part of the new block,
  references about ``access.rate`` pages of the live blocks in the chosen
  pattern, and computes (``compute`` plus ``access.compute`` per page
  referenced). Lifetimes count steps, as malloc studies count them in
  allocations, so a lifetime means the same thing at any speed of the CPU.
- Allocation ends after ``allocs`` steps or ``volume`` requested bytes
  (the blocks due at that step are still freed). With ``refs`` the process
  then goes on stepping without allocating (blocks still die when due)
  until it has made that many page references in all.
- Blocks still live at the end are freed only with ``free_at_exit`` (a real
  program usually exits without freeing).

Randomness: ``SeedSequence(seed).spawn(nprocs)``; child *i* feeds process *i*
only and is split once more into one stream per purpose (arrival, sizes,
lifetimes, accesses, choices, think time). So adding a process leaves the
others' operations unchanged, and changing, say, the access rate leaves the
allocation sizes unchanged. Numbers are drawn in numpy batches of
``stream.BATCH`` and consumed from Python lists, because one numpy scalar call
costs about a microsecond and a run draws millions.

Operations are produced lazily: ``ProcSpec.ops`` is an iterable whose every
iteration replays the same stream from the start, without storing it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vmexp.fields import (
    choice,
    component,
    custom,
    duration,
    flag,
    fraction,
    integer,
    number,
    section,
    size,
    text,
)
from vmexp.registry import ACCESS_PATTERNS, LIFETIMES, SIZE_DISTS, WORKLOAD_KINDS
from vmexp.workload import ProcSpec, WorkloadError
from vmexp.workload.access import Live
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, SLEEP, TOUCH, Op
from vmexp.workload.stream import draws

__all__ = [
    "Arrival",
    "GenParams",
    "GeneratedOps",
    "MixEntry",
    "MixParams",
    "Think",
    "assign_entries",
    "build_generated",
    "parse_generator",
]

# Stream numbers within one process's SeedSequence child.
_S_ARRIVAL, _S_SIZES, _S_LIFE, _S_ACCESS, _S_CHOICE, _S_THINK = range(6)
_NSTREAMS = 6
_ABS_MAX_SIZE = 1 << 46
_ACCESS_PIECE = 1 << 16  # pages of references produced at once (see _ops)


def _fail(key: str, msg: str) -> WorkloadError:
    return WorkloadError(f"{key}: {msg}")


# ---------------------------------------------------------------------------
# One generator's parameters, declared.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """When the processes of a generator start."""

    mode: str = choice(
        "zero",
        "zero: all at first; every: one per gap; random: Poisson, mean gap",
        ("zero", "every", "random"),
    )
    gap: int = duration(0, "time between starts (every) or its mean (random)")
    first: int = duration(0, "start of the first process")

    def check(self, where: str) -> None:
        if self.mode != "zero" and self.gap <= 0:
            raise _fail(f"{where}.gap", f"arrival mode {self.mode} needs a gap above 0 (such as 100ms)")


@dataclass(frozen=True)
class Think:
    """Idle time that gives up the CPU (SLEEP), as a process waiting for I/O does."""

    every: int = integer(0, "steps between waits (0 = never)", lo=0)
    time: int = duration(0, "the length of one wait (its mean if exponential)")
    dist: str = choice("fixed", "fixed or exponential waits", ("fixed", "exponential"))

    def check(self, where: str) -> None:
        # every = 0 switches thinking off, so that a preset can carry the time and a
        # command line turn it on with workload.think.every=N alone.
        if self.every and not self.time:
            raise _fail(
                f"{where}.time", f"thinking every {self.every} steps needs a time above 0 (such as 5ms)"
            )


def _name(v: str) -> str | None:
    return None if v and not any(ch.isspace() for ch in v) else f"expected a name without spaces, got {v!r}"


@dataclass(frozen=True)
class GenParams:
    """A synthetic process: allocation steps with sizes, lifetimes, references and compute (see the module)."""

    name: str = text("gen", "process name (.0, .1, ... appended when several run)", check=_name)
    allocs: int | None = integer(None, "allocation steps per process", lo=1, null="no limit: volume decides")
    volume: int | None = size(
        None, "stop after this many requested bytes", lo=1, hi=_ABS_MAX_SIZE, null="no limit"
    )
    refs: int | None = integer(
        None, "after allocating, keep referencing until this many page references in all", lo=1, null="exit"
    )
    arrival: Arrival = section(Arrival, "start times")
    sizes: Any = component(None, "allocation sizes: {dist: NAME, ...}", SIZE_DISTS)
    lifetime: Any = component({"dist": "exponential", "mean": 100}, "lifetimes: {dist: NAME, ...}", LIFETIMES)
    access: Any = component({"pattern": "none"}, "page references: {pattern: NAME, ...}", ACCESS_PATTERNS)
    init: float = fraction(1.0, "fraction of each new block written at allocation")
    compute: int = duration(0, "CPU time per step")
    think: Think = section(Think, "idle time")
    calloc: float = fraction(0.0, "fraction of steps that call calloc")
    realloc: float = fraction(0.0, "fraction of steps that realloc a live block instead of allocating")
    realloc_growth: float = number(2.0, "realloc's growth factor (at most sizes' max)", lo=0.0, strict=True)
    free_at_exit: bool = flag(False, "free what is still live at the end (most programs do not)")

    def check(self, where: str) -> None:
        if self.allocs is None and self.volume is None:
            raise _fail(
                f"{where}.allocs", "give allocs (allocation steps per process) or volume (bytes to allocate)"
            )
        if self.refs is not None and not self.access.references:
            raise _fail(
                f"{where}.refs", "needs an access pattern to make the references with (access.pattern)"
            )
        if self.realloc == 1.0:
            # Every step would resize the first block and `volume` might never be reached.
            raise _fail(f"{where}.realloc", "must be below 1 (some steps have to allocate)")
        if self.calloc + self.realloc > 1.0:
            raise _fail(
                f"{where}.realloc", f"calloc + realloc fractions exceed 1 ({self.calloc} + {self.realloc})"
            )


def parse_generator(d: dict[str, Any], where: str = "workload", *, entry: bool = False) -> GenParams:
    """Check one generator spec (a ``kind: generator`` file, or one entry of a mix)."""
    from vmexp.fields import parse_section

    if entry:
        return parse_section(MixEntry, d, where, WorkloadError, what="a mix entry")  # type: ignore[no-any-return]
    return WORKLOAD_KINDS.parse({"kind": "generator", **d}, where)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# One process's operation stream.
# ---------------------------------------------------------------------------


def _ops(g: GenParams, seqs: list[np.random.SeedSequence], ps: int) -> Iterator[Op]:
    """The operations of one process (see the module docstring for the step)."""
    rng_size = np.random.default_rng(seqs[_S_SIZES])
    rng_life = np.random.default_rng(seqs[_S_LIFE])
    rng_choice = np.random.default_rng(seqs[_S_CHOICE])
    rng_think = np.random.default_rng(seqs[_S_THINK])
    sampler = g.sizes.sampler()
    sizes = draws(lambda n: sampler(rng_size, n).tolist())
    choice_ = draws(lambda n: rng_choice.random(n).tolist())
    death = g.lifetime.death(rng_life)
    think_ns, think_every = g.think.time, g.think.every
    thinks: Iterator[int] | None = None
    if think_every and g.think.dist == "exponential":
        thinks = draws(
            lambda n: np.maximum(1, np.rint(rng_think.exponential(think_ns, n))).astype(np.int64).tolist()
        )

    live = Live()
    access = g.access.runner(np.random.default_rng(seqs[_S_ACCESS]), live, ps)
    size = live.size
    due: dict[int, list[int]] = {}
    out: list[Op] = []
    allocs = g.allocs if g.allocs is not None else -1
    volume = g.volume if g.volume is not None else -1
    p_calloc, p_realloc = g.calloc, g.calloc + g.realloc
    long_lived, growth, size_max, init = g.lifetime.long_lived, g.realloc_growth, g.sizes.top, g.init
    rate, ref_ns, compute = g.access.rate, g.access.compute, g.compute
    refs_goal = g.refs if g.refs is not None else 0

    next_id = 1
    vol = 0
    refs = 0
    budget = 0.0
    t = 0
    allocating = True
    while True:
        if allocating and (t == allocs or (volume >= 0 and vol >= volume)):
            allocating = False
        # Deaths first, also on the step where allocation ends, so that a last batch
        # completed exactly then is freed.
        for bid in due.pop(t, ()):
            # Each block is scheduled once and nothing else frees it: it is live here.
            live.remove(bid)
            yield (FREE, bid)
        if not allocating and (refs >= refs_goal or not size):
            break
        if think_every and t and t % think_every == 0:
            yield (SLEEP, next(thinks) if thinks is not None else think_ns)
        pages = 0
        if allocating:
            c = next(choice_)
            n = next(sizes)
            if c >= p_calloc and c < p_realloc and size:
                # Grow (or shrink) a random live block, as a vector or a string buffer does.
                bid = live.dense[int(next(choice_) * len(live.dense))]
                old = size[bid]
                # Capped before rounding: a huge growth (1e308) makes old * growth infinite,
                # which round() cannot turn into an int; the cap gives the same size otherwise.
                new = max(1, round(min(size_max, old * growth)))
                size[bid] = new
                vol += max(0, new - old)
                yield (REALLOC, bid, new)
                if new > old and init > 0.0:
                    length = math.ceil((new - old) * init)
                    yield (TOUCH, bid, old, length, 1)
                    pages += (length + ps - 1) // ps
            else:
                bid = next_id
                next_id += 1
                live.add(bid, n)
                vol += n
                yield (CALLOC, bid, 1, n) if c < p_calloc else (MALLOC, bid, n)
                if init > 0.0:
                    length = math.ceil(n * init)
                    yield (TOUCH, bid, 0, length, 1)
                    pages += (length + ps - 1) // ps
                if next(choice_) >= long_lived:
                    end = death(t)
                    d = due.get(end)
                    if d is None:
                        due[end] = [bid]
                    else:
                        d.append(bid)
        if access is not None:
            budget += rate
            if budget >= 1.0:
                # In pieces of at most _ACCESS_PIECE pages: a step's references are produced
                # into a list, and access.rate=1e9 made one list of a billion touches (tens of
                # GiB of host memory before the first of them ran; duration could not stop it).
                want = int(budget)
                done = 0
                while True:
                    got = access.run(min(want - done, _ACCESS_PIECE), out)
                    done += got
                    if out:
                        yield from out
                        out.clear()
                    if not got or done >= want:
                        break
                budget = budget - done if done else 0.0
                pages += done
        refs += pages
        cpu = compute + pages * ref_ns
        if cpu:
            yield (COMPUTE, cpu)
        t += 1
    if g.free_at_exit:
        for bid in list(size):
            yield (FREE, bid)


class GeneratedOps:
    """The operations of one generated process; every iteration replays them from the start."""

    def __init__(self, spec: GenParams, seqs: list[np.random.SeedSequence], page_size: int) -> None:
        self.spec = spec
        self.seqs = seqs
        self.page_size = page_size

    def __iter__(self) -> Iterator[Op]:
        return _ops(self.spec, self.seqs, self.page_size)


# ---------------------------------------------------------------------------
# Processes: arrivals, mixes, build.
# ---------------------------------------------------------------------------


def assign_entries(shares: list[float], counts: list[int | None], nprocs: int) -> list[int]:
    """The mix entry of each process, so that process i's entry depends on i alone.

    Processes 0, 1, ... take one entry each in order first (so every entry
    runs when nprocs allows), then entries with a ``count`` are filled up to
    it in order, then each further process goes to the share entry furthest
    below its proportional quota (quota = share / total share x the number of
    share processes so far), the earlier entry on a tie. The sequence does
    not depend on nprocs, so adding a process never moves another one; with
    fewer processes than entries (or than the counts add up to) it is cut short.
    """
    k = len(shares)
    got = [0] * k
    seq: list[int] = []
    for e in range(k):
        if len(seq) < nprocs:
            seq.append(e)
            got[e] += 1
    for e in range(k):
        want = counts[e]
        while want is not None and got[e] < want and len(seq) < nprocs:
            seq.append(e)
            got[e] += 1
    share_entries = [e for e in range(k) if counts[e] is None]
    total = sum(shares[e] for e in share_entries)
    m = sum(got[e] for e in share_entries)
    while len(seq) < nprocs and share_entries:
        m += 1
        best = max(share_entries, key=lambda e: (shares[e] * m / total - got[e], -e))
        seq.append(best)
        got[best] += 1
    return seq


@dataclass(frozen=True)
class MixEntry(GenParams):
    """One entry of a mix: a generator and how many of the processes run it."""

    name: str = text(None, "process name (default p<index>)", check=_name, null="p<index>")
    share: float | None = number(
        None, "weight of this entry when processes are handed out", lo=0.0, strict=True, null="1"
    )
    count: int | None = integer(None, "an exact number of processes instead of a share", lo=1, null="none")

    def check(self, where: str) -> None:
        if self.share is not None and self.count is not None:
            raise _fail(f"{where}.count", "give share or count, not both")
        super().check(where)


def _entries(value: Any, key: str, error: type[Exception]) -> tuple[MixEntry, ...]:
    from vmexp.fields import parse_section

    if not isinstance(value, list) or not value:
        raise error(f"{key}: expected a non-empty list of generator specs with name and share")
    out = []
    for i, e in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(e, dict):
            raise error(f"{where}: expected a mapping of keys, got {e!r}")
        out.append(parse_section(MixEntry, e, where, error, what="a mix entry"))
    names = [e.name or f"p{i}" for i, e in enumerate(out)]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise error(f"{key}: two entries are named {dup!r}; names must differ")
    return tuple(out)


@dataclass(frozen=True)
class MixParams:
    """Several generators sharing the processes: process i runs entry assign_entries(...)[i]."""

    processes: tuple[MixEntry, ...] = custom(
        None, "the entries: generator keys plus share or count", _entries
    )


def _procs(
    gens: list[GenParams], names_: list[str], entry_of: list[int], seed: int, page_size: int
) -> list[ProcSpec]:
    children = np.random.SeedSequence(seed).spawn(len(entry_of))
    per_entry = [entry_of.count(e) for e in range(len(gens))]
    index = [0] * len(gens)
    clock = [0] * len(gens)
    procs: list[ProcSpec] = []
    for i, e in enumerate(entry_of):
        g = gens[e]
        seqs = children[i].spawn(_NSTREAMS)
        k = index[e]
        index[e] += 1
        arr = g.arrival
        if arr.mode == "every":
            start = arr.first + k * arr.gap
        elif arr.mode == "random":
            # Poisson arrivals per entry: each process draws its own gap from its own stream.
            gap = np.random.default_rng(seqs[_S_ARRIVAL]).exponential(arr.gap)
            clock[e] += round(float(gap))
            start = arr.first + clock[e]
        else:
            start = arr.first
        base = names_[e]
        name = base if per_entry[e] == 1 else f"{base}.{k}"
        procs.append(
            ProcSpec(
                name=name,
                ops=GeneratedOps(g, seqs, page_size),
                start_ns=start,
            )
        )
    return procs


@WORKLOAD_KINDS.register("generator", params=GenParams)
def build_generator(g: GenParams, nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """Synthetic processes, every one running the same generator with its own random streams."""
    return _procs([g], [g.name], [0] * nprocs, seed, page_size)


@WORKLOAD_KINDS.register("mix", params=MixParams)
def build_mix(m: MixParams, nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """A mix of generators (conf/workload/mixed.yaml), each with a share or a count of the processes."""
    entries = list(m.processes)
    shares = [e.share if e.share is not None else 1.0 for e in entries]
    counts = [e.count for e in entries]
    shares = [0.0 if c is not None else sh for sh, c in zip(shares, counts, strict=True)]
    fixed = sum(c for c in counts if c is not None)
    if all(c is not None for c in counts) and nprocs > fixed:
        raise _fail("nprocs", f"{nprocs} processes, but the counts of workload.processes add up to {fixed}")
    names_ = [e.name or f"p{i}" for i, e in enumerate(entries)]
    return _procs(list(entries), names_, assign_entries(shares, counts, nprocs), seed, page_size)


def build_generated(spec: dict[str, Any], nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """One ProcSpec per process for ``kind: generator`` or ``kind: mix``; WorkloadError names a bad key."""
    from vmexp.workload import build

    if spec.get("kind") not in ("generator", "mix"):
        raise _fail("workload.kind", f"{spec.get('kind')!r} is not one of generator, mix")
    return build(spec, nprocs, seed, page_size)
