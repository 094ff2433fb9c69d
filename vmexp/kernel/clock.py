"""The slice clock: simulated time inside the running CPU's time slice.

SimPy's clock (``env.now``) moves only between slices. Inside one, the
process runs operations in a plain loop (DESIGN.md's performance design), and
every cost the kernel or the C library charges is added here instead: ``used``
nanoseconds since the slice began at ``env.now``. ``block_until`` is the
latest completion time of a swap-device read the process must wait for
(a major fault); the machine puts the process to sleep until then when the
slice ends.

One object, shared by the machine (``vmexp.sim``), which starts and stops
slices, and the kernel, which charges costs and reads the time, instead of
both writing fields of the kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SliceClock"]


class SliceClock:
    """``env.now + used``: the time of the CPU that is running now."""

    __slots__ = ("block_until", "env", "used")

    def __init__(self, env: Any) -> None:
        self.env = env
        self.used = 0
        self.block_until = 0

    def now(self) -> int:
        return int(self.env.now) + self.used

    def start(self) -> None:
        """A slice begins at ``env.now`` (also kswapd's batches, which charge nothing here)."""
        self.used = 0
        self.block_until = 0

    def stop(self) -> tuple[int, int]:
        """End the slice: (ns it used, when its pending swap read completes or 0)."""
        got = (self.used, self.block_until)
        self.used = 0
        self.block_until = 0
        return got

    def wait_for(self, done: int) -> None:
        """The running process must not go on before ``done`` (a swap read it needs)."""
        if done > self.block_until:
            self.block_until = done
