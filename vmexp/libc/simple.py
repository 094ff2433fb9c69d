"""Textbook free-list allocators over a brk heap: first fit and best fit.

They are the baselines ptmalloc is compared with, so they are deliberately
plain: one address-ordered list of free blocks, a 16-byte header in front of
every block (size and links), a boundary tag at the end of every free block
so that ``free`` coalesces with both neighbours at once, 16-byte alignment,
and a heap that grows with ``brk`` in whole pages and shrinks when the free
block at its end exceeds the trim threshold.

There is no mmap path: a request of any size is served from the heap, so a
large block that is freed below a live one stays in the heap.  There are no
caches, size classes or deferred coalescing either; the fit strategy is the
only difference between the two (strategies are plain functions).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmexp.fields import size
from vmexp.libc.base import MALLINFO_FIELDS, Kernel
from vmexp.libc.malloc import HeapCorrupt, InvalidPointer, MallocConfigError
from vmexp.registry import ALLOCATORS
from vmexp.units import UnitError, parse_size

__all__ = ["FreeListAllocator", "FirstFit", "BestFit", "first_fit", "best_fit", "make", "FITS"]

HEADER = 16
ALIGN = 16
MIN_BLOCK = 32  # a header and room for the boundary tag of a free block
DEFAULT_TRIM_THRESHOLD = 128 * 1024
_MAX_REQUEST = (1 << 63) - 1

# A fit strategy: (free block addresses in address order, their sizes, bytes needed) -> address or -1.
Fit = Callable[[list[int], dict[int, int], int], int]


def first_fit(addrs: list[int], sizes: dict[int, int], need: int) -> int:
    """The lowest-addressed free block that is large enough."""
    for a in addrs:
        if sizes[a] >= need:
            return a
    return -1


def best_fit(addrs: list[int], sizes: dict[int, int], need: int) -> int:
    """The smallest free block that is large enough; of equal sizes the lowest address."""
    best = -1
    best_size = 0
    for a in addrs:
        s = sizes[a]
        if s >= need and (best < 0 or s < best_size):
            best, best_size = a, s
            if s == need:
                break
    return best


FITS: dict[str, Fit] = {"first_fit": first_fit, "best_fit": best_fit}


def block_size(n: int) -> int:
    """Header plus the request, rounded up to 16 bytes, at least 32."""
    b = (n + HEADER + ALIGN - 1) & ~(ALIGN - 1)
    return b if b > MIN_BLOCK else MIN_BLOCK


class FreeListAllocator:
    """An explicit free list with immediate coalescing, served entirely from brk."""

    def __init__(self, kernel: Kernel, fit: Fit, *, trim_threshold: int | str | None = None) -> None:
        ps: object = getattr(kernel, "page_size", None)
        if not isinstance(ps, int) or isinstance(ps, bool) or ps <= 0 or ps & (ps - 1):
            raise MallocConfigError(f"kernel.page_size must be a power of two, got {ps!r}")
        if trim_threshold is None:
            trim = DEFAULT_TRIM_THRESHOLD
        else:
            try:
                trim = parse_size(trim_threshold)
            except UnitError as e:
                raise MallocConfigError(f"allocator.trim_threshold: {e}") from None
        self._k = kernel
        self._ps = ps
        self._fit = fit
        self.trim_threshold = trim
        self._base = -1  # heap start; -1 until the first brk(NULL)
        self._brk = 0
        self._used: dict[int, int] = {}
        self._free: dict[int, int] = {}
        self._free_end: dict[int, int] = {}
        self._addrs: list[int] = []  # free block addresses, ascending

    # ------------------------------------------------------------------ free list

    def _add_free(self, a: int, size: int) -> None:
        self._free[a] = size
        self._free_end[a + size] = a
        insort(self._addrs, a)
        self._k.write(a, HEADER)
        self._k.write(a + size - 8, 8)  # boundary tag

    def _remove_free(self, a: int) -> int:
        size = self._free.pop(a)
        del self._free_end[a + size]
        del self._addrs[bisect_left(self._addrs, a)]
        return size

    def _grow(self, need: int) -> int:
        """Extend the heap so that a free block of ``need`` bytes ends at the break; its address or -1."""
        k = self._k
        if self._base < 0:
            self._base = self._brk = k.brk(0)
        last = self._free_end.get(self._brk)
        have = self._free[last] if last is not None else 0
        inc = (need - have + self._ps - 1) & ~(self._ps - 1)
        old = self._brk
        new = k.brk(old + inc)
        if new < old + inc:
            if new >= 0:
                self._brk = new
            return -1
        self._brk = new
        if last is not None:
            self._remove_free(last)
            self._add_free(last, have + inc)
            return last
        self._add_free(old, inc)
        return old

    def _take(self, a: int, need: int) -> int:
        """Allocate ``need`` bytes from the free block at ``a``, splitting off a usable rest."""
        size = self._remove_free(a)
        rest = size - need
        if rest >= MIN_BLOCK:
            self._add_free(a + need, rest)
            size = need
        self._used[a] = size
        self._k.write(a, HEADER)
        return a

    def _release(self, a: int, size: int) -> None:
        """Return a block to the free list, merged with free neighbours; trim a large free end."""
        prev = self._free_end.get(a)
        if prev is not None:
            size += self._remove_free(prev)
            a = prev
        if a + size in self._free:
            size += self._remove_free(a + size)
        self._add_free(a, size)
        if a + size == self._brk and size > self.trim_threshold:
            self._trim(0)

    def _trim(self, pad: int) -> int:
        last = self._free_end.get(self._brk)
        if last is None:
            return 0
        size = self._free[last]
        release = (size - MIN_BLOCK - pad) & ~(self._ps - 1) if size > MIN_BLOCK + pad else 0
        if release <= 0:
            return 0
        new = self._k.brk(self._brk - release)
        if new != self._brk - release:
            return 0
        self._brk = new
        self._remove_free(last)
        self._add_free(last, size - release)
        return 1

    # ------------------------------------------------------------------ Allocator

    def malloc(self, n: int) -> int:
        if n < 0 or n > _MAX_REQUEST:
            return 0
        need = block_size(n)
        a = self._fit(self._addrs, self._free, need)
        if a < 0:
            a = self._grow(need)
            if a < 0:
                return 0
        return self._take(a, need) + HEADER

    def calloc(self, count: int, size: int) -> int:
        if count < 0 or size < 0 or count * size > _MAX_REQUEST:
            return 0
        p = self.malloc(count * size)
        if p:
            self._k.write(p, self._used[p - HEADER] - HEADER)
        return p

    def realloc(self, p: int, n: int) -> int:
        if p == 0:
            return self.malloc(n)
        if n == 0:
            self.free(p)
            return 0
        a = p - HEADER
        size = self._used.get(a)
        if size is None:
            raise InvalidPointer(f"realloc(): invalid pointer {p:#x}: not a live allocation")
        need = block_size(n)
        if need <= size:
            if size - need >= MIN_BLOCK:
                self._used[a] = need
                self._k.write(a, HEADER)
                self._release(a + need, size - need)
            return p
        nxt = a + size
        if nxt in self._free and size + self._free[nxt] >= need:
            merged = size + self._remove_free(nxt)
            del self._used[a]
            self._free[a] = merged  # briefly free so _take can split it
            self._free_end[a + merged] = a
            insort(self._addrs, a)
            return self._take(a, need) + HEADER
        q = self.malloc(n)
        if not q:
            return 0
        self._k.read(p, size - HEADER)
        self._k.write(q, size - HEADER)
        self.free(p)
        return q

    def free(self, p: int) -> None:
        if p == 0:
            return
        size = self._used.pop(p - HEADER, None)
        if size is None:
            raise InvalidPointer(f"free(): invalid pointer {p:#x}: not a live allocation (double free?)")
        self._release(p - HEADER, size)

    def usable_size(self, p: int) -> int:
        if p == 0:
            return 0
        size = self._used.get(p - HEADER)
        if size is None:
            raise InvalidPointer(f"malloc_usable_size(): invalid pointer {p:#x}")
        return size - HEADER

    def malloc_trim(self, pad: int = 0) -> int:
        return self._trim(pad)

    def mallinfo2(self) -> dict[str, int]:
        """Only the heap totals mean something here; the ptmalloc-specific fields are 0."""
        arena = self._brk - self._base if self._base >= 0 else 0
        last = self._free_end.get(self._brk)
        fordblks = sum(self._free.values())
        values = dict.fromkeys(MALLINFO_FIELDS, 0)
        values.update(
            arena=arena,
            ordblks=len(self._free),
            uordblks=arena - fordblks,
            fordblks=fordblks,
            keepcost=self._free[last] if last is not None else 0,
        )
        return values

    def heap_walk(self) -> list[tuple[int, int, str]]:
        out = [(a, s, "in_use") for a, s in self._used.items()]
        out.extend((a, s, "free") for a, s in self._free.items())
        out.sort()
        return out

    def check(self) -> None:
        """Raise ``HeapCorrupt`` unless the blocks tile the heap and no two free blocks touch."""
        at = self._base if self._base >= 0 else 0
        for a, s, state in self.heap_walk():
            if a != at:
                raise HeapCorrupt(f"gap or overlap at {at:#x}: next block at {a:#x}")
            if s < MIN_BLOCK or s % ALIGN:
                raise HeapCorrupt(f"block {a:#x} has a bad size {s}")
            if state == "free" and a + s in self._free:
                raise HeapCorrupt(f"free blocks {a:#x} and {a + s:#x} are neighbours")
            at = a + s
        if self._base >= 0 and at != self._brk:
            raise HeapCorrupt(f"the blocks end at {at:#x}, the break is {self._brk:#x}")
        if self._addrs != sorted(self._free) or len(self._free_end) != len(self._free):
            raise HeapCorrupt("the free list and the free blocks disagree")


class FirstFit(FreeListAllocator):
    """Address-ordered first fit."""

    def __init__(self, kernel: Kernel, *, trim_threshold: int | str | None = None) -> None:
        super().__init__(kernel, first_fit, trim_threshold=trim_threshold)


class BestFit(FreeListAllocator):
    """Best fit (smallest sufficient block, lowest address on ties)."""

    def __init__(self, kernel: Kernel, *, trim_threshold: int | str | None = None) -> None:
        super().__init__(kernel, best_fit, trim_threshold=trim_threshold)


def make(name: str, kernel: Kernel, *, trim_threshold: int | str | None = None) -> FreeListAllocator:
    """The allocator ``allocator=first_fit|best_fit`` names."""
    fit = FITS.get(name)
    if fit is None:
        raise MallocConfigError(f"allocator: unknown free-list allocator {name!r}; valid: {', '.join(FITS)}")
    return FreeListAllocator(kernel, fit, trim_threshold=trim_threshold)


# ---------------------------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class FreeListParams:
    """The free-list allocators take one parameter."""

    trim_threshold: int | None = size(
        None, "the heap shrinks when its last free block exceeds this", null="128 KiB"
    )


def _registered(fit: Fit) -> Callable[[Kernel, Any], FreeListAllocator]:
    def build(kernel: Kernel, settings: Any) -> FreeListAllocator:
        return FreeListAllocator(kernel, fit, trim_threshold=settings.trim_threshold)

    return build


ALLOCATORS.add(
    "first_fit",
    _registered(first_fit),
    FreeListParams,
    doc="a textbook free list: address-ordered first fit, no mmap",
)
ALLOCATORS.add(
    "best_fit", _registered(best_fit), FreeListParams, doc="a textbook free list: best fit, no mmap"
)
