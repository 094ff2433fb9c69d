"""The simulated kernel: physical frames shared by all processes, demand paging, swap, reclaim, OOM.

One ``System`` per run. Processes reach it through their ``Syscalls``
object (the allocator's view, ``vmexp.libc.base.Kernel``) and through
``refs``, the per-reference loop that the process runner calls for page
touches. That loop is the hottest code of the simulator: a reference to a
resident page whose accessed/dirty bits are already set costs one dict
lookup, one mask test and, for policies that need it (LRU), one builtin
call. Everything else — faults, bit updates, zero-page copy-on-write — leaves
the loop for ``_slow``.

Time: the process that is running holds a slice clock (``used``, ns since
its slice began at ``env.now``); every cost the kernel charges is added
there, and ``now()`` is ``env.now + used``. A major fault queues a read on
the swap device and records ``block_until``; the runner then gives up the
CPU and sleeps until then. Nothing here creates SimPy events.

Linux behaviours modelled (and where they come from):
- first write to an anonymous page: a zeroed frame, minor fault
  (mm/memory.c do_anonymous_page); first read: the shared zero page, a minor
  fault that takes no frame; a later write copies-on-write (another minor
  fault);
- a swapped-out page: a major fault that waits for the device
  (do_swap_page); the page keeps its swap slot while clean (swap cache), so
  evicting it again costs no write; a write frees the slot;
- munmap / brk shrink free frames and slots at once (zap_page_range);
- watermarks min/low/high from min_free (mm/page_alloc.c
  __setup_per_zone_wmarks: low = min + max(min/4, 0.1 % of RAM), high = low
  + the same step); below low kswapd is woken, at or below min the faulting
  process reclaims directly, SWAP_CLUSTER_MAX (32) pages at a time;
- OOM: when no page can be freed (RAM full and the victim needs swap that is
  full) the process with the largest rss + swap + page tables is killed
  (mm/oom_kill.c oom_badness, without oom_score_adj).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vmexp.config import Settings
from vmexp.kernel.layout import compute_regions
from vmexp.kernel.mm import AddressSpace
from vmexp.kernel.pagetable import ACCESSED, DIRTY, PRESENT, SHIFT, SWAPPED, ZERO, PageTable
from vmexp.kernel.policies import make_policy
from vmexp.kernel.policies.base import Policy
from vmexp.kernel.swap import SwapDevice, SwapSpace

__all__ = ["System", "MM", "Syscalls", "ProcessKilled", "Segfault", "SWAP_CLUSTER_MAX"]

SWAP_CLUSTER_MAX = 32

# A reference is a "plain hit" when the entry needs no change: present, not
# the zero page, accessed already set (and dirty already set for a write).
_R_MASK = PRESENT | ZERO | ACCESSED
_R_WANT = PRESENT | ACCESSED
_W_MASK = PRESENT | ZERO | ACCESSED | DIRTY
_W_WANT = PRESENT | ACCESSED | DIRTY
_MASKS = (_R_MASK, _W_MASK)
_WANTS = (_R_WANT, _W_WANT)

SYSCALL_NAMES = ("brk", "mmap", "munmap", "mremap")


class ProcessKilled(Exception):
    """The running process was killed (OOM); its memory is already freed."""

    def __init__(self, pid: int, reason: str) -> None:
        super().__init__(f"process {pid}: {reason}")
        self.pid = pid
        self.reason = reason


class Segfault(Exception):
    """A reference outside every VMA (SIGSEGV)."""

    def __init__(self, pid: int, addr: int) -> None:
        super().__init__(f"process {pid}: segmentation fault at {addr:#x}")
        self.pid = pid
        self.addr = addr


class MM:
    """One process's memory: address space, page table, counters (as ps and /proc show them)."""

    __slots__ = (
        "aspace",
        "exit",
        "killed",
        "majflt",
        "minflt",
        "name",
        "op",
        "pid",
        "policy",
        "pswpin",
        "pswpout",
        "pt",
        "refs",
        "rss",
        "rss_peak",
        "swap_peak",
        "swapents",
        "syscalls",
    )

    def __init__(self, pid: int, name: str, aspace: AddressSpace, pt: PageTable, policy: Policy) -> None:
        self.pid = pid
        self.name = name
        self.aspace = aspace
        self.pt = pt
        self.policy = policy
        self.rss = 0  # resident pages (frames; the zero page is not counted, as in Linux)
        self.swapents = 0
        self.rss_peak = 0
        self.swap_peak = 0
        self.minflt = 0
        self.majflt = 0
        self.refs = 0
        self.pswpin = 0
        self.pswpout = 0
        self.syscalls = dict.fromkeys(SYSCALL_NAMES, 0)
        self.killed = False
        self.exit = "running"
        self.op = 0  # index of the operation being executed (syscalls.csv's op column)


class System:
    """Frames, swap and the fault path, shared by every process of a run."""

    def __init__(
        self, settings: Settings, env: Any, rng: np.random.Generator, explain: list[str] | None = None
    ) -> None:
        self.s = settings
        self.env = env
        self.rng = rng
        self.page_size = ps = settings.page_size
        self.shift = ps.bit_length() - 1
        self.nframes = settings.ram_pages
        c = settings.machine.cost
        self.cost = c
        self.cost_ref = max(1, c.ref)
        # Frame tables grow as frames are first used: memory follows the
        # pages touched, not the size of `ram`.
        self.frame_mm: list[MM | None] = []
        self.frame_vpn: list[int] = []
        self.frame_slot: list[int] = []  # swap slot still holding this page's clean copy, or -1
        self.free_frames: list[int] = []
        self.next_frame = 0
        self.nfree = self.nframes
        self.free_min = self.nframes
        self.swap = SwapSpace(settings.swap_pages)
        # Linux's default overcommit heuristic (vm.overcommit_memory=0, mm/util.c
        # __vm_enough_memory): one request that grows private writable memory
        # by more pages than RAM + swap fails with ENOMEM; anything smaller is
        # granted and costs a frame only when touched.
        self.commit_limit = self.nframes + settings.swap_pages
        m = settings.machine
        self.dev = SwapDevice(m.swap_latency, m.swap_bandwidth, ps)
        # Watermarks in pages (0 = off: the textbook "evict when full").
        wmin = m.min_free // ps
        if wmin > 0:
            step = max(wmin // 4, self.nframes * 10 // 10000)
            self.wmark_min, self.wmark_low, self.wmark_high = wmin, wmin + step, wmin + 2 * step
        else:
            self.wmark_min = self.wmark_low = self.wmark_high = 0
        self.wake_kswapd: Callable[[], None] | None = None
        self.local = settings.policy.scope == "local"
        self.proportional = settings.policy.allocation == "proportional"
        self.global_policy: Policy | None = None
        if not self.local:
            self.global_policy = self._new_policy()
        self.mms: dict[int, MM] = {}
        self.cur: MM | None = None
        self.used = 0
        self.block_until = 0
        self.pswpin = 0
        self.pswpout = 0
        self.clean_drops = 0
        self.pgsteal_kswapd = 0
        self.pgsteal_direct = 0
        self.oom_kills: list[dict[str, Any]] = []
        self.syscall_log: list[tuple[int, int, int, str, int, int, int]] = []
        self.explain = explain
        self.future: Sequence[int] | None = None

    # ------------------------------------------------------------------ setup
    def _new_policy(self) -> Policy:
        p = self.s.policy
        child = np.random.default_rng(self.rng.integers(0, 2**63))
        return make_policy(p.name, dict(p.params), self, child)

    def new_process(
        self, pid: int, name: str, aslr_rng: np.random.Generator | None, bare: bool = False
    ) -> MM:
        """A process with the layout's regions (``bare``: none, for a pure page-reference string)."""
        regions = compute_regions(self.s.layout, self.page_size, aslr_rng)
        aspace = AddressSpace(regions, self.page_size, prog=name, bare=bare)
        pt = PageTable(self.s.layout.va_bits, self.page_size, self.s.layout.pte_bytes)
        policy = self.global_policy if self.global_policy is not None else self._new_policy()
        mm = MM(pid, name, aspace, pt, policy)
        self.mms[pid] = mm
        return mm

    def set_future(self, vpns: Sequence[int]) -> None:
        """Hand OPT the reference string (only a page-reference workload has one)."""
        policy = self.global_policy
        setter = getattr(policy, "set_future", None)
        if setter is not None:
            setter(vpns)

    # --------------------------------------------------------- FrameView API
    def test_and_clear_young(self, frame: int) -> bool:
        mm = self.frame_mm[frame]
        if mm is None:
            return False
        vpn = self.frame_vpn[frame]
        pte = mm.pt.pte
        e = pte[vpn]
        if e & ACCESSED:
            pte[vpn] = e & ~ACCESSED
            return True
        return False

    def is_dirty(self, frame: int) -> bool:
        mm = self.frame_mm[frame]
        return mm is not None and bool(mm.pt.pte[self.frame_vpn[frame]] & DIRTY)

    def vpn(self, frame: int) -> int:
        return self.frame_vpn[frame]

    def owner(self, frame: int) -> int:
        mm = self.frame_mm[frame]
        return mm.pid if mm is not None else 0

    def now(self) -> int:
        return int(self.env.now) + self.used

    # ------------------------------------------------------------- hot loop
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
        """Reference vpns[i:n]; stop at a major fault or when the slice budget is spent. Returns the next i."""
        if self.explain is not None:
            return self._refs_explain(mm, vpns, writes, i, n, stop_on_major)
        pte = mm.pt.pte
        get = pte.get
        on_hit = mm.policy.on_hit
        cost = self.cost_ref
        masks, wants = _MASKS, _WANTS
        i0 = start = i
        limit = min(n, i + (budget - self.used) // cost + 1)
        while i < limit:
            vpn = vpns[i]
            w = writes[i]
            e = get(vpn, 0)
            if e & masks[w] == wants[w]:
                if on_hit is not None:
                    on_hit(e >> SHIFT)
                i += 1
                continue
            self.used += (i - start) * cost
            start = i
            major = self._slow(mm, vpn, e, w)
            i += 1
            if (major and stop_on_major) or self.used >= budget:
                break
            limit = min(n, i + (budget - self.used) // cost + 1)
        self.used += (i - start) * cost
        mm.refs += i - i0
        return i

    def _refs_explain(
        self, mm: MM, vpns: Sequence[int], writes: Sequence[int], i: int, n: int, stop: bool
    ) -> int:
        """The same loop, one reference at a time, narrated (explain=true)."""
        assert self.explain is not None
        while i < n:
            vpn, w = vpns[i], writes[i]
            e = mm.pt.pte.get(vpn, 0)
            before = (mm.minflt, mm.majflt)
            hit = e & _MASKS[w] == _WANTS[w]
            if hit:
                if mm.policy.on_hit is not None:
                    mm.policy.on_hit(e >> SHIFT)
                major = False
            else:
                major = self._slow(mm, vpn, e, w)
            self.used += self.cost_ref
            mm.refs += 1
            kind = "hit" if (mm.minflt, mm.majflt) == before else ("MAJOR fault" if major else "minor fault")
            e2 = mm.pt.pte.get(vpn, 0)
            where = "zero page" if e2 & ZERO else f"frame {e2 >> SHIFT}"
            self.explain.append(
                f"  p{mm.pid} {'w' if w else 'r'} page {vpn:#x}: {kind} -> {where}; resident {self.resident(mm)}"
            )
            i += 1
            if major and stop:
                break
        return i

    def resident(self, mm: MM) -> str:
        pages = sorted(v for v, e in mm.pt.pte.items() if e & PRESENT and not e & ZERO)
        if len(pages) > 12:
            return f"{len(pages)} pages"
        return "[" + " ".join(f"{v:#x}" for v in pages) + "]"

    def _slow(self, mm: MM, vpn: int, e: int, w: int) -> bool:
        """Everything a reference does beyond a plain hit; True if it was a major fault."""
        if e & PRESENT and not (w and e & ZERO):
            # Present: only the accessed/dirty bits change.
            if w:
                if not e & DIRTY:
                    f = e >> SHIFT
                    slot = self.frame_slot[f]
                    if slot >= 0:  # the swap copy is stale from now on
                        self.swap.release(slot)
                        self.frame_slot[f] = -1
                mm.pt.pte[vpn] = e | ACCESSED | DIRTY
            else:
                mm.pt.pte[vpn] = e | ACCESSED
            if not e & ZERO and mm.policy.on_hit is not None:
                mm.policy.on_hit(e >> SHIFT)
            return False
        c = self.cost
        if e == 0:
            vma = mm.aspace.find(vpn << self.shift)
            if vma is None:
                raise Segfault(mm.pid, vpn << self.shift)
            if not w and vma.kind != "pageref":
                mm.pt.add(vpn, PRESENT | ZERO | ACCESSED)
                mm.minflt += 1
                self.used += c.zero_page
                return False
            # First touch: a zeroed frame. A page-reference region's pages
            # hold data from the start (the textbook model), so they take a
            # frame on a read too and must be written out when evicted.
            f = self._alloc_frame(mm, vpn)
            mm.pt.add(vpn, (f << SHIFT) | PRESENT | ACCESSED | DIRTY)
            mm.minflt += 1
            self.used += c.minor_fault
            mm.policy.inserted(f)
            return False
        if e & SWAPPED:
            slot = e >> SHIFT
            f = self._alloc_frame(mm, vpn)
            done = self.dev.submit(self.now(), False)
            if w:
                self.swap.release(slot)
                mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED | DIRTY
            else:
                self.frame_slot[f] = slot
                mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED
            mm.swapents -= 1
            mm.majflt += 1
            mm.pswpin += 1
            self.pswpin += 1
            self.used += c.major_fault
            if done > self.block_until:
                self.block_until = done
            mm.policy.inserted(f)
            return True
        # A write to the zero page: copy-on-write into a new frame.
        f = self._alloc_frame(mm, vpn)
        mm.pt.pte[vpn] = (f << SHIFT) | PRESENT | ACCESSED | DIRTY
        mm.minflt += 1
        self.used += c.minor_fault
        mm.policy.inserted(f)
        return False

    # ------------------------------------------------------- frames, reclaim
    def _alloc_frame(self, mm: MM, vpn: int) -> int:
        """A frame for `mm`'s page `vpn`, reclaiming (or OOM-killing) as needed."""
        if self.local:
            self._local_make_room(mm)
        if self.nfree <= self.wmark_min:
            self._direct_reclaim(mm)
        if self.free_frames:
            f = self.free_frames.pop()
            self.frame_mm[f] = mm
            self.frame_vpn[f] = vpn
        else:
            f = self.next_frame
            self.next_frame += 1
            self.frame_mm.append(mm)
            self.frame_vpn.append(vpn)
            self.frame_slot.append(-1)
        self.nfree -= 1
        if self.nfree < self.free_min:
            self.free_min = self.nfree
        mm.rss += 1
        if mm.rss > mm.rss_peak:
            mm.rss_peak = mm.rss
        if self.nfree < self.wmark_low and self.wake_kswapd is not None:
            self.wake_kswapd()
        return f

    def _free_frame(self, f: int, mm: MM) -> None:
        mm.policy.removed(f)
        self.frame_mm[f] = None
        self.free_frames.append(f)
        self.nfree += 1
        mm.rss -= 1

    def _quota(self, mm: MM) -> int:
        live = [m for m in self.mms.values() if not m.killed]
        if not self.proportional:
            return max(1, self.nframes // max(1, len(live)))
        total = sum(m.aspace.vsz for m in live) or 1
        return max(1, self.nframes * mm.aspace.vsz // total)

    def _local_make_room(self, mm: MM) -> None:
        """Local replacement: a process at its quota replaces one of its own pages."""
        if mm.rss >= self._quota(mm) and len(mm.policy) > 0:
            self._evict_or_oom(mm.policy.victim(), mm)
            self.pgsteal_direct += 1
            self.used += self.cost.reclaim_page

    def _policy_to_reclaim(self) -> Policy | None:
        if self.global_policy is not None:
            return self.global_policy if len(self.global_policy) else None
        over = [m for m in self.mms.values() if m.rss > 0]
        if not over:
            return None
        return max(over, key=lambda m: (m.rss - self._quota(m), -m.pid)).policy

    def _direct_reclaim(self, mm: MM) -> None:
        """Reclaim in the faulting process: a batch of up to 32 pages, and at least one free frame."""
        want = 1 if self.wmark_min == 0 else max(1, min(SWAP_CLUSTER_MAX, self.wmark_high - self.nfree))
        for _ in range(want):
            policy = self._policy_to_reclaim()
            if policy is None:
                break
            self._evict_or_oom(policy.victim(), mm)
            self.pgsteal_direct += 1
            self.used += self.cost.reclaim_page
        while self.nfree == 0:
            self._oom(mm)

    def kswapd_reclaim(self, batch: int) -> int:
        """Background reclaim toward the high watermark; returns pages freed (0 = nothing to do)."""
        freed = 0
        while freed < batch and self.nfree < self.wmark_high:
            policy = self._policy_to_reclaim()
            if policy is None:
                break
            f = policy.victim()
            if not self._evict(f):
                break  # swap is full: leave it to direct reclaim and the OOM killer
            freed += 1
            self.pgsteal_kswapd += 1
        return freed

    def _evict_or_oom(self, f: int, requester: MM) -> None:
        if not self._evict(f):
            self._oom(requester)

    def _evict(self, f: int) -> bool:
        """Write `f`'s page to swap if needed and free the frame; False if swap is full."""
        mm = self.frame_mm[f]
        assert mm is not None
        vpn = self.frame_vpn[f]
        pte = mm.pt.pte
        e = pte[vpn]
        slot = self.frame_slot[f]
        if slot >= 0 and not e & DIRTY:
            self.clean_drops += 1
            wrote = False
        else:
            slot = self.swap.alloc()
            if slot < 0:
                return False
            self.dev.submit(self.now(), True)
            self.pswpout += 1
            mm.pswpout += 1
            wrote = True
        self.frame_slot[f] = -1
        pte[vpn] = (slot << SHIFT) | SWAPPED
        mm.swapents += 1
        if mm.swapents > mm.swap_peak:
            mm.swap_peak = mm.swapents
        self._free_frame(f, mm)
        if self.explain is not None:
            how = f"written to swap slot {slot}" if wrote else f"clean, swap slot {slot} still valid: dropped"
            self.explain.append(f"    evict frame {f} (p{mm.pid} page {vpn:#x}): {how}")
        return True

    def _oom(self, requester: MM) -> None:
        """No page can be freed: kill the process with the most memory (oom_badness)."""
        live = [m for m in self.mms.values() if not m.killed]
        if not live:
            raise ProcessKilled(requester.pid, "out of memory")
        victim = max(live, key=lambda m: (m.rss + m.swapents + m.pt.pages, -m.pid))
        record = {
            "time_s": self.now() / 1e9,
            "pid": victim.pid,
            "name": victim.name,
            "rss_bytes": victim.rss * self.page_size,
            "swap_bytes": victim.swapents * self.page_size,
            "for_pid": requester.pid,
        }
        self.oom_kills.append(record)
        if self.explain is not None:
            self.explain.append(
                f"    OOM: kill p{victim.pid} ({victim.name}), rss {victim.rss} pages, swap {victim.swapents}"
            )
        self.exit_process(victim, "oom-killed")
        if victim is requester:
            raise ProcessKilled(victim.pid, "killed by the OOM killer")

    def exit_process(self, mm: MM, status: str) -> None:
        """Free every frame and slot of `mm` (exit or kill)."""
        if mm.killed:
            return
        for vpn in list(mm.pt.pte):
            self._zap_one(mm, vpn)
        mm.killed = True
        mm.exit = status

    # ------------------------------------------------------------ unmapping
    def _zap_one(self, mm: MM, vpn: int) -> None:
        e = mm.pt.remove(vpn)
        if e & SWAPPED:
            self.swap.release(e >> SHIFT)
            mm.swapents -= 1
        elif not e & ZERO:
            f = e >> SHIFT
            slot = self.frame_slot[f]
            if slot >= 0:
                self.swap.release(slot)
                self.frame_slot[f] = -1
            self._free_frame(f, mm)

    def zap(self, mm: MM, start: int, end: int) -> None:
        """Free the frames and slots of [start, end) at once (munmap, brk shrink, MADV_DONTNEED)."""
        v0 = start >> self.shift
        v1 = (end + self.page_size - 1) >> self.shift
        pte = mm.pt.pte
        if v1 - v0 <= 4 * len(pte):
            for vpn in range(v0, v1):
                if vpn in pte:
                    self._zap_one(mm, vpn)
        else:
            for vpn in [v for v in pte if v0 <= v < v1]:
                self._zap_one(mm, vpn)

    # ------------------------------------------------------------- syscalls
    def _log(self, mm: MM, name: str, addr: int, length: int, result: int) -> None:
        mm.syscalls[name] += 1
        self.syscall_log.append((mm.pid, mm.op, self.now(), name, addr, length, result))
        if self.explain is not None:
            self.explain.append(
                f"    syscall {name}(addr={addr:#x}, length={length}) = {result:#x}"
                if result >= 0
                else f"    syscall {name}(addr={addr:#x}, length={length}) = -1 ENOMEM"
            )

    def sys_brk(self, mm: MM, addr: int) -> int:
        self.used += self.cost.brk
        old = mm.aspace.brk
        if addr == 0:
            self._log(mm, "brk", 0, 0, old)
            return old
        ps = self.page_size
        if (addr + ps - 1) // ps - (old + ps - 1) // ps > self.commit_limit:
            self._log(mm, "brk", addr, 0, old)  # do_brk_flags refused: the break stays
            return old
        _, freed = mm.aspace.set_brk(addr)
        for s, e in freed:
            self.zap(mm, s, e)
        new = mm.aspace.brk
        self._log(mm, "brk", addr, new - old, new)
        return new

    def sys_mmap(self, mm: MM, length: int) -> int:
        self.used += self.cost.mmap
        ps = self.page_size
        length = (length + ps - 1) // ps * ps
        addr = mm.aspace.get_unmapped_area(length) if 0 < length // ps <= self.commit_limit else -1
        if addr < 0:
            self._log(mm, "mmap", 0, length, -1)
            return -1
        mm.aspace.map(addr, addr + length, "anon")
        self._log(mm, "mmap", addr, length, addr)
        return addr

    def sys_munmap(self, mm: MM, addr: int, length: int) -> int:
        self.used += self.cost.munmap
        ps = self.page_size
        if addr % ps or length <= 0:
            self._log(mm, "munmap", addr, length, -1)
            return -1
        end = addr + (length + ps - 1) // ps * ps
        for s, e in mm.aspace.unmap(addr, end):
            self.zap(mm, s, e)
        self._log(mm, "munmap", addr, length, 0)
        return 0

    def sys_mremap(self, mm: MM, addr: int, old_len: int, new_len: int) -> int:
        self.used += self.cost.mremap
        ps = self.page_size
        old_len = (old_len + ps - 1) // ps * ps
        new_len = (new_len + ps - 1) // ps * ps
        if (new_len - old_len) // ps > self.commit_limit:  # only the growth is charged
            self._log(mm, "mremap", addr, new_len, -1)
            return -1
        new, freed = mm.aspace.resize(addr, old_len, new_len)
        for s, e in freed:
            self.zap(mm, s, e)
        if new >= 0 and new != addr:
            self._move_pages(mm, addr, new, old_len)
            mm.aspace.move(addr, new, old_len, new_len)
        self._log(mm, "mremap", new if new >= 0 else addr, new_len, new)
        return new

    def _move_pages(self, mm: MM, old: int, new: int, length: int) -> None:
        """mremap's move: page-table entries change address, the frames stay (no faults)."""
        pt = mm.pt
        delta = (new - old) >> self.shift
        v0, v1 = old >> self.shift, (old + length) >> self.shift
        moved = [(v, pt.remove(v)) for v in range(v0, v1) if v in pt.pte]
        for v, e in moved:
            pt.add(v + delta, e)
            if e & PRESENT and not e & ZERO:
                self.frame_vpn[e >> SHIFT] = v + delta

    def madvise_dontneed(self, mm: MM, addr: int, length: int) -> None:
        self.used += self.cost.syscall
        self.zap(mm, addr, addr + length)

    # ------------------------------------------------------------ checking
    def check(self) -> None:
        """The invariants; raises AssertionError naming the first one broken."""
        owned: dict[int, tuple[int, int]] = {}
        slots: set[int] = set()
        resident = 0
        for mm in self.mms.values():
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
                    assert self.frame_mm[f] is mm and self.frame_vpn[f] == vpn, (
                        f"frame {f} does not map back to p{mm.pid} {vpn:#x}"
                    )
                    slot = self.frame_slot[f]
                    if slot >= 0:
                        assert not e & DIRTY, f"dirty page in frame {f} still holds swap slot {slot}"
                        assert slot not in slots, f"swap slot {slot} owned twice"
                        slots.add(slot)
                    rss += 1
            assert rss == mm.rss, f"p{mm.pid}: rss counter {mm.rss} but {rss} present pages"
            assert swapents == mm.swapents, (
                f"p{mm.pid}: swap counter {mm.swapents} but {swapents} swapped pages"
            )
            resident += rss
            assert mm.minflt >= 0 and mm.majflt >= 0 and mm.refs >= 0
        assert resident + self.nfree == self.nframes, (
            f"resident {resident} + free {self.nfree} != RAM {self.nframes} pages"
        )
        free_set = set(self.free_frames)
        assert len(free_set) == len(self.free_frames), "a frame is on the free list twice"
        assert self.nfree == len(self.free_frames) + self.nframes - self.next_frame, (
            "free-frame count drifted"
        )
        for f in free_set:
            assert self.frame_mm[f] is None and f not in owned, f"free frame {f} is still mapped"
        for f in range(self.next_frame):
            assert f in owned or f in free_set, f"frame {f} leaked"
        assert len(slots) == self.swap.used, (
            f"{self.swap.used} swap slots in use but {len(slots)} referenced (leak)"
        )
        tracked = (
            len(self.global_policy)
            if self.global_policy is not None
            else sum(len(m.policy) for m in self.mms.values())
        )
        assert tracked == resident, f"policy tracks {tracked} frames, {resident} resident"


class Syscalls:
    """One process's view of the kernel: the allocator's ``Kernel`` protocol."""

    __slots__ = ("_pte", "mm", "page_size", "shift", "sys")

    def __init__(self, system: System, mm: MM) -> None:
        self.sys = system
        self.mm = mm
        self.page_size = system.page_size
        self.shift = system.shift
        self._pte = mm.pt.pte

    def brk(self, addr: int) -> int:
        return self.sys.sys_brk(self.mm, addr)

    def mmap(self, length: int) -> int:
        return self.sys.sys_mmap(self.mm, length)

    def munmap(self, addr: int, length: int) -> int:
        return self.sys.sys_munmap(self.mm, addr, length)

    def mremap(self, addr: int, old_length: int, new_length: int) -> int:
        return self.sys.sys_mremap(self.mm, addr, old_length, new_length)

    def madvise_dontneed(self, addr: int, length: int) -> None:
        self.sys.madvise_dontneed(self.mm, addr, length)

    def write(self, addr: int, length: int) -> None:
        self._access(addr, length, 1)

    def read(self, addr: int, length: int) -> None:
        self._access(addr, length, 0)

    def _access(self, addr: int, length: int, w: int) -> None:
        """The allocator's own loads/stores: a plain hit on one page stays here, the rest goes to refs()."""
        if length <= 0:
            return
        v0 = addr >> self.shift
        v1 = (addr + length - 1) >> self.shift
        if v0 == v1:
            e = self._pte.get(v0, 0)
            if e & _MASKS[w] == _WANTS[w]:
                self.mm.refs += 1
                on_hit = self.mm.policy.on_hit
                if on_hit is not None:
                    on_hit(e >> SHIFT)
                return
        n = v1 - v0 + 1
        self.sys.refs(self.mm, range(v0, v1 + 1), bytes([w]) * n, 0, n, 1 << 62, False)
