"""A memory cgroup: a limit on what a group of processes may hold in memory (mm/memcontrol.c).

Every process of a run with ``cgroup.memory_max`` or ``cgroup.swap_max``
belongs to one group, as in a container; with ``cgroup.groups`` = N to one
of N groups side by side (process i to group i mod N), each with those
limits and lists of its own (``lruvec``: ``vmexp.kernel.policies.linux``
says how the machine's reclaim goes round them); with ``cgroup.parent_max``
inside one more group, whose limit counts all their charges and whose
reclaim goes round their lists as the machine's does. A group's usage
(``memory.usage_in_bytes``, ``memory.current``) counts what Linux charges to
it, measured on Linux 6.18 with the replayer (tests/data/real_kernel/overhead.json):

- every frame holding a page of its processes: mapped anonymous pages and
  swap-cache pages not mapped (readahead, pages whose write is in flight);
- each process's page-table pages (``__GFP_ACCOUNT``: one PTE page per
  2 MiB of address space touched, plus the upper levels), which stay while
  the pages are swapped out: they hold the swap entries;
- per process, ``kernel`` pages the simulator does not model page by page:
  slab objects (VMAs, anon_vma, the mm), the page tables of the shared
  libraries' mappings, and the few pages of the program itself that it
  keeps using (measured: 16 to 20 pages of kernel memory before the loop,
  of which the simulator counts its own page tables);
- each process's own image (``image``): its stack and the data of the
  program, libc and ld.so (measured: 132 pages). These are ordinary
  anonymous pages on the group's lists, written once when the process
  starts and then cold, so reclaim swaps them out like any other. A few
  of them (``image_hot``, 9 measured with ``perf record -e major-faults
  -d``: the stack frame, the program's own data, two pages of libc's data
  holding the GOT entries of the calls each operation makes, two of the
  TLS, ``errno``'s and the one with ``struct rseq``, and the block's entries
  in the program's three tables) are used by every operation: the process touches them before each one,
  and 4 of them after its last (the replayer's ``getrusage``), so they
  stay hot but fault back in after an operation that swept more than the
  limit (``vmexp.sim.Process.execute``). The first of them holds the
  thread's ``struct rseq``, which the kernel writes on every return to
  user space after a context switch (``FaultHandler.user_return``; after
  a preemption it is read through the TLB, which marks nothing, so it
  faults only if reclaim took it meanwhile). Others (``image_alloc``, 6
  measured the same way on the ``blocks``, ``grow_160`` and ``churn_120``
  workloads: ``main_arena`` and ``mp_`` in the C library's data, the brk
  pointer ``__curbrk``, ld.so's ``_rtld_global_ro`` read by ``sysmalloc``
  and ``munmap_chunk``) are the allocator's own state: each malloc,
  calloc, realloc and free touches them too, so they fault back in at the
  first allocation after a sweep. Most of the cold rest (``image_zero``,
  107 pages counted from ``/proc/PID/pagemap`` and ``/proc/PID/mem`` with
  the replayer stopped before its loop: the 256 KiB of stack it grows at
  start, its bss tables) holds only zeros, which Linux 6.12 and later
  reclaim without a write (``vmexp.kernel.reclaim.Reclaim.pageout``).

A pure page-reference string (``workload=pageref``) has no program, so
neither ``kernel`` nor ``image`` pages: its charge is its pages and page
tables.

zram's pool is not charged: it is the driver's memory (zsmalloc), taken
from the machine's RAM.

The per-CPU charge stock is left out. Linux charges the group's counter
``MEMCG_CHARGE_BATCH`` (64) pages at a time and keeps what the charging
page did not use as its CPU's stock (``try_charge_memcg``,
``refill_stock``); at the limit the charging process reclaims before the
other CPUs' stocks are drained (``drain_all_stock`` only when reclaim left
no margin), so a stock left on a CPU the process no longer charges on
lowers the limit it reclaims at, for the rest of a run. Measured
(``python bench/kernel_truth.py stock``: the charge beyond the group's
kernel memory and pages, sampled at the limit): none beyond the 32 pages
a reclaim pass holds off the lists in 63 of 64 runs, 46 pages in one; the
simulator takes the usual case.

``swap_limit`` (``memory.swap.max``): swap slots the group may use; with it
spent, anonymous pages cannot be reclaimed and the group's OOM killer runs.
``swap`` counts the slots its pages hold on Linux's path (charged when
reclaim gives a page a slot, uncharged when the slot is freed); the
textbook pager, which keeps no slot's owner and allows one group only,
counts the swap in use. Once half of it is used, a page read back from
swap gives up its slot (``mem_cgroup_swap_full``:
``vmexp.kernel.fault.FaultHandler.map_swap_cache``).

``memsw_limit`` (``cgroup.version=1``: ``memory.memsw.limit_in_bytes``, the
limit plus ``cgroup.swap_max``) takes its place on cgroup v1, which has no
swap-only limit: memory and swap counted together, each page once
(``memsw``); at it the charging process may not swap, so the group's OOM
killer runs. On v1 ``mem_cgroup_swap_full`` is only the machine's
``vm_swap_full``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.policies.base import Policy
    from vmexp.kernel.policies.linux import ReclaimTarget

__all__ = ["ID_TABLES", "IMAGE_ORDER", "MemCgroup", "image_order"]

# The program's tables indexed by block id, as the replayer (vmexp/validate/replayer.c) keeps
# them: the bytes of an entry of each (the block's pointer, its size, its state). Ids are
# numbered densely in the order a trace first names them. The first page of each is one of the
# hot image pages (``image_hot``: measured on traces of few ids); a trace of tens of thousands
# of ids has hundreds more, up to 1 % of a 64 MiB group (the heap workloads of
# vmexp/validate/workloads.py), which every operation on their blocks uses.
ID_TABLES = (8, 8, 1)

# The order in which the replayer first writes the pages of its image that hold more than zeros,
# which is their order on the group's inactive list, oldest first: what ld.so and the C library
# write as the process starts, the program's data (H), ld.so's data and relro (C, A), the stack
# page of argv (H), libc's data (H) and relro (C), the two TLS pages (H, then the rseq page, R),
# libc's bss (A), then the first pages of the program's three tables (H), which main clears.
# Measured on Linux 6.18 (`python bench/kernel_truth.py image-order seq_read_160`): the pfns of
# every page of the stopped replayer from /proc/PID/pagemap, then the order in which reclaim
# wrote them (mm_vmscan_write_folio): its first long reclaim call takes these 25 in this order,
# the rseq page 13th, then the 63 zero-filled pages of the stack main grows and the bss. Which
# of libc's and ld.so's pages are the allocator's (A) and which are cold (C) is read from what
# they hold (main_arena and __curbrk in libc's data and bss, _rtld_global_ro in ld.so's relro).
IMAGE_ORDER = "HCHCACCCCHCHRCCCHAAAACHHH"


def image_order(
    hot: Sequence[int], alloc: Sequence[int], cold: Sequence[int], tables: Sequence[int], zeros: Sequence[int]
) -> list[int]:
    """The image's pages (vpns by kind) in the order they go on the lists: ``IMAGE_ORDER``'s.

    ``hot[0]`` is the rseq page; pages of a kind beyond the template's count
    (an image configured larger than the replayer's) follow it, then the
    tables' pages beyond their first (cleared by main), then the zero-filled
    pages (the stack main grows, the bss it reads into).
    """
    queues = {"H": list(hot[1:]), "A": list(alloc), "C": list(cold)}
    order: list[int] = []
    for kind in IMAGE_ORDER:
        if kind == "R":
            order.extend(hot[:1])
        elif queues[kind]:
            order.append(queues[kind].pop(0))
    return order + queues["C"] + queues["A"] + queues["H"] + list(tables) + list(zeros)


class MemCgroup:
    """One group: its limit, its members and what they are charged for (pages)."""

    __slots__ = (
        "_bare",
        "children",
        "image",
        "image_alloc",
        "image_hot",
        "image_ids",
        "image_zero",
        "kernel",
        "kernel_per_proc",
        "limit",
        "lruvec",
        "members",
        "memsw_limit",
        "name",
        "node",
        "pages",
        "parent",
        "pids",
        "pt_pages",
        "swap",
        "swap_limit",
        "swap_peak",
        "usage_peak",
    )

    def __init__(
        self,
        name: str,
        limit: int | None,
        swap_limit: int | None,
        kernel_per_proc: int,
        image: int,
        image_hot: int = 0,
        image_alloc: int = 0,
        image_zero: int = 0,
        image_ids: bool = False,
    ) -> None:
        self.name = name
        # No memory limit: only the machine's RAM bounds the group.
        self.limit = limit if limit is not None else 1 << 62
        self.swap_limit = swap_limit
        # cgroup.version=1: memory and swap counted together (memory.memsw), in pages; None: no such limit.
        self.memsw_limit: int | None = None
        self.kernel_per_proc = kernel_per_proc
        self.image = image  # pages of each process's own image
        self.image_hot = min(image_hot, image)  # of those, the pages every operation uses
        self.image_alloc = min(image_alloc, image - self.image_hot)  # and those every allocator call uses
        # Of the others (cold), those that hold only zeros.
        self.image_zero = min(image_zero, image - self.image_hot - self.image_alloc)
        self.image_ids = image_ids  # a trace's process has its tables of block ids beyond the first pages
        self.members: list[MM] = []
        self.pids: list[int] = []  # every process that joined, in order
        self._bare: set[int] = set()  # pids of members without a program (page-reference strings)
        self.pages = 0  # frames charged
        self.pt_pages = 0  # page-table pages of the members
        self.kernel = 0  # the members' kernel memory the simulator does not model page by page
        self.usage_peak = 0
        self.swap = 0  # swap slots its pages hold (memory.swap.current), counted on Linux's path
        self.swap_peak = 0
        # The lists its members' pages are on and its own reclaim takes from: its lruvec, or with
        # one group holding every process, the machine's lists.
        self.lruvec: Policy | None = None
        # cgroup.parent_max: the group above (whose limit counts this one's charge too), and of
        # that parent, the groups below it.
        self.parent: MemCgroup | None = None
        self.children: list[MemCgroup] = []
        # A parent over several groups: the node above their lruvecs its reclaim aims at.
        self.node: ReclaimTarget | None = None

    @property
    def usage(self) -> int:
        """memory.usage_in_bytes, in pages: a parent's counts its children's (hierarchical charging)."""
        if self.children:
            return sum(c.usage for c in self.children)
        return self.pages + self.pt_pages + self.kernel

    @property
    def memsw(self) -> int:
        """memory.memsw.usage_in_bytes (cgroup v1), in pages: each of the members' pages once, in memory or
        swapped out.

        v1 moves a page's memsw charge to its swap entry when the page leaves memory
        (``mem_cgroup_swapout``) and back to the page when it is read in
        (``mem_cgroup_swapin_uncharge_swap``), so a page read back that keeps its slot, or a page
        written and not yet freed, counts once: a mapped page in ``rss``, one whose PTE holds its swap
        entry in ``swapents`` (a page of the swap cache that no PTE maps is one of those).
        """
        return sum(m.rss + m.swapents for m in self.members) + self.pt_pages + self.kernel

    def adopt(self, children: list[MemCgroup]) -> None:
        """Become the parent of ``children``: each page they are charged counts against this limit too."""
        self.children = children
        for c in children:
            c.parent = self

    def tasks(self) -> list[MM]:
        """The members of this group and of the groups below it: what its OOM killer chooses from."""
        return self.members + [m for c in self.children for m in c.members]

    def attach(self, mm: MM, *, program: bool = True) -> None:
        """``mm`` joins the group (forked inside it): its kernel memory and top page table are charged.

        ``program`` False: a pure page-reference string, which has no
        program and so no kernel memory of one; only its pages and page
        tables are charged.
        """
        self.members.append(mm)
        self.pids.append(mm.pid)
        mm.memcg = self
        mm.pt.memcg = self
        if program:
            self.kernel += self.kernel_per_proc
        else:
            self._bare.add(mm.pid)
        self.pt_pages += mm.pt.pages

    def detach(self, mm: MM) -> None:
        """``mm`` exited; its pages and page tables below the top were uncharged as they were freed."""
        self.members.remove(mm)
        if mm.pid in self._bare:
            self._bare.discard(mm.pid)
        else:
            self.kernel -= self.kernel_per_proc
        self.pt_pages -= mm.pt.pages
        mm.pt.memcg = None
        mm.memcg = None
