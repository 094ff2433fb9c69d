"""Working sets in virtual time, and Denning's load control, held to their known results.

- WS measures each process's window in its own virtual time: the pages of a
  process that waits keep their age, so WS protects a sleeper's working set
  that clock, which ages every page in the machine's time, takes away.
- Thrashing: past the knee CPU utilisation collapses without load control and
  stays near the peak with it (Denning, 1968, 1980).
"""

from __future__ import annotations

import pytest

from tests.conftest import settings
from vmexp.config import ConfigError
from vmexp.kernel.loadctl import LoadControl
from vmexp.sim import simulate
from vmexp.workload import ProcSpec, build
from vmexp.workload.ops import COMPUTE, MALLOC, SLEEP, TOUCH, Op

MiB = 1 << 20


def sleeper_and_streamer() -> list[ProcSpec]:
    """A: touches its 64 pages, sleeps 200 ms, again, 6 times. B: sweeps 6 MiB over and over, computing."""
    a: list[Op] = [(MALLOC, 0, 256 << 10)]
    for _ in range(6):
        a += [(TOUCH, 0, 0, -1, 1), (SLEEP, 200_000_000)]
    b: list[Op] = [(MALLOC, 0, 6 * MiB)]
    for _ in range(40):
        b += [(TOUCH, 0, 0, -1, 1), (COMPUTE, 2_000_000)]
    return [ProcSpec(name="sleeper", ops=a), ProcSpec(name="streamer", ops=b)]


def sleeper_majflt(policy: str, *params: str) -> int:
    s = settings(f"policy={policy}", *params, "ram=4M", "swap=64M", "nprocs=2", "duration=5s",
                 "machine.min_free=0", "workload=trace", "workload.path=unused")  # fmt: skip
    r = simulate(s, sleeper_and_streamer())
    return next(p.majflt for p in r.processes if p.name == "sleeper")


def test_ws_keeps_the_working_set_of_a_process_that_waits_where_clock_does_not() -> None:
    # While A sleeps, B's sweep sends clock's hand round RAM several times: A's pages are
    # cleared, then evicted, and A faults them back after every sleep (5 wake-ups x 64 pages).
    assert sleeper_majflt("clock") >= 5 * 64 * 0.9
    # In virtual time A's pages do not age while A sleeps: WS keeps them and B's stream pays
    # (a handful of A's pages, not yet used again when B first filled RAM, still go).
    assert sleeper_majflt("ws", "policy.params.tau=1ms") <= 8


def test_the_controller_deactivates_the_newest_and_reactivates_first_in_first_out() -> None:
    lc = LoadControl(capacity=100)
    for pid in (1, 2, 3, 4):
        lc.admit(pid)
    # 4 x 40 pages in 100 frames: two must stop, the newest first.
    assert lc.decide({1: 40, 2: 40, 3: 40, 4: 40}) == ([4, 3], [])
    assert lc.active == [1, 2]
    # 1 finishes: 3 (stopped first... after 4) -- the first stopped, 4, comes back first.
    lc.finished(1)
    assert lc.decide({2: 40, 3: 40, 4: 40}) == ([], [4])
    assert lc.active == [2, 4]
    lc.finished(2)
    lc.finished(4)
    assert lc.decide({3: 40}) == ([], [3])


def test_deactivations_counts_every_stop_not_the_processes_stopped() -> None:
    # system.deactivations and summary.csv's column say so: a process restarted and stopped again
    # counts twice (the thrashing preset at 12 processes in 16 MiB stops pid 10 twice: 6 for 5).
    lc = LoadControl(capacity=100)
    lc.admit(1)
    lc.admit(2)
    assert lc.decide({1: 40, 2: 80}) == ([2], [])
    assert lc.decide({1: 10, 2: 80}) == ([], [2])  # room again: 2 comes back...
    assert lc.decide({1: 40, 2: 80}) == ([2], [])  # ...and is stopped again
    assert lc.deactivations == 2


def thrashing(nprocs: int, load_control: str) -> float:
    """The thrashing preset at a quarter of its size: 2 MiB working sets in 16 MiB of RAM, 1 ms slices."""
    s = settings("experiment=thrashing", f"nprocs={nprocs}", "ram=16M", "workload.access.set=2M",
                 "workload.sizes.size=512k", "workload.refs=20000", "machine.quantum=1ms",
                 f"machine.load_control={load_control}", "machine.load_control_tau=12ms")  # fmt: skip
    r = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size))
    return float(r.system["cpu_utilization"])


def test_load_control_keeps_utilisation_near_the_peak_past_the_knee() -> None:
    peak = thrashing(7, "none")
    assert peak > 0.9  # 7 working sets of 2 MiB fit in 16 MiB: the CPU is kept busy
    collapsed = thrashing(12, "none")
    controlled = thrashing(12, "ws")
    assert collapsed < 0.5 * peak  # thrashing: 12 working sets do not fit
    assert controlled >= 0.8 * peak  # the bound: within 20 % of the peak


def test_the_sampler_leaves_the_policy_what_it_would_have_seen() -> None:
    """With room for every working set nothing is deactivated, and the run is the same as without."""
    # Each process allocates 4 MiB and loops over 1 MiB of it: 12 MiB in 8 MiB of RAM. A 2 ms window
    # holds the loop's pages (3 x 1 MiB fit); a 10 ms one still holds the allocation's 4 MiB, and
    # the controller, rightly by its measure, would stop one.
    args = ("ram=8M", "nprocs=3", "workload=working_set", "workload.allocs=16", "workload.access.set=1M",
            "workload.sizes.size=256k", "workload.refs=6000", "policy=clock",
            "machine.load_control_tau=2ms")  # fmt: skip
    runs = []
    for lc in ("none", "ws"):
        s = settings(*args, f"machine.load_control={lc}")
        r = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size))
        runs.append([(p.minflt, p.majflt, p.cpu_time_s) for p in r.processes])
        assert r.system["deactivations"] == 0
    assert sum(majflt for _, majflt, _ in runs[0]) > 100  # cold pages were evicted: the policy chose
    assert runs[0] == runs[1]


def test_the_controller_samples_at_most_once_a_time_slice() -> None:
    # A 1 ns interval was accepted and ran a walk over every frame each nanosecond: only job_timeout
    # stopped it. The controller acts between slices, so the quantum is the finest useful interval.
    with pytest.raises(
        ConfigError, match=r"^machine\.load_control_interval: 1 ns is shorter than machine\.quantum \(4 ms\)"
    ):
        settings("policy=lru", "machine.load_control=ws", "machine.load_control_interval=1ns")
    assert settings("policy=lru", "machine.load_control=ws", "machine.load_control_interval=4ms")
    assert settings("machine.load_control_interval=1ns")  # without load control it is not used
