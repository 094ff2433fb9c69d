"""Validation against the real system: replay a trace with the machine's glibc, or kernel, and compare.

``vmexp.validate.real.replay_real`` gives the real glibc's syscalls, mallinfo2
and page faults for a trace; ``python -m vmexp.validate TRACE [overrides]``
puts them side by side with the simulator's run of the same trace.
``vmexp.validate.kernel`` replays a trace on the machine's kernel in a memory
cgroup with swap (``python -m vmexp.validate kernel TRACE [overrides]``), and
``vmexp.validate.workloads`` holds the workloads it was measured with.
"""

from vmexp.validate.real import RealResult, ReplayResult, mallopt_from_overrides, replay_real

__all__ = ["RealResult", "ReplayResult", "mallopt_from_overrides", "replay_real"]
