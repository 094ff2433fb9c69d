"""The MMU and the page-fault handler: every reference a process makes goes through here.

``refs`` is the reference loop, the hottest code of the simulator. A
reference to a resident page whose accessed/dirty bits are already set (a
"plain hit", what the TLB and the MMU handle without the kernel) costs one
dict lookup, one mask test and, for policies that need it (LRU), one builtin
call. Anything else leaves the loop for ``fault``.

``fault`` reads as mm/memory.c's ``handle_mm_fault`` for anonymous memory,
one branch per case, with the cost of each next to it:

- present: only the accessed/dirty bits change (the MMU sets them; a write
  to a clean page that still has a swap copy makes that copy stale, so the
  slot is freed);
- never touched (``do_anonymous_page``): a read maps the shared zero page
  (a minor fault that takes no frame), a write gets a zeroed frame (a minor
  fault). Pages of a page-reference region hold data from the start (the
  textbook model), so they take a frame on a read too;
- swapped out (``do_swap_page``): a frame, a read queued on the swap device
  that the process waits for (a major fault); a read keeps the slot in the
  swap cache, a write frees it;
- a write to the zero page (``do_wp_page``): copy-on-write into a new frame
  (a minor fault).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vmexp.kernel.clock import SliceClock
from vmexp.kernel.observe import HIT, MAJOR, MINOR
from vmexp.kernel.pagetable import ACCESSED, DIRTY, PRESENT, SHIFT, SWAPPED, ZERO
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.swap import SwapCache, SwapDevice, SwapSpace
from vmexp.kernel.vmstat import VMStat

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.observe import Observer

__all__ = ["PLAIN_MASK", "PLAIN_WANT", "FaultHandler", "Segfault"]

# A reference is a "plain hit" when the entry needs no change: present, not
# the zero page, accessed already set (and dirty already set for a write).
_R_MASK = PRESENT | ZERO | ACCESSED
_R_WANT = PRESENT | ACCESSED
_W_MASK = PRESENT | ZERO | ACCESSED | DIRTY
_W_WANT = PRESENT | ACCESSED | DIRTY
PLAIN_MASK = _MASKS = (_R_MASK, _W_MASK)  # [write]: the MMU's test is e & mask == want
PLAIN_WANT = _WANTS = (_R_WANT, _W_WANT)
# With an observer attached no entry passes as a plain hit (0 != 1), so every
# reference reaches the branch that reports it; hits are still handled as hits.
_ALL_OUT = (0, 0)
_NEVER = (1, 1)


class Segfault(Exception):
    """A reference outside every VMA (SIGSEGV)."""

    def __init__(self, pid: int, addr: int) -> None:
        super().__init__(f"process {pid}: segmentation fault at {addr:#x}")
        self.pid = pid
        self.addr = addr


class FaultHandler:
    """The reference loop and the fault paths over one machine's frames and swap."""

    def __init__(
        self,
        mem: PhysMem,
        space: SwapSpace,
        dev: SwapDevice,
        cache: SwapCache,
        clock: SliceClock,
        stat: VMStat,
        cost: Any,
        shift: int,
    ) -> None:
        self.mem = mem
        self.space = space
        self.dev = dev
        self.cache = cache
        self.clock = clock
        self.stat = stat
        self.cost = cost
        self.cost_ref = max(1, cost.ref)
        self.shift = shift
        self.obs: Observer | None = None
        # Load control's working-set sampler, told of every reference that leaves the loop.
        self.ws_note: Callable[[MM, int], None] | None = None

    def refs(
        self,
        mm: MM,
        vpns: Sequence[int],
        writes: Sequence[int],
        i: int,
        n: int,
        budget: int,
        stop_on_major: bool = True,
    ) -> int:
        """Reference vpns[i:n]; stop at a major fault or when the slice budget is spent. Returns the next i.

        Each reference costs ``cost.ref``, charged lazily: a run of hits is
        added up when the loop leaves it, so the hot path does no clock
        arithmetic.
        """
        clock = self.clock
        get = mm.pt.pte.get
        on_hit = mm.policy.on_hit
        cost = self.cost_ref
        obs = self.obs
        ws_note = self.ws_note
        masks, wants = (_MASKS, _WANTS) if obs is None else (_ALL_OUT, _NEVER)
        i0 = start = i
        limit = min(n, i + (budget - clock.used) // cost + 1)
        while i < limit:
            vpn = vpns[i]
            w = writes[i]
            e = get(vpn, 0)
            if e & masks[w] == wants[w]:
                if on_hit is not None:
                    on_hit(e >> SHIFT)
                i += 1
                continue
            clock.used += (i - start) * cost
            start = i
            if obs is not None:
                if e & _MASKS[w] == _WANTS[w]:  # a plain hit, reported
                    if on_hit is not None:
                        on_hit(e >> SHIFT)
                    i += 1
                    obs.reference(mm, vpn, w, HIT)
                    continue
                faults = mm.minflt + mm.majflt
                major = self.fault(mm, vpn, e, w)
                obs.reference(
                    mm, vpn, w, MAJOR if major else MINOR if mm.minflt + mm.majflt > faults else HIT
                )
            else:
                major = self.fault(mm, vpn, e, w)
            if ws_note is not None:
                ws_note(mm, vpn)
            i += 1
            if (major and stop_on_major) or clock.used >= budget:
                break
            limit = min(n, i + (budget - clock.used) // cost + 1)
        clock.used += (i - start) * cost
        mm.refs += i - i0
        return i

    def fault(self, mm: MM, vpn: int, e: int, w: int) -> bool:
        """Everything a reference does beyond a plain hit; True if it was a major fault."""
        if e & PRESENT and not (w and e & ZERO):
            # Present: only the accessed/dirty bits change.
            if w:
                if not e & DIRTY:
                    slot = self.cache.take(e >> SHIFT)
                    if slot >= 0:  # the swap copy is stale from now on
                        self.space.release(slot)
                mm.pt.pte[vpn] = e | ACCESSED | DIRTY
            else:
                mm.pt.pte[vpn] = e | ACCESSED
            if not e & ZERO and mm.policy.on_hit is not None:
                mm.policy.on_hit(e >> SHIFT)
            return False
        if e == 0:
            return self.do_anonymous_page(mm, vpn, w)
        if e & SWAPPED:
            return self.do_swap_page(mm, vpn, e >> SHIFT, w)
        return self.do_wp_page(mm, vpn)

    def do_anonymous_page(self, mm: MM, vpn: int, w: int) -> bool:
        vma = mm.aspace.find(vpn << self.shift)
        if vma is None:
            raise Segfault(mm.pid, vpn << self.shift)
        if not w and vma.kind != "pageref":
            mm.pt.add(vpn, PRESENT | ZERO | ACCESSED)
            mm.minflt += 1
            self.clock.used += self.cost.zero_page
            return False
        f = self.mem.alloc(mm, vpn)
        mm.pt.add(vpn, (f << SHIFT) | PRESENT | ACCESSED | DIRTY)
        mm.minflt += 1
        self.clock.used += self.cost.minor_fault
        mm.policy.inserted(f)
        return False

    def do_swap_page(self, mm: MM, vpn: int, slot: int, w: int) -> bool:
        f = self.mem.alloc(mm, vpn)
        clock = self.clock
        done = self.dev.submit(clock.now())
        if w:
            self.space.release(slot)
            mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED | DIRTY
        else:
            self.cache.add(f, slot)
            mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED
        mm.swapents -= 1
        mm.majflt += 1
        mm.pswpin += 1
        self.stat.pswpin += 1
        clock.used += self.cost.major_fault
        clock.wait_for(done)
        mm.policy.inserted(f)
        return True

    def do_wp_page(self, mm: MM, vpn: int) -> bool:
        """A write to the shared zero page: copy-on-write into a new frame."""
        f = self.mem.alloc(mm, vpn)
        mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED | DIRTY
        mm.minflt += 1
        self.clock.used += self.cost.minor_fault
        mm.policy.inserted(f)
        return False
