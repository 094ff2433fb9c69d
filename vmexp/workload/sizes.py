"""Allocation-size distributions of the generators (``workload.sizes: {dist: NAME, ...}``).

Each distribution is a frozen dataclass of its declared parameters,
registered under its name, with ``sampler()``: a plain function of
``(rng, n)`` returning ``n`` sizes in one numpy call (a generator draws
them ``_BATCH`` at a time). ``top`` is the largest size it can return (a
realloc never grows a block past it). ``min``/``max`` clip the sampled
sizes where a distribution has them (default 1 byte .. 1 GiB: a single
synthetic allocation above that is almost always a typo or a heavy tail
gone wild).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vmexp.fields import component, custom, number, size
from vmexp.registry import SIZE_DISTS
from vmexp.workload import WorkloadError
from vmexp.workload.ops import CALLOC, MALLOC, REALLOC

__all__ = ["SizeSampler", "parse_sizes"]

SizeSampler = Callable[[np.random.Generator, int], npt.NDArray[np.int64]]

# Above this, sizes do not fit the replayer's int64 nor any address space.
ABS_MAX_SIZE = 1 << 46
_MAX = {"hi": ABS_MAX_SIZE}


def _clip(x: npt.NDArray[np.float64], lo: int, hi: int) -> npt.NDArray[np.int64]:
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


@dataclass(frozen=True)
class _Bounded:
    """``min`` and ``max`` clip the sampled sizes."""

    min: int = size(1, "smallest size (samples below are clipped)", lo=1, **_MAX)
    max: int = size("1G", "largest size (samples above are clipped)", lo=1, **_MAX)

    def check(self, where: str) -> None:
        if self.max < self.min:
            raise WorkloadError(f"{where}.max: {self.max} is below min ({self.min})")

    @property
    def top(self) -> int:
        return self.max


@SIZE_DISTS.register("fixed")
@dataclass(frozen=True)
class Fixed:
    """Every block has the same size."""

    size: int = size(None, "the size", lo=1, **_MAX)

    def sampler(self) -> SizeSampler:
        n_bytes = self.size
        return lambda rng, n: np.full(n, n_bytes, dtype=np.int64)

    @property
    def top(self) -> int:
        return self.size


@SIZE_DISTS.register("uniform")
@dataclass(frozen=True)
class Uniform(_Bounded):
    """Uniform on [min, max]."""

    min: int = size(None, "smallest size", lo=1, missing="required for dist uniform", **_MAX)
    max: int = size(None, "largest size", lo=1, missing="required for dist uniform", **_MAX)

    def sampler(self) -> SizeSampler:
        lo, hi = self.min, self.max
        return lambda rng, n: rng.integers(lo, hi + 1, size=n, dtype=np.int64)


@SIZE_DISTS.register("lognormal")
@dataclass(frozen=True)
class LogNormal(_Bounded):
    """Lognormal: most sizes near the median, a long tail above (malloc traces look like this)."""

    median: int = size(None, "the median size (e^mu)", lo=1, **_MAX)
    sigma: float = number(None, "the spread of log(size)", lo=0.0, strict=True)

    def sampler(self) -> SizeSampler:
        mu, sigma, lo, hi = math.log(self.median), self.sigma, self.min, self.max
        return lambda rng, n: _clip(rng.lognormal(mu, sigma, n), lo, hi)


@SIZE_DISTS.register("exponential")
@dataclass(frozen=True)
class Exponential(_Bounded):
    """Exponential with the given mean."""

    mean: int = size(None, "the mean size", lo=1, **_MAX)

    def sampler(self) -> SizeSampler:
        mean, lo, hi = self.mean, self.min, self.max
        return lambda rng, n: _clip(rng.exponential(mean, n), lo, hi)


@SIZE_DISTS.register("pareto")
@dataclass(frozen=True)
class Pareto(_Bounded):
    """Classic Pareto: sizes from min up, a heavy tail of exponent alpha."""

    min: int = size(
        None,
        "the smallest size (Pareto's scale x_m)",
        lo=1,
        missing="required for dist pareto (the smallest size, Pareto's scale x_m)",
        **_MAX,
    )
    alpha: float = number(None, "the tail exponent", lo=0.0, strict=True)

    def sampler(self) -> SizeSampler:
        alpha, lo, hi = self.alpha, self.min, self.max
        # numpy's pareto is Lomax (support from 0); 1 + Lomax is the classic Pareto with x_m = 1.
        return lambda rng, n: _clip(lo * (1.0 + rng.pareto(alpha, n)), lo, hi)


@dataclass(frozen=True)
class MixturePart:
    """One component of a mixture: its weight and its distribution (whose keys sit beside the weight)."""

    weight: float = number(None, "the component's weight (relative)", lo=0.0, strict=True)
    dist: Any = component(None, "the component's distribution", SIZE_DISTS, inline=True)


def _components(value: Any, key: str, error: type[Exception]) -> tuple[MixturePart, ...]:
    if not isinstance(value, list) or not value:
        raise error(f"{key}: expected a non-empty list of {{weight, dist, ...}}")
    out = []
    for i, c in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(c, dict):
            raise error(f"{where}: expected a mapping of keys, got {c!r}")
        w = c.get("weight")
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0:
            raise error(f"{where}.weight: must be a number > 0, got {w!r}")
        dist = SIZE_DISTS.parse({k: v for k, v in c.items() if k != "weight"}, where)
        out.append(MixturePart(float(w), dist))
    return tuple(out)


@SIZE_DISTS.register("mixture")
@dataclass(frozen=True)
class Mixture:
    """A weighted mixture of other distributions: each size comes from one component."""

    components: tuple[MixturePart, ...] = custom(
        None, "[{weight, dist, ...}, ...]: the components and their weights", _components
    )

    def sampler(self) -> SizeSampler:
        samplers = [c.dist.sampler() for c in self.components]
        weights = [c.weight for c in self.components]
        p = np.asarray(weights) / sum(weights)
        ncomp = len(samplers)

        def mixture(rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
            which = rng.choice(ncomp, size=n, p=p)
            out = np.empty(n, dtype=np.int64)
            for j, s in enumerate(samplers):
                mask = which == j
                out[mask] = s(rng, int(mask.sum()))
            return out

        return mixture

    @property
    def top(self) -> int:
        return max(int(c.dist.top) for c in self.components)


def _trace_path(value: Any, key: str, error: type[Exception]) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{key}: expected the path of an allocation trace, got {value!r}")
    return str(Path(value).expanduser())


@SIZE_DISTS.register("empirical")
@dataclass(frozen=True)
class Empirical:
    """The size histogram of a trace: every malloc, calloc (count x size) and realloc request."""

    path: str = custom(None, "an allocation trace whose requests give the histogram", _trace_path)
    _hist: tuple[Any, Any] = field(default=(None, None), repr=False, compare=False)

    def check(self, where: str) -> None:
        from vmexp.workload.traces import MAX_VALUE, TraceError, parse_trace

        key = f"{where}.path"
        try:
            trace = parse_trace(self.path)
        except TraceError as e:
            raise WorkloadError(f"{key}: {e}") from None
        sizes = [
            op[2] * op[3] if op[0] == CALLOC else op[2]
            for ops in trace.ops.values()
            for op in ops
            if op[0] in (MALLOC, CALLOC, REALLOC)
        ]
        # realloc(p, 0) is a free, malloc(0) allocates nothing to touch; a calloc whose count x size
        # passes 2^63-1 is no size at all (calloc returns NULL), and did not fit the int64 histogram.
        sizes = [s for s in sizes if 0 < s <= MAX_VALUE]
        if not sizes:
            raise WorkloadError(f"{key}: {self.path} holds no malloc, calloc or realloc of 1 to 2^63-1 bytes")
        values, counts = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
        object.__setattr__(self, "_hist", (values, counts / counts.sum()))

    def sampler(self) -> SizeSampler:
        values, probs = self._hist
        return lambda rng, n: rng.choice(values, size=n, p=probs)

    @property
    def top(self) -> int:
        return int(self._hist[0][-1])


def parse_sizes(d: Any, where: str) -> tuple[SizeSampler, int]:
    """A sampler of allocation sizes and the largest size it can return."""
    dist = SIZE_DISTS.parse(d, where)
    return dist.sampler(), dist.top
