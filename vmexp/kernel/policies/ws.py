"""Working set, WSClock style: evict a page that has left the working set.

Denning's working set W(t, tau) is the set of pages referenced in the last
tau of time; a page outside it is not expected back soon. WSClock (Carr and
Hennessy, 1981) approximates it with the clock ring and the accessed bit:
each frame keeps a last-use time; the hand sweeps, and

- a frame whose accessed bit is set was used since the last sweep: its
  last-use time becomes now and it survives (the bit is cleared);
- a frame not used for tau or longer (now - last use >= tau) is out of the
  working set: it is the victim;
- otherwise the frame is in the working set and the hand moves on.

When a whole turn finds no page out of its working set, every resident page
is in use and memory is overcommitted; the page with the oldest last-use
time is evicted. (WSClock as published also prefers clean pages, scheduling
writes for dirty ones and sweeping on; here the kernel owns writeback, so
the policy does not.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, PolicyError, register
from vmexp.units import UnitError, parse_duration

__all__ = ["WorkingSet"]


@register
class WorkingSet(Policy):
    """The ring of ``clock`` plus a last-use time per frame.

    A sweep costs one step per frame passed, and frames inside the window
    are passed without changing state, so a call can take O(n) when most of
    memory is in use; that is WSClock's nature, and a sweep over n frames
    happens at most once per eviction.
    """

    name = "ws"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """The window is simulated time, not a count of references."""

        # Window tau: a page unused for this long has left the working set ("10ms", "500us", ...).
        tau: int | str = "10ms"

        def __post_init__(self) -> None:
            try:
                tau = parse_duration(self.tau)
            except UnitError as err:
                raise PolicyError(f"policy.tau: {err}") from None
            if tau <= 0:
                raise PolicyError(f"policy.tau: the window must be > 0, got {self.tau!r}")

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        self._tau = parse_duration(params.tau)
        # Invariants as in Clock: _next/_prev form one cycle over the tracked
        # frames, _hand is one of them or -1; _last has the same keys.
        self._next: dict[int, int] = {}
        self._prev: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._hand = -1

    def inserted(self, frame: int) -> None:
        self._last[frame] = self.view.now()
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
        del self._last[frame]
        nxt = self._next.pop(frame)
        prev = self._prev.pop(frame)
        if nxt == frame:
            self._hand = -1
            return
        self._next[prev] = nxt
        self._prev[nxt] = prev
        if self._hand == frame:
            self._hand = nxt

    def victim(self) -> int:
        frame = self._hand
        if frame < 0:
            raise LookupError("policy ws: no frame to evict")
        now = self.view.now()
        tau = self._tau
        young = self.view.test_and_clear_young
        nxt, last = self._next, self._last
        for _ in range(len(nxt)):
            if young(frame):
                last[frame] = now
            elif now - last[frame] >= tau:
                self._hand = frame
                return frame
            frame = nxt[frame]
        # Ties go to the frame whose page arrived first (dict order), so the
        # choice does not depend on where the hand happened to start.
        oldest = min(last, key=last.__getitem__)
        self._hand = oldest
        return oldest

    def __len__(self) -> int:
        return len(self._next)
