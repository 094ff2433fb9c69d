"""Linux's two-list LRU for anonymous memory: an active and an inactive list.

This follows mm/vmscan.c since Linux 5.9 ("mm/vmscan: protect the workingset
on anonymous LRU"), the classic LRU without the multi-generational one
(CONFIG_LRU_GEN off), for anonymous pages, which are all the simulator has:

- A new page goes to the head of the inactive list
  (``lru_cache_add_inactive_or_unevictable``).
- Reclaim takes pages from the tail of the inactive list and asks
  ``page_check_references``: it reads and clears the accessed bits of the
  page's PTEs and clears the page's own ``PG_referenced`` flag, then

  * accessed and ``PG_referenced`` was set: the page has been used on two
    trips round the list, so it is activated (moved to the active head);
  * accessed but not ``PG_referenced``: every mapped page starts out with the
    accessed bit its instantiating fault set, so one bit proves nothing. The
    page gets ``PG_referenced`` and goes back to the inactive head for
    another trip ("we need to look twice");
  * not accessed: reclaimed (this is the victim).

  ``PG_referenced`` stays set on an activated page, so a page that is later
  deactivated and then used again is re-activated on its next check.
- ``inactive_is_low``: when ``inactive * ratio < active``,
  ``shrink_active_list`` moves pages from the active tail to the inactive
  head, clearing their accessed bits on the way (for anonymous pages a
  referenced page is deactivated all the same; only executable file pages
  are kept active). ``ratio`` is ``int_sqrt(10 * gb)`` where ``gb`` is the
  size of the two lists in GiB, or 1 below 1 GiB: the kernel's table gives
  1 at 10 MB and 100 MB, 3 at 1 GB, 10 at 10 GB, 31 at 100 GB, 101 at 1 TB.

Simplifications, each because the kernel's reason for the detail does not
exist here: Linux deactivates and reclaims in batches of SWAP_CLUSTER_MAX
(32) pages isolated from the lists, this model one page at a time, so the
lists hold the ratio exactly; refault ("workingset") detection, which can
activate a page straight away on swap-in, is not modelled; one lruvec (no
NUMA nodes, no memory cgroups).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from math import isqrt

import numpy as np

from vmexp.fields import integer, size
from vmexp.kernel.policies.base import FrameView, Policy, register

__all__ = ["LRU2Q", "inactive_ratio"]


def inactive_ratio(pages: int, page_size: int) -> int:
    """Linux's target active:inactive ratio for LRU lists holding ``pages`` pages.

    Scaling with the square root keeps the inactive list big enough to give
    each page a chance to be referenced again before it reaches the tail,
    without making a machine with a lot of memory scan gigabytes of it.
    """
    gb = (pages * page_size) >> 30
    return isqrt(10 * gb) if gb else 1


@register
class LRU2Q(Policy):
    """Both lists are ``OrderedDict``s whose first key is the tail (the oldest end).

    The kernel's head insertions become appends and its tail scans become
    ``next(iter(...))``, both O(1); ``removed`` is O(1) for a page on either
    list. Reclaim reads accessed bits only in ``victim``, so ``on_hit`` stays
    ``None`` and a hit costs nothing here, as in the kernel.
    """

    name = "lru2q"

    @dataclasses.dataclass
    class Params(Policy.Params):
        """Defaults reproduce the kernel: the ratio follows the lists' size in bytes."""

        inactive_ratio: int = integer(
            0, "0: Linux's int_sqrt(10 * GiB on the lists), 1 below 1 GiB; > 0: this ratio, fixed", lo=0
        )
        page_size: int = size(
            "4k", "bytes per page, to size the lists in GiB for the automatic ratio (follows page_size)", lo=1
        )

    def __init__(self, view: FrameView, params: Params, rng: np.random.Generator) -> None:
        super().__init__(view, params, rng)
        self._fixed_ratio = params.inactive_ratio
        self._page_size = params.page_size
        # Invariants: every tracked frame is on exactly one list; _referenced
        # (the PG_referenced flags) is a subset of the tracked frames.
        self._inactive: OrderedDict[int, None] = OrderedDict()
        self._active: OrderedDict[int, None] = OrderedDict()
        self._referenced: set[int] = set()

    def inserted(self, frame: int) -> None:
        self._inactive[frame] = None

    def removed(self, frame: int) -> None:
        if frame in self._inactive:
            del self._inactive[frame]
        else:
            del self._active[frame]
        self._referenced.discard(frame)

    def victim(self) -> int:
        """Age the active list while the inactive one is low, then check pages from the inactive tail.

        The loop ends: a check either returns the page, or clears its
        accessed bit and sets its PG_referenced (a second check of it then
        activates it or returns it), and a deactivation clears the bit too,
        so without new references every page is checked at most three
        times. The bound turns a view whose bits never clear into an error.
        """
        inactive, active, referenced = self._inactive, self._active, self._referenced
        n_inactive, n_active = len(inactive), len(active)
        total = n_inactive + n_active
        if total == 0:
            raise LookupError("policy lru2q: no frame to evict")
        ratio = self._fixed_ratio or inactive_ratio(total, self._page_size)
        young = self.view.test_and_clear_young
        for _ in range(3 * total + 1):
            while n_inactive * ratio < n_active:
                frame, _ = active.popitem(last=False)
                young(frame)
                inactive[frame] = None
                n_inactive += 1
                n_active -= 1
            frame = next(iter(inactive))
            if not young(frame):
                referenced.discard(frame)
                return frame
            if frame in referenced:
                del inactive[frame]
                active[frame] = None
                n_inactive -= 1
                n_active += 1
            else:
                referenced.add(frame)
                inactive.move_to_end(frame)
        raise RuntimeError("policy lru2q: accessed bits stayed set during reclaim (test_and_clear_young)")

    def lists(self) -> tuple[list[int], list[int]]:
        """(inactive, active) frames, each from tail to head: for explain mode and tests."""
        return list(self._inactive), list(self._active)

    def __len__(self) -> int:
        return len(self._inactive) + len(self._active)
