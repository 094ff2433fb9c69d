"""Swap: the space (slots), the device (a FIFO server) and the swap cache.

The device is a single FIFO server whose completion times are known on arrival.

Every request (write a dirty page out, read a page back in) takes the same
service time: the device's latency plus one page at its bandwidth. Because
the queue is first-come first-served and the service time is known when a
request arrives, its completion time is ``max(arrival, busy_until) + service``
— exactly what a SimPy ``Resource(capacity=1)`` would produce, but with no
events of its own: the process that must wait (a major fault) sleeps until
that time with a single timeout, and an asynchronous write-back costs nothing
but device time. This keeps SimPy events to one per major fault, as
the engine's performance design (vmexp.sim) asks.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SwapCache", "SwapDevice", "SwapSpace"]


class SwapDevice:
    """FIFO device with a busy horizon; counts busy time for utilisation.

    Requests arrive in non-decreasing order of service start (FIFO), so the
    device's busy time is a sequence of disjoint intervals; ``busy_by``
    answers exactly how much of it lies before a time, gaps included, so a
    utilisation sampled over any interval lies in [0, 1].
    """

    __slots__ = ("_done_ns", "_spans", "busy_ns", "busy_until", "service")

    def __init__(self, latency_ns: int, bandwidth: int, page_size: int) -> None:
        self.service = latency_ns + (page_size * 1_000_000_000 + bandwidth - 1) // bandwidth
        self.busy_until = 0
        self.busy_ns = 0
        # Busy spans [start, end) not yet wholly before the last busy_by time,
        # contiguous ones merged; _done_ns is the length of those dropped.
        self._spans: deque[list[int]] = deque()
        self._done_ns = 0

    def submit(self, now: int) -> int:
        """Queue one page transfer arriving at ``now``; returns when it completes."""
        start = now if now > self.busy_until else self.busy_until
        done = start + self.service
        spans = self._spans
        if spans and spans[-1][1] == start:
            spans[-1][1] = done
        else:
            spans.append([start, done])
        self.busy_until = done
        self.busy_ns += self.service
        return done

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


class SwapSpace:
    """Swap slots, handed out lazily so that a huge swap costs nothing until used."""

    __slots__ = ("_free", "_next", "nslots", "used", "used_peak")

    def __init__(self, nslots: int) -> None:
        self.nslots = nslots
        self._free: list[int] = []
        self._next = 0
        self.used = 0
        self.used_peak = 0

    def alloc(self) -> int:
        """A free slot, or -1 when swap is full."""
        if self._free:
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
        self._free.append(slot)
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
    """

    __slots__ = ("slot_of",)

    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}  # frame -> slot

    def add(self, frame: int, slot: int) -> None:
        self.slot_of[frame] = slot

    def take(self, frame: int) -> int:
        """Drop ``frame``'s entry; its slot, or -1 when it had none."""
        return self.slot_of.pop(frame, -1)

    def __len__(self) -> int:
        return len(self.slot_of)
