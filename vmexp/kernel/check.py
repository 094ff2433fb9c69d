"""The kernel's invariants, checked from scratch (tests run them after every step).

Every counter the kernel keeps incrementally (rss, swap entries, free
frames, slots in use, what the policies track, a memory cgroup's charge) is
recomputed from the page tables and compared; every frame and slot must
have exactly one owner. An ``AssertionError`` names the first invariant
broken.

With Linux's path a frame may hold a page no PTE maps (in the swap cache:
read ahead, or written and not freed yet); it is found through its slot.
The swap device is checked too: a device that reports itself busy has a
request in service, and (Linux's path) every write still in flight belongs
to a frame that is still in use, so a write never outlives the memory it
was meant to free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmexp.kernel.pagetable import DIRTY, SWAPPED
from vmexp.kernel.swap import WRITE, Zram

if TYPE_CHECKING:
    from vmexp.kernel.system import System

__all__ = ["check"]


def check(k: System) -> None:
    """The invariants; raises AssertionError naming the first one broken."""
    mem = k.mem
    cache = k.cache
    owned: dict[int, tuple[int, int]] = {}
    slots: set[int] = set()
    resident = unmapped = 0
    held: dict[int, int] = {}  # pid -> frames holding its pages, mapped or in the swap cache
    for mm in k.mms.values():
        rss = swapents = cached = 0
        for vpn, e in mm.pt.pte.items():
            if e <= SWAPPED:
                slot = SWAPPED - e
                assert slot not in slots, f"swap slot {slot} owned twice"
                slots.add(slot)
                swapents += 1
                f = cache.frame_of.get(slot, -1)
                if f >= 0:  # in the swap cache, mapped by nobody
                    assert f not in owned, f"frame {f} owned twice ({owned.get(f)} and {(mm.pid, vpn)})"
                    owned[f] = (mm.pid, vpn)
                    assert mem.frame_mm[f] is mm and mem.frame_vpn[f] == vpn, (
                        f"swap-cache frame {f} does not map back to p{mm.pid} {vpn:#x}"
                    )
                    cached += 1
            elif e >= 0:
                f = e
                assert f not in owned, f"frame {f} mapped twice ({owned.get(f)} and {(mm.pid, vpn)})"
                owned[f] = (mm.pid, vpn)
                assert mem.frame_mm[f] is mm and mem.frame_vpn[f] == vpn, (
                    f"frame {f} does not map back to p{mm.pid} {vpn:#x}"
                )
                slot = cache.slot_of.get(f, -1)
                if slot >= 0:
                    # Linux keeps the slot of a page written after it was read back (written
                    # there again when it leaves); the textbook pager frees it at the write.
                    assert k.linux or not mem.pte_bits[f] & DIRTY, (
                        f"dirty page in frame {f} still holds swap slot {slot}"
                    )
                    assert slot not in slots, f"swap slot {slot} owned twice"
                    slots.add(slot)
                rss += 1
        assert rss == mm.rss, f"p{mm.pid}: rss counter {mm.rss} but {rss} present pages"
        assert swapents == mm.swapents, f"p{mm.pid}: swap counter {mm.swapents} but {swapents} swapped pages"
        vsz = sum(v.end - v.start for v in mm.aspace.vmas)
        assert vsz == mm.aspace.vsz, f"p{mm.pid}: vsz counter {mm.aspace.vsz} but its VMAs map {vsz} bytes"
        resident += rss
        unmapped += cached
        held[mm.pid] = rss + cached
        assert mm.minflt >= 0 and mm.majflt >= 0 and mm.refs >= 0
    assert resident + unmapped + mem.nfree + mem.pool == mem.nframes, (
        f"resident {resident} + swap cache {unmapped} + free {mem.nfree} + zram {mem.pool} != RAM {mem.nframes} pages"
    )
    free_set = set(mem.free_frames)
    assert len(free_set) == len(mem.free_frames), "a frame is on the free list twice"
    assert mem.nfree == len(mem.free_frames) + mem.nframes - mem.next_frame - mem.pool, (
        "free-frame count drifted"
    )
    for f in free_set:
        assert mem.frame_mm[f] is None and f not in owned, f"free frame {f} is still mapped"
    for f in range(mem.next_frame):
        assert f in owned or f in free_set, f"frame {f} leaked"
    stale = [f for f in cache.slot_of if f not in owned]
    assert not stale, f"swap cache holds frame {stale[0]}, which maps no page"
    assert all(cache.slot_of[f] == s for s, f in cache.frame_of.items()), "swap cache maps disagree"
    assert len(slots) == k.space.used, f"{k.space.used} swap slots in use but {len(slots)} referenced (leak)"
    if isinstance(k.dev, Zram):
        # Every slot in use holds a compressed page but those of zeros (the zeromap), and the pool is
        # the frames those pages need: a slot freed must give back only what it took.
        stored = k.space.used - len(k.space.zeromap)
        assert k.dev.stored == stored, f"zram holds {k.dev.stored} pages for {stored} slots of data"
        assert mem.pool == k.dev.pool_pages(stored), f"zram's pool is {mem.pool} frames for {stored} pages"
    policies = {id(m.policy): m.policy for m in k.mms.values()}  # one each, or one per group, or shared
    tracked = sum(len(p) for p in policies.values())
    assert tracked == resident + unmapped, f"policy tracks {tracked} frames, {resident + unmapped} in use"
    # The swap device: busy means a request is in service; Linux's writes belong to frames in use.
    now = k.clock.now()
    dev = k.dev
    if dev.busy_until > now:
        assert any(done > now for done, _ in dev.inflight), (
            f"swap device busy until {dev.busy_until} ns with no request in service at {now} ns"
        )
    wb = k.reclaim.writeback
    for f in wb:
        assert f in owned, f"frame {f} is under writeback but holds no page"
    if k.linux:
        writing = set(wb.values()) | k.reclaim.orphaned
        for done, kind in dev.inflight:
            if kind == WRITE and done > max(now, k.reclaim.completed_until):
                assert done in writing, f"a write completing at {done} ns belongs to no frame under writeback"
    for cg in k.memcgs:
        pages = sum(held[m.pid] for m in cg.members)
        pt = sum(m.pt.pages for m in cg.members)
        assert cg.pages == pages, f"memcg {cg.name} charges {cg.pages} pages, its processes hold {pages}"
        assert cg.pt_pages == pt, (
            f"memcg {cg.name} charges {cg.pt_pages} page-table pages, its processes have {pt}"
        )
        if k.linux:
            swap = sum(1 for owner, _ in k.space.owner.values() if owner.memcg is cg)
            assert cg.swap == swap, f"memcg {cg.name} charges {cg.swap} swap slots, its processes hold {swap}"
