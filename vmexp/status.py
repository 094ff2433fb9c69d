"""The exit status of one command: 0, or 1 once a job of a sweep (or its report) has failed.

A sweep goes on past a failing job, so the failure is counted here and the
command's status reports it at the end (``run.py``). The application and the
sweep report both note failures; keeping the counter in its own small module
spares the report an import of the application (and the application's of
the engine).
"""

from __future__ import annotations

__all__ = ["FINISHED", "exit_status", "finished", "note_failure", "stop_note"]

# A job's status in run.json and summary.csv: "ok" (its processes ran to their end), "stopped"
# (``duration`` ended it with processes unfinished: its counts cover only that much simulated
# time), "failed", or "incomplete" (no run.json: still running, or killed; or, whatever run.json
# says, its metrics.json missing or unreadable, or its syscalls.csv cut off). Both finished
# statuses have every output file.
FINISHED = ("ok", "stopped")


def finished(status: object) -> bool:
    """The job ran and wrote its metrics (to its end, or until ``duration``)."""
    return status in FINISHED


def stop_note(doc: dict[str, object]) -> str:
    """ "stopped at 10 s: 3 of 4 processes unfinished" for a metrics.json document cut off by ``duration``, else ""."""
    procs = doc.get("processes")
    system = doc.get("system")
    if not isinstance(procs, list) or not isinstance(system, dict):
        return ""
    left = sum(1 for p in procs if isinstance(p, dict) and p.get("exit") == "duration")
    if not left:
        return ""
    at = float(system.get("sim_time_s", 0.0))
    return f"stopped at {at:g} s: {left} of {len(procs)} processes unfinished"


_failed = 0


def note_failure() -> None:
    global _failed
    _failed += 1


def exit_status() -> int:
    """0, or 1 when a job of this invocation failed."""
    return 1 if _failed else 0
