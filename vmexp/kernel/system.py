"""The simulated kernel of one run: its parts, put together the way the textbook splits them.

=================  ===============================================  ==================
part               what it is                                       module
=================  ===============================================  ==================
physical memory    frames, reverse map, free list, watermarks       ``physmem``
fault path         the reference loop (MMU) and handle_mm_fault      ``fault``
reclaim            direct reclaim, kswapd, eviction; the LRU lists  ``reclaim``,
                   are the replacement policy's                      ``policies/``
swap               slots, the device, the swap cache                ``swap``
OOM                badness and the kill                             ``oom``
system calls       brk, mmap, munmap, mremap, madvise; unmapping    ``syscalls``
address spaces     a process's MM, VMAs, the break, page tables     ``mm``, ``pagetable``
time               the running slice's clock                        ``clock``
counters           /proc/vmstat                                      ``vmstat``
watching           explain's narration, the invariant checker       ``observe``, ``check``
=================  ===============================================  ==================

``System`` builds them, wires the few places where they call each other
(the page allocator reclaims, reclaim may OOM-kill, the OOM killer exits a
process, which unmaps), and keeps the processes' ``MM``s. It creates no SimPy
events: the machine (``vmexp.sim``) owns time and shares the slice clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vmexp.config import Settings
from vmexp.kernel.check import check
from vmexp.kernel.clock import SliceClock
from vmexp.kernel.fault import FaultHandler, Segfault
from vmexp.kernel.layout import compute_regions
from vmexp.kernel.mm import MM, AddressSpace
from vmexp.kernel.observe import Observer
from vmexp.kernel.oom import OOMKiller, ProcessKilled
from vmexp.kernel.pagetable import PageTable
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.reclaim import SWAP_CLUSTER_MAX, Reclaim
from vmexp.kernel.swap import SwapCache, SwapDevice, SwapSpace
from vmexp.kernel.syscalls import MemoryCalls, Syscalls
from vmexp.kernel.vmstat import VMStat

__all__ = ["MM", "SWAP_CLUSTER_MAX", "ProcessKilled", "Segfault", "Syscalls", "System"]


class System:
    """Frames, swap, reclaim and the fault path, shared by every process of a run."""

    def __init__(
        self, settings: Settings, env: Any, rng: np.random.Generator, observer: Observer | None = None
    ) -> None:
        self.s = settings
        self.page_size = ps = settings.page_size
        self.shift = ps.bit_length() - 1
        m = settings.machine
        self.clock = clock = SliceClock(env)
        self.stat = stat = VMStat()
        self.mms: dict[int, MM] = {}
        self.mem = mem = PhysMem(
            settings.ram_pages, m.min_free // ps, clock, local=settings.policy.scope == "local"
        )
        self.space = SwapSpace(settings.swap_pages)
        self.dev = SwapDevice(m.swap_latency, m.swap_bandwidth, ps)
        self.cache = SwapCache()
        self.reclaim = Reclaim(
            settings.policy,
            mem,
            self.space,
            self.dev,
            self.cache,
            clock,
            stat,
            self.mms,
            m.cost.reclaim_page,
            rng,
        )
        mem.reclaim = self.reclaim
        self.fault = FaultHandler(mem, self.space, self.dev, self.cache, clock, stat, m.cost, self.shift)
        self.calls = MemoryCalls(
            mem, self.space, self.cache, clock, m.cost, ps, settings.ram_pages + settings.swap_pages
        )
        self.oom = OOMKiller(self.mms, clock, ps, self.exit_process)
        self.reclaim.oom = self.oom
        self.observe(observer)

    def observe(self, observer: Observer | None) -> None:
        """Attach (or, with None, detach) the observer every part reports to."""
        self.obs = observer
        self.fault.obs = self.reclaim.obs = self.oom.obs = self.calls.obs = observer

    # --------------------------------------------------------- processes
    def new_process(
        self, pid: int, name: str, aslr_rng: np.random.Generator | None, bare: bool = False
    ) -> MM:
        """A process with the layout's regions (``bare``: none, for a pure page-reference string)."""
        regions = compute_regions(self.s.layout, self.page_size, aslr_rng)
        aspace = AddressSpace(regions, self.page_size, prog=name, bare=bare)
        pt = PageTable(self.s.layout.va_bits, self.page_size, self.s.layout.pte_bytes)
        mm = MM(pid, name, aspace, pt, self.reclaim.policy_for_new_process())
        self.mms[pid] = mm
        return mm

    def syscalls(self, mm: MM) -> Syscalls:
        """``mm``'s view of the kernel, for its C library."""
        return Syscalls(self.calls, self.fault, mm)

    def give_future(self, vpns: Sequence[int]) -> None:
        """The whole reference string, for a policy that reads the future (OPT)."""
        policy = self.reclaim.global_policy
        assert policy is not None and policy.needs_future
        policy.set_future(vpns)

    def exit_process(self, mm: MM, status: str) -> None:
        """Free every frame and slot of ``mm`` (exit or kill)."""
        if mm.killed:
            return
        self.calls.zap_all(mm)
        mm.killed = True
        mm.exit = status

    def check(self) -> None:
        """The invariants (``vmexp.kernel.check``); AssertionError names the first one broken."""
        check(self)
