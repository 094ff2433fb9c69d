"""Demand paging, replacement and swap through the whole system, held to textbook answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import simulate_with

BELADY = "1,2,3,4,1,2,5,1,2,3,4,5"
SILBERSCHATZ = "7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1"


def faults(refs: str, policy: str, frames: int) -> int:
    r = simulate_with(
        "workload=pageref",
        f"workload.refs=[{refs}]",
        f"policy={policy}",
        f"ram={frames * 4}k",
        "machine.min_free=0",
    )
    p = r.processes[0]
    return p.minflt + p.majflt


def test_belady_anomaly_fifo_faults_more_with_more_frames() -> None:
    assert faults(BELADY, "fifo", 3) == 9
    assert faults(BELADY, "fifo", 4) == 10


def test_silberschatz_string_with_three_frames() -> None:
    assert faults(SILBERSCHATZ, "fifo", 3) == 15
    assert faults(SILBERSCHATZ, "lru", 3) == 12
    assert faults(SILBERSCHATZ, "opt", 3) == 9


def test_first_touches_are_minor_and_refaults_are_major() -> None:
    r = simulate_with(
        "workload=pageref", f"workload.refs=[{BELADY}]", "policy=fifo", "ram=12k", "machine.min_free=0"
    )
    p = r.processes[0]
    # 5 distinct pages: 5 first touches (minor); the other 4 faults bring pages back from swap.
    assert (p.minflt, p.majflt) == (5, 4)
    assert r.system["pswpin"] == 4


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=40), st.integers(1, 6))
def test_lru_and_opt_never_fault_more_with_more_frames(refs: list[int], frames: int) -> None:
    s = ",".join(map(str, refs))
    for policy in ("lru", "opt"):
        assert faults(s, policy, frames + 1) <= faults(s, policy, frames)


def test_four_processes_overrunning_ram_swap_and_nothing_leaks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "four.trace"
    lines = []
    for pid in range(1, 5):
        lines += [
            f"p{pid}: malloc 1 1M",
            f"p{pid}: touch 1",
            f"p{pid}: compute 20ms",
            f"p{pid}: touch 1 0 4096 r",
        ]
    lines += [f"p{pid}: free 1" for pid in range(1, 5)]
    trace.write_text("\n".join(lines) + "\n")
    r = simulate_with(
        "workload=trace", f"workload.path={trace}", "ram=2M", "swap=16M", "machine.min_free=64k"
    )
    assert r.system["pswpout"] > 0 and r.system["pswpin"] > 0
    assert all(p.exit == "ok" for p in r.processes)
    assert r.system["oom_kills"] == 0
