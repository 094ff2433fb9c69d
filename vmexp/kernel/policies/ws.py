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

One departure, for speed: overcommitted memory is exactly when a run asks
for a victim on every reference, and a full turn per fault made a thrashing
run cost milliseconds per fault. After a fruitless turn, no page can leave
the window before the oldest last-use time plus tau (last-use times only
grow), so until then the hand does not sweep again: the victim is taken
from the oldest end, skipping (and refreshing) pages whose accessed bit is
set. The victim is the page a turn would have chosen; what is skipped is
the clearing and refreshing of accessed bits on the rest of the ring, so a
page used during that quiet period has its last-use time taken later, when
it is next examined.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from vmexp.fields import duration
from vmexp.kernel.policies.base import FrameView, register
from vmexp.kernel.policies.clock import Clock

__all__ = ["WorkingSet"]


@register
class WorkingSet(Clock):
    """The ring and hand of ``Clock`` (inherited), plus last-use times kept in last-use order.

    Every update sets a last-use time to now, and the kernel's clock never
    goes back, so moving the frame to the end of an ``OrderedDict`` keeps the
    times sorted: the oldest page is its first key, in O(1). A sweep still
    costs one step per frame passed, and frames inside the window are passed
    without changing state, so one call can take O(n); the quiet period
    after a fruitless turn (module docstring) keeps that from recurring on
    every fault.
    """

    name = "ws"

    @dataclasses.dataclass
    class Params(Clock.Params):
        """The window is simulated time, not a count of references."""

        tau: int = duration("10ms", "the working-set window: a page unused this long has left it", lo=1)

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        self._tau = params.tau
        # Invariants: _last has the ring's keys, in non-decreasing order of
        # value; before _quiet_until no page is tau old.
        self._last: OrderedDict[int, int] = OrderedDict()
        self._quiet_until = -1

    def inserted(self, frame: int) -> None:
        # A new key goes to the end, which is right: now is the latest time.
        self._last[frame] = self.view.now()
        super().inserted(frame)

    def removed(self, frame: int) -> None:
        del self._last[frame]
        super().removed(frame)

    def victim(self) -> int:
        frame = self._hand
        if frame < 0:
            raise LookupError("policy ws: no frame to evict")
        now = self.view.now()
        tau = self._tau
        young = self.view.test_and_clear_young
        last = self._last
        refresh = last.move_to_end
        if now < self._quiet_until:
            # No page is out of the window: the oldest page not used since
            # its last refresh. Each skip consumes an accessed bit, so after
            # one pass over the pages every bit is clear and the loop ends.
            for _ in range(len(last) + 1):
                frame = next(iter(last))
                if not young(frame):
                    self._hand = frame
                    return frame
                last[frame] = now
                refresh(frame)
            raise RuntimeError("policy ws: accessed bits stayed set (test_and_clear_young)")
        nxt = self._next
        for _ in range(len(nxt)):
            if young(frame):
                last[frame] = now
                refresh(frame)
            elif now - last[frame] >= tau:
                self._hand = frame
                return frame
            frame = nxt[frame]
        # A fruitless turn: the oldest goes (ties: refreshed first, which for a
        # ring of set bits is where the hand started, as in clock).
        oldest = next(iter(last))
        self._quiet_until = last[oldest] + tau
        self._hand = oldest
        return oldest
