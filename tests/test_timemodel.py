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

from tests import warm
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
    # Each process's fault counters only grow, and end at its totals (the run is stopped at 2 s:
    # the slices it cut are in both), and the processes' CPU time is the machine's.
    for p in r.processes:
        mine = [s for s in r.samples if s["pid"] == p.pid]
        majflt = [s["majflt"] for s in mine]
        assert majflt == sorted(majflt)
        assert (mine[-1]["minflt"], majflt[-1]) == (p.minflt, p.majflt)
    cpu = sum(p.cpu_time_s for p in r.processes)
    assert cpu == pytest.approx(r.system["cpu_utilization"] * end, rel=1e-9)


@pytest.mark.parametrize("policy", ["clock", "lru"])
def test_a_run_stopped_in_the_middle_of_a_fault_still_adds_up(policy: str) -> None:
    # zram's faults cost CPU inline (decompression, reclaim's compression), so the fault that a
    # slice ends on takes it past its budget and past the end of a run stopped at duration.
    r = simulate_with("ram=16M", f"policy={policy}", "machine.swap_device=zram", "duration=0.3s", check=False)
    end = r.system["sim_time_s"]
    assert r.system["pswpin"] > 1000
    for p in r.processes:
        last = [s for s in r.samples if s["pid"] == p.pid][-1]
        assert (last["time_s"], last["minflt"], last["majflt"]) == (end, p.minflt, p.majflt)
    cpu = sum(p.cpu_time_s for p in r.processes)
    assert cpu <= end and cpu == pytest.approx(r.system["cpu_utilization"] * end, rel=1e-9)


def test_the_first_sample_is_the_machine_before_anything_ran() -> None:
    # It was taken after the processes' first slices: five pages resident with no fault counted.
    r = simulate_with("workload=pageref", "workload.refs=[1,2,3,4,5,1,2]", "ram=1M", check=False)
    proc, system = (s for s in r.samples if s["time_s"] == 0)
    assert (proc["pid"], proc["rss_bytes"], proc["minflt"], proc["majflt"]) == (1, 0, 0, 0)
    assert system["free_bytes"] == 1024 * 1024
    assert r.samples[-2]["minflt"] == 5  # and the last one after everything


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
    # The checker walks every frame after every step: a small machine, swapping from the start.
    r = simulate_with("ram=2M", "nprocs=4", "workload.processes.0.allocs=150", "workload.processes.1.allocs=300",
                      "workload.processes.2.allocs=50", "duration=0.05s", check=True)  # fmt: skip
    assert r.system["pswpout"] > 1000


def lru_faults(refs: list[int], frames: int) -> int:
    """An independent LRU: an OrderedDict, most recent at the end."""
    from collections import OrderedDict

    resident: OrderedDict[int, None] = OrderedDict()
    faults = 0
    for page in refs:
        if page in resident:
            resident.move_to_end(page)
            continue
        faults += 1
        resident[page] = None
        if len(resident) > frames:
            resident.popitem(last=False)
    return faults


def hdd_trace(tmp_path: Path) -> tuple[Path, int]:
    """4000 references over 600 pages, 100 frames, on a disk: about 40 s of simulated time."""
    import random

    rng = random.Random(7)
    refs = [rng.randrange(600) if rng.random() < 0.5 else rng.randrange(60) for _ in range(4000)]
    path = tmp_path / "refs.txt"
    path.write_text("".join(f"{p}\n" for p in refs))
    return path, lru_faults(refs, 100)


def test_a_page_trace_runs_to_its_end_without_a_duration(tmp_path: Path) -> None:
    path, expected = hdd_trace(tmp_path)
    r = simulate_with("workload=pageref", f"workload.path={path}", "ram=400k", "policy=lru",
                      "machine.min_free=0", "machine.swap_device=hdd", check=False)  # fmt: skip
    (p,) = r.processes
    assert p.exit == "ok"
    assert r.system["sim_time_s"] > 10  # past the old default duration of 10 s
    assert p.minflt + p.majflt == expected


def test_a_generated_workload_stops_at_its_horizon_when_duration_is_null() -> None:
    from tests.conftest import settings

    s = settings()
    assert s.duration is None and s.stop_at == 10_000_000_000
    assert settings("duration=2s").stop_at == 2_000_000_000
    assert settings("workload=pageref", "workload.refs=[1,2]").stop_at is None


def test_a_run_cut_short_says_so_everywhere(tmp_path: Path) -> None:
    """Console, run.json, summary.csv, the report and the figures' legend: "stopped at duration"."""
    import csv
    import json

    path, _ = hdd_trace(tmp_path)
    out = tmp_path / "sweep"
    r = warm.run(
        ["-m", "workload=pageref", f"workload.path={path}", "ram=400k", "policy=lru", "machine.min_free=0",
         "machine.swap_device=hdd", "duration=2s,null", "figures=false", f"hydra.sweep.dir={out}"],
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "stopped at 2 s: 1 of 1 processes unfinished;" in r.stdout
    assert "1 stopped at duration" in r.stderr
    rows = {row["duration"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert rows["2s"]["status"] == "stopped" and rows["2s"]["unfinished"] == "1"
    assert rows["null"]["status"] == "ok" and rows["null"]["unfinished"] == "0"
    run = json.loads((out / rows["2s"]["job"] / "run.json").read_text())
    assert run["status"] == "stopped" and run["stopped"] == "stopped at 2 s: 1 of 1 processes unfinished"
    report = (out / "report.md").read_text()
    assert "1 of 2 jobs were stopped at `duration`" in report


def test_a_run_stopped_by_duration_does_nothing_at_or_after_its_end(tmp_path: Path) -> None:
    # 20 ms of computing in 4 ms slices, then a malloc and a touch (faults): the slice that would
    # make them begins at 20 ms, when the run stops. It ran all the same and counted its faults
    # and CPU time in metrics.json (one CPU busy more than 20 ms in 20 ms) but not in the time
    # series, whose last row came twice.
    trace = tmp_path / "late.trace"
    trace.write_text("compute 20ms\nmalloc 1 64k\ntouch 1\n")
    r = simulate_with("workload=trace", f"workload.path={trace}", "machine.quantum=4ms", "sample_interval=10ms",
                      "duration=20ms", check=False)  # fmt: skip
    (p,) = r.processes
    assert p.exit == "duration" and p.cpu_time_s == 0.02
    assert p.minflt == 0 and p.syscalls["brk"] == 0
    for pid in (0, 1):
        assert [s["time_s"] for s in r.samples if s["pid"] == pid] == [0.0, 0.01, 0.02]
    assert (r.samples[-2]["minflt"], r.samples[-2]["majflt"]) == (p.minflt, p.majflt)


def test_a_run_that_ends_on_a_sample_boundary_has_one_last_row(tmp_path: Path) -> None:
    trace = tmp_path / "cpu.trace"
    trace.write_text("compute 30ms\n")
    r = simulate_with("workload=trace", f"workload.path={trace}", "machine.quantum=4ms", "sample_interval=10ms",
                      check=False)  # fmt: skip
    rows = system_rows(r)
    assert [s["time_s"] for s in rows] == [0.0, 0.01, 0.02, 0.03]
    assert [s["cpu_util"] for s in rows[1:]] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert [s["time_s"] for s in r.samples if s["pid"] == 1] == [0.0, 0.01, 0.02, 0.03]


def test_a_process_whose_work_ends_exactly_at_duration_exits_ok(tmp_path: Path) -> None:
    trace = tmp_path / "cpu.trace"
    trace.write_text("compute 20ms\n")
    r = simulate_with("workload=trace", f"workload.path={trace}", "duration=20ms", check=False)
    assert r.processes[0].exit == "ok" and r.system["sim_time_s"] == 0.02


@pytest.mark.parametrize(
    ("text", "exit"),
    [
        ("compute 10ms\nfree 99\n", "invalid-pointer"),
        ("malloc 1 64k\ncompute 10ms\ntouch 1 0 100000 w\n", "segfault"),
    ],
)
def test_a_process_that_dies_of_its_workload_is_charged_the_cpu_it_used(
    tmp_path: Path, text: str, exit: str
) -> None:
    # 10 ms of computing in 4 ms slices, then the fatal operation in the third slice: its
    # cpu_time_s left that slice out (8 ms, or 0 for a process dying in its first slice).
    trace = tmp_path / "dies.trace"
    trace.write_text(text)
    r = simulate_with("workload=trace", f"workload.path={trace}", "machine.quantum=4ms", check=False)
    (p,) = r.processes
    assert p.exit == exit
    assert p.cpu_time_s == pytest.approx(0.01, abs=2e-5)
    assert p.cpu_time_s == pytest.approx(r.system["cpu_utilization"] * r.system["sim_time_s"], rel=1e-9)


# A block written out to swap, then read back twice: every read a major fault that sleeps for the device.
# Its 10 000 slices make the invariant checker a hundred times the run (7 s against 0.07 s): in each
# test below one run is checked, the others, the same paths with another cost or CPU, are not.
READ_BACK = """malloc 1 8388608
touch 1 0 8388592 w
touch 1 0 8388592 r
touch 1 0 8388592 r
"""


def test_a_process_off_the_swap_disks_interrupt_cpu_wakes_later_from_each_read(tmp_path: Path) -> None:
    # A device with one request queue interrupts one CPU; a task sleeping on another is woken by a
    # message between CPUs and wakes machine.cost.remote_wakeup later (on this machine's VM a read
    # took 67 us from CPU 0 and 55 from CPU 1, the disk's interrupt's). The process runs on CPU 0.
    trace = tmp_path / "t.trace"
    trace.write_text(READ_BACK)
    keys = ("workload=trace", f"workload.path={trace}", "ram=4M", "swap=64M", "policy=lru", "machine.ncpus=2")
    local = simulate_with(*keys, "machine.swap_irq_cpu=0").processes[0]
    remote = simulate_with(*keys, "machine.swap_irq_cpu=1", check=False).processes[0]
    assert (remote.majflt, remote.minflt, remote.cpu_time_s) == (local.majflt, local.minflt, local.cpu_time_s)
    assert local.majflt == 4096  # two read sweeps of 2 048 pages, none of them left in 4 MiB
    later = remote.blocked_time_s - local.blocked_time_s
    # Every read waited 14 us longer but for those queued behind the first sweep's writes, whose
    # completion a later request does not move.
    assert 0.95 * 4096 * 14e-6 < later <= 4096 * 14e-6 + 1e-9, later
    # No interrupt CPU named (the default): each CPU its own queue, the same as the interrupt's own.
    assert simulate_with(*keys, check=False).processes[0].blocked_time_s == local.blocked_time_s


@pytest.mark.parametrize("policy", ["lru", "linux"])
def test_a_swap_in_from_a_disk_spends_the_cpu_of_submitting_its_read_before_it_sleeps(
    policy: str, tmp_path: Path
) -> None:
    # machine.cost.swap_read: the bio, the block layer and the doorbell of each read request a
    # swap-in sends to a disk (18 us a major fault on this machine's VM: bench/kernel_truth.py cpu),
    # spent by the faulting process before it sleeps, so it lengthens the fault by that much and
    # the process's CPU time by as much. zram's swap-ins send no request and do not pay it.
    trace = tmp_path / "t.trace"
    trace.write_text(READ_BACK)
    keys = ("workload=trace", f"workload.path={trace}", "ram=4M", "swap=64M", f"policy={policy}")
    keys += ("machine.page_cluster=0",)  # one request a major fault, on both paths
    free = simulate_with(*keys, "machine.cost.swap_read=0", check=False).processes[0]
    paid = simulate_with(*keys, "machine.cost.swap_read=20us").processes[0]
    assert (paid.majflt, paid.minflt) == (free.majflt, free.minflt) and free.majflt == 4096
    assert paid.cpu_time_s - free.cpu_time_s == pytest.approx(4096 * 20e-6, rel=1e-6)
    # Serial with the read: each fault that much longer, but for reads queued behind the first
    # sweep's writes, whose completion a later submission does not move.
    assert 0.9 * 4096 * 20e-6 < paid.end_s - free.end_s <= 4096 * 20e-6 + 1e-9, paid.end_s - free.end_s
    if policy == "lru":
        return
    zram = ("machine.swap_device=zram",)
    assert simulate_with(*keys, *zram, "machine.cost.swap_read=20us").processes[0].cpu_time_s == (
        simulate_with(*keys, *zram, "machine.cost.swap_read=0", check=False).processes[0].cpu_time_s
    )


def test_a_page_found_in_the_swap_cache_costs_the_minor_fault_that_maps_it_its_own_time(
    tmp_path: Path,
) -> None:
    # machine.cost.swap_cache_hit (policy=linux): a minor fault on a page read ahead (or written and
    # not yet freed) looks it up in the swap cache, locks it, releases its slot and maps it, which on
    # this machine's VM takes 4.5 us where a first touch takes about 2 (bench/kernel_truth.py cpu).
    # Read back at page-cluster 3, most pages are read ahead: each of those minor faults costs it.
    trace = tmp_path / "t.trace"
    trace.write_text(READ_BACK)
    keys = ("workload=trace", f"workload.path={trace}", "ram=4M", "swap=64M", "policy=linux")
    first_touches = simulate_with(*keys, "machine.page_cluster=0", check=False).processes[0].minflt
    cheap = simulate_with(*keys, "machine.page_cluster=3", "machine.cost.swap_cache_hit=1us", check=False)
    cheap = cheap.processes[0]
    dear = simulate_with(*keys, "machine.page_cluster=3", "machine.cost.swap_cache_hit=5us").processes[0]
    hits = dear.minflt - first_touches
    assert (dear.majflt, dear.minflt) == (cheap.majflt, cheap.minflt) and hits > 3000, (hits, dear.majflt)
    assert dear.cpu_time_s - cheap.cpu_time_s == pytest.approx(hits * 4e-6, rel=1e-6)
