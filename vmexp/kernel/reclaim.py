"""Page reclaim: which page gives up its frame, and writing it out (mm/vmscan.c's job).

The replacement policies (``vmexp.kernel.policies``, one module each) keep
the LRU lists and choose victims; this module runs them the way Linux runs
its reclaimers:

- direct reclaim (``__alloc_pages_direct_reclaim`` -> ``try_to_free_pages``):
  the faulting process, finding free memory at or below the min watermark,
  frees a batch of up to ``SWAP_CLUSTER_MAX`` (32) pages toward the high
  watermark itself, and at least one frame; when nothing can be freed the
  OOM killer runs (``__alloc_pages_may_oom``);
- kswapd (``balance_pgdat``): woken below the low watermark, it frees pages
  in batches until the high watermark is reached, in the background (the
  machine, ``vmexp.sim``, runs it as a process of its own and charges it
  ``reclaim_page`` per page);
- local replacement (the textbook alternative to Linux's global LRU): a
  process at its frame quota replaces one of its own pages;
- load control (``vmexp.kernel.loadctl``): the pages of a deactivated
  process are reclaimed before the policy is asked, so the active processes
  get the room their working sets need.

Evicting a page (``shrink_folio_list`` -> ``pageout``): a clean page whose
copy in swap is still valid (it sits in the swap cache) is dropped without
I/O; any other page gets a slot (``add_to_swap``) and a write is queued on
the swap device; the PTE then holds the slot. When swap is full the page
cannot go and the OOM killer decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vmexp.kernel.clock import SliceClock
from vmexp.kernel.pagetable import DIRTY, PRESENT, SHIFT, SWAPPED, ZERO
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.policies import make_policy
from vmexp.kernel.policies.base import Policy
from vmexp.kernel.swap import SwapCache, SwapDevice, SwapSpace
from vmexp.kernel.vmstat import VMStat

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.observe import Observer
    from vmexp.kernel.oom import OOMKiller

__all__ = ["Reclaim", "SWAP_CLUSTER_MAX"]

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h: the batch reclaim works in


class Reclaim:
    """The reclaimers over one set of LRU lists (global) or one per process (local)."""

    def __init__(
        self,
        policy_settings: Any,
        mem: PhysMem,
        space: SwapSpace,
        dev: SwapDevice,
        cache: SwapCache,
        clock: SliceClock,
        stat: VMStat,
        mms: dict[int, MM],
        reclaim_cost: int,
        rng: np.random.Generator,
    ) -> None:
        self.policy_settings = policy_settings
        self.mem = mem
        self.space = space
        self.dev = dev
        self.cache = cache
        self.clock = clock
        self.stat = stat
        self.mms = mms
        self.reclaim_cost = reclaim_cost
        self.rng = rng
        self.local = policy_settings.scope == "local"
        self.proportional = policy_settings.allocation == "proportional"
        self.oom: OOMKiller  # set by the kernel (the OOM killer needs reclaim's caller, reclaim needs it)
        self.obs: Observer | None = None
        self.global_policy: Policy | None = None if self.local else self.new_policy()
        # Deactivated processes (load control), oldest first, and the pages of each still to try.
        self.inactive: dict[int, tuple[MM, list[int]]] = {}

    def new_policy(self) -> Policy:
        """A policy instance: the one global set of lists, or a process's own (local scope)."""
        p = self.policy_settings
        child = np.random.default_rng(self.rng.integers(0, 2**63))
        return make_policy(p.name, dict(p.params), self.mem, child)

    def policy_for_new_process(self) -> Policy:
        return self.global_policy if self.global_policy is not None else self.new_policy()

    # -------------------------------------------------------------- quotas
    def quota(self, mm: MM) -> int:
        """Local scope: the frames ``mm`` may hold (an equal share, or proportional to virtual size)."""
        live = [m for m in self.mms.values() if not m.killed]
        if not self.proportional:
            return max(1, self.mem.nframes // max(1, len(live)))
        total = sum(m.aspace.vsz for m in live) or 1
        return max(1, self.mem.nframes * mm.aspace.vsz // total)

    def deactivate(self, mm: MM) -> None:
        """Load control stopped ``mm``: its resident pages go first, oldest mapping first."""
        pages = [vpn for vpn, e in mm.pt.pte.items() if e & PRESENT and not e & ZERO]
        pages.reverse()
        self.inactive[mm.pid] = (mm, pages)

    def reactivate(self, mm: MM) -> None:
        self.inactive.pop(mm.pid, None)

    def _victim(self, policy: Policy) -> int:
        """A deactivated process's page if one is left, else the policy's choice."""
        for pid, (mm, pages) in list(self.inactive.items()):
            pte = mm.pt.pte
            while pages:
                e = pte.get(pages.pop(), 0)
                if e & PRESENT and not e & ZERO:
                    return e >> SHIFT
            del self.inactive[pid]  # nothing left to take (it gets pages back only when it runs)
        return policy.victim()

    def local_make_room(self, mm: MM) -> None:
        """Local replacement: a process at its quota replaces one of its own pages."""
        if mm.rss >= self.quota(mm) and len(mm.policy) > 0:
            self._evict_or_oom(mm.policy.victim(), mm)
            self.stat.pgsteal_direct += 1
            self.clock.used += self.reclaim_cost

    def _policy_to_reclaim(self) -> Policy | None:
        if self.global_policy is not None:
            return self.global_policy if len(self.global_policy) else None
        over = [m for m in self.mms.values() if m.rss > 0]
        if not over:
            return None
        return max(over, key=lambda m: (m.rss - self.quota(m), -m.pid)).policy

    # ---------------------------------------------------------- reclaimers
    def direct(self, mm: MM) -> None:
        """Reclaim in the faulting process: a batch of up to 32 pages, and at least one free frame."""
        mem = self.mem
        want = 1 if mem.wmark_min == 0 else max(1, min(SWAP_CLUSTER_MAX, mem.wmark_high - mem.nfree))
        for _ in range(want):
            policy = self._policy_to_reclaim()
            if policy is None:
                break
            self._evict_or_oom(self._victim(policy), mm)
            self.stat.pgsteal_direct += 1
            self.clock.used += self.reclaim_cost
        while mem.nfree == 0:
            self.oom.kill(mm)

    def kswapd(self, batch: int) -> int:
        """Background reclaim toward the high watermark; returns pages freed (0 = nothing to do)."""
        freed = 0
        mem = self.mem
        while freed < batch and mem.nfree < mem.wmark_high:
            policy = self._policy_to_reclaim()
            if policy is None:
                break
            if not self.evict(self._victim(policy)):
                break  # swap is full: leave it to direct reclaim and the OOM killer
            freed += 1
            self.stat.pgsteal_kswapd += 1
        return freed

    def _evict_or_oom(self, f: int, requester: MM) -> None:
        if not self.evict(f):
            self.oom.kill(requester)

    def evict(self, f: int) -> bool:
        """Write ``f``'s page to swap if needed and free the frame; False if swap is full."""
        mem = self.mem
        mm = mem.frame_mm[f]
        assert mm is not None
        vpn = mem.frame_vpn[f]
        pte = mm.pt.pte
        e = pte[vpn]
        slot = self.cache.take(f)
        if slot >= 0 and not e & DIRTY:
            self.stat.clean_drops += 1
            wrote = False
        else:
            slot = self.space.alloc()
            if slot < 0:
                return False
            self.dev.submit(self.clock.now())
            self.stat.pswpout += 1
            mm.pswpout += 1
            wrote = True
        pte[vpn] = (slot << SHIFT) | SWAPPED
        mm.swapents += 1
        if mm.swapents > mm.swap_peak:
            mm.swap_peak = mm.swapents
        mem.free(f, mm)
        if self.obs is not None:
            self.obs.evicted(f, mm, vpn, slot, wrote)
        return True
