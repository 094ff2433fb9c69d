"""Exact LRU: evict the page whose last reference is the oldest.

Real MMUs cannot afford this (it needs work on every reference), which is
why Linux approximates it with accessed bits (see ``clock`` and ``lru2q``);
the simulator can, and exact LRU is the textbook yardstick: 12 faults on
Silberschatz's string with 3 frames, and a stack algorithm, so more frames
never cost more faults.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmexp.kernel.policies.base import FrameView, register
from vmexp.kernel.policies.fifo import FIFO

__all__ = ["LRU"]


@register
class LRU(FIFO):
    """FIFO's arrival list, reordered on every reference: least to most recently used.

    ``on_hit`` is the ``OrderedDict``'s own bound ``move_to_end``: a C call
    that relinks one node, with no Python frame per reference, because the
    kernel calls it on every hit. Insertion (the faulting access is the
    page's most recent reference), removal and the victim (the front) are
    FIFO's.
    """

    name = "lru"

    @dataclasses.dataclass
    class Params(FIFO.Params):
        """LRU has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # The dict object is never replaced, since on_hit is bound to it.
        self.on_hit = self._order.move_to_end
