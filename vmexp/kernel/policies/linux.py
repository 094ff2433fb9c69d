"""Linux's reclaim of anonymous memory: two LRU lists, reclaim in batches, refault detection.

This is the classic split LRU of Linux 6.x without the multi-generational
LRU (``CONFIG_LRU_GEN`` off), read from the 6.18 sources, for anonymous
pages, which are all the simulator has. The list of one memory cgroup (or
of the machine) is an ``lruvec``; this class is one lruvec with the part of
mm/vmscan.c that decides, and the kernel (``vmexp.kernel.reclaim``) does
what it decides to a page (write it, free it).

Lists and flags (``include/linux/mm_inline.h``, ``mm/swap.c``):

- a new page, and a page back from swap, goes to the head of the inactive
  list (``folio_add_lru`` -> ``lru_add``); nothing else moves a page while it
  is used: references only set the PTE's accessed bit;
- ``PG_referenced``, ``PG_workingset`` and ``PG_reclaim`` are sets of frames.

Reclaim (``do_try_to_free_pages`` -> ``shrink_node`` -> ``shrink_lruvec``):

- the priority ladder: from ``DEF_PRIORITY`` (12) down to 0, each step
  scans ``size >> priority`` pages of each list, times the anonymous share
  of ``get_scan_count`` (swappiness 60 with no file pages: 17.6 to 30 %),
  in chunks of ``SWAP_CLUSTER_MAX`` (32), and stops once ``nr_to_reclaim``
  pages are free; when a whole ladder frees nothing it runs once more, then
  once with ``force_deactivate``;
- writes pending: a page written by reclaim is freed by a later reclaim,
  after its write completed and moved it to the inactive tail. Linux's
  reclaim scans in real time, and the writes it started complete while it
  goes on (on this machine's disk, within a chunk or two); the simulator's
  scan takes no simulated time (only the pages it writes do,
  ``machine.cost.swap_write``), so after a chunk that freed nothing it
  waits for the first write in flight (the kernel's ``throttle``, as
  ``reclaim_throttle`` on ``VMSCAN_THROTTLE_WRITEBACK``) instead of writing
  out the whole list. kswapd does not wait here: the machine puts it to
  sleep until the write completes;
- ``shrink_inactive_list`` isolates a chunk from the inactive tail and
  ``shrink_folio_list`` asks ``folio_check_references`` of each page: its
  accessed bit (read and cleared) and ``PG_referenced`` make a two-bit clock
  (young and referenced: activate; young: set referenced, keep for another
  trip; not young: reclaim). A page whose write is still in flight is
  activated (global reclaim: case 2), or, for a cgroup v1 limit, waited for
  when it comes round again marked ``PG_reclaim`` (case 3). The survivors
  go back to the heads of their lists in the order they were scanned
  (``move_folios_to_lru``);
- ``shrink_active_list`` moves pages from the active tail to the inactive
  head, consuming their accessed bits (an anonymous page is deactivated
  whether it was referenced or not) and marking them ``PG_workingset``; it
  runs when ``inactive_is_low`` (inactive * ratio < active, the ratio
  int_sqrt(10 * GiB) or 1 below 1 GiB) or when refaults were seen since the
  last reclaim (``prepare_scan_control``'s ``may_deactivate``);
- ``lru_note_cost``: the anonymous list's cost grows by 32 per page written
  and 1 per page scanned but not freed, and halves whenever it exceeds a
  quarter of the lists' size; it sets ``get_scan_count``'s share.

Refault detection (``mm/workingset.c``): every eviction and activation
ticks the lruvec's ``nonresident_age``; an evicted page leaves its age in a
shadow entry with its swap slot (``workingset_eviction``); when it is read
back, a refault distance (ages since) no larger than the active list means
it would have stayed had the active list been inactive, and it goes
straight to the active list (``workingset_refault``).

The statistics are stale, as the kernel's are: the list sizes that
``inactive_is_low``, ``prepare_scan_control``, ``workingset_test_recent``
and the cost decay read are those of the last flush of the memory cgroup
statistics, which happens every 2 s (``FLUSH_TIME``, ``flush_memcg_stats_dwork``
in mm/memcontrol.c); before the first flush they read 0. Measured on Linux
6.18 (tests/data/real_kernel/stale_stats.json): in a young 64 MiB group
the active list is never aged at all. ``stats_flush`` = 0 reads live sizes
instead. The flush timer is the whole machine's, so its phase relative to a
new group is anything in the period; the simulator takes the first flush
``stats_flush_first`` after the lruvec is created (1 s, the median phase of
the 2 s timer), then one every period, each at the first use after it is due.
Measured over the 48 swap-file workload-configuration pairs against the
kernel's runs (a device as fast as this machine's disk): 38 inside the real
range with the first flush at 1 s, 36 at 2 s (the latest phase), 36 at 0.5 s
and 37 at 1.5 s; ``churn_120``, whose real runs all age the active list, had
7 % too few major faults with the latest phase.

Every ``VMPRESSURE_WIN`` (512) pages scanned, ``vmpressure``
(mm/vmpressure.c) queues its work on the reclaiming CPU, and the kworker
preempts a process reclaiming for itself (``Reclaimer.preempted``): on its
way back to user space the kernel reads its rseq area, which faults if
reclaim took that page (``FaultHandler.refs``).

Each CPU adds pages to the lists through its own ``lru_add`` batch
(``folio_add_lru``: a ``folio_batch`` of 31, moved onto the lists in order
when full or when that CPU calls ``lru_add_drain``: reclaim before it
scans, swap readahead after a window, freeing pages). Reclaim drains only
its own CPU's, so on several CPUs the other CPUs' newest pages are off the
lists, and each CPU's reach the list as a run: two processes faulting in
turn leave runs of one process's pages, which reclaim writes to runs of
slots that swap readahead then reads back together (docs/kernel-truth.md,
"Several processes in one group"). A CPU is the process on it
(``Reclaimer.cpu``), which holds for as many processes as CPUs. On one CPU
every reclaim drains the only batch first, so the lists are the same
without it, and it is off (``lru_add_batch`` 0).

Several memory cgroups (``cgroup.groups``): each has an lruvec of its own,
and a group's reclaim (``try_to_free_mem_cgroup_pages``) works on it alone;
the machine's (direct reclaim, kswapd) aims at ``LinuxNode``, whose
statistics and anonymous cost are the root's (``ReclaimTarget``: what a
reclaim aims at, ``sc->target_mem_cgroup``) and which visits the groups'
lruvecs in turn (``shrink_node_memcgs``). With one group, or none, the one
lruvec is its own target, as the kernel's root lruvec is with one child.

Simplifications: one node; no hierarchy below the root (no parent group's
limit over several groups); no file pages (so ``get_scan_count``'s file side
is empty); the memcg charge stock is ignored
(``vmexp.kernel.memcg``: a run rarely has one at its limit);
a page still being read by readahead is not skipped at the tail (``trylock``).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from math import isqrt
from typing import TYPE_CHECKING

import numpy as np

from vmexp.fields import duration, integer, size
from vmexp.kernel.policies.base import (
    PAGE_ACTIVATE,
    PAGE_CLEAN,
    PAGE_WRITEBACK,
    PAGE_WRITTEN,
    Policy,
    Reclaimer,
    register,
)

if TYPE_CHECKING:
    from vmexp.kernel.memcg import MemCgroup

__all__ = ["DEF_PRIORITY", "SWAP_CLUSTER_MAX", "LinuxLRU", "LinuxNode", "ReclaimTarget"]

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h
FOLIO_BATCH_SIZE = 31  # include/linux/pagevec.h: a CPU's lru_add batch holds this many pages
DEF_PRIORITY = 12  # mm/internal.h: scan 1/4096 of a list first
VMPRESSURE_WIN = 16 * SWAP_CLUSTER_MAX  # mm/vmpressure.c: vmpressure_win, pages scanned per report
MAX_SWAPPINESS = 200  # include/linux/swap.h

_RECLAIM, _KEEP, _ACTIVATE = 0, 1, 2  # enum folio_references


class _ScanControl:
    """The fields of ``struct scan_control`` that anonymous reclaim uses."""

    __slots__ = (
        "anon_cost",
        "cgroup",
        "file_is_tiny",
        "force_deactivate",
        "full_walk",
        "kswapd",
        "may_deactivate",
        "nr_reclaimed",
        "nr_scanned",
        "nr_to_reclaim",
        "priority",
        "skipped_deactivate",
        "stop",
    )

    def __init__(self, nr_to_reclaim: int, cgroup: bool, kswapd: bool) -> None:
        self.nr_to_reclaim = nr_to_reclaim
        self.cgroup = cgroup
        self.kswapd = kswapd
        self.priority = DEF_PRIORITY
        self.nr_scanned = 0
        self.nr_reclaimed = 0
        self.may_deactivate = False
        self.force_deactivate = False
        self.skipped_deactivate = False
        self.file_is_tiny = False
        self.full_walk = False  # memcg_full_walk: visit every group, not just until enough is free
        self.anon_cost = 0  # the target's anon_cost, read by prepare_scan_control
        self.stop = False  # kswapd must sleep until a write completes


class ReclaimTarget:
    """What a reclaim aims at (``sc->target_mem_cgroup``): one lruvec, or the node above several.

    ``do_try_to_free_pages``' ladder and ``prepare_scan_control`` read the
    target's statistics: a memory cgroup's reclaim its group's lruvec; global
    reclaim the root's, whose counters are hierarchical (the sums of its
    groups'), so with one set of lists the lruvec is its own target. The
    anonymous cost that ``get_scan_count`` weighs is the target's as well
    (``lru_note_cost`` charges every level); the pages scanned are each
    lruvec's share of its own lists.
    """

    view: Reclaimer
    parent: ReclaimTarget | None = None  # the level above, which lru_note_cost also charges
    anon_cost = 0  # lruvec->anon_cost
    _refaults = 0  # lruvec->refaults[WORKINGSET_ANON]: the (stale) count at the last reclaim
    _vmpr_scanned = 0  # vmpressure's tree_scanned: pages scanned since its work last ran
    _fixed_ratio = 0
    _page_size = 4096

    def _stats(self) -> tuple[int, int, int]:
        """The flushed (stale) NR_INACTIVE_ANON, NR_ACTIVE_ANON and WORKINGSET_ACTIVATE_ANON."""
        raise NotImplementedError

    def _inactive_now(self) -> int:
        """The inactive pages now (node_page_state, for file_is_tiny)."""
        raise NotImplementedError

    def _shrink_memcgs(self, sc: _ScanControl) -> None:
        """shrink_node_memcgs: shrink_lruvec on each lruvec below the target."""
        raise NotImplementedError

    def lru_add_drain(self, cpu: int | None = None) -> None:
        raise NotImplementedError

    def events(self) -> dict[str, int]:
        """Its reclaim's counters, named as /proc/vmstat names them."""
        raise NotImplementedError

    def shrink(self, nr_to_reclaim: int, *, cgroup: bool, kswapd: bool = False) -> int:
        """mm/vmscan.c: do_try_to_free_pages: the priority ladder, then the two retries."""
        self.lru_add_drain()  # shrink_{in,}active_list: the reclaiming CPU's batch, no other's
        sc = _ScanControl(nr_to_reclaim, cgroup, kswapd)
        while True:
            for priority in range(DEF_PRIORITY, -1, -1):
                sc.priority = priority
                sc.nr_scanned = 0
                self._shrink_node(sc)
                if sc.nr_reclaimed >= nr_to_reclaim or sc.stop:
                    break
            self._refaults = self._stats()[2]  # snapshot_refaults
            if sc.nr_reclaimed or sc.stop:
                return sc.nr_reclaimed
            if not sc.full_walk:  # memcg_full_walk: once more, every group, before giving up
                sc.full_walk = True
                continue
            if sc.skipped_deactivate and not sc.force_deactivate:
                sc.force_deactivate = True
                sc.skipped_deactivate = False
                continue
            return 0

    def _shrink_node(self, sc: _ScanControl) -> None:
        """shrink_node: prepare_scan_control on the target, then each lruvec below it (shrink_node_memcgs)."""
        inactive, active, activations = self._stats()
        if sc.force_deactivate:
            sc.may_deactivate = True
        else:
            # Refaults since the last reclaim mean a new working set: age the active list.
            sc.may_deactivate = activations != self._refaults or self._inactive_is_low(inactive, active)
        if not sc.cgroup:
            sc.file_is_tiny = (
                self.view.free_below_high()
                and not sc.may_deactivate
                and (self._inactive_now() >> sc.priority) > 0
            )
        sc.anon_cost = self.anon_cost
        scanned = sc.nr_scanned
        self._shrink_memcgs(sc)
        self._vmpressure(sc.nr_scanned - scanned)

    def _vmpressure(self, scanned: int) -> None:
        """mm/vmpressure.c: vmpressure: each ``VMPRESSURE_WIN`` pages scanned queue a kworker's work.

        It runs on the reclaiming CPU and preempts the reclaimer (traced:
        nearly all of the replayer's involuntary switches are to
        ``vmpressure_work_fn``), which matters for the one page the kernel
        reads on the way back to user space, the rseq area.
        """
        if not scanned:
            return
        self._vmpr_scanned += scanned
        if self._vmpr_scanned >= VMPRESSURE_WIN:
            self._vmpr_scanned = 0  # vmpressure_work_fn takes the counts
            self.view.preempted()

    def _inactive_is_low(self, inactive: int, active: int) -> bool:
        """mm/vmscan.c: inactive_is_low, on the stale sizes."""
        ratio = self._fixed_ratio
        if not ratio:
            gb = ((inactive + active) * self._page_size) >> 30
            ratio = isqrt(10 * gb) if gb else 1
        return inactive * ratio < active

    def _note_cost(self, cost: int) -> None:
        """mm/swap.c: lru_note_cost_unlock_irq: the anonymous cost, decayed against the stale list size.

        The cost goes to the lruvec and to each one above it (the node above
        several groups), each decayed against its own size.
        """
        if not cost:
            return
        target: ReclaimTarget | None = self
        while target is not None:
            target.anon_cost += cost
            inactive, active, _ = target._stats()
            if target.anon_cost > (inactive + active) // 4:
                target.anon_cost //= 2
            target = target.parent


@register
class LinuxLRU(ReclaimTarget, Policy):
    """One lruvec: ``OrderedDict``s whose first key is the tail (the oldest end), as in ``lru2q``."""

    name = "linux"
    batch = True

    @dataclasses.dataclass
    class Params(Policy.Params):
        """Defaults are the kernel's (and this machine's: vm.swappiness 60)."""

        swappiness: int = integer(
            60, "vm.swappiness: the anonymous share of each scan (get_scan_count)", lo=0, hi=MAX_SWAPPINESS
        )
        stats_flush: int = duration(
            "2s",
            "memcg statistics flush period (FLUSH_TIME): how stale the list sizes reclaim reads are; 0 = live",
        )
        stats_flush_first: int = duration(
            "1s",
            "when the first flush falls after the group is created (the machine's timer has any phase: "
            "1s is the median of a 2s period); then every stats_flush",
        )
        inactive_ratio: int = integer(
            0, "0: the kernel's int_sqrt(10 * GiB on the lists), 1 below 1 GiB; > 0: this ratio, fixed", lo=0
        )
        page_size: int = size(
            "4k", "bytes per page, to size the lists in GiB (follows the run's page_size)", lo=1
        )

    view: Reclaimer

    def __init__(self, view: Reclaimer, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        self.swappiness = params.swappiness
        self._fixed_ratio = params.inactive_ratio
        self._page_size = params.page_size
        self._flush = params.stats_flush
        self._flush_first = params.stats_flush_first
        # Invariants: every frame the policy tracks is on exactly one list (or isolated
        # by a shrink in progress); the flag sets hold only tracked or isolated frames.
        self._inactive: OrderedDict[int, None] = OrderedDict()
        self._active: OrderedDict[int, None] = OrderedDict()
        self._referenced: set[int] = set()  # PG_referenced
        self._workingset: set[int] = set()  # PG_workingset
        self._reclaim: set[int] = set()  # PG_reclaim: written by reclaim, rotate when the write ends
        # Each CPU's lru_add batch (folio_add_lru): pages not yet on a list, with the list each goes to,
        # keyed by the CPU as the pid of its process (Reclaimer.cpu); ``lru_add_batch`` pages fill one.
        # 0: none (one CPU, whose batch every reclaim drains first, so the lists are the same).
        self.lru_add_batch = 0
        self._batches: dict[int, dict[int, bool]] = {}  # CPU -> {frame: to the active list}, in order
        self._batched: dict[int, int] = {}  # frame -> the CPU whose batch holds it
        self.nonresident_age = 0  # lruvec->nonresident_age: evictions + activations
        self.anon_cost = 0
        self._refaults = 0
        # The flushed statistics: (NR_INACTIVE_ANON, NR_ACTIVE_ANON, WORKINGSET_ACTIVATE_ANON).
        self._stale = (0, 0, 0)
        self._next_flush = self._flush_first
        self._vmpr_scanned = 0
        self.memcg: MemCgroup | None = None  # the memory cgroup whose lruvec this is (None: the machine's)
        self.ev: dict[str, int] = dict.fromkeys(
            (
                "pgscan_anon",
                "pgsteal_anon",
                "pgactivate",
                "pgdeactivate",
                "pgrefill",
                "pgrotated",
                "workingset_refault_anon",
                "workingset_activate_anon",
                "workingset_restore_anon",
            ),
            0,
        )

    # ------------------------------------------------------------------ lists
    def inserted(self, frame: int) -> None:
        """lru_add: a new page goes to the inactive head (new anonymous pages start inactive since 5.9)."""
        if self.lru_add_batch:
            self._lru_add(frame, False)
        else:  # every fault's page comes here: no call on one CPU
            self._inactive[frame] = None

    def _lru_add(self, frame: int, active: bool) -> None:
        """folio_add_lru: onto a list now, or into the running CPU's batch, drained when it is full."""
        if not self.lru_add_batch:
            (self._active if active else self._inactive)[frame] = None
            return
        cpu = self.view.cpu()
        batch = self._batches.setdefault(cpu, {})
        batch[frame] = active
        self._batched[frame] = cpu
        if len(batch) >= self.lru_add_batch:
            self.lru_add_drain(cpu)

    def lru_add_drain(self, cpu: int | None = None) -> None:
        batch = self._batches.pop(self.view.cpu() if cpu is None else cpu, None)
        if not batch:
            return
        batched = self._batched
        for frame, active in batch.items():  # folio_batch_move_lru: in the order they were added
            del batched[frame]
            (self._active if active else self._inactive)[frame] = None

    def removed(self, frame: int) -> None:
        cpu = self._batched.pop(frame, None)
        if cpu is not None:
            del self._batches[cpu][frame]
        elif self._inactive.pop(frame, 0) is not None:
            self._active.pop(frame, None)
        self._referenced.discard(frame)
        self._workingset.discard(frame)
        self._reclaim.discard(frame)

    def victim(self) -> int:
        raise NotImplementedError("policy linux reclaims in batches (shrink), not one victim at a time")

    def __len__(self) -> int:
        return len(self._inactive) + len(self._active) + len(self._batched)

    def lists(self) -> tuple[list[int], list[int]]:
        """(inactive, active) frames, each from tail to head: for explain mode and tests."""
        return list(self._inactive), list(self._active)

    def events(self) -> dict[str, int]:
        return dict(self.ev)

    # ------------------------------------------------------------ statistics
    def _inactive_now(self) -> int:
        return len(self._inactive)

    def _shrink_memcgs(self, sc: _ScanControl) -> None:
        self._shrink_lruvec(sc)

    def _stats(self) -> tuple[int, int, int]:
        """lruvec_page_state: the flushed (stale) list sizes and WORKINGSET_ACTIVATE_ANON."""
        if not self._flush:
            return len(self._inactive), len(self._active), self.ev["workingset_activate_anon"]
        now = self.view.now()
        if now >= self._next_flush:
            self._stale = (len(self._inactive), len(self._active), self.ev["workingset_activate_anon"])
            first = self._flush_first
            self._next_flush = first + ((now - first) // self._flush + 1) * self._flush
        return self._stale

    # ------------------------------------------------------------- workingset
    def evicted(self, frame: int) -> int:
        """mm/workingset.c: workingset_eviction: the age now, and whether the page was active once."""
        eviction = self.nonresident_age
        self.nonresident_age += 1
        return (eviction << 1) | (frame in self._workingset)

    def refault(self, frame: int, shadow: int) -> None:
        """mm/workingset.c: workingset_refault: activate at once when the refault distance is short.

        The distance counts evictions and activations since the page left;
        if it is no longer than the active list (as last flushed), the page
        would still be resident had the active list been inactive, so it is
        part of the working set and goes to the active list.
        """
        ev = self.ev
        ev["workingset_refault_anon"] += 1
        distance = self.nonresident_age - (shadow >> 1)
        active = self._stats()[1] if self.view.can_swap(self.memcg) else 0
        if distance > active:
            self._lru_add(frame, False)
            return
        self._lru_add(frame, True)  # PG_active set now (workingset_refault), on the list at the drain
        self.nonresident_age += 1
        ev["workingset_activate_anon"] += 1
        if shadow & 1:
            self._workingset.add(frame)
            self._note_cost(SWAP_CLUSTER_MAX)  # lru_note_cost_refault: one page of I/O
            ev["workingset_restore_anon"] += 1

    def end_writeback(self, frame: int) -> None:
        """mm/swap.c: folio_rotate_reclaimable: a page written by reclaim goes to the inactive tail.

        The next reclaim then frees it first, without I/O. A page dirtied
        again meanwhile, or one that is isolated right now, stays where it is.
        """
        if frame not in self._reclaim:
            return
        self._reclaim.discard(frame)
        if self.view.is_dirty(frame):
            return
        if frame in self._inactive:
            self._inactive.move_to_end(frame, last=False)
        elif frame in self._active:
            del self._active[frame]  # lru_move_tail clears PG_active
            self._inactive[frame] = None
            self._inactive.move_to_end(frame, last=False)
        else:
            return
        self.ev["pgrotated"] += 1

    def test_clear_reclaim(self, frame: int) -> bool:
        if frame in self._reclaim:
            self._reclaim.discard(frame)
            return True
        return False

    def _get_scan_count(self, sc: _ScanControl) -> tuple[int, int]:
        """mm/vmscan.c: get_scan_count: pages of (inactive, active) to scan at this priority."""
        if not self.view.can_swap(self.memcg) or (sc.cgroup and not self.swappiness):
            return 0, 0  # SCAN_FILE: the anonymous lists are left alone
        inactive = len(self._inactive) >> sc.priority
        active = len(self._active) >> sc.priority
        if (sc.priority == 0 and self.swappiness) or sc.file_is_tiny:
            return inactive, active  # SCAN_EQUAL / SCAN_ANON
        # SCAN_FRACT, with no file pages: file_cost is 0.
        anon_cost = 2 * sc.anon_cost
        file_cost = sc.anon_cost
        total = anon_cost + file_cost
        ap = self.swappiness * (total + 1) // (anon_cost + 1)
        fp = (MAX_SWAPPINESS - self.swappiness) * (total + 1) // (file_cost + 1)
        return inactive * ap // (ap + fp), active * ap // (ap + fp)

    def _shrink_lruvec(self, sc: _ScanControl) -> None:
        """mm/vmscan.c: shrink_lruvec: both lists in chunks of 32 until enough pages are free."""
        nr_inactive, nr_active = self._get_scan_count(sc)
        proportional = not sc.cgroup and not sc.kswapd and sc.priority == DEF_PRIORITY
        reclaimed = 0
        while nr_inactive:
            n = min(nr_inactive, SWAP_CLUSTER_MAX)
            nr_inactive -= n
            freed = self._shrink_inactive_list(n, sc)
            reclaimed += freed
            if nr_active:
                n = min(nr_active, SWAP_CLUSTER_MAX)
                nr_active -= n
                if sc.may_deactivate:
                    self._shrink_active_list(n)
                else:
                    sc.skipped_deactivate = True
            if reclaimed < sc.nr_to_reclaim or proportional:
                # Nothing freed: let the writes in flight complete first (kswapd: stop and sleep;
                # a cgroup's reclaim: only the writes already on the device).
                if not freed and not self.view.throttle(sc.cgroup):
                    sc.stop = True
                    break
                continue
            break  # no file pages to balance against
        self.view.unplug()
        sc.nr_reclaimed += reclaimed
        if self.view.can_swap(self.memcg) and self._inactive_is_low(*self._stats()[:2]):
            self._shrink_active_list(SWAP_CLUSTER_MAX)

    def _shrink_inactive_list(self, n: int, sc: _ScanControl) -> int:
        """mm/vmscan.c: shrink_inactive_list: isolate from the tail, shrink_folio_list, put back."""
        inactive = self._inactive
        taken = [inactive.popitem(last=False)[0] for _ in range(min(n, len(inactive)))]
        if not taken:
            return 0
        self.ev["pgscan_anon"] += len(taken)
        reclaimed, written = self._shrink_folio_list(taken, sc)
        self.ev["pgsteal_anon"] += reclaimed
        self._note_cost(written * SWAP_CLUSTER_MAX + len(taken) - reclaimed)
        return reclaimed

    def _check_references(self, frame: int) -> int:
        """mm/vmscan.c: folio_check_references, for a private anonymous page: a two-bit clock.

        A page just faulted in is young (the faulting access set the bit),
        so its first arrival at the tail only clears the bit and marks it
        ``PG_referenced``: every page gets a second trip round the inactive
        list, and is activated only if used during it.
        """
        young = self.view.test_and_clear_young(frame)
        referenced = frame in self._referenced
        if young:
            self._referenced.add(frame)
            return _ACTIVATE if referenced else _KEEP
        self._referenced.discard(frame)
        return _RECLAIM

    def _shrink_folio_list(self, taken: list[int], sc: _ScanControl) -> tuple[int, int]:
        """mm/vmscan.c: shrink_folio_list; returns (pages freed, pages written)."""
        view = self.view
        reclaimed = written = 0
        back: list[tuple[int, bool]] = []  # (frame, active?) in scan order: move_folios_to_lru
        for frame in taken:
            sc.nr_scanned += 1
            while view.under_writeback(frame):
                if sc.cgroup and frame in self._reclaim:
                    # Case 3: a cgroup v1 limit has no dirty throttling, so wait for the write.
                    view.wait_writeback(frame)
                    self._reclaim.discard(frame)
                    continue
                # Case 2 (and kswapd's case 1): mark it, get it out of the way.
                self._reclaim.add(frame)
                back.append((frame, True))
                break
            else:
                ref = self._check_references(frame)
                if ref == _ACTIVATE:
                    back.append((frame, True))
                elif ref == _KEEP:
                    back.append((frame, False))
                else:
                    outcome = view.pageout(frame)
                    if outcome == PAGE_CLEAN:
                        reclaimed += 1
                    elif outcome == PAGE_WRITTEN:  # a synchronous write counts as I/O too
                        reclaimed += 1
                        written += 1
                    elif outcome == PAGE_WRITEBACK:
                        written += 1
                        self._reclaim.add(frame)
                        back.append((frame, False))
                    else:
                        assert outcome == PAGE_ACTIVATE
                        back.append((frame, True))
        age = 0
        for frame, active in back:
            if active:
                self._active[frame] = None
                age += 1
            else:
                self._inactive[frame] = None
        self.nonresident_age += age  # move_folios_to_lru: activations age the lruvec too
        self.ev["pgactivate"] += age
        return reclaimed, written

    def _shrink_active_list(self, n: int) -> None:
        """mm/vmscan.c: shrink_active_list: deactivate from the active tail.

        The accessed bit is read and cleared but does not save an anonymous
        page (only executable file pages get another trip); ``PG_referenced``
        stays, so a page used again before it reaches the inactive tail is
        activated again at once.
        """
        active, inactive = self._active, self._inactive
        taken = [active.popitem(last=False)[0] for _ in range(min(n, len(active)))]
        young = self.view.test_and_clear_young
        for frame in taken:
            young(frame)
            self._workingset.add(frame)
            inactive[frame] = None
        self.ev["pgrefill"] += len(taken)
        self.ev["pgdeactivate"] += len(taken)


class LinuxNode(ReclaimTarget):
    """The node above several memory cgroups' lruvecs: what global reclaim and kswapd aim at, and a
    parent group's reclaim (``cgroup.parent_max``), with a walk position of its own.

    Its statistics are the root memory cgroup's, the sums of its groups'
    (hierarchical counters); its anonymous cost is charged by every
    group's (``lru_note_cost`` walks up). ``shrink_node_memcgs`` visits the
    groups in order: kswapd, and a reclaim's retry (``memcg_full_walk``),
    every one; a direct reclaimer from where the last one stopped
    (``mem_cgroup_iter``'s shared cursor) until it has freed enough or
    reached the last group, so that reclaim goes round the groups
    instead of always taking from the first.
    """

    def __init__(self, lruvecs: list[LinuxLRU]) -> None:
        self.lruvecs = lruvecs
        first = lruvecs[0]
        self.view = first.view
        self._fixed_ratio = first._fixed_ratio
        self._page_size = first._page_size
        self.anon_cost = 0
        self._refaults = 0
        self._vmpr_scanned = 0
        self._cursor = 0  # mem_cgroup_iter's position: the group the next partial walk starts at
        for lruvec in lruvecs:
            lruvec.parent = self

    def _stats(self) -> tuple[int, int, int]:
        inactive = active = activations = 0
        for lruvec in self.lruvecs:
            i, a, w = lruvec._stats()
            inactive += i
            active += a
            activations += w
        return inactive, active, activations

    def _inactive_now(self) -> int:
        return sum(len(lruvec._inactive) for lruvec in self.lruvecs)

    def lru_add_drain(self, cpu: int | None = None) -> None:
        for lruvec in self.lruvecs:
            lruvec.lru_add_drain(cpu)

    def _shrink_memcgs(self, sc: _ScanControl) -> None:
        lruvecs = self.lruvecs
        if sc.kswapd or sc.full_walk:
            for lruvec in lruvecs:
                lruvec._shrink_lruvec(sc)
                if sc.stop:
                    return
            return
        k = self._cursor
        while k < len(lruvecs):
            lruvecs[k]._shrink_lruvec(sc)
            k += 1
            if sc.stop or sc.nr_reclaimed >= sc.nr_to_reclaim:
                break  # mem_cgroup_iter_break: the next walk starts at the next group
        self._cursor = k if k < len(lruvecs) else 0

    def __len__(self) -> int:
        return sum(len(lruvec) for lruvec in self.lruvecs)

    def events(self) -> dict[str, int]:
        """The node's counters (/proc/vmstat): the sums of its groups'."""
        out = dict.fromkeys(self.lruvecs[0].ev, 0)
        for lruvec in self.lruvecs:
            for key, n in lruvec.ev.items():
                out[key] += n
        return out
