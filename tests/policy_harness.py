"""A pure demand-paging loop for driving one replacement policy without the kernel.

It does what the kernel's fault path does and nothing more: a page table
(vpn -> frame), K frames, and per frame the accessed and dirty bits that the
MMU would set. Every reference sets the accessed bit of its page, the
faulting one included, before the policy hears of it, exactly as the kernel
does; the policy then gets one ``on_hit`` (if it has one) or one
``inserted`` per reference, and ``victim`` / ``removed`` when memory is full.

After every step the harness checks what the kernel relies on: a victim is a
resident frame, and ``len(policy)`` is the number of resident pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmexp.kernel.policies import Policy, make_policy

__all__ = ["FakeView", "Pager", "Result", "faults", "run"]


class FakeView:
    """The FrameView of base.py over plain dicts; time advances one step per reference."""

    def __init__(self, ns_per_ref: int) -> None:
        self.young: dict[int, bool] = {}
        self.dirty: dict[int, bool] = {}
        self.page: dict[int, int] = {}
        self.ns_per_ref = ns_per_ref
        self.clock = 0

    def test_and_clear_young(self, frame: int) -> bool:
        young = self.young[frame]
        self.young[frame] = False
        return young

    def is_dirty(self, frame: int) -> bool:
        return self.dirty[frame]

    def vpn(self, frame: int) -> int:
        return self.page[frame]

    def owner(self, frame: int) -> int:
        return 1

    def now(self) -> int:
        return self.clock

    def vtime(self, frame: int) -> int:
        """One process that is always running: its virtual time is the clock."""
        return self.clock


@dataclass
class Result:
    faults: int = 0
    evicted: list[int] = field(default_factory=list)  # vpns, in eviction order


class Pager:
    """K frames managed by one policy; ``access`` and ``unmap`` are the only operations."""

    def __init__(
        self,
        policy: str,
        frames: int,
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        ns_per_ref: int = 1,
        future: Sequence[int] | None = None,
    ) -> None:
        self.view = FakeView(ns_per_ref)
        self.policy: Policy = make_policy(policy, params, self.view, np.random.default_rng(seed))
        if future is not None:
            self.policy.set_future(future)  # type: ignore[attr-defined]
        self.table: dict[int, int] = {}  # vpn -> frame
        # Frame 0 is handed out first, so small examples read like the textbook's.
        self.free = list(range(frames - 1, -1, -1))
        self.result = Result()

    def access(self, vpn: int, write: bool = False) -> None:
        view, policy = self.view, self.policy
        frame = self.table.get(vpn)
        if frame is not None:
            view.young[frame] = True
            if write:
                view.dirty[frame] = True
            if policy.on_hit is not None:
                policy.on_hit(frame)
        else:
            self.result.faults += 1
            if not self.free:
                frame = policy.victim()
                assert frame in view.page, f"victim {frame} is not a resident frame"
                old = view.page.pop(frame)
                del self.table[old]
                policy.removed(frame)
                self.result.evicted.append(old)
                self.free.append(frame)
            frame = self.free.pop()
            self.table[vpn] = frame
            view.page[frame] = vpn
            view.young[frame] = True
            view.dirty[frame] = write
            policy.inserted(frame)
        view.clock += view.ns_per_ref
        self.check()

    def unmap(self, vpn: int) -> None:
        """munmap of one page: the frame leaves without being chosen as a victim."""
        frame = self.table.pop(vpn, None)
        if frame is None:
            return
        del self.view.page[frame]
        self.policy.removed(frame)
        self.free.append(frame)
        self.check()

    def check(self) -> None:
        assert len(self.policy) == len(self.table), (len(self.policy), len(self.table))


def run(
    policy: str,
    refs: Iterable[int],
    frames: int,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    ns_per_ref: int = 1,
    writes: Iterable[bool] | None = None,
) -> Result:
    """Demand-page ``refs`` through ``frames`` frames; OPT is given ``refs`` as its future."""
    refs = list(refs)
    future = refs if policy == "opt" else None
    pager = Pager(policy, frames, params, seed, ns_per_ref, future)
    for vpn, write in zip(refs, writes if writes is not None else [False] * len(refs), strict=True):
        pager.access(vpn, write)
    return pager.result


def faults(policy: str, refs: Iterable[int], frames: int, **kwargs: Any) -> int:
    return run(policy, refs, frames, **kwargs).faults
