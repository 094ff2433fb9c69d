"""Swap: the space (slots), the device (a FIFO server, or zram) and the swap cache.

The device is a FIFO server whose completion times are known on arrival.

Every request (write a dirty page out, read a page back in) takes the same
service time: the device's latency plus one page at its bandwidth. Because
the queue is first-come first-served and the service time is known when a
request arrives, its completion time is ``max(arrival, busy_until) + service``
— exactly what a SimPy ``Resource(capacity=1)`` would produce, but with no
events of its own. A device with a queue depth above 1 (a described
device's ``queue_depth``: a virtual or flash disk works on many requests at
once) overlaps the latencies of up to that many requests and serialises
only their transfers: a request starts when fewer than ``queue_depth``
earlier ones are unfinished, is ready for its transfer at ``start +
latency``, and transfers in the first gap of the device's transfer
timeline at or after that which holds its pages; known on arrival, and
at depth 1 (or whenever requests arrive in order of time) that is
``max(start + latency, busy_until) + its pages' transfer``, the formula
above. The gap matters on several CPUs: the engine runs each CPU's
stretch at its start, so a request can reach the device after one that
is later in simulated time, and taking turns in the order the engine
happens to run the CPUs would make it wait for a transfer that has not
begun (two processes faulting in turn were locked in that order for
good, and swap readahead's global window, which opens only on two
faults in a row at neighbouring slots, never opened: docs/kernel-truth.md,
"Several processes in one group"). Either way, the process that must wait (a major fault) sleeps until
that time with a single timeout, and an asynchronous write-back costs nothing
but device time. This keeps SimPy events to one per major fault, as
the engine's performance design (vmexp.sim) asks. Several pages read or written together
(swap readahead's cluster, reclaim's plugged writes) are one request: the
latency once, the pages at the bandwidth. (The kernel makes one request per
run of consecutive slots of a plug; ``Reclaim.flush_plug`` says why the
plugged writes stay one request here.)

zram (drivers/block/zram) is no queue at all: it compresses and
decompresses on the CPU of the process that reads or writes, synchronously
(``SWP_SYNCHRONOUS_IO``), so its cost is CPU time, and the pages it stores
take machine RAM at its compression ratio (its zsmalloc pool, which is not
charged to any memory cgroup).
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmexp.kernel.clock import SliceClock
    from vmexp.kernel.mm import MM
    from vmexp.kernel.physmem import PhysMem

__all__ = ["SwapCache", "SwapDevice", "SwapSpace", "Zram"]

READ, WRITE = 0, 1
NR_REQUESTS = 128  # include/linux/blkdev.h: BLKDEV_DEFAULT_RQ, the requests a queue holds at once


class SwapDevice:
    """FIFO device with a busy horizon; counts busy time for utilisation.

    Requests take their transfers in order of time (a request of an
    earlier time that arrives later, from another CPU's stretch, takes a
    gap before those booked after it: ``_transfer_at``), and the time with
    a request unfinished (from its start to its completion; overlapping
    ones merged) is a sequence of disjoint intervals; ``busy_by``
    answers exactly how much of it lies before a time, gaps included, so a
    utilisation sampled over any interval lies in [0, 1]. ``inflight`` keeps
    the completion times and kinds of the requests not yet done (pruned as
    new ones arrive), so that the invariant checker can tell whose write a
    busy device is serving.
    """

    __slots__ = (
        "_done_ns",
        "_spans",
        "_transfers",
        "busy_ns",
        "busy_until",
        "env",
        "inflight",
        "latency",
        "max_segments",
        "page_ns",
        "queue_depth",
        "rotational",
        "service",
        "sync",
    )

    def __init__(
        self,
        latency_ns: int,
        bandwidth: int,
        page_size: int,
        rotational: bool,
        max_segments: int,
        queue_depth: int = 1,
        clock: SliceClock | None = None,
    ) -> None:
        self.page_ns = (page_size * 1_000_000_000 + bandwidth - 1) // bandwidth
        self.latency = latency_ns
        self.service = latency_ns + self.page_ns  # one page's request, alone on the device
        # blk-mq's tags: requests past this many wait for an earlier one to finish before their
        # latency starts (nr_tags, 128 on this machine's virtio disk; 1, a textbook FIFO server)
        self.queue_depth = queue_depth
        self.busy_until = 0
        self.busy_ns = 0
        self.rotational = rotational  # blk queue flag: cluster readahead instead of VMA readahead
        # blk queue limit: a plugged write merges the next slot's page into its request up to this
        # many pages (blk_attempt_plug_merge -> ll_back_merge_fn, one segment a page)
        self.max_segments = max_segments
        self.sync = False
        self.inflight: deque[tuple[int, int]] = deque()  # (done, READ or WRITE), in completion order
        # Busy spans [start, end) not yet wholly before the last busy_by time,
        # contiguous ones merged; _done_ns is the length of those dropped.
        self._spans: deque[list[int]] = deque()
        self._done_ns = 0
        # The transfers booked, (start, end), disjoint and by start (_transfer_at); the machine's
        # clock's env.now is the earliest time a request can still arrive at (a slice or stretch
        # starts there); without a clock requests are taken to arrive in order of time.
        self._transfers: list[tuple[int, int]] = []
        self.env = clock.env if clock is not None else None

    def submit(self, now: int, kind: int = WRITE) -> int:
        """Queue one page transfer arriving at ``now``; returns when it completes."""
        return self.submit_pages(now, 1, kind)

    def submit_pages(self, now: int, npages: int, kind: int) -> int:
        """One request of ``npages`` contiguous pages (a readahead cluster, a plugged batch of writes)."""
        q = self.inflight  # the requests not yet done, for room_at, the depth and the checker
        while q and q[0][0] <= now:
            q.popleft()
        n, depth = len(q), self.queue_depth
        start = now  # when a tag is free: the depth-th last unfinished request is done
        if n >= depth and q[n - depth][0] > now:
            start = q[n - depth][0]
        floor = int(self.env.now) if self.env is not None else now
        t = self._transfer_at(floor, start + self.latency, npages * self.page_ns)
        done = t + npages * self.page_ns
        self._busy(start, done)
        if done > self.busy_until:
            self.busy_until = done
        if not q or q[-1][0] <= done:
            q.append((done, kind))
        else:  # overtook an earlier request (an earlier time that arrived later): keep done order
            bisect.insort(q, (done, kind))
        return done

    def _transfer_at(self, floor: int, ready: int, length: int) -> int:
        """When a transfer of ``length`` ns ready at ``ready`` starts: the first gap that holds it.

        ``_transfers`` holds the booked transfers, disjoint and by start,
        those that end by ``floor``, before which no request can still
        arrive (the machine's time), dropped. In order of time a request always lands at the end,
        where the gap is ``busy_until``'s.
        """
        booked = self._transfers
        drop = 0
        while drop < len(booked) and booked[drop][1] <= floor:
            drop += 1
        if drop:
            del booked[:drop]
        if not booked or ready >= booked[-1][0]:
            t = ready
            if booked and booked[-1][1] > t:
                t = booked[-1][1]
            if booked and booked[-1][1] == t:
                booked[-1] = (booked[-1][0], t + length)  # contiguous: one booking
            else:
                booked.append((t, t + length))
            return t
        i = bisect.bisect_right(booked, (ready, ready)) - 1  # the last booking starting at or before
        t = ready
        if i >= 0 and booked[i][1] > t:
            t = booked[i][1]
        j = i + 1
        while j < len(booked) and booked[j][0] < t + length:
            t = max(t, booked[j][1])
            j += 1
        booked.insert(j, (t, t + length))
        return t

    def _busy(self, start: int, done: int) -> None:
        """[start, done) is busy (the kernel's io_ticks: any request unfinished), counted once."""
        spans = self._spans
        if not spans or start > spans[-1][1]:
            spans.append([start, done])
            self.busy_ns += done - start
            return
        if start >= spans[-1][0]:
            if done > spans[-1][1]:
                self.busy_ns += done - spans[-1][1]
                spans[-1][1] = done
            return
        # Reaches before the last span (an earlier time that arrived later): merge the spans it
        # meets, all near the end, since nothing arrives before the machine's time.
        k = len(spans)
        while k and spans[k - 1][1] >= start:
            k -= 1
        tail = [spans.pop() for _ in range(len(spans) - k)][::-1]
        before = sum(b - a for a, b in tail)
        merged: list[list[int]] = []
        for a, b in sorted([*tail, [start, done]]):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        spans.extend(merged)
        self.busy_ns += sum(b - a for a, b in merged) - before

    def room_at(self, now: int) -> int:
        """0 if a request can be queued at ``now``; else when the queue next has room.

        The block layer gives each request a tag and has ``nr_requests`` of
        them (``BLKDEV_DEFAULT_RQ`` = 128, include/linux/blkdev.h); a
        submitter finding none sleeps in ``blk_mq_get_tag`` until a request
        completes. This bounds how far ahead of the present a writer can
        queue work: the textbook pager frees a frame as soon as its write is
        queued, and without the bound a thrashing machine queued seconds of
        writes in front of every read (issue 12: a device busy for seconds
        with no page moving while every process waited).
        """
        q = self.inflight
        while q and q[0][0] <= now:
            q.popleft()
        n = len(q)
        return q[n - NR_REQUESTS][0] if n >= NR_REQUESTS else 0

    def busy_by(self, t: int) -> int:
        """Busy nanoseconds before time ``t`` (asked at non-decreasing times)."""
        spans = self._spans
        while spans and spans[0][1] <= t:
            start, end = spans.popleft()
            self._done_ns += end - start
        if spans and spans[0][0] < t:
            return self._done_ns + t - spans[0][0]
        return self._done_ns

    def in_service(self, t: int) -> bool:
        """Whether a request is being served at ``t`` (the checker's view)."""
        return any(start <= t < end for start, end in self._spans)


class Zram:
    """A compressed RAM disk as swap: synchronous, its cost the CPU's, its pool in machine RAM.

    ``stored`` pages take ``ceil(stored / ratio)`` frames of RAM
    (``pool_pages``); the kernel takes them from the free frames when a
    write makes the pool grow, and a write that finds no free frame fails
    (zs_malloc cannot allocate), so the page stays.
    """

    __slots__ = (
        "busy_ns",
        "busy_until",
        "inflight",
        "mem",
        "pool_peak",
        "ratio",
        "read_ns",
        "rotational",
        "service",
        "stored",
        "stored_peak",
        "sync",
        "write_ns",
    )

    def __init__(self, read_ns: int, write_ns: int, ratio: float, mem: PhysMem) -> None:
        self.read_ns = read_ns
        self.write_ns = write_ns
        self.service = read_ns
        self.ratio = ratio
        self.mem = mem
        self.stored = 0
        self.stored_peak = 0
        self.pool_peak = 0  # frames
        self.busy_ns = 0
        self.busy_until = 0  # never ahead of now: nothing is queued
        self.rotational = False
        self.sync = True
        self.inflight: deque[tuple[int, int]] = deque()

    def pool_pages(self, stored: int) -> int:
        """Frames of RAM the pool needs for ``stored`` pages (zsmalloc packs them at the ratio)."""
        return -int(-stored // self.ratio)

    def can_store(self) -> bool:
        """Room for one more page: the pool needs no new frame, or a free one exists."""
        return self.pool_pages(self.stored + 1) == self.pool_pages(self.stored) or self.mem.nfree > 0

    def store(self) -> bool:
        """Compress one page into the pool (the caller charges ``write_ns``); False if RAM is full."""
        if not self.can_store():
            return False
        grow = self.pool_pages(self.stored + 1) - self.pool_pages(self.stored)
        self.stored += 1
        if self.stored > self.stored_peak:
            self.stored_peak = self.stored
        self.busy_ns += self.write_ns
        if grow:
            self.mem.nfree -= grow
            self.mem.pool += grow
            if self.mem.pool > self.pool_peak:
                self.pool_peak = self.mem.pool
        return True

    def drop(self) -> None:
        """A stored page's slot was freed: the pool shrinks with it."""
        shrink = self.pool_pages(self.stored) - self.pool_pages(self.stored - 1)
        self.stored -= 1
        if shrink:
            self.mem.nfree += shrink
            self.mem.pool -= shrink

    def read(self) -> int:
        """Decompress one page: the CPU time it costs."""
        self.busy_ns += self.read_ns
        return self.read_ns

    def busy_by(self, t: int) -> int:
        """CPU time spent compressing and decompressing (zram has no queue to be busy with)."""
        return self.busy_ns

    def in_service(self, t: int) -> bool:
        return False

    def room_at(self, now: int) -> int:
        return 0  # synchronous: nothing is ever queued


SWAPFILE_CLUSTER = 512  # mm/swap.h: HPAGE_PMD_NR slots a cluster with CONFIG_THP_SWAP (x86_64, 4 KiB pages)
# mm/swap.h: enum swap_cluster_flags, the list a cluster is on (NONE: isolated by the allocator).
_CL_NONE, _CL_FREE, _CL_NONFULL, _CL_FRAG, _CL_FULL = 0, 1, 2, 3, 4


class SwapSpace:
    """Swap slots, handed out lazily so that a huge swap costs next to nothing until used.

    The textbook pager reuses the slot freed last (a stack).

    Linux's path (``sequential``) allocates as mm/swapfile.c (v6.18) does
    for one order-0 page, because the slots decide which pages swap
    readahead reads together. The device is cut into clusters of
    ``SWAPFILE_CLUSTER`` slots; slot 0 holds the swap header (mkswap puts
    it inside the swap area, so a swap of N pages has N - 1 slots), and
    slot ``s`` here is offset ``s + 1`` there. ``setup_clusters`` puts the
    clusters with a slot in use (the header's, the tail of a last partial
    cluster) on the nonfull list and the others on the free list, in index
    order. ``cluster_alloc_swap_entry`` on a device without
    ``SWP_SOLIDSTATE`` (rotational) continues in one global cluster from
    the slot after the last one it gave out (``global_cluster->next``);
    when that cluster has no free slot further on, it takes a new one: the
    first cluster of the nonfull list (clusters a slot was freed in, oldest
    first) scanned from its start, else the head of the free list (the
    untouched clusters in index order, then the clusters freed since, in
    the order they became empty), else a cluster of the frag list.
    ``swap_entries_free`` puts a cluster that a freed slot leaves partly
    used at the tail of the nonfull list (``partial_free_cluster``) and an
    empty one at the tail of the free list (``free_cluster``); each
    allocation puts the cluster it came from on the frag or full list
    (``relocate_cluster``), so a slot freed behind the cursor waits until
    another slot of its cluster is freed. So slots freed by written pages
    are reused as soon as the current cluster is used up: pages evicted
    later fill the holes between older ones, and a readahead cluster holds
    pages that left memory at different times.
    Solid-state devices allocate the same way from a per-CPU cluster; the
    simulator keeps one (its reclaimers allocate one at a time). Not
    modelled: reclaiming slots held only by the swap cache when swap is
    more than half full (``cluster_scan_range`` with ``vm_swap_full``) and
    discard (``SWP_PAGE_DISCARD``, swapon without ``--discard``).

    ``owner`` maps a slot to the page it holds (Linux finds it through the
    swap cache and the page tables; readahead needs it to place a page), and
    ``shadow`` holds the shadow entry of a page that left memory
    (mm/workingset.c; Linux keeps it in the slot's swap-cache entry). Both
    go with the slot. With zram each slot in use is a page in its pool,
    but for the slots in ``zeromap``: their pages held only zeros, which
    the kernel records in the swap device's zeromap and never hands to
    zram (``swap_writeout``, Linux 6.12+), so freeing one shrinks no pool.
    """

    __slots__ = (
        "_count",
        "_flags",
        "_frag",
        "_free",
        "_freed",
        "_map",
        "_max",
        "_nclusters",
        "_next",
        "_nonfull",
        "_untouched",
        "nslots",
        "owner",
        "sequential",
        "shadow",
        "usable",
        "used",
        "used_peak",
        "zeromap",
        "zram",
    )

    def __init__(self, nslots: int, sequential: bool = False, zram: Zram | None = None) -> None:
        self.nslots = nslots
        self.sequential = sequential
        self.zram = zram
        self._free: list[int] = []
        self._next = 0
        self.used = 0
        self.used_peak = 0
        self.owner: dict[int, tuple[MM, int]] = {}
        self.shadow: dict[int, int] = {}
        self.zeromap: set[int] = set()
        self.usable = nslots
        if sequential:
            self._setup_clusters()

    # --------------------------------------------------- Linux's allocator
    def _setup_clusters(self) -> None:
        """mm/swapfile.c: setup_clusters: the header slot taken, clusters on the nonfull or free list."""
        c = SWAPFILE_CLUSTER
        self._max = mx = self.nslots  # si->max: offsets 0 .. max - 1, 0 the header
        self.usable = max(mx - 1, 0)
        self._nclusters = nclusters = -(-mx // c) if mx > 1 else 0
        # Per cluster, only for clusters used so far (memory follows the slots used, not the swap
        # size): how many slots are taken, and which list it is on (absent: untouched and free).
        self._count: dict[int, int] = {}
        self._flags: dict[int, int] = {}
        self._map: dict[int, bytearray] = {}  # cluster -> its slots' use (1 = in use), made when first used
        self._nonfull: dict[int, None] = {}  # ordered: head first
        self._frag: dict[int, None] = {}
        self._freed: dict[int, None] = {}  # the free list after the untouched clusters
        self._untouched = 0  # clusters from here on that were never used are the free list's head
        self._next = 0  # global_cluster->next[0]; 0 = SWAP_ENTRY_INVALID
        taken = [0] if nclusters else []  # the header, and the slots past the end of the last cluster
        taken += range(mx, nclusters * c)
        for o in taken:
            ci = o // c
            self._cluster_map(ci)[o - ci * c] = 1
            self._count[ci] = self._count.get(ci, 0) + 1
        for ci in sorted(self._count):
            self._flags[ci] = _CL_NONFULL
            self._nonfull[ci] = None

    def _cluster_map(self, ci: int) -> bytearray:
        m = self._map.get(ci)
        if m is None:
            m = self._map[ci] = bytearray(SWAPFILE_CLUSTER)
        return m

    def _move(self, ci: int, flag: int) -> None:
        """move_cluster: off its list, onto the tail of the list of ``flag``."""
        old = self._flags.get(ci, _CL_FREE)
        if old == _CL_NONFULL:
            del self._nonfull[ci]
        elif old == _CL_FRAG:
            del self._frag[ci]
        elif old == _CL_FREE:
            if ci in self._freed:
                del self._freed[ci]
            else:  # an untouched cluster, taken from the head of the free list
                assert ci == self._untouched
                self._untouched += 1
        if flag == _CL_NONFULL:
            self._nonfull[ci] = None
        elif flag == _CL_FRAG:
            self._frag[ci] = None
        elif flag == _CL_FREE:
            self._freed[ci] = None
        self._flags[ci] = flag

    def _relocate(self, ci: int) -> None:
        """relocate_cluster: after an allocation, to the free, frag or full list as its count says."""
        n = self._count.get(ci, 0)
        flag = self._flags.get(ci, _CL_FREE)
        if not n:
            if flag != _CL_FREE:
                self._move(ci, _CL_FREE)
        elif n != SWAPFILE_CLUSTER:
            if flag != _CL_FRAG:
                self._move(ci, _CL_FRAG)
        elif flag != _CL_FULL:
            self._move(ci, _CL_FULL)

    def _scan_cluster(self, ci: int, offset: int) -> int:
        """alloc_swap_scan_cluster: the first free slot of cluster ``ci`` from ``offset`` on (0: none)."""
        c = SWAPFILE_CLUSTER
        start = ci * c
        found = nxt = 0
        n = self._count.get(ci, 0)
        if n < c:
            m = self._cluster_map(ci)
            i = m.find(0, offset - start, min(start + c, self._max) - start)
            if i >= 0:
                m[i] = 1
                self._count[ci] = n = n + 1
                found = start + i
                if n < c and found + 1 < min(start + c, self._max):
                    nxt = found + 1
        self._relocate(ci)
        self._next = nxt
        return found

    def _isolate(self, ci: int) -> int:
        """isolate_lock_cluster, then a scan from the cluster's start."""
        self._move(ci, _CL_NONE)
        return self._scan_cluster(ci, ci * SWAPFILE_CLUSTER)

    def _cluster_alloc(self) -> int:
        """mm/swapfile.c: cluster_alloc_swap_entry for order 0 without SWP_SOLIDSTATE; an offset or 0."""
        offset = self._next
        if offset:
            ci = offset // SWAPFILE_CLUSTER
            flag = self._flags.get(ci, _CL_FREE)
            # cluster_is_usable: not full, and not freed meanwhile (a free cluster has no swap table).
            if flag in (_CL_NONE, _CL_NONFULL, _CL_FRAG):
                found = self._scan_cluster(ci, offset)
                if found:
                    return found
        while self._nonfull:  # new_cluster: the nonfull list, every cluster on it if need be
            found = self._isolate(next(iter(self._nonfull)))
            if found:
                return found
        head = self._free_head()
        if head >= 0:
            return self._isolate(head)
        while self._frag:  # only nearly full swap gets here
            found = self._isolate(next(iter(self._frag)))
            if found:
                return found
        return 0

    def _free_head(self) -> int:
        """The first cluster of the free list: an untouched one (lowest index first), else the first freed."""
        flags, freed, n = self._flags, self._freed, self._nclusters
        while self._untouched < n and (
            flags.get(self._untouched, _CL_FREE) != _CL_FREE or self._untouched in freed
        ):
            self._untouched += 1  # used already (the header's, a partial last cluster), or freed since
        if self._untouched < n:
            return self._untouched
        return next(iter(freed), -1)

    def _cluster_free(self, offset: int) -> None:
        """mm/swapfile.c: swap_entries_free: the slot is free; its cluster goes to the nonfull or free list."""
        ci = offset // SWAPFILE_CLUSTER
        self._map[ci][offset - ci * SWAPFILE_CLUSTER] = 0
        self._count[ci] -= 1
        if not self._count[ci]:
            self._move(ci, _CL_FREE)  # free_cluster
        elif self._flags[ci] != _CL_NONFULL:
            self._move(ci, _CL_NONFULL)  # partial_free_cluster

    # ------------------------------------------------------------- the API
    def alloc(self) -> int:
        """A free slot, or -1 when swap is full."""
        if self.sequential:
            offset = self._cluster_alloc()
            if not offset:
                return -1
            slot = offset - 1
        elif self._free:
            slot = self._free.pop()
        elif self._next < self.nslots:
            slot = self._next
            self._next += 1
        else:
            return -1
        self.used += 1
        if self.used > self.used_peak:
            self.used_peak = self.used
        return slot

    def release(self, slot: int) -> None:
        if self.sequential:
            self._cluster_free(slot + 1)
            owner = self.owner.pop(slot, None)
            if owner is not None and owner[0].memcg is not None:
                owner[0].memcg.swap -= 1  # mem_cgroup_uncharge_swap
            self.shadow.pop(slot, None)
        else:
            self._free.append(slot)
        if self.zeromap and slot in self.zeromap:
            self.zeromap.discard(slot)  # swap_zeromap: nothing of it was stored
        elif self.zram is not None:
            self.zram.drop()
        self.used -= 1

    @property
    def full(self) -> bool:
        if self.sequential:
            return self.used >= self.usable
        return not self._free and self._next >= self.nslots


class SwapCache:
    """Frames whose page still has a valid copy in a swap slot (mm/swap_state.c's swap cache).

    A page read back from swap keeps its slot while it stays clean, so that
    evicting it again costs no write (``add_to_swap`` is skipped: the copy on
    the device is still right); the first write to it makes the copy stale
    and frees the slot (``folio_free_swap`` after ``do_wp_page``/
    ``do_swap_page`` with a write). Only such pages have an entry, so the
    cache costs memory in proportion to them.

    Linux's path keeps more in it: a page that is not mapped at all (read
    ahead, or written out and waiting to be freed) is found by its slot
    (``frame_of``), so that a fault on it is minor; a slot whose page left
    memory keeps that page's shadow entry (in ``SwapSpace``);
    ``readahead`` is PG_readahead (brought in by readahead, not yet used)
    and ``reading`` the completion time of a read still in flight (the page
    is locked until then).
    """

    __slots__ = ("frame_of", "readahead", "reading", "slot_of")

    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}  # frame -> slot
        self.frame_of: dict[int, int] = {}  # slot -> frame
        self.readahead: set[int] = set()  # frames
        self.reading: dict[int, int] = {}  # frame -> when its read completes

    def add(self, frame: int, slot: int) -> None:
        self.slot_of[frame] = slot
        self.frame_of[slot] = frame

    def take(self, frame: int) -> int:
        """Drop ``frame``'s entry; its slot, or -1 when it had none."""
        slot = self.slot_of.pop(frame, -1)
        if slot >= 0:
            del self.frame_of[slot]
        return slot

    def __len__(self) -> int:
        return len(self.slot_of)
