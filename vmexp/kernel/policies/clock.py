"""Clock (second chance): FIFO that spares pages referenced since the hand last passed.

The frames form a ring with a hand. To find a victim the hand sweeps: a frame
whose accessed bit is set has the bit cleared and is passed over (its second
chance); the first frame found with the bit clear is the victim, and the new
page takes its place in the ring, so the hand next looks at the frame after
it. This is the second-chance algorithm of Silberschatz et al., Operating
System Concepts.

The policy reads the accessed bit through ``FrameView.test_and_clear_young``
and never assumes its value: the MMU sets it on every reference, the
faulting one included, so a page just brought in already has it set and
survives the next sweep once (with 3 frames and every bit set, the hand goes
round the whole ring and evicts where it started, exactly as FIFO would).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["Clock"]


@register
class Clock(Policy):
    """The ring is a circular doubly linked list kept in two dicts.

    A linked ring rather than a fixed array of slots because the kernel can
    remove any frame at any time (munmap, process exit), which would leave
    holes in an array; relinking is O(1). A new page is linked in just
    behind the hand, which is the victim's old place in the ring, so with a
    fixed set of frames the order is exactly the textbook's slot order.
    """

    name = "clock"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """Clock has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariants: _next and _prev hold exactly the tracked frames and are
        # inverse permutations forming one cycle; _hand is a tracked frame, or
        # -1 when nothing is tracked (frames are non-negative).
        self._next: dict[int, int] = {}
        self._prev: dict[int, int] = {}
        self._hand = -1

    def inserted(self, frame: int) -> None:
        hand = self._hand
        if hand < 0:
            self._next[frame] = frame
            self._prev[frame] = frame
            self._hand = frame
            return
        prev = self._prev[hand]
        self._next[prev] = frame
        self._prev[frame] = prev
        self._next[frame] = hand
        self._prev[hand] = frame

    def removed(self, frame: int) -> None:
        nxt = self._next.pop(frame)
        prev = self._prev.pop(frame)
        if nxt == frame:
            self._hand = -1
            return
        self._next[prev] = nxt
        self._prev[nxt] = prev
        if self._hand == frame:
            # The hand moves on to the next frame, as it does past a victim.
            self._hand = nxt

    def victim(self) -> int:
        """Sweep from the hand; the hand stays on the victim until ``removed`` moves it on.

        Leaving the hand on the victim makes a repeated call (the kernel
        asking again before it evicts) return the same frame. One full turn
        clears every bit, so the sweep ends within len + 1 steps; a view
        whose bits do not clear is a kernel bug and is reported as one.
        """
        frame = self._hand
        if frame < 0:
            raise LookupError("policy clock: no frame to evict")
        young = self.view.test_and_clear_young
        nxt = self._next
        for _ in range(len(nxt) + 1):
            if not young(frame):
                self._hand = frame
                return frame
            frame = nxt[frame]
        raise RuntimeError("policy clock: accessed bits stayed set after a full sweep (test_and_clear_young)")

    def __len__(self) -> int:
        return len(self._next)
