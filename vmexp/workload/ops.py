"""Workload operations: small tuples of ints, because the engine executes millions.

An operation is a plain tuple whose first element is its opcode. Tuples of
ints cost no allocation beyond the tuple itself and unpack quickly in the
process loop; a dataclass per operation would dominate the run time.

    (MALLOC, id, size)
    (CALLOC, id, count, size)
    (REALLOC, id, size)
    (FREE, id)
    (TOUCH, id, offset, length, write)   length -1 = the whole block; write 0/1
    (COMPUTE, duration_ns)                CPU work: the process keeps (or waits for) a CPU
    (SLEEP, duration_ns)                  think time: the process gives up the CPU

Ids are the workload's names for blocks (the trace's ``ID``), not addresses;
the process maps them to the pointers its allocator returned.
"""

from __future__ import annotations

MALLOC = 0
CALLOC = 1
REALLOC = 2
FREE = 3
TOUCH = 4
COMPUTE = 5
SLEEP = 7

Op = tuple[int, ...]


def describe(op: Op) -> str:
    """One operation in the trace format's words, for explain mode and errors."""
    code = op[0]
    if code == MALLOC:
        return f"malloc {op[1]} {op[2]}"
    if code == CALLOC:
        return f"calloc {op[1]} {op[2]} {op[3]}"
    if code == REALLOC:
        return f"realloc {op[1]} {op[2]}"
    if code == FREE:
        return f"free {op[1]}"
    if code == TOUCH:
        rw = "w" if op[4] else "r"
        if op[3] < 0:
            return f"touch {op[1]} {rw}"
        return f"touch {op[1]} {op[2]} {op[3]} {rw}"
    if code == COMPUTE:
        return f"compute {op[1]}ns"
    if code == SLEEP:
        return f"sleep {op[1]}ns"
    return f"op{code}"
