"""Physical memory: the frames, who maps each one, the free list and the watermarks.

Linux keeps a ``struct page`` per frame; here parallel arrays indexed by
frame number hold what the simulator needs of it: the owning process's
``MM`` and the virtual page it holds (the reverse map, so that reclaim can
find and change the PTE of a frame it chose), and the accessed and dirty
bits of the PTE that maps the frame (``pte_bits``; see
``vmexp.kernel.pagetable``). They grow as frames are first used, so memory
follows the pages touched, not the size of ``ram``.

``alloc`` is the page allocator's slow path as mm/page_alloc.c runs it for an
anonymous fault: below the min watermark the faulting process reclaims
itself (direct reclaim) before it takes a frame, and below the low
watermark kswapd is woken. The watermarks follow
``__setup_per_zone_wmarks``: low = min + max(min/4, 0.1 % of RAM), high =
low + the same step; ``min_free`` = 0 switches them off (evict only when RAM
is full, the textbook model).

A page of a process in a memory cgroup is charged to the group before it
takes a frame (``mem_cgroup_charge``; at the group's limit the process
reclaims from its group first, ``Reclaim.charge``), and uncharged when its
frame is freed.

Linux's path also has frames that no PTE maps: a page in the swap cache
that readahead brought in, or one written out and not freed yet. The
reverse map still names the page they hold; they are not in the process's
RSS (``alloc_unmapped``, ``free_unmapped``). zram's pool takes frames too,
without a reverse map: ``pool`` of them, counted out of ``nfree``.

``PhysMem`` is also what a replacement policy sees of a frame (the
``FrameView`` of ``vmexp.kernel.policies.base``): the accessed and dirty
bits of the PTE that maps it, found through the reverse map; a frame no
PTE maps is neither young nor dirty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vmexp.kernel.clock import SliceClock
from vmexp.kernel.oom import ProcessKilled
from vmexp.kernel.pagetable import ACCESSED, DIRTY, PTE_NONE

if TYPE_CHECKING:
    from vmexp.kernel.memcg import MemCgroup
    from vmexp.kernel.mm import MM
    from vmexp.kernel.reclaim import Reclaim

__all__ = ["PhysMem", "watermarks"]


def watermarks(min_free_pages: int, nframes: int) -> tuple[int, int, int]:
    """(min, low, high) in pages, as ``__setup_per_zone_wmarks`` derives them; zeros when off."""
    if min_free_pages <= 0:
        return 0, 0, 0
    step = max(min_free_pages // 4, nframes * 10 // 10000)
    return min_free_pages, min_free_pages + step, min_free_pages + 2 * step


class PhysMem:
    """Frames shared by every process of a run."""

    def __init__(self, nframes: int, min_free_pages: int, clock: SliceClock, *, local: bool) -> None:
        self.nframes = nframes
        self.clock = clock
        # Reverse map: frame -> (owner, virtual page); None = free.
        self.frame_mm: list[MM | None] = []
        self.frame_vpn: list[int] = []
        # The accessed/dirty bits of the PTE that maps each frame; meaningful while one does.
        self.pte_bits = bytearray()
        self.free_frames: list[int] = []
        self.next_frame = 0  # frames below this have been used at least once
        self.nfree = nframes
        self.pool = 0  # frames taken by zram's pool (no reverse map)
        self.free_min = nframes
        self.pages_peak = 0  # the most frames holding pages at once: zram's pool is not a page of anyone's
        self.wmark_min, self.wmark_low, self.wmark_high = watermarks(min_free_pages, nframes)
        self.local = local  # local replacement: a process at its quota replaces its own pages
        self.reclaim: Reclaim  # set by the kernel once reclaim exists (they call each other)
        self.wake_kswapd: Callable[[], None] | None = None
        # Frames whose accessed bit a working-set sampler cleared after reading it set
        # (vmexp.kernel.loadctl): still young for the replacement policy, like Linux's PG_young.
        self.soft_young: set[int] = set()
        # Frames whose page holds only zeros (a program's untouched stack and bss: System.load_image),
        # which Linux's reclaim frees without a write (Reclaim.pageout).
        self.zero_filled: set[int] = set()

    def alloc(self, mm: MM, vpn: int) -> int:
        """A frame for ``mm``'s page ``vpn``, reclaiming (or OOM-killing) first as needed."""
        cg = mm.memcg
        if cg is not None:
            self.reclaim.charge(cg, mm)
        try:
            if self.local:
                self.reclaim.local_make_room(mm)
            if self.nfree <= self.wmark_min:
                self.reclaim.direct(mm)
        except ProcessKilled:
            self._uncharge_killed(cg)
            raise
        f = self._take(mm, vpn)
        mm.rss += 1
        if mm.rss > mm.rss_peak:
            mm.rss_peak = mm.rss
        return f

    def alloc_unmapped(self, mm: MM, vpn: int, charge_to: MM, *, may_oom: bool = False) -> int:
        """A frame for a swap-cache page of ``mm`` that no PTE maps yet (readahead); -1 if none.

        Charged to ``mm``'s group, the one whose page went to that slot
        (``mem_cgroup_swapin_charge_folio`` charges the memcg the swap entry
        records, ``lookup_swap_cgroup_id``), by ``charge_to``, the faulting
        process, which reclaims for it; readahead gives up rather than
        OOM-kill, so a group at its limit, or a machine, with nothing to
        reclaim gets -1 (unless ``may_oom``: the page the process faulted on).
        """
        cg = mm.memcg
        if cg is not None and not self.reclaim.charge(cg, charge_to, may_oom=may_oom):
            return -1
        if self.nfree <= self.wmark_min:
            try:
                self.reclaim.direct(charge_to, may_oom=may_oom)
            except ProcessKilled:
                self._uncharge_killed(cg)
                raise
            if self.nfree == 0:  # a neighbour read ahead: not worth a process
                if cg is not None:
                    cg.pages -= 1
                return -1
        return self._take(mm, vpn)

    @staticmethod
    def _uncharge_killed(cg: MemCgroup | None) -> None:
        """The allocating process was OOM-killed by the machine's reclaim after its group charged the page.

        Linux charges a folio only once it has been allocated
        (``mem_cgroup_charge`` after ``alloc_anon_folio``), so a process
        killed while the allocator reclaims holds no charge for it; here the
        charge came first, and is given back, or the group would count a
        page that no frame holds for the rest of the run (its usage never
        returning to zero, its limit a page smaller each time).
        """
        if cg is not None:
            cg.pages -= 1

    def _take(self, mm: MM, vpn: int) -> int:
        """The frame itself, once room is made: a freed one first (LIFO), else one never used.

        Below the low watermark it wakes kswapd, as an allocation that
        finds the zone under it does (``wake_all_kswapds`` in
        ``__alloc_pages_slowpath``).
        """
        if self.free_frames:
            f = self.free_frames.pop()
            self.frame_mm[f] = mm
            self.frame_vpn[f] = vpn
        else:
            f = self.next_frame
            self.next_frame += 1
            self.frame_mm.append(mm)
            self.frame_vpn.append(vpn)
            self.pte_bits.append(0)
        self.nfree -= 1
        if self.nfree < self.free_min:
            self.free_min = self.nfree
        held = self.nframes - self.nfree - self.pool
        if held > self.pages_peak:
            self.pages_peak = held
        if self.nfree < self.wmark_low and self.wake_kswapd is not None:
            self.wake_kswapd()
        return f

    def free(self, f: int, mm: MM) -> None:
        """``f`` no longer holds ``mm``'s page (evicted, unmapped, exit); its policy forgets it."""
        mm.policy.removed(f)
        if self.soft_young:
            self.soft_young.discard(f)
        if self.zero_filled:
            self.zero_filled.discard(f)
        self.frame_mm[f] = None
        self.free_frames.append(f)
        self.nfree += 1
        mm.rss -= 1
        cg = mm.memcg
        if cg is not None:
            cg.pages -= 1

    def free_unmapped(self, f: int, mm: MM) -> None:
        """Free a frame that holds ``mm``'s page but is not mapped (not counted in its RSS)."""
        mm.rss += 1
        self.free(f, mm)

    # ------------------------------------------------ FrameView (policies)
    def test_and_clear_young(self, frame: int) -> bool:
        mm = self.frame_mm[frame]
        if mm is None:
            return False
        bits = self.pte_bits
        if mm.pt.pte[self.frame_vpn[frame]] == frame and bits[frame] & ACCESSED:
            bits[frame] &= ~ACCESSED
            if self.soft_young:
                self.soft_young.discard(frame)
            return True
        if self.soft_young and frame in self.soft_young:
            self.soft_young.remove(frame)
            return True
        return False

    def is_dirty(self, frame: int) -> bool:
        mm = self.frame_mm[frame]
        return (
            mm is not None
            and mm.pt.pte.get(self.frame_vpn[frame], PTE_NONE) == frame
            and bool(self.pte_bits[frame] & DIRTY)
        )

    def mapped(self, frame: int) -> bool:
        """Some PTE maps ``frame`` (a swap-cache frame of Linux's path may be mapped by none)."""
        mm = self.frame_mm[frame]
        if mm is None:
            return False
        return mm.pt.pte.get(self.frame_vpn[frame], PTE_NONE) == frame

    def vpn(self, frame: int) -> int:
        return self.frame_vpn[frame]

    def owner(self, frame: int) -> int:
        mm = self.frame_mm[frame]
        return mm.pid if mm is not None else 0

    def now(self) -> int:
        return self.clock.now()

    def vtime(self, frame: int) -> int:
        mm = self.frame_mm[frame]
        return self.clock.vtime(mm) if mm is not None else 0
