"""Swap: the space (slots), the device (a FIFO server, or zram) and the swap cache.

The device is a single FIFO server whose completion times are known on arrival.

Every request (write a dirty page out, read a page back in) takes the same
service time: the device's latency plus one page at its bandwidth. Because
the queue is first-come first-served and the service time is known when a
request arrives, its completion time is ``max(arrival, busy_until) + service``
— exactly what a SimPy ``Resource(capacity=1)`` would produce, but with no
events of its own: the process that must wait (a major fault) sleeps until
that time with a single timeout, and an asynchronous write-back costs nothing
but device time. This keeps SimPy events to one per major fault, as
the engine's performance design (vmexp.sim) asks. Several pages read or written together
(swap readahead's cluster, reclaim's plugged writes) are one request: the
latency once, the pages at the bandwidth.

zram (drivers/block/zram) is no queue at all: it compresses and
decompresses on the CPU of the process that reads or writes, synchronously
(``SWP_SYNCHRONOUS_IO``), so its cost is CPU time, and the pages it stores
take machine RAM at its compression ratio (its zsmalloc pool, which is not
charged to any memory cgroup).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.physmem import PhysMem

__all__ = ["SwapCache", "SwapDevice", "SwapSpace", "Zram"]

READ, WRITE = 0, 1
NR_REQUESTS = 128  # include/linux/blkdev.h: BLKDEV_DEFAULT_RQ, the requests a queue holds at once


class SwapDevice:
    """FIFO device with a busy horizon; counts busy time for utilisation.

    Requests arrive in non-decreasing order of service start (FIFO), so the
    device's busy time is a sequence of disjoint intervals; ``busy_by``
    answers exactly how much of it lies before a time, gaps included, so a
    utilisation sampled over any interval lies in [0, 1]. ``inflight`` keeps
    the completion times and kinds of the requests not yet done (pruned as
    new ones arrive), so that the invariant checker can tell whose write a
    busy device is serving.
    """

    __slots__ = (
        "_done_ns",
        "_spans",
        "busy_ns",
        "busy_until",
        "inflight",
        "page_ns",
        "rotational",
        "service",
        "sync",
    )

    def __init__(self, latency_ns: int, bandwidth: int, page_size: int, rotational: bool = False) -> None:
        self.page_ns = (page_size * 1_000_000_000 + bandwidth - 1) // bandwidth
        self.service = latency_ns + self.page_ns
        self.busy_until = 0
        self.busy_ns = 0
        self.rotational = rotational  # blk queue flag: cluster readahead instead of VMA readahead
        self.sync = False
        self.inflight: deque[tuple[int, int]] = deque()  # (done, READ or WRITE), in completion order
        # Busy spans [start, end) not yet wholly before the last busy_by time,
        # contiguous ones merged; _done_ns is the length of those dropped.
        self._spans: deque[list[int]] = deque()
        self._done_ns = 0

    def submit(self, now: int, kind: int = WRITE) -> int:
        """Queue one page transfer arriving at ``now``; returns when it completes."""
        return self.submit_pages(now, 1, kind)

    def submit_pages(self, now: int, npages: int, kind: int) -> int:
        """One request of ``npages`` contiguous pages (a readahead cluster, a plugged batch of writes)."""
        service = self.service + (npages - 1) * self.page_ns
        start = now if now > self.busy_until else self.busy_until
        done = start + service
        spans = self._spans
        if spans and spans[-1][1] == start:
            spans[-1][1] = done
        else:
            spans.append([start, done])
        self.busy_until = done
        self.busy_ns += service
        q = self.inflight  # the requests not yet done, for room_at and the checker
        while q and q[0][0] <= now:
            q.popleft()
        q.append((done, kind))
        return done

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


class SwapSpace:
    """Swap slots, handed out lazily so that a huge swap costs nothing until used.

    The textbook pager reuses the slot freed last (a stack). Linux's path
    (``sequential``) hands out slots in increasing order, as the swap
    allocator does from its per-CPU cluster (mm/swapfile.c:
    cluster_alloc_swap_entry), and reuses freed slots lowest first only when
    the device has been used to its end: pages evicted together get
    neighbouring slots, which is what cluster readahead reads back.
    ``owner`` maps a slot to the page it holds (Linux finds it through the
    swap cache and the page tables; readahead needs it to place a page), and
    ``shadow`` holds the shadow entry of a page that left memory
    (mm/workingset.c; Linux keeps it in the slot's swap-cache entry). Both
    go with the slot. With zram each slot in use is a page in its pool.
    """

    __slots__ = ("_free", "_next", "nslots", "owner", "sequential", "shadow", "used", "used_peak", "zram")

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

    def alloc(self) -> int:
        """A free slot, or -1 when swap is full."""
        if self.sequential:
            if self._next < self.nslots:
                slot = self._next
                self._next += 1
            elif self._free:
                slot = heapq.heappop(self._free)
            else:
                return -1
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
            heapq.heappush(self._free, slot)
            self.owner.pop(slot, None)
            self.shadow.pop(slot, None)
        else:
            self._free.append(slot)
        if self.zram is not None:
            self.zram.drop()
        self.used -= 1

    @property
    def full(self) -> bool:
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
