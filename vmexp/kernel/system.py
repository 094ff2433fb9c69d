"""The simulated kernel of one run: its parts, put together the way the textbook splits them.

=================  ===============================================  ==================
part               what it is                                       module
=================  ===============================================  ==================
physical memory    frames, reverse map, free list, watermarks       ``physmem``
fault path         the reference loop (MMU) and handle_mm_fault      ``fault``
reclaim            direct reclaim, kswapd, eviction; the LRU lists  ``reclaim``,
                   are the replacement policy's                      ``policies/``
swap               slots, the device (or zram), the swap cache      ``swap``
memory cgroups     a group's limit, its charge                      ``memcg``
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

Which pager runs is the policy's choice: a textbook policy gets the
textbook pager (a victim at a time, its frame reused at once, one page per
fault); ``policy=linux`` gets Linux's reclaim and swap path (batches, the
swap cache with unmapped pages, asynchronous writeback, readahead,
shadow entries). zram and memory cgroups work with both.
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
from vmexp.kernel.memcg import ID_TABLES, MemCgroup, image_order
from vmexp.kernel.mm import MM, AddressSpace
from vmexp.kernel.observe import Observer
from vmexp.kernel.oom import OOMKiller, ProcessKilled
from vmexp.kernel.pagetable import ACCESSED, DIRTY, PageTable
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.policies import policy_class
from vmexp.kernel.policies.linux import FOLIO_BATCH_SIZE, LinuxLRU, LinuxNode
from vmexp.kernel.reclaim import SWAP_CLUSTER_MAX, Reclaim
from vmexp.kernel.swap import SwapCache, SwapDevice, SwapSpace, Zram
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
        self.linux = linux = policy_class(settings.policy.name).batch
        self.dev: SwapDevice | Zram
        if m.swap_device == "zram":
            self.dev = Zram(m.zram_read, m.zram_write, m.zram_ratio, mem)
        else:
            self.dev = SwapDevice(
                m.swap_latency,
                m.swap_bandwidth,
                ps,
                m.swap_rotational,
                m.swap_max_segments,
                m.swap_queue_depth,
                clock,
            )
        self.space = SwapSpace(
            settings.swap_pages, sequential=linux, zram=self.dev if isinstance(self.dev, Zram) else None
        )
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
            m.cost.swap_write,
            rng,
        )
        mem.reclaim = self.reclaim
        self.fault = FaultHandler(
            mem,
            self.space,
            self.dev,
            self.cache,
            clock,
            stat,
            m.cost,
            self.shift,
            linux=linux,
            page_cluster=m.page_cluster,
        )
        self.calls = MemoryCalls(
            mem, self.space, self.cache, clock, m.cost, ps, settings.ram_pages + settings.swap_pages
        )
        if linux:
            self.calls.forget = self.reclaim.forget
        self.oom = OOMKiller(self.mms, clock, ps, self.exit_process)
        self.reclaim.oom = self.oom
        cg = settings.cgroup
        # The run's memory cgroups: none; one holding every process, whose lists are the
        # machine's; or several, each with an lruvec of its own under the node that global
        # reclaim and kswapd aim at (vmexp.kernel.policies.linux.LinuxNode).
        self.memcgs: list[MemCgroup] = []
        for i in range(cg.count if cg.enabled else 0):
            group = MemCgroup(
                "vmexp" if cg.count == 1 and cg.parent_max is None else f"vmexp-{i}",
                None if (limit := cg.limit_of(i)) is None else limit // ps,
                None if cg.swap_max is None or cg.version == 1 else cg.swap_max // ps,
                -(-cg.kernel // ps),
                -(-cg.image // ps),
                -(-cg.image_hot // ps),
                -(-cg.image_alloc // ps),
                -(-cg.image_zero // ps),
                cg.image_ids,
            )
            if cg.version == 1 and cg.swap_max is not None:
                group.memsw_limit = group.limit + cg.swap_max // ps  # memory.memsw.limit_in_bytes
            group.lruvec = self.reclaim.global_policy if cg.count == 1 else self.reclaim.new_policy()
            if isinstance(group.lruvec, LinuxLRU):
                group.lruvec.memcg = group
            self.memcgs.append(group)
        lruvecs = [
            v
            for v in [g.lruvec for g in self.memcgs] or [self.reclaim.global_policy]
            if isinstance(v, LinuxLRU)
        ]
        if len(self.memcgs) > 1:
            assert len(lruvecs) == len(self.memcgs)  # the config's check: several groups need policy=linux
            self.reclaim.node = LinuxNode(lruvecs)
            self.reclaim.global_policy = None
        # cgroup.parent_max: one group above them all. Its reclaim goes round their lists as the
        # machine's does, from a position of its own (mem_cgroup_iter's per-root cursor); its
        # anonymous cost is charged by theirs, and charges the machine's node in turn.
        self.parent_memcg: MemCgroup | None = None
        if cg.enabled and cg.parent_max is not None:
            parent = MemCgroup("vmexp", cg.parent_max // ps, None, 0, 0)
            parent.adopt(self.memcgs)
            parent.lruvec = self.memcgs[0].lruvec  # one group: its lists are the parent's
            if len(self.memcgs) > 1:
                parent.node = LinuxNode(lruvecs)
                parent.node.parent = self.reclaim.node
            self.parent_memcg = parent
        if m.ncpus > 1:
            for lruvec in lruvecs:
                # Each CPU's own lru_add batch, which another CPU's reclaim does not drain (one
                # CPU's is drained by every reclaim, so it changes nothing there).
                lruvec.lru_add_batch = FOLIO_BATCH_SIZE
        self.observe(observer)

    def observe(self, observer: Observer | None) -> None:
        """Attach (or, with None, detach) the observer every part reports to."""
        self.obs = observer
        self.fault.obs = self.reclaim.obs = self.oom.obs = self.calls.obs = observer

    # --------------------------------------------------------- processes
    def new_process(
        self, pid: int, name: str, aslr_rng: np.random.Generator | None, bare: bool = False, ids: int = 0
    ) -> MM:
        """A process with the layout's regions (``bare``: none, for a pure page-reference string).

        ``ids``: how many block ids its trace uses, for the program's tables of them
        (``cgroup.image_ids``); 0 when not known in advance (a generated workload).
        """
        regions = compute_regions(self.s.layout, self.page_size, aslr_rng)
        aspace = AddressSpace(regions, self.page_size, prog=name, bare=bare)
        pt = PageTable(self.s.layout.va_bits, self.page_size, self.s.layout.pte_bytes)
        groups = self.memcgs
        # Process i joins group i mod groups (cgroup.groups), in the order they start.
        cg = groups[len(self.mms) % len(groups)] if groups else None
        policy = (
            cg.lruvec if cg is not None and cg.lruvec is not None else self.reclaim.policy_for_new_process()
        )
        mm = MM(pid, name, aspace, pt, policy)
        self.mms[pid] = mm
        if cg is not None:
            cg.attach(mm, program=not bare)
            if not bare:
                # The tables' pages beyond the first, which is among the hot pages.
                tables = (
                    [max(0, -(-ids * entry // self.page_size) - 1) for entry in ID_TABLES]
                    if cg.image_ids
                    else []
                )
                self.load_image(mm, cg.image, cg.image_hot, cg.image_alloc, cg.image_zero, tables)
        return mm

    def load_image(
        self, mm: MM, pages: int, hot: int = 0, alloc: int = 0, zero: int = 0, tables: Sequence[int] = ()
    ) -> None:
        """The process's own pages (its stack, the data of the program and its libraries), written at start.

        They are in place before the workload's first operation (exec and
        the C library's start-up touched them), so their faults are not the
        workload's and are not counted; afterwards they are ordinary
        anonymous pages, cold, that reclaim may swap out; all but the top
        ``hot`` ones, which every operation uses (``mm.hot``), and the
        ``alloc`` below them, which every allocator call uses as well
        (``mm.hot_alloc``: vmexp.kernel.memcg). The lowest ``zero`` of the
        cold ones hold only zeros (``PhysMem.zero_filled``); nothing
        addresses a cold page after the start, so they stay zero while
        resident. They go on the lists in the order the replayer first
        writes them (``vmexp.kernel.memcg.image_order``), which decides
        which of them reclaim takes first: the rseq page is among the first.

        ``tables``: the pages of each of the program's tables of block ids
        (``ID_TABLES``) beyond its first, below the image: main clears the
        tables after the start-up has written the rest and before it grows
        its stack, so they go on the lists between the two, and then the
        operations on blocks of theirs use them (``mm.id_tables``).
        """
        if pages <= 0:
            return
        start, end = mm.aspace.grow_stack((pages + sum(tables)) * self.page_size)
        base = start >> self.shift  # the tables, then the image
        for n, entry in zip(tables, ID_TABLES, strict=False):  # tables: () for none
            if n:
                mm.id_tables.append((base - 1, entry))  # page k >= 1 of the table is base - 1 + k
            base += n
        top = range((end >> self.shift) - hot, end >> self.shift)
        below = range(top.start - alloc, top.start)
        # In the order each operation uses them, which is not the order they were first written
        # in: every second page, then the others, so that no two come one after the other in the
        # swap slots that reclaim gives them in LRU order (swap readahead takes a fault one slot
        # away from the last for a sequential run: __swapin_nr_pages).
        mm.hot = tuple(top[0::2]) + tuple(top[1::2])
        mm.hot_alloc = mm.hot + tuple(below[0::2]) + tuple(below[1::2])
        zeros = range(base, min(below.start, base + zero))
        tabled = range(start >> self.shift, base)
        cold = range(zeros.stop, below.start)
        if mm.hot:
            order = image_order(mm.hot, mm.hot_alloc[len(mm.hot) :], cold, tabled, zeros)
        else:  # no hot pages: address order
            order = list(range(start >> self.shift, end >> self.shift))
        for vpn in order:
            f = self.mem.alloc(mm, vpn)
            mm.pt.add(vpn, f)
            self.mem.pte_bits[f] = ACCESSED | DIRTY
            mm.policy.inserted(f)
            if vpn in zeros:
                self.mem.zero_filled.add(f)
        self.reclaim.lru_add_drain()  # the image is in place before the process runs: on the lists

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
        self.reclaim.lru_add_drain(mm.pid)  # what its CPU's batch still holds: other processes' pages
        mm.killed = True
        mm.exit = status
        if mm.memcg is not None:
            mm.memcg.detach(mm)

    def report(self) -> dict[str, object]:
        """What metrics.json's ``system`` adds for Linux's path and memory cgroups (nothing otherwise).

        Counters named as /proc/vmstat and memory.stat name them, so that a
        run can be read beside the real kernel's.
        """
        out: dict[str, object] = {}
        ps = self.page_size
        if self.linux:
            node = self.reclaim.node
            events = node.events() if node is not None else {}
            out["vmstat"] = {
                **events,
                "swap_ra": self.stat.swap_ra,
                "swap_ra_hit": self.stat.swap_ra_hit,
                "swpout_zero": self.stat.swpout_zero,
            }
        if isinstance(self.dev, Zram):
            out["zram"] = {
                "stored_bytes_peak": self.dev.stored_peak * ps,
                "pool_bytes_peak": self.dev.pool_peak * ps,
                "pool_bytes": self.mem.pool * ps,
            }
        groups = self.memcgs
        if groups:
            kills = [k.get("memcg") for k in self.oom.kills]
            each = [
                {
                    "name": g.name,
                    "pids": g.pids,
                    "limit_bytes": self.s.cgroup.limit_of(i),
                    "usage_peak_bytes": g.usage_peak * ps,
                    "swap_peak_bytes": g.swap_peak * ps if self.linux else None,
                    "oom_kills": kills.count(g.name),
                }
                for i, g in enumerate(groups)
            ]
            memcg: dict[str, object] = {
                "limit_bytes": self.s.cgroup.memory_max,
                "swap_limit_bytes": self.s.cgroup.swap_max,
                "usage_peak_bytes": max(g.usage_peak for g in groups) * ps,
                "oom_kills": len([k for k in kills if k is not None]),
                "groups": each,
            }
            if (parent := self.parent_memcg) is not None:
                memcg["parent"] = {
                    "name": parent.name,
                    "limit_bytes": self.s.cgroup.parent_max,
                    "usage_peak_bytes": parent.usage_peak * ps,
                    "oom_kills": kills.count(parent.name),
                }
            out["memcg"] = memcg
        return out

    def check(self) -> None:
        """The invariants (``vmexp.kernel.check``); AssertionError names the first one broken."""
        check(self)
