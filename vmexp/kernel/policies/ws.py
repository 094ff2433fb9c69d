"""Working set, WSClock style: evict a page that has left its process's working set.

Denning's working set W(t, tau) of a process is the set of pages it
referenced in the last tau of its own *virtual* time, the CPU time it has
used: a process that waits (for the disk, for its think time, for the CPU)
does not age its pages, so its working set is still there when it runs
again. WSClock (Carr and Hennessy, 1981) approximates it with the clock
ring and the accessed bit: each frame keeps the owner's virtual time of its
last use; the hand sweeps, and

- a frame whose accessed bit is set was used since the last sweep: its
  last-use time becomes the owner's virtual time now and it survives (the
  bit is cleared);
- a frame its owner has not used for tau or longer of the owner's virtual
  time is out of the working set: it is the victim;
- otherwise the frame is in its owner's working set and the hand moves on.

When a whole turn finds no page out of its working set, every resident page
is in use and memory is overcommitted; the page with the largest age (its
owner's virtual time since its last use) is evicted. (WSClock as published
also prefers clean pages, scheduling writes for dirty ones and sweeping on;
here the kernel owns writeback, so the policy does not.)

Why virtual time, and why it matters. Measured in the machine's time, as an
earlier version did, this policy chose the same victims as ``clock`` on every
multi-process run tried (the ``policies`` preset gave 3,594 major faults for
both, for any tau from 100 us to 3 s): the hand meets the pages in the order
of their last-use times (insertion and refresh both put a page just behind
the hand), so the first page whose bit is clear is also the oldest one, and
it is the victim of both policies whether or not it has left the window;
and the first eviction, with every bit set by the faults that filled RAM,
is the same full turn in both. In virtual time, ages are no longer ordered
around the ring: the pages of a process that has not run keep their age,
and WS protects them where clock does not.

One departure, for speed: overcommitted memory is exactly when a run asks
for a victim on every reference, and a full turn per fault made a thrashing
run cost milliseconds per fault. After a fruitless turn, no page of a
process can leave the window before that process's virtual time reaches
its oldest page's last use plus tau (last-use times only grow), so until one
does the hand does not sweep again: the victim is the page with the largest
age, skipping (and refreshing) pages whose accessed bit is set. The victim is
the page a turn would have chosen; what is skipped is the clearing and
refreshing of accessed bits on the rest of the ring, so a page used during
that quiet period has its last-use time taken later, when it is next
examined.
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
        # Invariants: _last holds the ring's frames -> their owner's virtual
        # time of last use; _by_owner[pid] holds pid's frames, in
        # non-decreasing order of _last (a process's virtual time never goes
        # back, so refreshing = moving to the end keeps it sorted). _quiet
        # (after a fruitless turn) maps each owner to the virtual time before
        # which none of its pages can leave the window.
        self._last: dict[int, int] = {}
        self._owner: dict[int, int] = {}
        self._by_owner: dict[int, OrderedDict[int, None]] = {}
        self._quiet: dict[int, int] | None = None

    def inserted(self, frame: int) -> None:
        # A new key goes to the end of its owner's order, which is right: its
        # owner's virtual time now is the latest of that owner's.
        owner = self.view.owner(frame)
        self._last[frame] = self.view.vtime(frame)
        self._owner[frame] = owner
        self._by_owner.setdefault(owner, OrderedDict())[frame] = None
        super().inserted(frame)

    def removed(self, frame: int) -> None:
        del self._last[frame]
        owner = self._owner.pop(frame)
        mine = self._by_owner[owner]
        del mine[frame]
        if not mine:
            del self._by_owner[owner]
        super().removed(frame)

    def _refresh(self, frame: int) -> None:
        self._last[frame] = self.view.vtime(frame)
        self._by_owner[self._owner[frame]].move_to_end(frame)

    def _oldest(self) -> int:
        """The page with the largest age (owner's virtual time since its last use); ties: first owner."""
        best, best_age = -1, -1
        vtime, last = self.view.vtime, self._last
        for mine in self._by_owner.values():
            frame = next(iter(mine))
            age = vtime(frame) - last[frame]
            if age > best_age:
                best, best_age = frame, age
        return best

    def _still_quiet(self) -> bool:
        quiet = self._quiet
        if quiet is None:
            return False
        for owner, until in quiet.items():
            mine = self._by_owner.get(owner)
            if mine is not None and self.view.vtime(next(iter(mine))) >= until:
                return False
        return True

    def victim(self) -> int:
        frame = self._hand
        if frame < 0:
            raise LookupError("policy ws: no frame to evict")
        tau = self._tau
        young = self.view.test_and_clear_young
        if self._still_quiet():
            # No page is out of its window: the oldest page not used since
            # its last refresh. Each skip consumes an accessed bit, so after
            # one pass over the pages every bit is clear and the loop ends.
            for _ in range(len(self._last) + 1):
                frame = self._oldest()
                if not young(frame):
                    self._hand = frame
                    return frame
                self._refresh(frame)
            raise RuntimeError("policy ws: accessed bits stayed set (test_and_clear_young)")
        self._quiet = None
        vtime, last = self.view.vtime, self._last
        nxt = self._next
        for _ in range(len(nxt)):
            if young(frame):
                self._refresh(frame)
            elif vtime(frame) - last[frame] >= tau:
                self._hand = frame
                return frame
            frame = nxt[frame]
        # A fruitless turn: the oldest goes (ties: refreshed first, which for a
        # ring of set bits is where the hand started, as in clock).
        self._quiet = {owner: last[next(iter(mine))] + tau for owner, mine in self._by_owner.items()}
        oldest = self._oldest()
        self._hand = oldest
        return oldest
