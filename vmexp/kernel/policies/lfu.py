"""LFU: evict the resident page with the fewest references since it was brought in.

Counts start at 1 (the faulting reference) and are forgotten when the page
leaves memory. Ties go to the page brought in earliest, so with no repeated
references LFU is FIFO. Its known weakness, which the tests show, is that a
page that was hot once keeps its count and stays long after it went cold.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["LFU"]


@register
class LFU(Policy):
    """Counts in a dict, bumped by ``on_hit``; a min-heap of (count, arrival, frame) finds the victim.

    The heap is updated lazily because ``on_hit`` runs on every reference and
    must stay one dict increment. Counts only grow, so an entry's count is a
    lower bound of the frame's true count: ``victim`` pops an entry whose
    count is out of date and pushes it back with the true one, and the first
    entry found up to date is the true minimum (every other entry's true key
    is at least its heap key, which is at least this one's). Each re-push is
    paid for by at least one hit, so the cost is amortised O(log n) per hit
    at worst, and nothing at all on a hit itself.

    An entry whose arrival number is not the frame's current one belongs to
    a page that has left; it is dropped when it reaches the top, and the heap
    is rebuilt when such entries make up more than half of it, which keeps it
    O(n) in size for amortised O(1) per removal.
    """

    name = "lfu"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """LFU has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariants: _count and _arrival have the same keys, the tracked
        # frames; every tracked frame has exactly one heap entry carrying its
        # current arrival number, whose count is <= _count[frame].
        self._count: dict[int, int] = {}
        self._arrival: dict[int, int] = {}
        self._heap: list[tuple[int, int, int]] = []
        self._arrivals = itertools.count()
        count = self._count

        def on_hit(frame: int) -> None:
            count[frame] += 1

        self.on_hit = on_hit

    def inserted(self, frame: int) -> None:
        arrival = next(self._arrivals)
        self._count[frame] = 1
        self._arrival[frame] = arrival
        heapq.heappush(self._heap, (1, arrival, frame))

    def removed(self, frame: int) -> None:
        del self._count[frame]
        del self._arrival[frame]
        if len(self._heap) > 2 * len(self._count) + 64:
            self._heap = [(c, self._arrival[f], f) for f, c in self._count.items()]
            heapq.heapify(self._heap)

    def victim(self) -> int:
        heap, count, arrival = self._heap, self._count, self._arrival
        while heap:
            key, when, frame = heap[0]
            if arrival.get(frame) != when:
                heapq.heappop(heap)
                continue
            true = count[frame]
            if true == key:
                return frame
            heapq.heapreplace(heap, (true, when, frame))
        raise LookupError("policy lfu: no frame to evict")

    def __len__(self) -> int:
        return len(self._count)
