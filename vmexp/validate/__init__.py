"""Validation against the real system: replay a trace with the machine's glibc and compare.

``vmexp.validate.real.replay_real`` gives the real glibc's syscalls, mallinfo2
and page faults for a trace; ``python -m vmexp.validate TRACE [overrides]``
puts them side by side with the simulator's run of the same trace.
"""

from vmexp.validate.real import RealResult, ReplayResult, mallopt_from_overrides, replay_real

__all__ = ["RealResult", "ReplayResult", "mallopt_from_overrides", "replay_real"]
