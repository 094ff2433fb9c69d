"""The kernel's invariants, checked from scratch (tests run them after every step).

Every counter the kernel keeps incrementally (rss, swap entries, free
frames, slots in use, what the policies track) is recomputed from the page
tables and compared; every frame and slot must have exactly one owner. An
``AssertionError`` names the first invariant broken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmexp.kernel.pagetable import DIRTY, PRESENT, SHIFT, SWAPPED, ZERO

if TYPE_CHECKING:
    from vmexp.kernel.system import System

__all__ = ["check"]


def check(k: System) -> None:
    """The invariants; raises AssertionError naming the first one broken."""
    mem = k.mem
    owned: dict[int, tuple[int, int]] = {}
    slots: set[int] = set()
    resident = 0
    for mm in k.mms.values():
        rss = swapents = 0
        for vpn, e in mm.pt.pte.items():
            if e & SWAPPED:
                slot = e >> SHIFT
                assert slot not in slots, f"swap slot {slot} owned twice"
                slots.add(slot)
                swapents += 1
            elif e & PRESENT and not e & ZERO:
                f = e >> SHIFT
                assert f not in owned, f"frame {f} mapped twice ({owned.get(f)} and {(mm.pid, vpn)})"
                owned[f] = (mm.pid, vpn)
                assert mem.frame_mm[f] is mm and mem.frame_vpn[f] == vpn, (
                    f"frame {f} does not map back to p{mm.pid} {vpn:#x}"
                )
                slot = k.cache.slot_of.get(f, -1)
                if slot >= 0:
                    assert not e & DIRTY, f"dirty page in frame {f} still holds swap slot {slot}"
                    assert slot not in slots, f"swap slot {slot} owned twice"
                    slots.add(slot)
                rss += 1
        assert rss == mm.rss, f"p{mm.pid}: rss counter {mm.rss} but {rss} present pages"
        assert swapents == mm.swapents, f"p{mm.pid}: swap counter {mm.swapents} but {swapents} swapped pages"
        resident += rss
        assert mm.minflt >= 0 and mm.majflt >= 0 and mm.refs >= 0
    assert resident + mem.nfree == mem.nframes, (
        f"resident {resident} + free {mem.nfree} != RAM {mem.nframes} pages"
    )
    free_set = set(mem.free_frames)
    assert len(free_set) == len(mem.free_frames), "a frame is on the free list twice"
    assert mem.nfree == len(mem.free_frames) + mem.nframes - mem.next_frame, "free-frame count drifted"
    for f in free_set:
        assert mem.frame_mm[f] is None and f not in owned, f"free frame {f} is still mapped"
    for f in range(mem.next_frame):
        assert f in owned or f in free_set, f"frame {f} leaked"
    stale = [f for f in k.cache.slot_of if f not in owned]
    assert not stale, f"swap cache holds frame {stale[0]}, which maps no page"
    assert len(slots) == k.space.used, f"{k.space.used} swap slots in use but {len(slots)} referenced (leak)"
    g = k.reclaim.global_policy
    tracked = len(g) if g is not None else sum(len(m.policy) for m in k.mms.values())
    assert tracked == resident, f"policy tracks {tracked} frames, {resident} resident"
