"""The OOM killer: when no page can be freed, the process using the most memory dies.

mm/oom_kill.c ``oom_badness`` scores a process by its resident pages, swap
entries and page-table pages (``oom_score_adj`` is not modelled: every
process has 0); the highest score is killed (``oom_kill_process``), its
memory freed at once. Ties go to the lower pid, so the choice is
deterministic. A memory cgroup at its limit has its own OOM killer
(``mem_cgroup_out_of_memory``): the same choice among the group's processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vmexp.kernel.clock import SliceClock

if TYPE_CHECKING:
    from vmexp.kernel.memcg import MemCgroup
    from vmexp.kernel.mm import MM
    from vmexp.kernel.observe import Observer

__all__ = ["OOMKiller", "ProcessKilled"]


class ProcessKilled(Exception):
    """The running process was killed (OOM); its memory is already freed."""

    def __init__(self, pid: int, reason: str) -> None:
        super().__init__(f"process {pid}: {reason}")
        self.pid = pid
        self.reason = reason


class OOMKiller:
    """Chooses and kills; keeps the log that metrics.json reports."""

    def __init__(
        self, mms: dict[int, MM], clock: SliceClock, page_size: int, exit_process: Callable[[MM, str], None]
    ) -> None:
        self.mms = mms
        self.clock = clock
        self.page_size = page_size
        self.exit_process = exit_process
        self.kills: list[dict[str, Any]] = []
        self.obs: Observer | None = None

    @staticmethod
    def badness(mm: MM) -> int:
        return mm.rss + mm.swapents + mm.pt.pages

    def kill(self, requester: MM, group: MemCgroup | None = None) -> None:
        """No page can be freed for ``requester``: kill the process with the highest badness.

        ``group``: the memory cgroup whose limit was hit; only its processes (and those of the groups
        below it) are candidates (mem_cgroup_scan_tasks).
        """
        members = self.mms.values() if group is None else group.tasks()
        live = [m for m in members if not m.killed]
        if not live:
            raise ProcessKilled(requester.pid, "out of memory")
        victim = max(live, key=lambda m: (self.badness(m), -m.pid))
        record: dict[str, Any] = {
            "time_s": self.clock.now() / 1e9,
            "pid": victim.pid,
            "name": victim.name,
            "rss_bytes": victim.rss * self.page_size,
            "swap_bytes": victim.swapents * self.page_size,
            "for_pid": requester.pid,
        }
        if group is not None:
            record["memcg"] = group.name
        self.kills.append(record)
        if self.obs is not None:
            self.obs.oom_killed(victim)
        self.exit_process(victim, "oom-killed")
        if victim is requester:
            whose = f" of memory cgroup {group.name}" if group is not None else ""
            raise ProcessKilled(victim.pid, f"killed by the OOM killer{whose}")
