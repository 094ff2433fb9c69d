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
``_BATCH`` and consumed from Python lists, because one numpy scalar call
costs about a microsecond and a run draws millions.

Operations are produced lazily: ``ProcSpec.ops`` is an iterable whose every
iteration replays the same stream from the start, without storing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vmexp.units import UnitError, parse_duration, parse_size
from vmexp.workload import ProcSpec, WorkloadError
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, SLEEP, TOUCH, Op

__all__ = [
    "ACCESS_PATTERNS",
    "ARRIVALS",
    "LIFETIMES",
    "SIZE_DISTS",
    "GenSpec",
    "GeneratedOps",
    "assign_entries",
    "build_generated",
    "parse_generator",
]

_BATCH = 4096
# A single synthetic allocation above this is almost always a typo or a
# heavy tail gone wild; distributions are clipped here unless `max` says more.
_DEFAULT_MAX_SIZE = 1 << 30
# Above this, sizes do not fit the replayer's int64 nor any address space.
_ABS_MAX_SIZE = 1 << 46

SIZE_DISTS = ("fixed", "uniform", "lognormal", "exponential", "pareto", "mixture", "empirical")
LIFETIMES = ("exponential", "fixed", "batch")
ACCESS_PATTERNS = ("none", "sequential", "uniform", "zipf", "loop", "phased")
ARRIVALS = ("zero", "every", "random")
_THINK_DISTS = ("fixed", "exponential")

# Stream numbers within one process's SeedSequence child.
_S_ARRIVAL, _S_SIZES, _S_LIFE, _S_ACCESS, _S_CHOICE, _S_THINK = range(6)
_NSTREAMS = 6

_GEN_KEYS = frozenset(
    {
        "name",
        "allocs",
        "volume",
        "refs",
        "arrival",
        "sizes",
        "lifetime",
        "access",
        "init",
        "compute",
        "think",
        "calloc",
        "realloc",
        "realloc_growth",
        "free_at_exit",
    }
)
_ENTRY_KEYS = _GEN_KEYS | {"share", "count"}

SizeSampler = Callable[[np.random.Generator, int], npt.NDArray[np.int64]]


# ---------------------------------------------------------------------------
# Checking values: every helper names the full key in its message.
# ---------------------------------------------------------------------------


def _fail(key: str, msg: str) -> WorkloadError:
    return WorkloadError(f"{key}: {msg}")


def _check_keys(d: dict[str, Any], allowed: frozenset[str] | set[str], where: str, what: str) -> None:
    unknown = sorted(set(d) - set(allowed), key=str)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"not a key of {what} (valid: {', '.join(sorted(allowed))})")


def _mapping(v: Any, key: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(key, f"expected a mapping of keys, got {v!r}")
    return v


def _size(d: dict[str, Any], k: str, where: str, default: Any = None, *, lo: int = 0) -> int:
    v = d.get(k, default)
    key = f"{where}.{k}"
    if v is None:
        raise _fail(key, "a size is required (such as 4096, 64k or 2M)")
    try:
        n = parse_size(v)
    except UnitError as e:
        raise _fail(key, str(e)) from None
    if n < lo:
        raise _fail(key, f"must be at least {lo} bytes, got {v!r}")
    if n > _ABS_MAX_SIZE:
        raise _fail(key, f"{v!r} is larger than 64 TiB")
    return n


def _duration(d: dict[str, Any], k: str, where: str, default: Any) -> int:
    v = d.get(k, default)
    try:
        return parse_duration(v)
    except UnitError as e:
        raise _fail(f"{where}.{k}", str(e)) from None


def _int(d: dict[str, Any], k: str, where: str, default: int | None, *, lo: int) -> int:
    v = d.get(k, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise _fail(f"{where}.{k}", f"expected an integer >= {lo}, got {v!r}")
    return v


def _float(d: dict[str, Any], k: str, where: str, default: float | None, *, lo: float, strict: bool) -> float:
    v = d.get(k, default)
    if (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and (v > lo or (v == lo and not strict))
    ):
        return float(v)
    rel = ">" if strict else ">="
    raise _fail(f"{where}.{k}", f"expected a number {rel} {lo:g}, got {v!r}")


def _fraction(d: dict[str, Any], k: str, where: str, default: float) -> float:
    v = d.get(k, default)
    if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
        raise _fail(f"{where}.{k}", f"expected a fraction between 0 and 1, got {v!r}")
    return float(v)


def _choice(d: dict[str, Any], k: str, where: str, default: str, allowed: tuple[str, ...]) -> str:
    v = d.get(k, default)
    if v not in allowed:
        raise _fail(f"{where}.{k}", f"{v!r} is not one of {', '.join(allowed)}")
    return str(v)


# ---------------------------------------------------------------------------
# Size distributions: plain functions of (rng, n) -> sizes, built from a spec.
# ---------------------------------------------------------------------------


def _clip(x: npt.NDArray[np.float64], lo: int, hi: int) -> npt.NDArray[np.int64]:
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


def _bounds(d: dict[str, Any], where: str) -> tuple[int, int]:
    lo = _size(d, "min", where, 1, lo=1)
    hi = _size(d, "max", where, _DEFAULT_MAX_SIZE, lo=1)
    if hi < lo:
        raise _fail(f"{where}.max", f"{d.get('max')!r} is below min ({d.get('min', 1)!r})")
    return lo, hi


def _empirical_sizes(path: Any, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The size histogram of a trace: every malloc, calloc (count x size) and realloc request."""
    from vmexp.workload.traces import TraceError, parse_trace

    if not isinstance(path, str) or not path:
        raise _fail(key, f"expected the path of an allocation trace, got {path!r}")
    try:
        trace = parse_trace(str(Path(path).expanduser()))
    except TraceError as e:
        raise _fail(key, str(e)) from None
    sizes = [
        op[2] * op[3] if op[0] == CALLOC else op[2]
        for ops in trace.ops.values()
        for op in ops
        if op[0] in (MALLOC, CALLOC, REALLOC)
    ]
    sizes = [s for s in sizes if s > 0]  # realloc(p, 0) is a free, malloc(0) allocates nothing to touch
    if not sizes:
        raise _fail(key, f"{path} holds no malloc, calloc or realloc with a size above 0")
    values, counts = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
    return values, counts / counts.sum()


def parse_sizes(d: Any, where: str) -> tuple[SizeSampler, int]:
    """A sampler of allocation sizes and the largest size it can return."""
    d = _mapping(d, where)
    if "dist" not in d:
        raise _fail(f"{where}.dist", f"required: one of {', '.join(SIZE_DISTS)}")
    dist = _choice(d, "dist", where, "", SIZE_DISTS)
    what = f"sizes dist {dist}"
    if dist == "fixed":
        _check_keys(d, {"dist", "size"}, where, what)
        size = _size(d, "size", where, lo=1)
        return (lambda rng, n: np.full(n, size, dtype=np.int64)), size
    if dist == "uniform":
        _check_keys(d, {"dist", "min", "max"}, where, what)
        for k in ("min", "max"):
            if k not in d:
                raise _fail(f"{where}.{k}", "required for dist uniform")
        lo, hi = _bounds(d, where)
        return (lambda rng, n: rng.integers(lo, hi + 1, size=n, dtype=np.int64)), hi
    if dist == "lognormal":
        _check_keys(d, {"dist", "median", "sigma", "min", "max"}, where, what)
        mu = math.log(_size(d, "median", where, lo=1))
        sigma = _float(d, "sigma", where, None, lo=0.0, strict=True)
        lo, hi = _bounds(d, where)
        return (lambda rng, n: _clip(rng.lognormal(mu, sigma, n), lo, hi)), hi
    if dist == "exponential":
        _check_keys(d, {"dist", "mean", "min", "max"}, where, what)
        mean = _size(d, "mean", where, lo=1)
        lo, hi = _bounds(d, where)
        return (lambda rng, n: _clip(rng.exponential(mean, n), lo, hi)), hi
    if dist == "pareto":
        _check_keys(d, {"dist", "min", "alpha", "max"}, where, what)
        if "min" not in d:
            raise _fail(f"{where}.min", "required for dist pareto (the smallest size, Pareto's scale x_m)")
        alpha = _float(d, "alpha", where, None, lo=0.0, strict=True)
        lo, hi = _bounds(d, where)
        # numpy's pareto is Lomax (support from 0); 1 + Lomax is the classic Pareto with x_m = 1.
        return (lambda rng, n: _clip(lo * (1.0 + rng.pareto(alpha, n)), lo, hi)), hi
    if dist == "mixture":
        _check_keys(d, {"dist", "components"}, where, what)
        comps = d.get("components")
        if not isinstance(comps, list) or not comps:
            raise _fail(f"{where}.components", "expected a non-empty list of {weight, dist, ...}")
        samplers: list[SizeSampler] = []
        weights: list[float] = []
        top = 0
        for i, c in enumerate(comps):
            cw = f"{where}.components[{i}]"
            c = dict(_mapping(c, cw))
            weights.append(_float(c, "weight", cw, None, lo=0.0, strict=True))
            del c["weight"]
            s, m = parse_sizes(c, cw)
            samplers.append(s)
            top = max(top, m)
        p = np.asarray(weights) / sum(weights)
        ncomp = len(samplers)

        def mixture(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
            which = rng.choice(ncomp, size=n, p=p)
            out = np.empty(n, dtype=np.int64)
            for j, s in enumerate(samplers):
                mask = which == j
                out[mask] = s(rng, int(mask.sum()))
            return out

        return mixture, top
    # empirical
    _check_keys(d, {"dist", "path"}, where, what)
    values, probs = _empirical_sizes(d.get("path"), f"{where}.path")
    return (lambda rng, n: rng.choice(values, size=n, p=probs)), int(values[-1])


# ---------------------------------------------------------------------------
# One generator spec, checked.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GenSpec:
    """A checked generator spec: ints in bytes and nanoseconds, fractions as floats."""

    name: str
    allocs: int | None
    volume: int | None
    refs: int | None
    arrival: str
    arrival_gap: int
    arrival_first: int
    sizes: SizeSampler
    size_max: int
    lifetime: str
    life_mean: float  # exponential: mean; fixed: the lifetime; batch: blocks per batch
    batch_delay: int
    long_lived: float
    pattern: str
    rate: float
    write: float
    run: int
    zipf_s: float
    ws_bytes: int | None
    phase: int
    ref_compute: int
    init: float
    compute: int
    think_every: int
    think_ns: int
    think_dist: str
    calloc: float
    realloc: float
    realloc_growth: float
    free_at_exit: bool


def parse_generator(d: dict[str, Any], where: str = "workload", *, entry: bool = False) -> GenSpec:
    """Check one generator spec (a ``kind: generator`` file, or one entry of a mix)."""
    _check_keys(
        d,
        _ENTRY_KEYS if entry else _GEN_KEYS | {"kind"},
        where,
        "a mix entry" if entry else "workload kind generator",
    )
    name = d.get("name", "gen")
    if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
        raise _fail(f"{where}.name", f"expected a name without spaces, got {name!r}")

    allocs = None if d.get("allocs") is None else _int(d, "allocs", where, None, lo=1)
    volume = None if d.get("volume") is None else _size(d, "volume", where, lo=1)
    if allocs is None and volume is None:
        raise _fail(
            f"{where}.allocs", "give allocs (allocation steps per process) or volume (bytes to allocate)"
        )
    refs = None if d.get("refs") is None else _int(d, "refs", where, None, lo=1)

    arr = _mapping(d.get("arrival") or {}, f"{where}.arrival")
    aw = f"{where}.arrival"
    _check_keys(arr, {"mode", "gap", "first"}, aw, "arrival")
    arrival = _choice(arr, "mode", aw, "zero", ARRIVALS)
    gap = _duration(arr, "gap", aw, 0)
    if arrival != "zero" and gap <= 0:
        raise _fail(f"{aw}.gap", f"arrival mode {arrival} needs a gap above 0 (such as 100ms)")
    first = _duration(arr, "first", aw, 0)

    if "sizes" not in d:
        raise _fail(f"{where}.sizes", f"required: a mapping with dist ({', '.join(SIZE_DISTS)})")
    sizes, size_max = parse_sizes(d["sizes"], f"{where}.sizes")

    lw = f"{where}.lifetime"
    life = _mapping(d.get("lifetime") or {"dist": "exponential", "mean": 100}, lw)
    lifetime = _choice(life, "dist", lw, "exponential", LIFETIMES)
    delay = 0
    if lifetime == "exponential":
        _check_keys(life, {"dist", "mean", "long_lived"}, lw, "lifetime dist exponential")
        life_mean = _float(life, "mean", lw, None, lo=1.0, strict=False)
    elif lifetime == "fixed":
        _check_keys(life, {"dist", "steps", "long_lived"}, lw, "lifetime dist fixed")
        life_mean = float(_int(life, "steps", lw, None, lo=1))
    else:
        _check_keys(life, {"dist", "size", "delay", "long_lived"}, lw, "lifetime dist batch")
        life_mean = float(_int(life, "size", lw, None, lo=1))
        delay = _int(life, "delay", lw, 0, lo=0)
    long_lived = _fraction(life, "long_lived", lw, 0.0)

    aw = f"{where}.access"
    acc = _mapping(d.get("access") or {"pattern": "none"}, aw)
    pattern = _choice(acc, "pattern", aw, "none", ACCESS_PATTERNS)
    allowed = {"pattern", "rate", "write", "compute"}
    allowed |= {
        "none": set(),
        "sequential": set(),
        "uniform": {"run"},
        "zipf": {"run", "s"},
        "loop": {"set"},
        "phased": {"run", "set", "phase"},
    }[pattern]
    _check_keys(acc, allowed if pattern != "none" else {"pattern"}, aw, f"access pattern {pattern}")
    rate = 0.0 if pattern == "none" else _float(acc, "rate", aw, None, lo=0.0, strict=True)
    write = _fraction(acc, "write", aw, 0.3)
    run = _int(acc, "run", aw, 1, lo=1)
    zipf_s = _float(acc, "s", aw, 1.0, lo=0.0, strict=True)
    ws_bytes = _size(acc, "set", aw, lo=1) if pattern in ("loop", "phased") else None
    phase = _int(acc, "phase", aw, None, lo=1) if pattern == "phased" else 0
    ref_compute = _duration(acc, "compute", aw, 0)
    if refs is not None and pattern == "none":
        raise _fail(f"{where}.refs", "needs an access pattern to make the references with (access.pattern)")

    tw = f"{where}.think"
    think = _mapping(d.get("think") or {}, tw)
    _check_keys(think, {"every", "time", "dist"}, tw, "think")
    think_every = _int(think, "every", tw, 0, lo=0)
    think_ns = _duration(think, "time", tw, 0)
    think_dist = _choice(think, "dist", tw, "fixed", _THINK_DISTS)
    # every = 0 switches thinking off, so that a preset can carry the time and a
    # command line turn it on with workload.think.every=N alone.
    if think_every and not think_ns:
        raise _fail(f"{tw}.time", f"thinking every {think_every} steps needs a time above 0 (such as 5ms)")

    fae = d.get("free_at_exit", False)
    if not isinstance(fae, bool):
        raise _fail(f"{where}.free_at_exit", f"expected true or false, got {fae!r}")
    calloc = _fraction(d, "calloc", where, 0.0)
    realloc = _fraction(d, "realloc", where, 0.0)
    if realloc == 1.0:
        # Every step would resize the first block and `volume` might never be reached.
        raise _fail(f"{where}.realloc", "must be below 1 (some steps have to allocate)")
    if calloc + realloc > 1.0:
        raise _fail(f"{where}.realloc", f"calloc + realloc fractions exceed 1 ({calloc} + {realloc})")
    return GenSpec(
        name=name,
        allocs=allocs,
        volume=volume,
        refs=refs,
        arrival=arrival,
        arrival_gap=gap,
        arrival_first=first,
        sizes=sizes,
        size_max=size_max,
        lifetime=lifetime,
        life_mean=life_mean,
        batch_delay=delay,
        long_lived=long_lived,
        pattern=pattern,
        rate=rate,
        write=write,
        run=run,
        zipf_s=zipf_s,
        ws_bytes=ws_bytes,
        phase=phase,
        ref_compute=ref_compute,
        init=_fraction(d, "init", where, 1.0),
        compute=_duration(d, "compute", where, 0),
        think_every=think_every,
        think_ns=think_ns,
        think_dist=think_dist,
        calloc=calloc,
        realloc=realloc,
        realloc_growth=_float(d, "realloc_growth", where, 2.0, lo=0.0, strict=True),
        free_at_exit=fae,
    )


# ---------------------------------------------------------------------------
# The live blocks of a process and the access patterns over them.
# ---------------------------------------------------------------------------


def _draws(fill: Callable[[int], list[Any]]) -> Iterator[Any]:
    """An endless stream of values drawn ``_BATCH`` at a time; next() costs ~50 ns, not a numpy call."""
    while True:
        yield from fill(_BATCH)


class _Live:
    """The live blocks: sizes in allocation order, a dense table for O(1) random picks.

    Invariants: ``size`` holds exactly the live ids (dict order = allocation
    order, realloc keeps the place); ``dense`` is a permutation of them with
    ``pos[dense[i]] == i``; ``order`` lists every live id in allocation order
    plus ids freed since the last ``compact`` (the scan cursor skips those).
    """

    __slots__ = ("dense", "order", "pos", "size")

    def __init__(self) -> None:
        self.size: dict[int, int] = {}
        self.dense: list[int] = []
        self.pos: dict[int, int] = {}
        self.order: list[int] = []

    def add(self, bid: int, n: int) -> None:
        self.size[bid] = n
        self.pos[bid] = len(self.dense)
        self.dense.append(bid)
        self.order.append(bid)

    def remove(self, bid: int) -> None:
        del self.size[bid]
        i = self.pos.pop(bid)
        last = self.dense.pop()
        if last != bid:
            # Freed slots go to the newest block: long-lived blocks keep low slots (zipf's hot ranks).
            self.dense[i] = last
            self.pos[last] = i

    def compact(self) -> None:
        if len(self.order) > 2 * len(self.size) + 64:
            size = self.size
            self.order = [b for b in self.order if b in size]


class _Access:
    """Chooses the page ranges a process references; holds the pattern's state.

    ``run(n, out)`` appends TOUCH operations for about ``n`` page references
    and returns how many it made (a range of ``k`` pages of a block counts
    ``k``; it may exceed ``n`` by less than one range, the caller carries
    the difference). Offsets are in the block's own coordinates, so a
    "page" of a block is ``page_size`` bytes from a page-aligned offset.
    """

    def __init__(self, g: GenSpec, rng: np.random.Generator, live: _Live, page_size: int) -> None:
        self.live = live
        self.ps = page_size
        self.pattern = g.pattern
        self.write = g.write
        self.run_pages = g.run
        self.s = g.zipf_s
        self.limit = g.ws_bytes
        self.phase_len = g.phase
        self.u = _draws(lambda n: rng.random(n).tolist())
        # Scan cursor (sequential, loop): position in live.order, byte offset, bytes this pass.
        self.idx = 0
        self.off = 0
        self.pass_bytes = 0
        # Phased: the hot blocks of the current phase and the references left in it.
        self.hot: list[int] = []
        self.phase_left = 0

    def run(self, n: int, out: list[Op]) -> int:
        if not self.live.size:
            return 0
        p = self.pattern
        if p == "sequential" or p == "loop":
            return self._scan(n, out)
        return self._random(n, out)

    def _scan(self, n: int, out: list[Op]) -> int:
        live = self.live
        size = live.size
        order = live.order
        ps = self.ps
        limit = self.limit
        u = self.u
        write = self.write
        idx, off, pass_bytes = self.idx, self.off, self.pass_bytes
        done = 0
        while done < n:
            if idx >= len(order):
                idx, off, pass_bytes = 0, 0, 0
                live.compact()
                order = live.order
            bid = order[idx]
            sz = size.get(bid)
            if sz is None:
                idx += 1
                off = 0
                continue
            end = sz if limit is None else min(sz, off + limit - pass_bytes)
            if off < end:
                pages = min((end - off + ps - 1) // ps, n - done)
                length = min(pages * ps, end - off)
                out.append((TOUCH, bid, off, length, 1 if next(u) < write else 0))
                off += length
                pass_bytes += length
                done += pages
            if off >= end:
                idx += 1
                off = 0
                if limit is not None and pass_bytes >= limit:
                    # The working set is the oldest live blocks up to `limit` bytes: start over.
                    idx = len(order)
        self.idx, self.off, self.pass_bytes = idx, off, pass_bytes
        return done

    def _random(self, n: int, out: list[Op]) -> int:
        live = self.live
        size = live.size
        dense = live.dense
        ps = self.ps
        run = self.run_pages
        u = self.u
        write = self.write
        p = self.pattern
        a = 1.0 - self.s  # 0 for the classic zipf (s = 1), whose inverse is (k + 1) ** x
        done = 0
        while done < n and dense:
            if p == "uniform":
                bid = dense[int(next(u) * len(dense))]
            elif p == "zipf":
                # Bounded Zipf over slots 1..k by inverting the continuous power law
                # (density ∝ x^-s on [1, k+1)); slot r holds rank r's block.
                k = len(dense)
                x = next(u)
                r = int((1.0 + x * ((k + 1) ** a - 1.0)) ** (1.0 / a)) if a else int((k + 1) ** x)
                bid = dense[min(r, k) - 1]
            else:  # phased
                hot = self.hot
                if self.phase_left <= 0 or not hot:
                    self._new_phase()
                    hot = self.hot
                j = int(next(u) * len(hot))
                bid = hot[j]
                if bid not in size:
                    hot[j] = hot[-1]
                    hot.pop()
                    continue
            sz = size[bid]
            npg = (sz + ps - 1) // ps
            if npg <= run:
                off, length, pages = 0, sz, npg
                next(u)  # keep the stream aligned whatever the block sizes
            else:
                off = int(next(u) * (npg - run + 1)) * ps
                length, pages = min(run * ps, sz - off), run
            out.append((TOUCH, bid, off, length, 1 if next(u) < write else 0))
            done += pages
            if p == "phased":
                self.phase_left -= pages
        return done

    def _new_phase(self) -> None:
        """The locality model: a window of the live table, `set` bytes in all, is hot for `phase` refs."""
        dense = self.live.dense
        size = self.live.size
        k = len(dense)
        j = int(next(self.u) * k)
        hot: list[int] = []
        total = 0
        limit = self.limit if self.limit is not None else 0
        for i in range(k):
            bid = dense[(j + i) % k]
            hot.append(bid)
            total += size[bid]
            if total >= limit:
                break
        self.hot = hot
        self.phase_left = self.phase_len


# ---------------------------------------------------------------------------
# One process's operation stream.
# ---------------------------------------------------------------------------


def _ops(g: GenSpec, seqs: list[np.random.SeedSequence], ps: int) -> Iterator[Op]:
    """The operations of one process (see the module docstring for the step)."""
    rng_size = np.random.default_rng(seqs[_S_SIZES])
    rng_life = np.random.default_rng(seqs[_S_LIFE])
    rng_choice = np.random.default_rng(seqs[_S_CHOICE])
    rng_think = np.random.default_rng(seqs[_S_THINK])
    sampler = g.sizes
    sizes = _draws(lambda n: sampler(rng_size, n).tolist())
    choice = _draws(lambda n: rng_choice.random(n).tolist())
    lifetime = g.lifetime
    if lifetime == "exponential":
        # Geometric: the discrete exponential on 1, 2, ... with exactly the mean asked for.
        p_die = 1.0 / g.life_mean
        lives: Iterator[int] = _draws(lambda n: rng_life.geometric(p_die, n).tolist())
    else:
        lives = iter(())
    fixed_life = int(g.life_mean)
    batch, delay = int(g.life_mean), g.batch_delay
    think_ns, think_every = g.think_ns, g.think_every
    thinks: Iterator[int] | None = None
    if think_every and g.think_dist == "exponential":
        thinks = _draws(
            lambda n: np.maximum(1, np.rint(rng_think.exponential(think_ns, n))).astype(np.int64).tolist()
        )

    live = _Live()
    access = _Access(g, np.random.default_rng(seqs[_S_ACCESS]), live, ps) if g.pattern != "none" else None
    size = live.size
    due: dict[int, list[int]] = {}
    out: list[Op] = []
    allocs = g.allocs if g.allocs is not None else -1
    volume = g.volume if g.volume is not None else -1
    p_calloc, p_realloc = g.calloc, g.calloc + g.realloc
    long_lived, growth, size_max, init = g.long_lived, g.realloc_growth, g.size_max, g.init
    rate, ref_ns, compute = g.rate, g.ref_compute, g.compute
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
            c = next(choice)
            n = next(sizes)
            if c >= p_calloc and c < p_realloc and size:
                # Grow (or shrink) a random live block, as a vector or a string buffer does.
                bid = live.dense[int(next(choice) * len(live.dense))]
                old = size[bid]
                new = max(1, min(size_max, round(old * growth)))
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
                if next(choice) >= long_lived:
                    if lifetime == "exponential":
                        end = t + next(lives)
                    elif lifetime == "fixed":
                        end = t + fixed_life
                    else:
                        # All blocks of batch k die together, `delay` steps after the batch is complete.
                        end = (t // batch + 1) * batch + delay
                    d = due.get(end)
                    if d is None:
                        due[end] = [bid]
                    else:
                        d.append(bid)
        if access is not None:
            budget += rate
            if budget >= 1.0:
                done = access.run(int(budget), out)
                budget = budget - done if done else 0.0
                if out:
                    yield from out
                    out.clear()
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

    def __init__(self, spec: GenSpec, seqs: list[np.random.SeedSequence], page_size: int) -> None:
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


def build_generated(spec: dict[str, Any], nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """One ProcSpec per process for ``kind: generator`` or ``kind: mix``; WorkloadError names a bad key."""
    kind = spec.get("kind")
    if kind == "generator":
        gens = [parse_generator(spec)]
        entry_of = [0] * nprocs
    elif kind == "mix":
        _check_keys(spec, {"kind", "processes"}, "workload", "workload kind mix")
        entries = spec.get("processes")
        if not isinstance(entries, list) or not entries:
            raise _fail(
                "workload.processes", "expected a non-empty list of generator specs with name and share"
            )
        gens, shares, counts = [], [], []
        for i, e in enumerate(entries):
            where = f"workload.processes[{i}]"
            e = _mapping(e, where)
            if "share" in e and "count" in e:
                raise _fail(f"{where}.count", "give share or count, not both")
            shares.append(_float(e, "share", where, 1.0, lo=0.0, strict=True) if "count" not in e else 0.0)
            counts.append(_int(e, "count", where, None, lo=1) if "count" in e else None)
            gens.append(parse_generator({"name": f"p{i}", **e}, where, entry=True))
        names = [g.name for g in gens]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise _fail("workload.processes", f"two entries are named {dup!r}; names must differ")
        fixed = sum(c for c in counts if c is not None)
        if all(c is not None for c in counts) and nprocs > fixed:
            raise _fail(
                "nprocs", f"{nprocs} processes, but the counts of workload.processes add up to {fixed}"
            )
        entry_of = assign_entries(shares, counts, nprocs)
    else:
        raise _fail("workload.kind", f"{kind!r} is not one of generator, mix")

    children = np.random.SeedSequence(seed).spawn(nprocs)
    per_entry = [entry_of.count(e) for e in range(len(gens))]
    index = [0] * len(gens)
    clock = [0] * len(gens)
    procs: list[ProcSpec] = []
    for i, e in enumerate(entry_of):
        g = gens[e]
        seqs = children[i].spawn(_NSTREAMS)
        k = index[e]
        index[e] += 1
        if g.arrival == "every":
            start = g.arrival_first + k * g.arrival_gap
        elif g.arrival == "random":
            # Poisson arrivals per entry: each process draws its own gap from its own stream.
            gap = np.random.default_rng(seqs[_S_ARRIVAL]).exponential(g.arrival_gap)
            clock[e] += round(float(gap))
            start = g.arrival_first + clock[e]
        else:
            start = g.arrival_first
        name = g.name if per_entry[e] == 1 else f"{g.name}.{k}"
        procs.append(
            ProcSpec(
                name=name,
                ops=GeneratedOps(g, seqs, page_size),
                start_ns=start,
                meta={"generator": g.name, "index": k, "seed_child": i},
            )
        )
    return procs
