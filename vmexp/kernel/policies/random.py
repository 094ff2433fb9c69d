"""Random replacement: evict a resident page chosen uniformly at random.

The baseline every real policy must beat, and the policy of some hardware
caches (no state to update on a hit). Deterministic for a seed: it draws only
from the ``numpy.random.Generator`` the kernel hands it, so the same config
and seed evict the same pages.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["Random"]

# Draws are taken from the generator in blocks, because one ``integers`` call
# costs microseconds and a thrashing run asks for a victim on every reference.
_BLOCK = 1024
# Draws below 2**62 reduced modulo the number of frames: the bias is below
# n / 2**62, far under anything a run could measure, and the index is always
# in range, which a scaled float is not guaranteed to be.
_DRAW_LIMIT = 1 << 62


@register
class Random(Policy):
    """Frames in a list with a frame -> index map, so that picking and removing are O(1).

    Removal moves the last frame into the hole, so the list order depends
    only on the order of inserts and removals, which the kernel makes
    deterministic; with the seeded draws, the choice is reproducible.
    """

    name = "random"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """Random has no parameters; its seed comes from the run's seed."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariant: _index[f] == i exactly when _frames[i] == f.
        self._frames: list[int] = []
        self._index: dict[int, int] = {}
        self._draws: list[int] = []
        self._next_draw = 0

    def inserted(self, frame: int) -> None:
        self._index[frame] = len(self._frames)
        self._frames.append(frame)

    def removed(self, frame: int) -> None:
        i = self._index.pop(frame)
        last = self._frames.pop()
        if last != frame:
            self._frames[i] = last
            self._index[last] = i

    def victim(self) -> int:
        n = len(self._frames)
        if n == 0:
            raise LookupError("policy random: no frame to evict")
        if self._next_draw == len(self._draws):
            self._draws = self.rng.integers(0, _DRAW_LIMIT, size=_BLOCK, dtype=np.int64).tolist()
            self._next_draw = 0
        draw = self._draws[self._next_draw]
        self._next_draw += 1
        return self._frames[draw % n]

    def __len__(self) -> int:
        return len(self._frames)
