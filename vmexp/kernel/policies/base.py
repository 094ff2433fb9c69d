"""The one interface every page-replacement policy implements.

A policy sees physical frames, never processes or page tables (STYLE.md):
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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from vmexp.fields import ConfigError
from vmexp.registry import POLICIES

__all__ = ["FrameView", "Policy", "register", "REGISTRY", "PolicyError", "make_params"]


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
