"""Load control with working sets: run only as many processes as RAM holds the working sets of.

Denning (1968, 1980): a process's working set W(t, tau) is the set of pages
it referenced in the last tau of its own virtual time; a machine thrashes
when the working sets of the processes it runs do not fit in RAM together,
and the cure is not a better replacement policy but fewer running processes.
The working-set principle: a process may run only if its working set is
resident; if the sum of the working sets exceeds memory, a process is
deactivated (its pages become the first to be reclaimed) and reactivated
when there is room again. Linux has no such controller (``load_control=none``,
the default); the textbook machine has one (``load_control=ws``).

How the sizes are measured, as hardware allows: every ``interval`` the
sampler reads and clears the accessed bit of every resident page (Linux's
idle page tracking, ``mm/page_idle.c``, does the same walk) and records,
for each page found used, its owner's virtual time; the fault path records
the pages it brings in, so a page that was faulted in and evicted again
between two walks still counts (under thrashing that is most of them: the
resident part of a working set is what it cannot keep). A page is in its
owner's working set while its owner's virtual time is less than tau past
that record, resident or not. A walk cannot tell when since the last one
a page was used, so the window is measured in steps of the virtual time a
process gets in one interval: a page stays in for tau to tau plus two such
steps after its last use. An interval longer than tau is allowed
(processes that share the CPU get a fraction of it each) but coarse: a
process alone on the CPU keeps every page it used since the previous
walk, whatever tau says. Clearing the accessed bit must not blind the
replacement policy, so the bit is kept as a soft "young" mark that
``test_and_clear_young`` still reports (Linux keeps ``PG_young`` for the
same reason): the policy sees exactly what it would have seen without the
sampler.

The decisions (``decide``): while the active processes' working sets exceed
the frames available and more than one is active, the most recently
activated one is deactivated (Denning's choice of the lowest-priority
process: the newest has the least invested); deactivated processes are
reactivated first in, first out, each as soon as its working set fits
beside the active ones (taken as at least the largest active one: a
process stopped before it had built its working set would otherwise be
restarted into thrashing and stopped again), and at once when nothing else
is active.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import ge, sub
from typing import TYPE_CHECKING

import numpy as np

from vmexp.kernel.pagetable import ACCESSED

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.physmem import PhysMem

__all__ = ["LoadControl", "WorkingSetSampler"]


class WorkingSetSampler:
    """W(t, tau) per process: the pages it used in its last tau of virtual time."""

    def __init__(self, mem: PhysMem, mms: dict[int, MM], tau: int) -> None:
        self.mem = mem
        self.mms = mms
        self.tau = tau
        self.last: dict[int, dict[int, int]] = {}  # pid -> vpn -> owner's virtual time of the last use seen

    def note(self, mm: MM, vpn: int) -> None:
        """The fault path: ``mm`` used ``vpn`` now."""
        self.last.setdefault(mm.pid, {})[vpn] = self.mem.clock.vtime(mm)

    def scan(self) -> dict[int, int]:
        """Read and clear every resident page's accessed bit; returns pid -> working-set pages.

        Both passes run in C where they can: a scan every ``interval`` of
        every frame and of every remembered page was a third of the CPU of a
        ``load_control=ws`` run in Python loops. Only a frame whose accessed
        bit is set can change anything, so numpy finds those (in frame
        order, as the loop over every frame visited them); whether any page
        left the window is told by the oldest record (``now - t`` is
        largest for the smallest ``t``), and the pages that did are picked
        by ``map``/``compress`` with the same test, ``now - t >= tau``.
        """
        mem = self.mem
        vtime = mem.clock.vtime
        soft = mem.soft_young
        last = self.last
        frame_mm, frame_vpn, bits = mem.frame_mm, mem.frame_vpn, mem.pte_bits
        n = mem.next_frame
        used = np.flatnonzero(np.frombuffer(bits, dtype=np.uint8, count=n) & ACCESSED).tolist() if n else []
        for f in used:
            mm = frame_mm[f]
            if mm is None:
                continue
            vpn = frame_vpn[f]
            if mm.pt.pte[vpn] == f:
                bits[f] &= ~ACCESSED
                soft.add(f)
                last.setdefault(mm.pid, {})[vpn] = vtime(mm)
        sizes: dict[int, int] = {}
        tau = self.tau
        for pid, pages in last.items():
            now = vtime(self.mms[pid])
            # Most scans find no page out of the window (none in a thrashing run's 478 scans of
            # 20,000 pages): the oldest record says so for the price of a pass by ``min``.
            if pages and now - min(pages.values()) >= tau:
                for vpn in list(compress(pages, map(ge, map(sub, repeat(now), pages.values()), repeat(tau)))):
                    del pages[vpn]  # left the window: forget it
            sizes[pid] = len(pages)
        return sizes


class LoadControl:
    """Which processes may run: the working-set rule of the module docstring."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # frames the working sets may fill
        self.active: list[int] = []  # pids, in order of (re)activation
        self.inactive: list[tuple[int, int]] = []  # (pid, working set at deactivation), first out first in
        self.deactivations = 0  # every stop: a process stopped twice counts 2 (system.deactivations)

    def admit(self, pid: int) -> None:
        self.active.append(pid)

    def finished(self, pid: int) -> None:
        if pid in self.active:
            self.active.remove(pid)
        self.inactive = [(p, w) for p, w in self.inactive if p != pid]

    def decide(self, sizes: dict[int, int]) -> tuple[list[int], list[int]]:
        """(pids to deactivate, pids to reactivate) for the working-set sizes just measured."""
        demand = sum(sizes.get(p, 0) for p in self.active)
        stop: list[int] = []
        while demand > self.capacity and len(self.active) > 1:
            pid = self.active.pop()
            w = sizes.get(pid, 0)
            demand -= w
            self.inactive.append((pid, w))
            stop.append(pid)
            self.deactivations += 1
        start: list[int] = []
        # A process stopped early had a small working set only because it had not built it yet:
        # expect at least what an active process holds, so it is not restarted into thrashing.
        typical = max((sizes.get(p, 0) for p in self.active), default=0)
        while self.inactive and not stop:
            pid, w = self.inactive[0]
            need = max(w, sizes.get(pid, 0), typical)
            if self.active and demand + need > self.capacity:
                break
            self.inactive.pop(0)
            self.active.append(pid)
            demand += need
            start.append(pid)
        return stop, start
