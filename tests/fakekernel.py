"""A small stand-in for the simulated kernel, for the allocator tests and the benchmark.

It implements the ``Kernel`` protocol of ``vmexp.libc.base`` the way Linux
behaves for one process, just far enough to check an allocator: a program
break that moves between ``brk_start`` and an optional limit (a failed brk
returns the unchanged break, as Linux does), anonymous mappings placed top
down below ``mmap_base`` in the highest gap that fits, ``mremap`` that grows
in place when the space above is free and moves otherwise, and demand
paging reduced to its fault count: the first write to a page is a minor
fault, a read of an untouched page maps the zero page (one fault) and a
later write to it copies (another fault), and ``munmap``, a brk shrink or
``madvise_dontneed`` forget the pages.

Every call is recorded in ``calls`` as ``(syscall, addr, length, result)``
with the meanings of the ``syscalls.csv`` contract (for brk: the requested
break, the change of the break, the new break; ``brk(NULL)`` is
``("brk", 0, 0, break)``).

With ``strict=True`` (the default) a store or load outside the heap and the
mappings raises ``Segfault``: that is a bug in the allocator under test.
"""

from __future__ import annotations

__all__ = ["FakeKernel", "Segfault"]


class Segfault(AssertionError):
    """The allocator touched memory it does not own."""


class FakeKernel:
    def __init__(
        self,
        *,
        page_size: int = 4096,
        brk_start: int = 0x5555_5555_9000,
        brk_limit: int | None = None,
        mmap_base: int = 0x7FFF_F7FF_0000,
        mmap_limit: int | None = None,
        strict: bool = True,
    ) -> None:
        if page_size <= 0 or page_size & (page_size - 1):
            raise ValueError(f"page_size must be a power of two, got {page_size}")
        self.page_size = page_size
        self._shift = page_size.bit_length() - 1
        self.brk_start = brk_start
        self.cur_brk = brk_start
        self.brk_limit = brk_limit
        self.mmap_base = mmap_base
        self.mmap_limit = mmap_limit  # most bytes mapped at once; None = no limit
        self.strict = strict
        self.fail_mmap = False
        self.fail_mremap = False
        self.calls: list[tuple[str, int, int, int]] = []
        self.maps: dict[int, int] = {}
        self.pages: set[int] = set()
        self.zero_pages: set[int] = set()
        self.minflt = 0
        self.madvised: list[tuple[int, int]] = []

    # ------------------------------------------------------------- records

    def syscalls(self) -> list[tuple[str, int]]:
        """``(name, length)`` of every call so far: what the rules pin."""
        return [(name, length) for name, _addr, length, _res in self.calls]

    def resident(self) -> int:
        """Pages written and still mapped."""
        return len(self.pages)

    # ------------------------------------------------------------- syscalls

    def brk(self, addr: int) -> int:
        old = self.cur_brk
        if addr == 0:
            self.calls.append(("brk", 0, 0, old))
            return old
        limit = self.mmap_base if self.brk_limit is None else self.brk_limit
        ok = self.brk_start <= addr <= limit
        if ok and addr > old:
            ok = all(a >= addr or a + n <= old for a, n in self.maps.items())
        if ok:
            if addr < old:
                self._forget(addr, old - addr)
            self.cur_brk = addr
        self.calls.append(("brk", addr, self.cur_brk - old, self.cur_brk))
        return self.cur_brk

    def mmap(self, length: int) -> int:
        addr = -1
        if length > 0 and not self.fail_mmap:
            mapped = sum(self.maps.values())
            if self.mmap_limit is None or mapped + length <= self.mmap_limit:
                addr = self._find_gap(self._round(length))
        if addr >= 0:
            self.maps[addr] = self._round(length)
        self.calls.append(("mmap", max(addr, 0), length, addr))
        return addr

    def munmap(self, addr: int, length: int) -> int:
        n = self.maps.get(addr)
        if n is None or n != self._round(length):
            self.calls.append(("munmap", addr, length, -1))
            return -1
        del self.maps[addr]
        self._forget(addr, n)
        self.calls.append(("munmap", addr, length, 0))
        return 0

    def mremap(self, addr: int, old_length: int, new_length: int) -> int:
        n = self.maps.get(addr)
        new = self._round(new_length)
        if n is None or n != self._round(old_length) or self.fail_mremap or new <= 0:
            self.calls.append(("mremap", addr, new_length, -1))
            return -1
        result = addr
        if new < n:
            self._forget(addr + new, n - new)
            self.maps[addr] = new
        elif new > n:
            end = addr + new
            free_above = end <= self.mmap_base and all(
                a >= end or a + m <= addr + n for a, m in self.maps.items() if a != addr
            )
            if free_above:
                self.maps[addr] = new
            else:
                del self.maps[addr]
                result = self._find_gap(new)
                if result < 0:
                    self.maps[addr] = n
                    self.calls.append(("mremap", addr, new_length, -1))
                    return -1
                self.maps[result] = new
                self._move_pages(addr, n, result)
        self.calls.append(("mremap", addr, new_length, result))
        return result

    def madvise_dontneed(self, addr: int, length: int) -> None:
        self.madvised.append((addr, length))
        self._forget(addr, length)

    # ------------------------------------------------------------- memory

    def write(self, addr: int, length: int) -> None:
        if self.strict and length > 0:
            self._owned(addr, length)
        sh = self._shift
        p = addr >> sh
        q = (addr + length - 1) >> sh
        pages = self.pages
        if p == q:  # the common case: a header or a link inside one page
            if p not in pages and length > 0:
                self.minflt += 1
                pages.add(p)
                self.zero_pages.discard(p)
            return
        for pg in range(p, q + 1):
            if pg not in pages:
                self.minflt += 1
                pages.add(pg)
                self.zero_pages.discard(pg)

    def read(self, addr: int, length: int) -> None:
        if length <= 0:
            return
        if self.strict:
            self._owned(addr, length)
        sh = self._shift
        pages = self.pages
        zero = self.zero_pages
        for pg in range(addr >> sh, ((addr + length - 1) >> sh) + 1):
            if pg not in pages and pg not in zero:
                self.minflt += 1
                zero.add(pg)

    # ------------------------------------------------------------- helpers

    def _round(self, n: int) -> int:
        return (n + self.page_size - 1) & ~(self.page_size - 1)

    def _owned(self, addr: int, length: int) -> None:
        end = addr + length
        if self.brk_start <= addr and end <= self.cur_brk:
            return
        for a, n in self.maps.items():
            if a <= addr and end <= a + n:
                return
        raise Segfault(f"access to [{addr:#x}, {end:#x}) outside the heap and every mapping")

    def _find_gap(self, length: int) -> int:
        """Top-down: the highest gap below mmap_base and above the break that fits."""
        ceiling = self.mmap_base
        for a in sorted(self.maps, reverse=True):
            if ceiling - (a + self.maps[a]) >= length:
                break
            ceiling = min(ceiling, a)
        start = ceiling - length
        floor = self.brk_limit if self.brk_limit is not None else self.cur_brk
        return start if start >= floor else -1

    def _forget(self, addr: int, length: int) -> None:
        sh = self._shift
        first = (addr + self.page_size - 1) >> sh
        last = (addr + length) >> sh
        for pg in range(first, last):
            self.pages.discard(pg)
            self.zero_pages.discard(pg)

    def _move_pages(self, old: int, length: int, new: int) -> None:
        sh = self._shift
        delta = (new - old) >> sh
        lo, hi = old >> sh, (old + length) >> sh
        for s in (self.pages, self.zero_pages):
            moved = {pg for pg in s if lo <= pg < hi}
            s -= moved
            s |= {pg + delta for pg in moved}
