"""Access patterns of the generators (``workload.access: {pattern: NAME, ...}``) and the live blocks they read.

A pattern is a frozen dataclass of its declared parameters, registered
under its name; ``runner(rng, live, page_size)`` builds the object that the
generator asks for about ``n`` page references a step (``run(n, out)``
appends TOUCH operations and returns how many pages they reference; it may
exceed ``n`` by less than one range, the caller carries the difference).
The pattern is chosen once, when the runner is built: the runner's loop
compares no names. Offsets are in a block's own coordinates, so a "page"
of a block is ``page_size`` bytes from a page-aligned offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vmexp.fields import duration, fraction, integer, number, size
from vmexp.registry import ACCESS_PATTERNS
from vmexp.workload.ops import TOUCH, Op
from vmexp.workload.stream import draws

__all__ = ["Live", "Runner"]


class Live:
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


class Runner:
    """Chooses the page ranges a process references; holds the pattern's state."""

    def __init__(self, rng: np.random.Generator, live: Live, page_size: int, write: float) -> None:
        self.live = live
        self.ps = page_size
        self.write = write
        self.u = draws(lambda n: rng.random(n).tolist())

    def run(self, n: int, out: list[Op]) -> int:
        raise NotImplementedError


class _Scan(Runner):
    """A cursor over the live blocks in allocation order, offsets increasing; ``limit`` bytes a pass."""

    def __init__(
        self, rng: np.random.Generator, live: Live, page_size: int, write: float, limit: int | None
    ) -> None:
        super().__init__(rng, live, page_size, write)
        self.limit = limit
        # Position in live.order, byte offset, bytes this pass.
        self.idx = 0
        self.off = 0
        self.pass_bytes = 0

    def run(self, n: int, out: list[Op]) -> int:
        live = self.live
        size = live.size
        if not size:
            return 0
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


class _Random(Runner):
    """Touches of ``run`` pages at a random offset of a block that ``pick`` chooses (-1: choose again)."""

    def __init__(self, rng: np.random.Generator, live: Live, page_size: int, write: float, run: int) -> None:
        super().__init__(rng, live, page_size, write)
        self.run_pages = run
        self.pick: Callable[[], int] = self.picker()

    def picker(self) -> Callable[[], int]:
        raise NotImplementedError

    def run(self, n: int, out: list[Op]) -> int:
        live = self.live
        size = live.size
        if not size:
            return 0
        dense = live.dense
        ps = self.ps
        run = self.run_pages
        u = self.u
        write = self.write
        pick = self.pick
        done = 0
        while done < n and dense:
            bid = pick()
            if bid < 0:
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
        return done


class _UniformRunner(_Random):
    def picker(self) -> Callable[[], int]:
        dense, u = self.live.dense, self.u
        return lambda: dense[int(next(u) * len(dense))]


class _ZipfRunner(_Random):
    def __init__(
        self, rng: np.random.Generator, live: Live, page_size: int, write: float, run: int, s: float
    ) -> None:
        self.s = s
        super().__init__(rng, live, page_size, write, run)

    def picker(self) -> Callable[[], int]:
        dense, u = self.live.dense, self.u
        a = 1.0 - self.s  # 0 for the classic zipf (s = 1), whose inverse is (k + 1) ** x

        def pick() -> int:
            # Bounded Zipf over slots 1..k by inverting the continuous power law
            # (density ∝ x^-s on [1, k+1)); slot r holds rank r's block.
            k = len(dense)
            x = next(u)
            r = int((1.0 + x * ((k + 1) ** a - 1.0)) ** (1.0 / a)) if a else int((k + 1) ** x)
            return dense[min(r, k) - 1]

        return pick


class _PhasedRunner(_Random):
    """The locality model: a window of the live table, ``set`` bytes in all, is hot for ``phase`` references."""

    def __init__(
        self,
        rng: np.random.Generator,
        live: Live,
        page_size: int,
        write: float,
        run: int,
        ws: int,
        phase: int,
    ) -> None:
        self.limit = ws
        self.phase_len = phase
        self.hot: list[int] = []
        self.phase_left = 0
        super().__init__(rng, live, page_size, write, run)

    def picker(self) -> Callable[[], int]:
        size, u, ps, run = self.live.size, self.u, self.ps, self.run_pages

        def pick() -> int:
            hot = self.hot
            if self.phase_left <= 0 or not hot:
                self._new_phase()
                hot = self.hot
            j = int(next(u) * len(hot))
            bid = hot[j]
            if bid not in size:
                hot[j] = hot[-1]
                hot.pop()
                return -1
            npg = (size[bid] + ps - 1) // ps
            self.phase_left -= npg if npg <= run else run
            return bid

        return pick

    def _new_phase(self) -> None:
        dense = self.live.dense
        size = self.live.size
        k = len(dense)
        j = int(next(self.u) * k)
        hot: list[int] = []
        total = 0
        for i in range(k):
            bid = dense[(j + i) % k]
            hot.append(bid)
            total += size[bid]
            if total >= self.limit:
                break
        self.hot = hot
        self.phase_left = self.phase_len


# ---------------------------------------------------------------------------
# The patterns and their parameters.
# ---------------------------------------------------------------------------


@ACCESS_PATTERNS.register("none")
@dataclass(frozen=True)
class NoAccess:
    """No references besides the writes that fill new blocks (``init``)."""

    references: ClassVar[bool] = False
    rate: ClassVar[float] = 0.0
    compute: ClassVar[int] = 0

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return None


@dataclass(frozen=True)
class _Pattern:
    references: ClassVar[bool] = True

    rate: float = number(None, "pages referenced per step", lo=0.0, strict=True)
    write: float = fraction(0.3, "fraction of the touches that write")
    compute: int = duration(0, "CPU time per page referenced")


@ACCESS_PATTERNS.register("sequential")
@dataclass(frozen=True)
class Sequential(_Pattern):
    """A cursor sweeps the live blocks in allocation order, offsets increasing (a scan)."""

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return _Scan(rng, live, page_size, self.write, None)


@ACCESS_PATTERNS.register("uniform")
@dataclass(frozen=True)
class UniformAccess(_Pattern):
    """Random live blocks, equally likely."""

    run: int = integer(1, "pages per touch", lo=1)

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return _UniformRunner(rng, live, page_size, self.write, self.run)


@ACCESS_PATTERNS.register("zipf")
@dataclass(frozen=True)
class Zipf(_Pattern):
    """Hot and cold: slot r of the live table is referenced with weight r^-s."""

    run: int = integer(1, "pages per touch", lo=1)
    s: float = number(1.0, "the zipf exponent (larger: a hotter hot set)", lo=0.0, strict=True)

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return _ZipfRunner(rng, live, page_size, self.write, self.run, self.s)


@ACCESS_PATTERNS.register("loop")
@dataclass(frozen=True)
class Loop(_Pattern):
    """A cyclic scan over the oldest live blocks, `set` bytes a pass (Denning's working set)."""

    set: int = size(None, "the working set: bytes per pass", lo=1, hi=1 << 46)

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return _Scan(rng, live, page_size, self.write, self.set)


@ACCESS_PATTERNS.register("phased")
@dataclass(frozen=True)
class Phased(_Pattern):
    """The locality model: a hot set of blocks for a phase, then another."""

    run: int = integer(1, "pages per touch", lo=1)
    set: int = size(None, "bytes of blocks in each phase's hot set", lo=1, hi=1 << 46)
    phase: int = integer(None, "page references per phase", lo=1)

    def runner(self, rng: np.random.Generator, live: Live, page_size: int) -> Runner | None:
        return _PhasedRunner(rng, live, page_size, self.write, self.run, self.set, self.phase)
