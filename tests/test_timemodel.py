"""The time model under load: samples that add up, and the machine's own invariants.

A slice executes at its start and its simulated time passes afterwards; the
sampler spreads what the slice did over the time it covers. So no sample may
show more CPU than there are CPUs, or a swap device busier than always, and
the run's totals in metrics.json are exactly what its samples add up to.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import simulate_with
from vmexp.results import Result

# A small version of the default experiment: four mixed processes overrunning RAM, so slices are
# cut by major faults, kswapd runs and the swap device is busy much of the time.
SWAPPING = ("ram=8M", "workload.processes.0.allocs=1500", "workload.processes.1.allocs=3000",
            "workload.processes.2.allocs=400", "duration=2s")  # fmt: skip


def system_rows(r: Result) -> list[dict[str, Any]]:
    return [s for s in r.samples if s["pid"] == 0]


def integral(rows: list[dict[str, Any]], column: str) -> float:
    """The sum of a per-interval rate times the interval (each row covers the time since the last)."""
    return sum(b[column] * (b["time_s"] - a["time_s"]) for a, b in itertools.pairwise(rows))


@pytest.mark.parametrize("ncpus", [1, 2])
def test_every_sample_is_within_the_machines_bounds(ncpus: int) -> None:
    r = simulate_with(*SWAPPING, f"machine.ncpus={ncpus}", check=False)
    rows = system_rows(r)
    assert len(rows) > 20 and r.system["pswpin"] > 100  # it did swap, over many samples
    cpu = [s["cpu_util"] for s in rows]
    swap = [s["swap_util"] for s in rows]
    # cpu_util is normalised per CPU (the busy fraction of all CPUs' time): within [0, 1] on any machine.
    assert min(cpu) >= 0 and max(cpu) <= 1 + 1e-9, (min(cpu), max(cpu))
    assert min(swap) >= 0 and max(swap) <= 1 + 1e-9, (min(swap), max(swap))


def test_the_totals_are_what_the_samples_add_up_to() -> None:
    r = simulate_with(*SWAPPING, check=False)
    rows = system_rows(r)
    end = r.system["sim_time_s"]
    assert rows[-1]["time_s"] == end
    assert integral(rows, "cpu_util") == pytest.approx(r.system["cpu_utilization"] * end, rel=1e-9)
    assert integral(rows, "swap_util") == pytest.approx(r.system["swap_utilization"] * end, rel=1e-9)
    # Swap traffic: the per-second rates integrate to the counts.
    assert integral(rows, "pswpin_per_s") == pytest.approx(r.system["pswpin"], abs=1e-6)
    assert integral(rows, "pswpout_per_s") == pytest.approx(r.system["pswpout"], abs=1e-6)
    # Each process's fault counters only grow, and end at its totals.
    for p in r.processes:
        mine = [s for s in r.samples if s["pid"] == p.pid]
        majflt = [s["majflt"] for s in mine]
        assert majflt == sorted(majflt) and majflt[-1] <= p.majflt


def test_a_busy_cpu_reads_100_percent_in_every_sample(tmp_path: Path) -> None:
    """One process computing 35 ms in 4 ms slices: every 10 ms sample shows the CPU fully busy.

    Charged to the interval in which each slice ends, the samples alternated
    1.2 and 0.8 (three slices ending in one interval, two in the next).
    """
    trace = tmp_path / "cpu.trace"
    trace.write_text("compute 35ms\n")
    r = simulate_with("workload=trace", f"workload.path={trace}", "nprocs=1", "machine.quantum=4ms",
                      "sample_interval=10ms", check=False)  # fmt: skip
    rows = system_rows(r)
    assert [s["time_s"] for s in rows] == [0.0, 0.01, 0.02, 0.03, 0.035]
    assert [s["cpu_util"] for s in rows[1:]] == pytest.approx([1.0, 1.0, 1.0, 1.0], abs=1e-12)


def test_the_machine_invariants_hold_under_overload() -> None:
    """check=True runs the kernel's checker and the machine's (no CPU idles while a process waits)."""
    r = simulate_with("ram=4M", "nprocs=6", "workload.processes.0.allocs=300", "workload.processes.1.allocs=600",
                      "workload.processes.2.allocs=100", "duration=1s", check=True)  # fmt: skip
    assert r.system["pswpout"] > 0
