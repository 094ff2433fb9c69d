"""Exact LRU: evict the page whose last reference is the oldest.

Real MMUs cannot afford this (it needs work on every reference), which is
why Linux approximates it with accessed bits (see ``clock`` and ``lru2q``);
the simulator can, and exact LRU is the textbook yardstick: 12 faults on
Silberschatz's string with 3 frames, and a stack algorithm, so more frames
never cost more faults.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["LRU"]


@register
class LRU(Policy):
    """Frames ordered from least to most recently used.

    ``on_hit`` is the ``OrderedDict``'s own bound ``move_to_end``: a C call
    that relinks one node, with no Python frame per reference, because the
    kernel calls it on every hit.
    """

    name = "lru"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """LRU has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariant: keys are exactly the tracked frames, least recently used
        # first. The dict object is never replaced, since on_hit is bound to it.
        self._order: OrderedDict[int, None] = OrderedDict()
        self.on_hit = self._order.move_to_end

    def inserted(self, frame: int) -> None:
        # The faulting access is the page's most recent reference.
        self._order[frame] = None

    def removed(self, frame: int) -> None:
        del self._order[frame]

    def victim(self) -> int:
        try:
            return next(iter(self._order))
        except StopIteration:
            raise LookupError("policy lru: no frame to evict") from None

    def __len__(self) -> int:
        return len(self._order)
