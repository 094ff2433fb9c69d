"""Machine-wide event counters, named as /proc/vmstat names them."""

from __future__ import annotations

__all__ = ["VMStat"]


class VMStat:
    """What ``/proc/vmstat`` would show of the run (the kernel's parts add to it)."""

    __slots__ = (
        "clean_drops",
        "pgsteal_direct",
        "pgsteal_kswapd",
        "pswpin",
        "pswpout",
        "swap_ra",
        "swap_ra_hit",
        "swpout_zero",
    )

    def __init__(self) -> None:
        self.pswpin = 0  # pages read from swap
        self.pswpout = 0  # pages written to swap
        self.clean_drops = 0  # evictions of clean swap-cached pages: no write (not a /proc/vmstat name)
        self.pgsteal_kswapd = 0  # pages reclaimed by kswapd
        self.pgsteal_direct = 0  # pages reclaimed by faulting processes
        self.swap_ra = 0  # pages read ahead of a swap-in (Linux's path)
        self.swap_ra_hit = 0  # read-ahead pages used before they were reclaimed
        self.swpout_zero = 0  # pages of zeros reclaimed without a write (Linux's path)
