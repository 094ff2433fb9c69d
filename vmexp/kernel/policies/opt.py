"""OPT (Belady's MIN): evict the page whose next use lies farthest in the future.

No real system can run it, because it needs the future; the simulator can
when the workload is a fixed reference string, and then OPT is the lower
bound every other policy is measured against (9 faults on Silberschatz's
string with 3 frames, against 12 for LRU and 15 for FIFO).

The kernel gives the future with ``set_future`` before the first reference,
then makes exactly one call per reference, in order: ``on_hit`` when the page
is resident, ``inserted`` when it was just faulted in. So the policy keeps its
own position in the string and never needs to be told where it is.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from array import array
from collections.abc import Sequence

import numpy as np

from vmexp.kernel.policies.base import FrameView, Policy, PolicyError, register

__all__ = ["OPT", "next_uses"]

_NO_FUTURE = (
    "policy opt needs the future: it runs only on a fixed page-reference string "
    "(workload=pageref or a trace), and the kernel must call set_future first"
)


def next_uses(vpns: Sequence[int]) -> array[int]:
    """For each position i, the next position j > i referencing the same page, or len(vpns) if none.

    Vectorised because a trace has millions of references: a stable sort by
    page puts each page's references together in time order, so the next use
    of a reference is simply the next element of its group. Stored as an
    ``array('q')`` (8 bytes a reference) rather than a list of ints (about 36).
    """
    n = len(vpns)
    pages = np.asarray(vpns, dtype=np.int64)
    order = np.argsort(pages, kind="stable")
    nxt = np.full(n, n, dtype=np.int64)
    if n > 1:
        same = pages[order[1:]] == pages[order[:-1]]
        nxt[order[:-1][same]] = order[1:][same]
    out = array("q")
    out.frombytes(nxt.tobytes())
    return out


@register
class OPT(Policy):
    """A max-heap of (-next use, frame), updated lazily.

    ``on_hit`` only records the frame's new next use in ``_pending`` (one
    array read and one dict store); ``victim`` first pushes the pending
    entries, then drops entries that disagree with ``_next_use`` (pages that
    left, or next uses since overtaken). An up-to-date entry at the top is
    the true maximum because every tracked frame has an up-to-date entry.
    A page never used again has next use len(future), so it goes first.
    """

    name = "opt"
    needs_future = True

    @dataclasses.dataclass
    class Params(Policy.Params):
        """OPT has no parameters."""

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        # Invariants: _next_use holds the tracked frames that have been
        # folded into the heap; _pending the tracked frames whose next use
        # changed since; together they cover every tracked frame, and every
        # frame in _next_use has a heap entry (-_next_use[f], f).
        # A frame can be in both (folded, then hit again), hence _size.
        self._next_use: dict[int, int] = {}
        self._pending: dict[int, int] = {}
        self._size = 0
        self._heap: list[tuple[int, int]] = []
        self._future: array[int] = array("q")
        self._next: array[int] = array("q")
        self._has_future = False
        # One shared position counter: each reference draws the next position.
        self._tick = itertools.count().__next__
        nxt, pending, tick = self._next, self._pending, self._tick

        def on_hit(frame: int) -> None:
            try:
                pending[frame] = nxt[tick()]
            except IndexError:
                raise self._beyond_future() from None

        self.on_hit = on_hit

    def set_future(self, vpns: Sequence[int]) -> None:
        """The whole page-reference string, as the page numbers ``FrameView.vpn`` reports."""
        if self._has_future:
            raise PolicyError("policy opt: set_future called twice; a run has one future")
        self._future.frombytes(np.asarray(vpns, dtype=np.int64).tobytes())
        # Filled in place: on_hit holds a reference to this array.
        self._next.extend(next_uses(vpns))
        self._has_future = True

    def _beyond_future(self) -> PolicyError:
        if not self._has_future:
            return PolicyError(_NO_FUTURE)
        return PolicyError(
            f"policy opt: more references than the {len(self._future)} given to set_future; "
            "the kernel must report each reference of the string exactly once"
        )

    def inserted(self, frame: int) -> None:
        """Also checks that the faulting page is the one the future expects here.

        A fault is rare enough to afford the check, and a kernel that skips a
        reference (or counts one twice) would otherwise give wrong answers
        silently.
        """
        try:
            pos = self._tick()
            nu = self._next[pos]
        except IndexError:
            raise self._beyond_future() from None
        vpn = self.view.vpn(frame)
        if vpn != self._future[pos]:
            raise PolicyError(
                f"policy opt: reference #{pos} faulted in page {vpn:#x} but the future has "
                f"page {self._future[pos]:#x} there; the kernel must report each reference exactly once"
            )
        self._pending[frame] = nu
        self._size += 1

    def removed(self, frame: int) -> None:
        folded = self._next_use.pop(frame, None)
        if self._pending.pop(frame, None) is None and folded is None:
            raise KeyError(frame)
        self._size -= 1

    def victim(self) -> int:
        heap, next_use = self._heap, self._next_use
        if self._pending:
            for frame, nu in self._pending.items():
                next_use[frame] = nu
                heapq.heappush(heap, (-nu, frame))
            self._pending.clear()
        if len(heap) > 2 * len(next_use) + 64:
            heap[:] = [(-nu, f) for f, nu in next_use.items()]
            heapq.heapify(heap)
        while heap:
            neg, frame = heap[0]
            if next_use.get(frame) == -neg:
                return frame
            heapq.heappop(heap)
        if not self._has_future:
            raise PolicyError(_NO_FUTURE)
        raise LookupError("policy opt: no frame to evict")

    def __len__(self) -> int:
        return self._size
