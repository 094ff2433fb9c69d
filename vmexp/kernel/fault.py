"""The MMU and the page-fault handler: every reference a process makes goes through here.

``refs`` is the reference loop, the hottest code of the simulator. A
reference to a resident page whose accessed/dirty bits are already set (a
"plain hit", what the TLB and the MMU handle without the kernel) costs one
dict lookup, one test of the frame's PTE bits and, for policies that need
it (LRU), one builtin call. Anything else leaves the loop for ``fault``.

``fault`` reads as mm/memory.c's ``handle_mm_fault`` for anonymous memory,
one branch per case, with the cost of each next to it:

- present: only the accessed/dirty bits change (the MMU sets them; a write
  to a clean page that still has a swap copy makes that copy stale, so the
  textbook pager frees the slot; Linux keeps it, below);
- never touched (``do_anonymous_page``): a read maps the shared zero page
  (a minor fault that takes no frame), a write gets a zeroed frame (a minor
  fault). Pages of a page-reference region hold data from the start (the
  textbook model), so they take a frame on a read too;
- swapped out (``do_swap_page``): a frame, a read queued on the swap device
  that the process waits for (a major fault); a read keeps the slot in the
  swap cache, a write frees it;
- a write to the zero page (``do_wp_page``): copy-on-write into a new frame
  (a minor fault).

With Linux's reclaim (a batch policy, ``policy=linux``) a swapped-out page
may still be in memory, and ``do_swap_page`` has the kernel's three cases
(mm/memory.c, v6.18):

- the swap cache has it (``swap_cache_get_folio``): brought in by readahead,
  or written out and not freed yet. It is mapped again: a minor fault, no
  I/O; a major one only if its read is still in flight (the fault retries,
  and the retry counts as major: ``mm_account_fault``);
- zram (``SWP_SYNCHRONOUS_IO``): decompressed now on this CPU, not added to
  the swap cache, the slot freed at once (so the next eviction writes
  again);
- a disk: ``swapin_readahead`` reads the page and its neighbours in one
  request into the swap cache, unmapped (``swap_cluster_readahead`` on a
  rotational device: the aligned cluster of 2^page_cluster slots;
  ``swap_vma_readahead`` on others: a window of the faulting VMA's page
  table that adapts to readahead hits), and the process waits for the read.

A write to a page mapped from the swap cache needs no fault: ``do_swap_page``
maps an exclusive page writable even for a read, so the write only sets the
dirty bit, and the page keeps its slot, where reclaim writes it again.

Pages read back go through ``workingset_refault`` with their shadow entries
(the policy's ``refault``), which may put them straight on the active list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vmexp.kernel.clock import SliceClock
from vmexp.kernel.observe import HIT, MAJOR, MINOR
from vmexp.kernel.pagetable import ACCESSED, DIRTY, PTE_NONE, SWAPPED, ZERO_PAGE
from vmexp.kernel.physmem import PhysMem
from vmexp.kernel.swap import READ, SwapCache, SwapDevice, SwapSpace, Zram
from vmexp.kernel.vmstat import VMStat

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.observe import Observer

__all__ = ["PLAIN_MASK", "PLAIN_WANT", "FaultHandler", "Segfault", "swapin_nr_pages"]

SWAP_RA_ORDER_CEILING = 5  # mm/swap_state.c: VMA readahead reads at most 32 pages
SWAP_RA_HITS_MAX = 63  # mm/swap_state.c: SWAP_RA_HITS_MASK with 4 KiB pages
PMD_PAGES = 512  # a page table maps 512 pages: VMA readahead stays inside it


def swapin_nr_pages(prev: int, offset: int, hits: int, max_pages: int, prev_win: int) -> int:
    """mm/swap_state.c: __swapin_nr_pages: how many pages to read, from the readahead hits so far.

    Hits since the last readahead grow the window (to the next power of two
    of hits + 2, at least 4); with none, a fault next to the previous one
    still reads ahead, others read one page. The window never shrinks by
    more than half at once.
    """
    pages = hits + 2
    if pages == 2:
        if offset != prev + 1 and offset != prev - 1:
            pages = 1
    else:
        roundup = 4
        while roundup < pages:
            roundup <<= 1
        pages = roundup
    pages = min(pages, max_pages)
    return max(pages, prev_win // 2)


# A reference is a "plain hit" when the entry needs no change: present (a frame,
# not the zero page), accessed already set (and dirty already set for a write).
PLAIN_MASK = _MASKS = (ACCESSED, ACCESSED | DIRTY)  # [write]: the MMU's test is
PLAIN_WANT = _WANTS = (ACCESSED, ACCESSED | DIRTY)  # e >= 0 and pte_bits[e] & mask == want
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
        dev: SwapDevice | Zram,
        cache: SwapCache,
        clock: SliceClock,
        stat: VMStat,
        cost: Any,
        shift: int,
        *,
        linux: bool = False,
        page_cluster: int = 0,
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
        # The machine's inline wait (vmexp.sim): after a major fault, True if the running process
        # could wait for its read without a SimPy event, and has; the loop then goes on with the
        # next reference instead of returning to the machine only to be resumed at once.
        self.wait_inline: Callable[[], bool] | None = None
        self.linux = linux  # Linux's swap path: the swap cache keeps unmapped pages; readahead
        self.page_cluster = page_cluster
        # swapin_nr_pages' global state (cluster readahead), which the kernel keeps across processes.
        # It starts at 4 hits only at boot (swapin_readahead_hits); a process on a machine that has
        # swapped before meets no pending hits and a window of one: measured, 2 of 5 zipf_96 runs
        # read ahead 2 and 4 pages in all, fewer than the 11 of a first window of 8 (7 + 3 + 1).
        self.ra_hits = 0
        self.ra_prev = 0
        self.ra_last = 0

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
        bits = self.mem.pte_bits
        on_hit = mm.policy.on_hit
        cost = self.cost_ref
        obs = self.obs
        ws_note = self.ws_note
        wait_inline = self.wait_inline
        masks, wants = (_MASKS, _WANTS) if obs is None else (_ALL_OUT, _NEVER)
        i0 = start = i
        limit = min(n, i + (budget - clock.used) // cost + 1)
        while i < limit:
            vpn = vpns[i]
            w = writes[i]
            e = get(vpn, PTE_NONE)
            if e >= 0 and bits[e] & masks[w] == wants[w]:
                if on_hit is not None:
                    on_hit(e)
                i += 1
                continue
            clock.used += (i - start) * cost
            start = i
            if obs is not None:
                if e >= 0 and bits[e] & _MASKS[w] == _WANTS[w]:  # a plain hit, reported
                    if on_hit is not None:
                        on_hit(e)
                    i += 1
                    obs.reference(mm, vpn, w, HIT)
                    continue
                major = self._fault_observed(mm, vpn, e, w, obs)
            else:
                major = self.fault(mm, vpn, e, w)
            if ws_note is not None:
                ws_note(mm, vpn)
            i += 1
            if mm.preempted:
                # Preempted in reclaim: on the way back the kernel reads the rseq area through the
                # TLB, which marks nothing young; only a page reclaim unmapped meanwhile faults.
                mm.preempted = False
                if not (major or clock.block_until) and get(mm.hot[0], PTE_NONE) < 0:
                    major = self.user_return(mm)
            # A fault may also have had to wait without being major (reclaim waited for the device).
            if (major or clock.block_until) and stop_on_major:
                clock.used += (i - start) * cost  # the faulting reference, before the wait
                start = i
                if wait_inline is None or not wait_inline():
                    break
                # Back to user space after the wait: the kernel writes the rseq area first.
                while mm.resched:
                    mm.resched = False
                    if self.user_return(mm) and not wait_inline():
                        clock.used += (i - start) * cost
                        mm.refs += i - i0
                        return i
            if clock.used >= budget:
                break
            limit = min(n, i + (budget - clock.used) // cost + 1)
        clock.used += (i - start) * cost
        mm.refs += i - i0
        return i

    def user_return(self, mm: MM) -> bool:
        """The kernel writes the process's rseq area on its way back to user space; True if it must wait.

        After a context switch (``__schedule`` -> ``rseq_preempt``) the
        return to user space updates the ``struct rseq`` registered in the
        thread's TLS (``rseq_handle_notify_resume``): a write to that page
        by the kernel, which faults like the process's own when the page is
        out. A process that sleeps at every major fault so keeps it hot; one
        that seldom sleeps (zram's synchronous swap-ins) lets a long sweep
        swap it out (measured with ``perf record -e major-faults -d``: the
        faults at ``__get_user_8``). The page is the first of the program's
        hot pages (``mm.hot``); a process without an image has none.

        A preemption without a sleep (``MM.preempted``, vmpressure's kworker
        in the middle of reclaim) comes back to the same CPU, whose TLB
        still maps the page: x86 clears accessed bits without a TLB flush
        (``ptep_clear_flush_young``), and while the process has run on this
        CPU alone reclaim flushes its unmaps one page at a time, so that
        read marks nothing, and ``refs`` calls this only when reclaim has
        unmapped the page. (A process moved to another CPU at exec gets a
        full flush at every reclaim batch instead, and its read marks the
        page; traced, 2 zram runs in 26.) The kernel's rseq faults come right
        after a long reclaim call, which takes the page between two scans;
        the simulator's long calls keep it, as its image puts the page
        late on the lists, and a later call takes it: the same count, a
        few calls late (docs/kernel-truth.md, "The premise above").
        """
        if not mm.hot:
            return False
        vpn = mm.hot[0]
        e = mm.pt.pte.get(vpn, PTE_NONE)
        self.clock.used += self.cost_ref
        if e >= 0 and self.mem.pte_bits[e] & _MASKS[1] == _WANTS[1]:
            if mm.policy.on_hit is not None:
                mm.policy.on_hit(e)
            if self.obs is not None:
                self.obs.reference(mm, vpn, 1, HIT)
            return False
        obs = self.obs
        major = self.fault(mm, vpn, e, 1) if obs is None else self._fault_observed(mm, vpn, e, 1, obs)
        return bool(major or self.clock.block_until)

    def _fault_observed(self, mm: MM, vpn: int, e: int, w: int, obs: Observer) -> bool:
        """``fault``, and the observer told what kind of reference it was (by the counts it moved)."""
        minflt, majflt = mm.minflt, mm.majflt
        major = self.fault(mm, vpn, e, w)
        obs.reference(mm, vpn, w, MAJOR if mm.majflt > majflt else MINOR if mm.minflt > minflt else HIT)
        return major

    def fault(self, mm: MM, vpn: int, e: int, w: int) -> bool:
        """Everything a reference does beyond a plain hit; True if the process must now wait (for I/O)."""
        if e >= 0:
            # Present: only the accessed/dirty bits change.
            bits = self.mem.pte_bits
            if w:
                if not bits[e] & DIRTY and not self.linux:
                    slot = self.cache.take(e)
                    if slot >= 0:  # the swap copy is stale from now on
                        self.space.release(slot)
                # Linux's path keeps the slot: do_swap_page maps an exclusive page writable even for
                # a read, so this write sets the dirty bit without a fault, and the page stays in the
                # swap cache; reclaim writes it again to the same slot (shrink_folio_list skips
                # folio_alloc_swap for a folio in the swap cache).
                bits[e] |= ACCESSED | DIRTY
            else:
                bits[e] |= ACCESSED
            if mm.policy.on_hit is not None:
                mm.policy.on_hit(e)
            return False
        if e == PTE_NONE:
            return self.do_anonymous_page(mm, vpn, w)
        if e <= SWAPPED:
            return self.do_swap_page(mm, vpn, SWAPPED - e, w)
        if not w:  # a read of the zero page: present and young already
            return False
        return self.do_wp_page(mm, vpn)

    def do_anonymous_page(self, mm: MM, vpn: int, w: int) -> bool:
        vma = mm.aspace.find(vpn << self.shift)
        if vma is None:
            raise Segfault(mm.pid, vpn << self.shift)
        if not w and vma.kind != "pageref":
            mm.pt.add(vpn, ZERO_PAGE)
            mm.minflt += 1
            self.clock.used += self.cost.zero_page
            return False
        f = self.mem.alloc(mm, vpn)
        mm.pt.add(vpn, f)
        self.mem.pte_bits[f] = ACCESSED | DIRTY
        mm.minflt += 1
        self.clock.used += self.cost.minor_fault
        mm.policy.inserted(f)
        return False

    def do_swap_page(self, mm: MM, vpn: int, slot: int, w: int) -> bool:
        if self.linux:
            return self.do_swap_page_linux(mm, vpn, slot, w)
        f = self.mem.alloc(mm, vpn)
        clock = self.clock
        dev = self.dev
        if isinstance(dev, Zram):  # decompressed on this CPU; no swap cache
            self.space.release(slot)
            mm.pt.pte[vpn] = f
            self.mem.pte_bits[f] = ACCESSED | DIRTY
            mm.swapents -= 1
            mm.majflt += 1
            mm.pswpin += 1
            self.stat.pswpin += 1
            clock.used += self.cost.major_fault + dev.read()
            mm.policy.inserted(f)
            return False
        clock.used += self.cost.swap_read
        done = dev.submit_pages(clock.now(), 1, READ)  # one call per fault, the hot path
        mm.pt.pte[vpn] = f
        if w:
            self.space.release(slot)
            self.mem.pte_bits[f] = ACCESSED | DIRTY
        else:
            self.cache.add(f, slot)
            self.mem.pte_bits[f] = ACCESSED
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
        mm.pt.pte[vpn] = f
        self.mem.pte_bits[f] = ACCESSED | DIRTY
        mm.minflt += 1
        self.clock.used += self.cost.minor_fault
        mm.policy.inserted(f)
        return False

    # ------------------------------------------------ Linux's swap-in path
    def do_swap_page_linux(self, mm: MM, vpn: int, slot: int, w: int) -> bool:
        """mm/memory.c: do_swap_page (v6.18): the swap cache, zram's synchronous path, or readahead."""
        f = self.cache.frame_of.get(slot, -1)
        if f >= 0:
            return self.swap_cache_hit(mm, vpn, slot, f, w)
        if isinstance(self.dev, Zram):
            return self.swapin_sync(mm, vpn, slot, w, self.dev)
        return self.swapin_readahead(mm, vpn, slot, w)

    def swap_cache_hit(self, mm: MM, vpn: int, slot: int, f: int, w: int) -> bool:
        """The page is still in memory: map it again. Minor, unless its read has not completed."""
        cache = self.cache
        clock = self.clock
        readahead = f in cache.readahead
        if readahead:
            cache.readahead.discard(f)
        elif f in self.mem.reclaim.writeback:
            # PG_readahead is PG_reclaim (include/linux/page-flags.h): a page that reclaim wrote and
            # whose write is still in flight counts as a readahead hit, and loses its rotation.
            self.mem.reclaim.complete_writeback(clock.now())
            readahead = mm.policy.test_clear_reclaim(f)
        self.swap_update_readahead(mm, vpn, readahead)
        done = cache.reading.pop(f, 0)
        # A read the process is already bound to wait for (block_until: a fault earlier in an
        # allocator call, whose accesses run on without stopping, refs' stop_on_major off) has
        # completed by the time the kernel's thread, which slept at that fault, gets here.
        major = done > max(clock.now(), clock.block_until)
        if major:  # folio_lock_or_retry: VM_FAULT_RETRY, and the retry is counted major
            clock.wait_for(done)
            mm.majflt += 1
            clock.used += self.cost.major_fault
        else:
            mm.minflt += 1
            clock.used += self.cost.swap_cache_hit
        self.map_swap_cache(mm, vpn, slot, f, w)
        return major

    def map_swap_cache(self, mm: MM, vpn: int, slot: int, f: int, w: int) -> None:
        """Map swap-cache frame ``f`` at ``vpn``; a write, or swap more than half full, frees its slot.

        (``should_try_to_free_swap``: the copy in swap is stale once the page
        is written; when swap runs short it is freed anyway: ``vm_swap_full``
        for the machine's, ``mem_cgroup_swap_full`` for a group's
        memory.swap.max, which cgroup v1 does not have.)
        """
        mm.pt.pte[vpn] = f
        self.mem.pte_bits[f] = (ACCESSED | DIRTY) if w else ACCESSED
        mm.swapents -= 1
        mm.rss += 1
        if mm.rss > mm.rss_peak:
            mm.rss_peak = mm.rss
        space = self.space
        cg = mm.memcg
        if (
            w
            or 2 * space.used > space.nslots
            or (cg is not None and cg.swap_limit is not None and 2 * cg.swap >= cg.swap_limit)
        ):
            self.cache.take(f)
            space.release(slot)

    def swapin_sync(self, mm: MM, vpn: int, slot: int, w: int, zram: Zram) -> bool:
        """The SWP_SYNCHRONOUS_IO path: no swap cache, the slot freed at once, no readahead."""
        f = self.mem.alloc(mm, vpn)
        space = self.space
        shadow = space.shadow.get(slot, -1)
        space.release(slot)
        mm.pt.pte[vpn] = f
        self.mem.pte_bits[f] = (ACCESSED | DIRTY) if w else ACCESSED
        mm.swapents -= 1
        mm.majflt += 1
        mm.pswpin += 1
        self.stat.pswpin += 1
        self.clock.used += self.cost.major_fault + zram.read()
        if shadow >= 0:
            mm.policy.refault(f, shadow)
        else:
            mm.policy.inserted(f)
        return False

    def swapin_readahead(self, mm: MM, vpn: int, slot: int, w: int) -> bool:
        """mm/swap_state.c: swapin_readahead: the page and its neighbours, one request, then wait.

        The neighbours go into the swap cache unmapped with PG_readahead
        set, in slot (or address) order, each charged to the group of the
        process whose page it is (``PhysMem.alloc_unmapped``); a neighbour whose slot is free or already cached is skipped.
        """
        dev = self.dev
        assert isinstance(dev, SwapDevice)
        space = self.space
        cache = self.cache
        mem = self.mem
        window = self.cluster_window(slot) if dev.rotational else self.vma_window(mm, vpn)
        # The pages are allocated first and put on the LRU together afterwards (lru_add_drain):
        # until then reclaim, which an allocation may run, cannot take one of them.
        got: list[tuple[int, int, MM]] = []  # (frame, slot, owner), the faulting page's among them
        # blk_start_plug around the readahead loop (swap_cluster_readahead, swap_vma_readahead;
        # skipped for a window of one page): reclaim run by a charge in that loop writes into this
        # plug, so its writes reach the device only when the plug is flushed (blk_finish_plug).
        reclaim = mem.reclaim if len(window) > 1 else None
        if reclaim is not None:
            reclaim.outer_plug = True
        try:
            for s in window:
                if s != slot and (s in cache.frame_of or s not in space.owner):
                    continue
                owner, ovpn = (mm, vpn) if s == slot else space.owner[s]
                f = mem.alloc_unmapped(owner, ovpn, mm, may_oom=s == slot)
                if f >= 0:
                    cache.add(f, s)
                    got.append((f, s, owner))
        finally:
            if reclaim is not None:
                reclaim.outer_plug = False
                reclaim.unplug()
            for f, s, owner in got:
                if cache.slot_of.get(f, -1) != s:
                    continue  # its process was killed meanwhile: freed with it
                shadow = space.shadow.get(s, -1)
                if shadow >= 0:
                    owner.policy.refault(f, shadow)
                else:
                    owner.policy.inserted(f)
            if reclaim is not None:  # a window of pages: "Push any new pages onto the LRU now"
                reclaim.lru_add_drain()
        read = [f for f, _, _ in got]
        target = next(f for f, s, _ in got if s == slot)
        for f, s, _ in got:
            if s != slot:
                cache.readahead.add(f)
                self.stat.swap_ra += 1
        clock = self.clock
        clock.used += self.cost.swap_read
        done = dev.submit_pages(clock.now(), len(read), READ)
        for f in read:
            if f != target and cache.slot_of.get(f, -1) >= 0:
                cache.reading[f] = done
        self.stat.pswpin += len(read)
        mm.pswpin += 1
        mm.majflt += 1
        clock.used += self.cost.major_fault
        clock.wait_for(done)
        self.map_swap_cache(mm, vpn, slot, target, w)
        return True

    def cluster_window(self, slot: int) -> list[int]:
        """swap_cluster_readahead: the aligned cluster of slots around ``slot`` (rotational devices).

        Linux's offsets start at 1 (slot 0 holds the swap header), so slot
        ``s`` here is offset ``s + 1`` there, and the clusters align as Linux's do.
        """
        offset = slot + 1
        max_pages = 1 << self.page_cluster
        if max_pages <= 1:
            return [slot]
        hits, self.ra_hits = self.ra_hits, 0
        pages = swapin_nr_pages(self.ra_prev, offset, hits, max_pages, self.ra_last)
        if not hits:
            self.ra_prev = offset
        self.ra_last = pages
        mask = pages - 1
        if not mask:
            return [slot]
        start = max(offset & ~mask, 1)
        end = min(offset | mask, self.space.nslots - 1)  # si->max - 1: the swap area's last page
        return [o - 1 for o in range(start, end + 1)]

    def vma_window(self, mm: MM, vpn: int) -> list[int]:
        """swap_vma_readahead: the slots in the PTEs of a window of the faulting VMA (swap_vma_ra_win)."""
        max_win = 1 << min(self.page_cluster, SWAP_RA_ORDER_CEILING)
        pte = mm.pt.pte
        slot = SWAPPED - pte[vpn]
        vma = mm.aspace.find(vpn << self.shift)
        if max_win == 1 or vma is None:
            return [slot]
        prev, prev_win, hits = vma.ra
        win = swapin_nr_pages(prev, vpn, hits, max_win, prev_win)
        vma.ra = (vpn, win, 0)
        if win == 1:
            return [slot]
        if vpn == prev + 1:
            left = vpn
        elif prev == vpn + 1:
            left = vpn - win + 1
        else:
            left = vpn - (win - 1) // 2
        pmd = vpn - vpn % PMD_PAGES
        start = max(left, vma.start >> self.shift, pmd, 0)
        end = min(left + win, vma.end >> self.shift, pmd + PMD_PAGES)
        slots = []
        for v in range(start, end):
            e = pte.get(v, PTE_NONE)
            if e <= SWAPPED:
                slots.append(SWAPPED - e)
        return slots

    def swap_update_readahead(self, mm: MM, vpn: int, readahead: bool) -> None:
        """mm/swap_state.c: swap_update_readahead, on every swap-cache hit: count readahead hits."""
        if not isinstance(self.dev, SwapDevice):
            return
        if self.dev.rotational:
            if readahead:
                self.ra_hits += 1
        else:
            vma = mm.aspace.find(vpn << self.shift)
            if vma is not None:
                _, win, hits = vma.ra
                vma.ra = (vpn, win, min(hits + readahead, SWAP_RA_HITS_MAX))
        if readahead:
            self.stat.swap_ra_hit += 1
