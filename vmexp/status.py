"""The exit status of one command: 0, or 1 once a job of a sweep (or its report) has failed.

A sweep goes on past a failing job, so the failure is counted here and the
command's status reports it at the end (``run.py``). The application and the
sweep report both note failures; keeping the counter in its own small module
spares the report an import of the application (and the application's of
the engine).
"""

from __future__ import annotations

__all__ = ["exit_status", "note_failure"]

_failed = 0


def note_failure() -> None:
    global _failed
    _failed += 1


def exit_status() -> int:
    """0, or 1 when a job of this invocation failed."""
    return 1 if _failed else 0
