"""A process's memory: its ``MM`` (Linux's mm_struct: counters, page table,
LRU), its virtual address space (VMAs, the program break, mmap placement).

This is bookkeeping of *reservations* only: brk and mmap never allocate a
frame (demand paging happens in ``vmexp.kernel.fault`` when a page is first
touched). The methods return the byte ranges that stopped being mapped so
that the kernel can free their frames and swap slots at once, as munmap and a
shrinking brk do.

VMAs are kept in a list sorted by start with a parallel list of starts for
``bisect``; a process has tens of them, and they are consulted only on page
faults and system calls, never on the per-reference hot path.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from vmexp.kernel.layout import STACK_GUARD_GAP, Regions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmexp.kernel.memcg import MemCgroup
    from vmexp.kernel.pagetable import PageTable
    from vmexp.kernel.policies.base import Policy

__all__ = ["MM", "SYSCALL_NAMES", "VMA", "AddressSpace"]

SYSCALL_NAMES = ("brk", "mmap", "munmap", "mremap")


class VMA:
    """One mapping. ``kind`` decides fault behaviour and the maps listing.

    ``ra`` is Linux's ``vma->swap_readahead_info`` for VMA-based swap
    readahead: (virtual page of the last swap fault, its window, readahead hits).
    """

    __slots__ = ("end", "kind", "ra", "start")

    def __init__(self, start: int, end: int, kind: str) -> None:
        self.start = start
        self.end = end
        self.kind = kind
        self.ra = (0, 0, 0)

    def __repr__(self) -> str:
        return f"VMA({self.start:#x}-{self.end:#x} {self.kind})"


# kind -> (permissions, name in /proc/PID/maps)
_MAPS = {
    "text": ("r-xp", "{prog}"),
    "data": ("rw-p", "{prog}"),
    "bss": ("rw-p", ""),
    "heap": ("rw-p", "[heap]"),
    "anon": ("rw-p", ""),
    "pageref": ("rw-p", ""),
    "stack": ("rw-p", "[stack]"),
}


class AddressSpace:
    """VMAs and the break of one process."""

    def __init__(self, regions: Regions, page_size: int, prog: str = "a.out", bare: bool = False) -> None:
        self.regions = regions
        self.page_size = page_size
        self.prog = prog
        self.vmas: list[VMA] = []
        self._starts: list[int] = []
        self.start_brk = regions.start_brk
        self.brk = regions.start_brk
        self.heap: VMA | None = None
        self._vsz = 0  # the VMAs' total, kept as they change: an mmap used to sum every VMA
        self.vsz_peak = 0
        fixed = (
            ()
            if bare
            else (
                (regions.text, "text"),
                (regions.data, "data"),
                (regions.bss, "bss"),
                (regions.stack, "stack"),
            )
        )
        for (start, end), kind in fixed:
            if end > start:
                self._insert(VMA(start, end, kind))

    # -- lookup -------------------------------------------------------------
    def find(self, addr: int) -> VMA | None:
        """The VMA containing ``addr``, or None."""
        i = bisect_right(self._starts, addr) - 1
        if i >= 0:
            v = self.vmas[i]
            if addr < v.end:
                return v
        return None

    def _next_vma(self, addr: int) -> VMA | None:
        """The first VMA ending after ``addr``."""
        i = bisect_right(self._starts, addr) - 1
        if i >= 0 and self.vmas[i].end > addr:
            return self.vmas[i]
        i += 1
        return self.vmas[i] if i < len(self.vmas) else None

    def is_free(self, start: int, end: int) -> bool:
        nxt = self._next_vma(start)
        return nxt is None or nxt.start >= end

    @property
    def vsz(self) -> int:
        """Bytes mapped (``ps -o vsz``), the VMAs' lengths added up."""
        return self._vsz

    # -- changes ------------------------------------------------------------
    def _insert(self, vma: VMA) -> None:
        i = bisect_right(self._starts, vma.start)
        self._starts.insert(i, vma.start)
        self.vmas.insert(i, vma)
        self._vsz += vma.end - vma.start
        if self._vsz > self.vsz_peak:
            self.vsz_peak = self._vsz

    def _remove_at(self, i: int) -> None:
        del self._starts[i]
        del self.vmas[i]

    def map(self, start: int, end: int, kind: str) -> VMA:
        """Reserve [start, end), which must be free."""
        vma = VMA(start, end, kind)
        self._insert(vma)
        return vma

    def unmap(self, start: int, end: int) -> list[tuple[int, int]]:
        """Remove [start, end) from every VMA it covers (splitting them); the ranges removed."""
        removed: list[tuple[int, int]] = []
        i = max(0, bisect_right(self._starts, start) - 1)
        while i < len(self.vmas):
            v = self.vmas[i]
            if v.start >= end:
                break
            if v.end <= start:
                i += 1
                continue
            lo, hi = max(v.start, start), min(v.end, end)
            removed.append((lo, hi))
            self._vsz -= hi - lo
            if v.start < lo and hi < v.end:
                tail = VMA(hi, v.end, v.kind)
                v.end = lo
                self._starts.insert(i + 1, tail.start)
                self.vmas.insert(i + 1, tail)
                i += 2
            elif v.start < lo:
                v.end = lo
                i += 1
            elif hi < v.end:
                v.start = hi
                self._starts[i] = hi
                i += 1
            else:
                if v is self.heap:
                    self.heap = None
                self._remove_at(i)
        return removed

    def get_unmapped_area(self, length: int) -> int:
        """Top-down placement below the mmap base, as Linux's unmapped_area_topdown: the highest gap that fits."""
        high = self.regions.mmap_base
        low = self.regions.mmap_min
        vmas = self.vmas
        i = bisect_left(self._starts, high) - 1  # the highest VMA starting below `high`
        while i >= 0:  # down the gaps between VMAs, highest first
            v = vmas[i]
            gap_lo = v.end if v.end > low else low
            if gap_lo < high and high - gap_lo >= length:
                return high - length
            if v.start < high:
                high = v.start
            i -= 1
        return high - length if low < high and high - low >= length else -1

    def grow_stack(self, length: int) -> tuple[int, int]:
        """The top ``length`` bytes of the stack, the stack VMA grown down to hold them if needed.

        Where a process's own image lives (``vmexp.kernel.memcg``): a real
        process's stack is pre-grown like this (the replayer's to 256 KiB).
        """
        for i, v in enumerate(self.vmas):
            if v.kind == "stack":
                start = min(v.start, v.end - length)
                if start < v.start:
                    self._vsz += v.start - start
                    v.start = start
                    self._starts[i] = start
                    self.vsz_peak = max(self.vsz_peak, self._vsz)
                return v.end - length, v.end
        raise ValueError("the process has no stack")

    def set_brk(self, new: int) -> tuple[bool, list[tuple[int, int]]]:
        """Linux's brk(): (moved?, ranges freed by a shrink)."""
        ps = self.page_size
        if new < self.start_brk:
            return False, []
        newpg = (new + ps - 1) // ps * ps
        oldpg = (self.brk + ps - 1) // ps * ps
        if newpg == oldpg:
            self.brk = new
            return True, []
        if new < self.brk:
            freed = self.unmap(newpg, oldpg)
            self.brk = new
            return True, freed
        nxt = self._next_vma(oldpg)
        if nxt is not None and nxt is not self.heap:
            gap_start = nxt.start - (STACK_GUARD_GAP if nxt.kind == "stack" else 0)
            if newpg + ps > gap_start:
                return False, []
        if newpg > self.regions.task_size:
            return False, []
        if self.heap is None:
            self.heap = self.map(oldpg, newpg, "heap")
        else:
            self._vsz += newpg - self.heap.end
            self.heap.end = newpg
        self.brk = new
        if self._vsz > self.vsz_peak:
            self.vsz_peak = self._vsz
        return True, []

    def resize(self, addr: int, old_len: int, new_len: int) -> tuple[int, list[tuple[int, int]]]:
        """mremap's address-space half: grow in place if the gap allows, else pick a new place.

        Returns (new address or -1, ranges to drop). When the mapping moves the
        caller moves the pages, because only the kernel knows the frames.
        """
        v = self.find(addr)
        if v is None or v.start != addr or v.end != addr + old_len:
            return -1, []
        if new_len <= old_len:
            return addr, self.unmap(addr + new_len, addr + old_len)
        if self.is_free(addr + old_len, addr + new_len) and addr + new_len <= self.regions.mmap_base:
            self._vsz += new_len - old_len
            v.end = addr + new_len
            if self._vsz > self.vsz_peak:
                self.vsz_peak = self._vsz
            return addr, []
        new = self.get_unmapped_area(new_len)
        return new, []

    def move(self, old: int, new: int, old_len: int, new_len: int) -> None:
        """Move a whole VMA (mremap's move path) after the pages were moved."""
        v = self.find(old)
        assert v is not None
        kind = v.kind
        self.unmap(old, old + old_len)
        self.map(new, new + new_len, kind)

    # -- presentation -------------------------------------------------------
    def maps(self) -> list[str]:
        """The /proc/PID/maps lines; adjacent anonymous mappings merge as Linux merges them."""
        merged: list[tuple[int, int, str]] = []  # (start, end, kind)
        for v in self.vmas:
            if merged and v.kind == "anon" and merged[-1][2] == "anon" and merged[-1][1] == v.start:
                merged[-1] = (merged[-1][0], v.end, "anon")
            else:
                merged.append((v.start, v.end, v.kind))
        # show_vma_header_prefix pads to 25 + sizeof(void *) * 6 - 1 columns, then a space: the name
        # starts at column 73 on a 64-bit kernel and at 49 on a 32-bit one (i386's 3G/1G split).
        width = 48 if self.regions.task_size <= 1 << 32 else 72
        lines: list[str] = []
        for start, end, kind in merged:
            perms, name = _MAPS[kind]
            name = name.format(prog=self.prog)
            inode, offset = "00:00 0", 0
            if kind in ("text", "data"):
                inode, offset = "08:01 1048577", start - self.regions.text[0]
            line = f"{start:08x}-{end:08x} {perms} {offset:08x} {inode}"
            lines.append(f"{line:<{width}} {name}" if name else line)
        return lines


class MM:
    """One process's memory: address space, page table, counters (as ps and /proc show them)."""

    __slots__ = (
        "aspace",
        "cpu_ns",
        "exit",
        "hot",
        "hot_alloc",
        "id_tables",
        "killed",
        "majflt",
        "memcg",
        "minflt",
        "name",
        "op",
        "pid",
        "policy",
        "preempted",
        "pswpin",
        "pswpout",
        "pt",
        "refs",
        "resched",
        "rss",
        "rss_peak",
        "swap_peak",
        "swapents",
        "syscalls",
    )

    def __init__(self, pid: int, name: str, aspace: AddressSpace, pt: PageTable, policy: Policy) -> None:
        self.pid = pid
        self.name = name
        self.aspace = aspace
        self.pt = pt
        self.policy = policy
        self.rss = 0  # resident pages (frames; the zero page is not counted, as in Linux)
        self.swapents = 0
        self.rss_peak = 0
        self.swap_peak = 0
        self.minflt = 0
        self.majflt = 0
        self.refs = 0
        self.cpu_ns = 0  # virtual time: CPU ns of completed slices (the clock adds the running one's)
        self.pswpin = 0
        self.pswpout = 0
        self.syscalls = dict.fromkeys(SYSCALL_NAMES, 0)
        self.killed = False
        self.memcg: MemCgroup | None = None
        self.hot: Sequence[int] = ()  # pages of its image that every operation uses (vmexp.kernel.memcg)
        self.hot_alloc: Sequence[int] = ()  # those and the ones every allocator call uses as well
        # The program's tables of block ids beyond their first pages: (page 0's place, bytes an entry).
        self.id_tables: list[tuple[int, int]] = []
        # Scheduled out (it slept, or waited for a CPU) since it last returned to user space: on the
        # way back the kernel writes its rseq area, in the first of ``hot`` (FaultHandler.user_return).
        self.resched = False
        # Preempted without sleeping since then (FaultHandler.refs): rseq's page is read through the TLB.
        self.preempted = False
        self.exit = "running"
        self.op = 0  # index of the operation being executed (syscalls.csv's op column)

    def preempted_on_cpu(self) -> None:
        """A kworker ran on its CPU in the middle of its reclaim: rseq is read on its way back, if it has an image."""
        self.preempted = bool(self.hot)

    def switched_out(self) -> None:
        """It gave up the CPU (slept, waited for I/O or for a CPU): rseq is due on its way back, if it has an image."""
        self.resched = bool(self.hot)
