"""Validation against the real system: replay a trace with the machine's glibc, or kernel, and compare.

``vmexp.validate.real.replay_real`` gives the real glibc's syscalls, mallinfo2
and page faults for a trace; ``python -m vmexp.validate TRACE [overrides]``
puts them side by side with the simulator's run of the same trace.
``vmexp.validate.kernel`` replays a trace on the machine's kernel in a memory
cgroup with swap (``python -m vmexp.validate kernel TRACE [overrides]``), and
``vmexp.validate.workloads`` holds the workloads it was measured with.
"""

import signal

# Ctrl-C and SIGTERM must reach the main thread, which tears the kernel's set-up down: a signal
# sent to the process goes to any of its threads that does not block it, and numpy's BLAS starts
# worker threads when numpy is first imported. A worker that took the signal left the main thread's
# sleep or wait to run its course (a session's child ended 60 s after its SIGINT instead of at
# once). Threads start with the signal mask of the thread that starts them, so numpy is imported
# here with those signals blocked (nothing changes if it was imported before).
_old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
try:
    import numpy  # noqa: F401
finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, _old_mask)

from vmexp.validate.real import RealResult, ReplayResult, mallopt_from_overrides, replay_real  # noqa: E402

__all__ = ["RealResult", "ReplayResult", "mallopt_from_overrides", "replay_real"]
