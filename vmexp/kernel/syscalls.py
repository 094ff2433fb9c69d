"""The memory system calls: brk, mmap, munmap, mremap, madvise(MADV_DONTNEED).

They change reservations (the address space's VMAs) and, where memory stops
being mapped, free its frames and swap slots at once (mm/memory.c
``zap_page_range``), as munmap and a shrinking brk do. Every call is logged
as strace shows it (``syscalls.csv``) and costs its CPU time.

Linux's default overcommit heuristic (``vm.overcommit_memory=0``, mm/util.c
``__vm_enough_memory``): one request that grows private writable memory by
more pages than RAM + swap fails with ENOMEM; anything smaller is granted
and costs a frame only when touched.

``Syscalls`` is one process's view of all this: the ``Kernel`` protocol the
allocators of ``vmexp.libc`` program against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vmexp.kernel.clock import SliceClock
from vmexp.kernel.fault import PLAIN_MASK, PLAIN_WANT, FaultHandler
from vmexp.kernel.pagetable import PTE_NONE, SWAPPED
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.swap import SwapCache, SwapSpace

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.observe import Observer

__all__ = ["MemoryCalls", "Syscalls"]

# The MMU's test for a load and a store that need no fault (``PLAIN_MASK``/``PLAIN_WANT`` of each).
_READ_MASK, _READ_WANT = PLAIN_MASK[0], PLAIN_WANT[0]
_WRITE_MASK, _WRITE_WANT = PLAIN_MASK[1], PLAIN_WANT[1]

# (pid, op, time_ns, name, addr, length, result): one syscalls.csv row.
SyscallRecord = tuple[int, int, int, str, int, int, int]


class MemoryCalls:
    """The system calls and the unmapping they share with process exit."""

    def __init__(
        self,
        mem: PhysMem,
        space: SwapSpace,
        cache: SwapCache,
        clock: SliceClock,
        cost: Any,
        page_size: int,
        commit_limit: int,
    ) -> None:
        self.mem = mem
        self.space = space
        self.cache = cache
        self.clock = clock
        self.cost = cost
        self.page_size = page_size
        self.shift = page_size.bit_length() - 1
        self.commit_limit = commit_limit
        self.log: list[SyscallRecord] = []
        self.obs: Observer | None = None
        # Linux's path: a frame freed here may have a write or read pending (Reclaim.forget).
        self.forget: Callable[[int], None] | None = None

    # ------------------------------------------------------------ unmapping
    def free_entry(self, mm: MM, e: int) -> None:
        """Free the frame or slot that entry ``e`` of ``mm`` held (zap_pte_range's per-entry part)."""
        if e <= SWAPPED:
            slot = SWAPPED - e
            f = self.cache.frame_of.get(slot, -1)
            if f >= 0:  # still in the swap cache, mapped by nobody: free_swap_and_cache frees it too
                self.cache.take(f)
                if self.forget is not None:
                    self.forget(f)
                self.mem.free_unmapped(f, mm)
            self.space.release(slot)
            mm.swapents -= 1
        elif e >= 0:  # a frame (not the zero page)
            f = e
            slot = self.cache.take(f)
            if slot >= 0:
                self.space.release(slot)
            if self.forget is not None:
                self.forget(f)
            self.mem.free(f, mm)

    def zap(self, mm: MM, start: int, end: int) -> None:
        """Free the frames and slots of [start, end) at once (munmap, brk shrink, MADV_DONTNEED)."""
        v0 = start >> self.shift
        v1 = (end + self.page_size - 1) >> self.shift
        pte = mm.pt.pte
        dense = v1 - v0 <= 4 * len(pte)  # walk the range, or the table when the range is far larger
        vpns = list(filter(pte.__contains__, range(v0, v1))) if dense else [v for v in pte if v0 <= v < v1]
        self.mem.reclaim.lru_add_drain()  # free_pages_and_swap_cache: the running CPU's batch first
        # The entries first, then what they held: nothing that frees a frame or slot reads the table.
        free_entry = self.free_entry
        for e in mm.pt.remove_many(vpns):
            free_entry(mm, e)

    def zap_all(self, mm: MM) -> None:
        """Everything ``mm`` maps (exit_mmap): each entry's frame or slot, in table order, then the tables.

        The entries are freed where they stand and the table emptied once at
        the end (``free_pgtables`` after ``unmap_vmas``), not removed one by
        one: removing while iterating would need a copy of every key, a
        list as long as the table at the moment the simulation holds the
        most memory. Nothing that frees an entry's frame or slot reads the
        page table, so the order of the frees, and every result, is the same.
        """
        pt = mm.pt
        self.mem.reclaim.lru_add_drain()  # free_pages_and_swap_cache: the running CPU's batch first
        for e in pt.pte.values():
            self.free_entry(mm, e)
        pt.clear()

    # ------------------------------------------------------------ the calls
    def _log(self, mm: MM, name: str, addr: int, length: int, result: int) -> None:
        mm.syscalls[name] += 1
        self.log.append((mm.pid, mm.op, self.clock.now(), name, addr, length, result))
        if self.obs is not None:
            self.obs.syscall(mm, name, addr, length, result)

    def brk(self, mm: MM, addr: int) -> int:
        self.clock.used += self.cost.brk
        old = mm.aspace.brk
        if addr == 0:
            self._log(mm, "brk", 0, 0, old)
            return old
        ps = self.page_size
        if (addr + ps - 1) // ps - (old + ps - 1) // ps > self.commit_limit:
            self._log(mm, "brk", addr, 0, old)  # do_brk_flags refused: the break stays
            return old
        _, freed = mm.aspace.set_brk(addr)
        for s, e in freed:
            self.zap(mm, s, e)
        new = mm.aspace.brk
        self._log(mm, "brk", addr, new - old, new)
        return new

    def mmap(self, mm: MM, length: int) -> int:
        self.clock.used += self.cost.mmap
        ps = self.page_size
        length = (length + ps - 1) // ps * ps
        addr = mm.aspace.get_unmapped_area(length) if 0 < length // ps <= self.commit_limit else -1
        if addr < 0:
            self._log(mm, "mmap", 0, length, -1)
            return -1
        mm.aspace.map(addr, addr + length, "anon")
        self._log(mm, "mmap", addr, length, addr)
        return addr

    def munmap(self, mm: MM, addr: int, length: int) -> int:
        self.clock.used += self.cost.munmap
        ps = self.page_size
        if addr % ps or length <= 0:
            self._log(mm, "munmap", addr, length, -1)
            return -1
        end = addr + (length + ps - 1) // ps * ps
        for s, e in mm.aspace.unmap(addr, end):
            self.zap(mm, s, e)
        self._log(mm, "munmap", addr, length, 0)
        return 0

    def mremap(self, mm: MM, addr: int, old_len: int, new_len: int) -> int:
        self.clock.used += self.cost.mremap
        ps = self.page_size
        old_len = (old_len + ps - 1) // ps * ps
        new_len = (new_len + ps - 1) // ps * ps
        if (new_len - old_len) // ps > self.commit_limit:  # only the growth is charged
            self._log(mm, "mremap", addr, new_len, -1)
            return -1
        new, freed = mm.aspace.resize(addr, old_len, new_len)
        for s, e in freed:
            self.zap(mm, s, e)
        if new >= 0 and new != addr:
            self._move_pages(mm, addr, new, old_len)
            mm.aspace.move(addr, new, old_len, new_len)
        # As strace shows it: mremap(old_address, ...) = new_address. Logging the new address as
        # addr lost the old one, and syscalls.csv could not tell which mapping had moved.
        self._log(mm, "mremap", addr, new_len, new)
        return new

    def _move_pages(self, mm: MM, old: int, new: int, length: int) -> None:
        """mremap's move: page-table entries change address, the frames stay (no faults)."""
        pt = mm.pt
        delta = (new - old) >> self.shift
        v0, v1 = old >> self.shift, (old + length) >> self.shift
        moved = [(v, pt.remove(v)) for v in range(v0, v1) if v in pt.pte]
        owner = self.space.owner  # Linux's path: which page each slot holds
        for v, e in moved:
            pt.add(v + delta, e)
            slot = -1
            if e <= SWAPPED:
                slot = SWAPPED - e
                f = self.cache.frame_of.get(slot, -1)
                if f >= 0:
                    self.mem.frame_vpn[f] = v + delta
            elif e >= 0:
                self.mem.frame_vpn[e] = v + delta
                slot = self.cache.slot_of.get(e, -1)
            if slot in owner:
                owner[slot] = (mm, v + delta)

    def madvise_dontneed(self, mm: MM, addr: int, length: int) -> None:
        self.clock.used += self.cost.syscall
        self.zap(mm, addr, addr + length)


class Syscalls:
    """One process's view of the kernel: the allocator's ``Kernel`` protocol."""

    __slots__ = ("_bits", "_on_hit", "_pte", "calls", "fault", "mm", "page_size", "shift")

    def __init__(self, calls: MemoryCalls, fault: FaultHandler, mm: MM) -> None:
        self.calls = calls
        self.fault = fault
        self.mm = mm
        self.page_size = calls.page_size
        self.shift = calls.shift
        self._pte = mm.pt.pte
        self._bits = fault.mem.pte_bits
        self._on_hit = mm.policy.on_hit  # a process keeps its policy, and a policy its on_hit

    def brk(self, addr: int) -> int:
        return self.calls.brk(self.mm, addr)

    def mmap(self, length: int) -> int:
        return self.calls.mmap(self.mm, length)

    def munmap(self, addr: int, length: int) -> int:
        return self.calls.munmap(self.mm, addr, length)

    def mremap(self, addr: int, old_length: int, new_length: int) -> int:
        return self.calls.mremap(self.mm, addr, old_length, new_length)

    def madvise_dontneed(self, addr: int, length: int) -> None:
        self.calls.madvise_dontneed(self.mm, addr, length)

    # The allocator's own loads and stores (chunk headers, links, memsets). One is almost always a
    # plain hit on one page, and a malloc or free makes several, so ``read`` and ``write`` answer
    # that case themselves with the MMU's test (like the CPU's cache it costs no simulated time and
    # is not narrated) rather than calling a shared method or setting up the reference loop.

    def write(self, addr: int, length: int) -> None:
        v0 = addr >> self.shift
        if length > 0 and (addr + length - 1) >> self.shift == v0:
            e = self._pte.get(v0, PTE_NONE)
            if e >= 0 and self._bits[e] & _WRITE_MASK == _WRITE_WANT:
                self.mm.refs += 1
                if self._on_hit is not None:
                    self._on_hit(e)
                return
        self._refs(addr, length, 1)

    def read(self, addr: int, length: int) -> None:
        v0 = addr >> self.shift
        if length > 0 and (addr + length - 1) >> self.shift == v0:
            e = self._pte.get(v0, PTE_NONE)
            if e >= 0 and self._bits[e] & _READ_MASK == _READ_WANT:
                self.mm.refs += 1
                if self._on_hit is not None:
                    self._on_hit(e)
                return
        self._refs(addr, length, 0)

    def _refs(self, addr: int, length: int, w: int) -> None:
        """An access that is not one plain hit: every page it spans, through the reference loop."""
        if length <= 0:
            return
        v0 = addr >> self.shift
        v1 = (addr + length - 1) >> self.shift
        n = v1 - v0 + 1
        self.fault.refs(self.mm, range(v0, v1 + 1), bytes([w]) * n, 0, n, 1 << 62, False)
