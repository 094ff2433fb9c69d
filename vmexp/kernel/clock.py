"""The slice clock: simulated time inside the running CPU's time slice.

SimPy's clock (``env.now``) moves only between slices. Inside one, the
process runs operations in a plain loop (the engine's performance design, vmexp.sim), and
every cost the kernel or the C library charges is added here instead: ``used``
nanoseconds since the slice began at ``env.now``. ``block_until`` is the
latest completion time of a swap-device read the process must wait for
(a major fault); the machine puts the process to sleep until then when the
slice ends.

``vtime`` is a process's virtual time, the CPU time it has used: Denning's
working set is defined over it (a process that is not running does not age
its pages), so policies and the load controller that reason about working
sets ask the clock, which knows how far the running slice has got.

One object, shared by the machine (``vmexp.sim``), which starts and stops
slices, and the kernel, which charges costs and reads the time, instead of
both writing fields of the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmexp.kernel.mm import MM

__all__ = ["SliceClock"]


class SliceClock:
    """``env.now + used``: the time of the CPU that is running now."""

    __slots__ = ("block_until", "env", "running", "used", "waited", "wake")

    def __init__(self, env: Any) -> None:
        self.env = env
        self.used = 0
        self.block_until = 0
        self.waited = 0  # of ``used``, ns spent waiting inline (I/O, think time), not computing
        self.running: MM | None = None
        self.wake = 0  # how much later than the device's completion the running process wakes

    def now(self) -> int:
        return int(self.env.now) + self.used

    def start(self, running: MM | None = None, wake: int = 0) -> None:
        """A slice of ``running`` begins at ``env.now`` (None: kswapd's batches, which charge nothing here);
        ``wake``: it sleeps on a CPU other than the swap device's interrupt's (machine.swap_irq_cpu), so
        it wakes that much after each completion it waits for."""
        self.used = 0
        self.block_until = 0
        self.waited = 0
        self.running = running
        self.wake = wake

    def stop(self) -> tuple[int, int]:
        """End the slice: (ns it used, when its pending swap read completes or 0); the CPU time goes to the process."""
        got = (self.used, self.block_until)
        if self.running is not None:
            self.running.cpu_ns += self.used - self.waited
        self.used = 0
        self.block_until = 0
        self.waited = 0
        self.running = None
        return got

    def wait(self, ns: int) -> None:
        """The running process waits ``ns`` inside its slice (nothing else could run meanwhile)."""
        self.used += ns
        self.waited += ns

    def vtime(self, mm: MM) -> int:
        """``mm``'s virtual time: CPU ns it has used, the running slice's so far included."""
        if mm is self.running:
            return mm.cpu_ns + self.used - self.waited
        return mm.cpu_ns

    def wait_for(self, done: int) -> None:
        """The running process must not go on before ``done`` (a swap read it needs), or ``wake`` after
        it if it has to sleep for it."""
        if self.wake and done > self.now():
            done += self.wake
        if done > self.block_until:
            self.block_until = done
