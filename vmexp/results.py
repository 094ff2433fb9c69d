"""What a run leaves behind, as plain records: the engine fills them, the writers and reports read them.

Kept apart from the engine so that reading results (metrics files, reports,
figures) never imports the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProcResult", "Result"]


@dataclass
class ProcResult:
    """What a process leaves behind: counters and end-of-run snapshots."""

    pid: int
    name: str
    exit: str
    error: str
    minflt: int
    majflt: int
    refs: int
    syscalls: dict[str, int]
    mallinfo: dict[str, int]
    heap: list[tuple[int, int, str]]
    maps: list[str]
    vsz_peak_bytes: int
    rss_peak_bytes: int
    swap_peak_bytes: int
    rss_bytes: int
    vsz_bytes: int
    cpu_time_s: float
    blocked_time_s: float
    start_s: float
    end_s: float
    ops: int
    enomem: int
    skipped_ops: int
    pswpin: int
    pswpout: int
    page_table_bytes: int
    page_table_peak_bytes: int


@dataclass
class Result:
    """One run: per-process results, system counters, time series, the syscall log."""

    processes: list[ProcResult]
    system: dict[str, Any]
    samples: list[dict[str, Any]]
    syscalls: list[tuple[int, int, int, str, int, int, int]]
    explain: list[str] | None
    # (time_ns, pid, addr, size, state) for every chunk at each of heap_snapshots' times.
    heap_snapshots: list[tuple[int, int, int, int, str]] = field(default_factory=list)
