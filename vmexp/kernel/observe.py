"""Observers of the kernel: the narration of ``explain=true`` and the invariant checker.

The kernel's paths (the reference loop, reclaim, the OOM killer, the system
calls) run the same code whether or not anyone watches; where something a
learner would want to see happens they call the observer, if there is one.
The reference loop calls it after every reference only when one is
attached: a run without ``explain`` or ``check`` pays nothing per reference.

``Narrator`` turns the calls into the annotated log of ``explain.log``
(OSTEP's ``-c``: each operation, the references and the faults they took,
the evictions and syscalls they caused); ``Checker`` runs the kernel's
invariants after each reference and operation (the tests' ``check=True``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmexp.kernel.pagetable import PTE_NONE, ZERO_PAGE

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM
    from vmexp.kernel.system import System

__all__ = ["Checker", "Narrator", "Observer", "Observers"]

# What a reference turned out to be, as the loop reports it.
HIT, MINOR, MAJOR = "hit", "minor fault", "MAJOR fault"


class Observer:
    """The calls the kernel makes; each does nothing here."""

    def operation(self, mm: MM, t_ns: int, text: str) -> None:
        """A process is about to execute one workload operation."""

    def reference(self, mm: MM, vpn: int, write: int, kind: str) -> None:
        """A reference to ``vpn`` completed; ``kind`` is HIT, MINOR or MAJOR."""

    def evicted(self, frame: int, mm: MM, vpn: int, slot: int, wrote: bool, zero: bool = False) -> None:
        """Reclaim freed ``frame``; the page now lives in swap ``slot`` (``wrote``: I/O was needed).

        ``zero``: the page held only zeros, so nothing was written (Linux's zeromap).
        """

    def oom_killed(self, victim: MM) -> None:
        """The OOM killer chose ``victim``."""

    def syscall(self, mm: MM, name: str, addr: int, length: int, result: int) -> None:
        """A brk/mmap/munmap/mremap returned ``result``."""

    def step(self) -> None:
        """An operation completed (the checker checks here)."""


def resident(mm: MM) -> str:
    """The pages of ``mm`` in frames, in order (a count when there are many).

    The count is ``mm.rss`` (the checker holds it to the page table), so that
    a large process's narration does not walk its page table at every reference.
    """
    if mm.rss > 12:
        return f"{mm.rss} pages"
    pages = sorted(v for v, e in mm.pt.pte.items() if e >= 0)
    return "[" + " ".join(f"{v:#x}" for v in pages) + "]"


class Narrator(Observer):
    """The explain log, one line per event, indented by what caused what."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def operation(self, mm: MM, t_ns: int, text: str) -> None:
        self.lines.append(f"t={t_ns / 1e9:.9f}s p{mm.pid} op {mm.op}: {text}")

    def reference(self, mm: MM, vpn: int, write: int, kind: str) -> None:
        own = ""
        if vpn in mm.hot_alloc:
            # The image pages every operation (or allocator call) uses (vmexp.kernel.memcg): their
            # hits at every operation would bury the story; only their faults are news.
            if kind == HIT:
                return
            own = " (the program's own page)"
        e = mm.pt.pte.get(vpn, PTE_NONE)
        where = "zero page" if e == ZERO_PAGE else f"frame {e}"
        self.lines.append(
            f"  p{mm.pid} {'w' if write else 'r'} page {vpn:#x}{own}: {kind} -> {where}; resident {resident(mm)}"
        )

    def evicted(self, frame: int, mm: MM, vpn: int, slot: int, wrote: bool, zero: bool = False) -> None:
        if zero:
            how = f"only zeros: not written, swap slot {slot} marked zero-filled"
        elif wrote:
            how = f"written to swap slot {slot}"
        else:
            how = f"clean, swap slot {slot} still valid: dropped"
        self.lines.append(f"    evict frame {frame} (p{mm.pid} page {vpn:#x}): {how}")

    def oom_killed(self, victim: MM) -> None:
        self.lines.append(
            f"    OOM: kill p{victim.pid} ({victim.name}), rss {victim.rss} pages, swap {victim.swapents}"
        )

    def syscall(self, mm: MM, name: str, addr: int, length: int, result: int) -> None:
        res = f"{result:#x}" if result >= 0 else "-1 ENOMEM"
        self.lines.append(f"    syscall {name}(addr={addr:#x}, length={length}) = {res}")


class Checker(Observer):
    """Runs the kernel's invariant check after every reference and every operation.

    References include the allocator's own header accesses in the middle of
    a malloc, where only the kernel's invariants hold; the heap's are
    checked by the machine between operations.
    """

    def __init__(self, kernel: System) -> None:
        self.kernel = kernel

    def reference(self, mm: MM, vpn: int, write: int, kind: str) -> None:
        self.kernel.check()

    def step(self) -> None:
        self.kernel.check()


class Observers(Observer):
    """Several observers, called in order."""

    def __init__(self, *observers: Observer) -> None:
        self.all = observers

    def operation(self, mm: MM, t_ns: int, text: str) -> None:
        for o in self.all:
            o.operation(mm, t_ns, text)

    def reference(self, mm: MM, vpn: int, write: int, kind: str) -> None:
        for o in self.all:
            o.reference(mm, vpn, write, kind)

    def evicted(self, frame: int, mm: MM, vpn: int, slot: int, wrote: bool, zero: bool = False) -> None:
        for o in self.all:
            o.evicted(frame, mm, vpn, slot, wrote, zero)

    def oom_killed(self, victim: MM) -> None:
        for o in self.all:
            o.oom_killed(victim)

    def syscall(self, mm: MM, name: str, addr: int, length: int, result: int) -> None:
        for o in self.all:
            o.syscall(mm, name, addr, length, result)

    def step(self) -> None:
        for o in self.all:
            o.step()
