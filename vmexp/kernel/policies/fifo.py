"""FIFO: evict the page that has been resident the longest.

FIFO ignores references entirely, which is what makes it the reference point
for Belady's anomaly: with more frames it can fault more
(1,2,3,4,1,2,5,1,2,3,4,5 faults 9 times with 3 frames, 10 with 4).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["FIFO"]


@register
class FIFO(Policy):
    """Frames in arrival order; the victim is the oldest arrival.

    An ``OrderedDict`` rather than a ``dict``: finding the first key of a
    plain dict after many deletions at its front walks over the deleted
    slots, so a FIFO built on one degrades to O(n) per eviction, while
    ``OrderedDict`` keeps a linked list and answers in O(1).
    """

    name = "fifo"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """FIFO has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariant: keys are exactly the tracked frames, oldest arrival first.
        self._order: OrderedDict[int, None] = OrderedDict()

    def inserted(self, frame: int) -> None:
        self._order[frame] = None

    def removed(self, frame: int) -> None:
        del self._order[frame]

    def victim(self) -> int:
        try:
            return next(iter(self._order))
        except StopIteration:
            raise LookupError(f"policy {self.name}: no frame to evict") from None

    def __len__(self) -> int:
        return len(self._order)
