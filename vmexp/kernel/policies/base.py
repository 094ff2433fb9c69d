"""The one interface every page-replacement policy implements.

A policy sees physical frames, never processes or page tables:
the fault path is written once in the kernel ("find a victim, evict it,
insert the new page") and asks the policy only which frame to give up.
What a policy may learn about a frame comes through ``FrameView``, the
narrow window the MMU and the kernel would give it: the accessed ("young")
bit, the dirty bit, the clock.

Adding a policy is one module in this package that calls ``register``, one
``conf/policy/<name>.yaml`` and one test: the package's modules are found
by ``pkgutil`` (``vmexp.registry.POLICIES``), so no list names them, and a
module outside the package joins through the ``plugins`` setting.

A policy declares its parameters once, in its ``Params`` dataclass, with
the helpers of ``vmexp.fields`` (type, default, unit, meaning, range):
``tau: int = duration("10ms", "the working-set window", lo=1)``. The config's
``policy.params`` are parsed against it at validation (an unknown key lists
the valid ones) and reach the policy typed: ints in bytes and nanoseconds.

Two kinds of policy share the interface. A textbook policy (FIFO, LRU,
clock, ...) answers ``victim`` one frame at a time, and the kernel evicts
that frame at once, the textbook pager. A policy that sets ``batch``
(Linux's, ``policy=linux``) reclaims the way mm/vmscan.c does: the kernel
asks it to ``shrink`` a number of pages, and it walks its lists itself,
asking the kernel (its ``Reclaimer`` view) to act on each page it chose:
``pageout`` writes and frees it, or starts an asynchronous write and leaves
the frame in place until the write completes (``end_writeback``). The
kernel tells it of swap-ins with the page's shadow entry (``refault``) and
asks it for one when a page leaves memory (``evicted``), so that it can
tell a page that comes back soon from one that does not
(mm/workingset.c). A textbook policy never hears of any of this: the
defaults below are what it would do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from vmexp.fields import ConfigError
from vmexp.registry import POLICIES

if TYPE_CHECKING:
    from vmexp.kernel.memcg import MemCgroup

__all__ = [
    "PAGE_ACTIVATE",
    "PAGE_CLEAN",
    "PAGE_WRITEBACK",
    "PAGE_WRITTEN",
    "REGISTRY",
    "FrameView",
    "Policy",
    "PolicyError",
    "Reclaimer",
    "make_params",
    "register",
]

# What ``Reclaimer.pageout`` did with a page (mm/vmscan.c: the outcomes of shrink_folio_list).
PAGE_CLEAN = 0  # freed without I/O: its copy in swap is still valid (a clean swap-cache page)
PAGE_WRITTEN = 1  # written synchronously (zram) and freed
PAGE_WRITEBACK = 2  # an asynchronous write started: the frame stays until it completes (keep)
PAGE_ACTIVATE = 3  # cannot go now (no swap slot, or nowhere to store it): activate_locked


class PolicyError(ConfigError):
    """A policy that cannot run with this configuration; the message says why."""


POLICIES.error = PolicyError


class FrameView(Protocol):
    """What the kernel lets a policy know about a frame."""

    def test_and_clear_young(self, frame: int) -> bool:
        """Read and clear the accessed bit of the PTE that maps ``frame``."""
        ...

    def is_dirty(self, frame: int) -> bool: ...

    def vpn(self, frame: int) -> int:
        """The virtual page number that ``frame`` holds (for OPT's look into the future)."""
        ...

    def owner(self, frame: int) -> int:
        """The pid whose page ``frame`` holds."""
        ...

    def now(self) -> int:
        """Simulated time in nanoseconds."""
        ...

    def vtime(self, frame: int) -> int:
        """The virtual time (CPU ns used so far) of the process whose page ``frame`` holds."""
        ...


class Reclaimer(FrameView, Protocol):
    """What the kernel does for a policy that reclaims in batches (``Policy.batch``).

    The policy chooses pages and keeps the lists; the kernel owns page
    tables, swap and the device, so every action on a page goes through
    here (mm/vmscan.c: shrink_folio_list's second half, pageout,
    __remove_mapping).
    """

    def under_writeback(self, frame: int) -> bool:
        """PG_writeback: the page's write to swap has not completed yet."""
        ...

    def wait_writeback(self, frame: int) -> None:
        """The reclaimer waits for ``frame``'s write (folio_wait_writeback); afterwards it is clean."""
        ...

    def pageout(self, frame: int) -> int:
        """Reclaim ``frame``: PAGE_CLEAN, PAGE_WRITTEN, PAGE_WRITEBACK or PAGE_ACTIVATE (see above)."""
        ...

    def unplug(self) -> None:
        """blk_finish_plug: the writes started since the last call go to the device as one request."""
        ...

    def throttle(self, cgroup: bool = False) -> bool:
        """Writes are in flight and nothing was freed: wait for the first one; False: stop here instead.

        The faulting process waits (and the call returns True); kswapd
        cannot wait inside a pass, so the pass ends (False) and the machine
        puts kswapd to sleep until the write completes. A memory cgroup's
        reclaim (``cgroup``) waits only for a write already on the device,
        not for the ones it holds in its plug.
        """
        ...

    def preempted(self) -> None:
        """The process reclaiming gave up the CPU to a kworker (vmpressure's); kswapd's reclaim: nothing."""
        ...

    def cpu(self) -> int:
        """The CPU running now, as the pid of the process on it (0: kswapd or no process)."""
        ...

    def can_swap(self, memcg: MemCgroup | None = None) -> bool:
        """Swap space is left for the pages being reclaimed, within ``memcg``'s swap limit (can_reclaim_anon_pages)."""
        ...

    def free_below_high(self) -> bool:
        """Free memory is at or below the high watermark (global reclaim's file_is_tiny test)."""
        ...


class Policy:
    """Base class: keeps the bookkeeping of which frames are candidates.

    The kernel calls ``inserted`` when a page has just been mapped into a
    frame (the faulting access already set its accessed bit), ``removed``
    when a frame stops holding a page for any reason (evicted, unmapped,
    process exit), and ``victim`` when it needs a frame back. ``victim``
    only chooses: the kernel evicts and then calls ``removed``.

    ``on_hit`` is called on every reference to a resident page, so it is the
    hottest call in the simulator: policies that learn from accessed bits
    (clock, lru2q, ws) leave it ``None`` and the kernel skips the call. When
    set, it should be a bound builtin (``OrderedDict.move_to_end``) or a tiny
    function.
    """

    name: ClassVar[str] = ""

    @dataclasses.dataclass
    class Params:
        """Parameters of the policy (none by default)."""

    on_hit: Callable[[int], Any] | None = None

    # A policy that reads the future (OPT) sets this; the machine then hands
    # it the reference string with ``set_future`` before the first reference,
    # and validation refuses workloads that have no fixed string (trait "future").
    needs_future: ClassVar[bool] = False

    # A policy that reclaims in batches, as Linux does, sets this; the kernel then
    # calls ``shrink`` instead of ``victim`` and gives it a ``Reclaimer`` as its view.
    batch: ClassVar[bool] = False

    def __init__(self, view: FrameView, params: Any, rng: np.random.Generator) -> None:
        self.view = view
        self.params = params
        self.rng = rng

    def inserted(self, frame: int) -> None:
        raise NotImplementedError

    def removed(self, frame: int) -> None:
        raise NotImplementedError

    def victim(self) -> int:
        raise NotImplementedError

    # -- the batch interface (``batch`` policies); the defaults are the textbook's
    def shrink(self, nr_to_reclaim: int, *, cgroup: bool, kswapd: bool = False) -> int:
        """Reclaim about ``nr_to_reclaim`` pages through the view's ``pageout``; returns pages freed.

        ``cgroup``: reclaim for a memory cgroup's limit (not the machine's
        watermarks); ``kswapd``: the background reclaimer, not the faulting process.
        """
        raise NotImplementedError(f"policy {self.name} reclaims one victim at a time")

    def refault(self, frame: int, shadow: int) -> None:
        """A page came back from swap into ``frame``; ``shadow`` is what ``evicted`` returned for it."""
        self.inserted(frame)

    def evicted(self, frame: int) -> int:
        """``frame``'s page is about to leave memory: its shadow entry, kept with its swap slot."""
        return 0

    def end_writeback(self, frame: int) -> None:
        """The write of ``frame``'s page to swap completed (folio_end_writeback)."""

    def lru_add_drain(self, cpu: int | None = None) -> None:
        """mm/swap.c: lru_add_drain: the pages a CPU's ``lru_add`` batch holds go onto the lists
        (``cpu``: that process's CPU; None: the running one). A textbook policy batches nothing."""

    def test_clear_reclaim(self, frame: int) -> bool:
        """folio_test_clear_reclaim: whether reclaim marked ``frame`` to rotate when its write ends; unmark it.

        A swap-cache hit asks, because ``PG_readahead`` is the same page flag
        as ``PG_reclaim``. A textbook policy marks nothing.
        """
        return False

    def events(self) -> dict[str, int]:
        """The policy's counters for metrics.json (/proc/vmstat names); none for a textbook policy."""
        return {}

    def set_future(self, vpns: Sequence[int]) -> None:
        """The reference string the process will make (only called when ``needs_future``)."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Number of frames the policy is tracking."""
        raise NotImplementedError


class _Registry(Mapping[str, type[Policy]]):
    """The registered policies by name (a view of ``vmexp.registry.POLICIES``)."""

    def __getitem__(self, name: str) -> type[Policy]:
        if name not in POLICIES:
            raise KeyError(name)
        cls: type[Policy] = POLICIES.get(name).obj
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(POLICIES.names())

    def __len__(self) -> int:
        return len(POLICIES.names())


REGISTRY: Mapping[str, type[Policy]] = _Registry()


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make the policy selectable as ``policy=<cls.name>``, with ``cls.Params``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} needs a name")
    POLICIES.add(cls.name, cls, cls.Params, doc=(cls.__module__ and _module_doc(cls)) or "")
    return cls


def _module_doc(cls: type) -> str:
    import sys

    mod = sys.modules.get(cls.__module__)
    doc = (mod.__doc__ if mod is not None else None) or cls.__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def make_params(cls: type[Policy], values: Mapping[str, Any] | Any) -> Any:
    """The policy's typed parameters; an unknown key lists the valid ones.

    ``values`` is a ``Params`` instance (used as it is) or a mapping: typed
    values (ints in bytes and ns, as ``Settings.policy.params`` holds them)
    are taken as they are, text such as ``"10ms"`` is parsed.
    """
    if isinstance(values, cls.Params):
        return values
    comp = POLICIES.get(cls.name)
    return POLICIES.parse_params(comp, {str(k): v for k, v in values.items()}, "policy.params", typed=True)
