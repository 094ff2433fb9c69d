"""The simulator held to the recorded kernel (``tests/data/real_kernel/*.json``): each workload, group
and timing effect that ``bench/kernel_truth.py`` measured on this machine's kernel, run through the
simulator with the settings ``validate kernel`` gives it and compared with the recorded runs.

Apart from ``test_real_kernel.py`` (the harness on the live kernel, and the records' consistency) so
that the two files run on separate workers: these are CPU-bound simulator runs, the larger share of
the suite's time, and need no root.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import settings, simulate_with
from tests.kernel_data import DATA, MIB, recorded, trace_sha, trace_text, write_trace
from vmexp.validate import kernel as K
from vmexp.validate.kernel_cli import NEARBY_PAGES, simulator_overrides
from vmexp.validate.real import _records, build_replayer
from vmexp.validate.workloads import LIMIT, PAGE, SETS, generate, sha256
from vmexp.workload.traces import parse_trace, parse_trace_text

ROOT = Path(__file__).resolve().parent.parent


# On since `policy=linux`, `cgroup.memory_max`, `machine.page_cluster` and
# `machine.swap_device=zram` exist (and `SIMULATOR_HAS_KERNEL_KEYS` in kernel_cli.py).
SIM_AGREEMENT_ENABLED = True

# (config, majflt tolerance, minflt tolerance): issue 11's "done when" for zram. A swap
# file's runs spread more (asynchronous writeback); there the simulator must fall inside
# the real runs' range (min..max) or, failing that, within zram's tolerance.
AGREEMENT = {"zram": (0.02, 0.01), "file_pc0": (0.02, 0.01), "file_pc3": (0.02, 0.01)}

# Each case runs the simulator as a user would (about 5 s): a few representative ones here,
# every workload in `python bench/kernel_truth.py agree` (docs/kernel-truth.md).
CASES = [
    ("zram", "seq_rw_128"),  # the knife edge: the per-process charge decides every page
    ("file_pc0", "uniform_80"),  # the swap cache's extra minor faults
    ("file_pc3", "seq_read_160"),  # cluster readahead: 1 major fault in 8
    ("file_pc3", "zipf_96"),  # readahead's window starts at one page: no early deep reclaim
    ("file_pc3", "hotcold_80"),  # slots freed by writes are reused (cluster_alloc_swap_entry); nearby
    ("file_pc0", "seq_rw_128"),  # a cgroup's reclaim writes ahead under its plug: reads find the pages cached
    ("zram", "zipf_64_rw"),  # (a later workload) just over the limit: the hot image pages are 8 % of majflt
    # (a heap workload) 24 000 small blocks on the brk heap: glibc's loads and stores in their
    # neighbours (the next chunk's next, bin links, large-bin size lists) fault swapped pages in;
    # without them the simulator had 18.7 % fewer major faults than the kernel
    ("zram", "small_blocks_105"),
    # (a heap workload) 41 000 block ids: the replayer's tables of them (cgroup.image_ids) are 1 % of
    # the group, and every operation uses its block's entries; without them 5 % too few major faults
    ("zram", "mixed_blocks_93"),
    # (unseen workloads: never used to set a parameter) Zipf-skewed references to a hot set between
    # sweeps, and 16-64 KiB blocks on the brk heap touched a page at a time
    ("zram", "hotcold_100"),
    ("file_pc0", "heap_blocks_96"),
    # (the ops set, written after the unseen one was measured) a mapping grown by realloc, which glibc
    # does with mremap: its swapped-out pages move with it; and a block read before it is written
    # (the zero page: minor faults that charge nothing, then copy-on-write), then read back through
    # cluster readahead
    ("zram", "realloc_120"),
    ("file_pc3", "readfirst_96"),
]


KNIFE_EDGE = {("file_pc3", "hotcold_80")}  # held to the median over nearby limits (NEARBY_PAGES)

# The swap file's disk as device_speed measured it on 2026-12-05 (40-45 us a random page, 1.6-1.8 GB/s).
DISK = K.DeviceSpeed(42_000, 1_700_000_000)


def _set_of(name: str) -> str:
    return next(ws for ws, names in SETS.items() if name in names)


def _within(sim: int, spread: dict[str, float], tol: float) -> bool:
    if spread["min"] <= sim <= spread["max"]:
        return True
    return abs(sim - spread["median"]) <= tol * max(spread["median"], 1)


def _simulate(config: str, name: str, out: Path, *extra: str, **kw: Any) -> Any:
    """``_simulate_all``'s first process: the workload's one."""
    return next(iter(_simulate_all(config, name, out, *extra, **kw).values()))


def _simulate_all(
    config: str,
    name: str,
    out: Path,
    *extra: str,
    wset: str | None = None,
    speed: K.DeviceSpeed | None = None,
    text: str | None = None,
    limit: int = LIMIT,
) -> Any:
    """The simulator on a recorded workload, configured as the recorded kernel was (validate's keys;
    every process's results, by the simulator's pid;
    with ``speed``, the disk as fast as that and its queue's ``max_segments`` as recorded; ``text``:
    another trace in place of the workload's own, run with the same settings; ``limit``: the
    group's, in place of the recorded 64 MiB)."""
    from vmexp.api import hydra_quoted
    from vmexp.app import run_settings
    from vmexp.validate.__main__ import check_overrides, read_run

    doc = recorded(config, wset or _set_of(name))
    st = doc["settings"]
    area = K.SwapArea(
        "/dev/x",
        st["swap_kind"],
        st["swap_device"] == "hdd",
        st["swap_bytes"],
        0,
        32767,
        st.get("swap_max_segments") or 254,  # recorded since 2026-12-05; the disk's before
        # recorded since 2026-12-06; before, the swap file's virtio disk and the loop devices had 128
        # tags each, and the slow disk is served by one thread (bench/slow_disk.py)
        st.get("swap_queue_depth") or (1 if wset == "slowdisk" else 128),
    )
    facts = K.KernelFacts(
        doc["kernel"], st["page_cluster"], st["swappiness"], False, st["thp"], st["cgroup"], (area,)
    )
    out.mkdir(parents=True, exist_ok=True)
    trace = out / f"{name}.trace"
    trace.write_text(text or trace_text(name))
    overrides = check_overrides(
        str(trace), [*simulator_overrides(facts, limit, speed=speed, new_keys=True), "figures=false", *extra]
    )
    # What run_simulator gives `python -m vmexp` (the validate command's tests run it so), composed
    # and run in this process: a child's start-up is 0.9 s of the 2-4 s these runs take, and the suite
    # makes some 200 of them. The timeseries is not read here: a sample a second, not every 10 ms
    # (samples only read the state; metrics.json is the same byte for byte).
    s = settings(
        "workload=trace",
        f"workload.path={hydra_quoted(str(trace))}",
        "nprocs=1",
        "sample_interval=1s",
        *overrides,
    )
    run_settings(s, out / "r", quiet=True)
    return read_run(out / "r")


# The 80 MiB sweeps at page-cluster 3 end their first pass where the group's room runs out to a
# few pages: whether the replayer's own pages, faulted back through swap readahead as the sweep
# ends, find room or set off a deep reclaim pass under readahead's plug is a branch the kernel's
# runs take either way (docs/kernel-truth.md, "One limit is one draw"). The simulator is
# deterministic, so at one limit it is one draw of that branch; over limits a few pages apart
# (which move where the sweep ends against the reclaim calls and nothing else of note) its median
# is what it predicts, and that is what these workloads are held to (NEARBY_PAGES: the limits
# `validate kernel --nearby` runs the simulator at).


def _simulate_nearby(config: str, name: str, out: Path, **kw: Any) -> tuple[int, int]:
    """The median majflt and minflt of ``_simulate`` at the limits ``NEARBY_PAGES`` from 64 MiB."""
    runs = [_simulate(config, name, out / str(k), limit=LIMIT + k * PAGE, **kw) for k in NEARBY_PAGES]
    return int(statistics.median(r.majflt for r in runs)), int(statistics.median(r.minflt for r in runs))


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
@pytest.mark.parametrize(("config", "name"), CASES)
def test_the_simulator_agrees_with_the_recorded_kernel(config: str, name: str, tmp_path: Path) -> None:
    if (config, name) in KNIFE_EDGE:
        majflt, minflt = _simulate_nearby(config, name, tmp_path)
    else:
        sim = _simulate(config, name, tmp_path)
        majflt, minflt = sim.majflt, sim.minflt
    maj_tol, min_tol = AGREEMENT[config]
    wl = recorded(config, _set_of(name))["workloads"][name]
    assert _within(majflt, wl["majflt"], maj_tol), (majflt, wl["majflt"])
    assert _within(minflt, wl["minflt"], min_tol), (minflt, wl["minflt"])


def _spread(values: Sequence[int]) -> dict[str, int]:
    v = sorted(values)
    return {"min": v[0], "max": v[-1], "median": v[len(v) // 2]}


def _group_nearby(config: str, name: str, out: Path, speed: K.DeviceSpeed | None) -> list[list[Any]]:
    """A group workload's processes (each run's, in pid order) on the recorded machine's 2 CPUs at
    the limits NEARBY_PAGES from 64 MiB: one limit is one draw."""
    return [
        list(
            _simulate_all(
                config,
                name,
                out / str(k),
                "machine.ncpus=2",
                wset="group",
                speed=speed,
                limit=LIMIT + k * PAGE,
            ).values()
        )
        for k in NEARBY_PAGES
    ]


@pytest.mark.parametrize("config", ["zram", "file_pc3"])
def test_two_processes_contending_for_one_group_fault_as_the_kernels_do(config: str, tmp_path: Path) -> None:
    # Two processes of random touches over 40 MiB each in one 64 MiB group, on the recorded machine's
    # 2 CPUs (bench/kernel_truth.py group: group_<config>.json). The kernel's major faults: on the
    # swap file 11 567..12 405 in all over 8 runs, split about evenly; on zram in two modes, the
    # even one (12 216..12 434, 3 runs) and one where a process gets ahead, faults less and ends
    # early (6 796..7 807). The simulator's CPUs run side by side to within machine.interleave: the
    # even mode, the group inside the kernel's range, and on the swap file each process inside its
    # own. Held over the limits NEARBY_PAGES from 64 MiB, as the knife edges are: on the swap file
    # at 64 MiB exactly the first sweeps' end set off a deep pass under readahead's plug, whose
    # written pages the touches then met in the swap cache (1 600 more minor faults a process),
    # which the kernel's 8 runs never did (gone since the device serves transfers in order of
    # time and each CPU has its lru_add batch). With whole 4 ms slices, one CPU's applied after the
    # other's, the group took 4 247 major faults on zram and about 6 900 on the swap file.
    wl = recorded(config, "group")["workloads"]["two_random_80"]
    assert wl["sha256"] == trace_sha("two_random_80") and len(wl["runs"]) >= 6
    runs = wl["runs"]
    speed = None if config == "zram" else DISK
    sims = _group_nearby(config, "two_random_80", tmp_path, speed)

    def median(key: str, i: int | None = None) -> int:
        return int(
            statistics.median(
                sum(getattr(p, key) for p in s) if i is None else getattr(s[i], key) for s in sims
            )
        )

    assert _within(median("majflt"), _spread([r["majflt"] for r in runs]), 0.02)
    assert _within(median("minflt"), _spread([r["minflt"] for r in runs]), 0.01)
    lo, hi = sorted((median("majflt", 0), median("majflt", 1)))
    assert lo > 0.9 * hi  # the even mode
    if config != "zram":
        for i in (0, 1):
            assert _within(median("majflt", i), _spread([r["procs"][i]["majflt"] for r in runs]), 0.02), i
            assert _within(median("minflt", i), _spread([r["procs"][i]["minflt"] for r in runs]), 0.01), i
    whole = _simulate_all(
        config,
        "two_random_80",
        tmp_path / "whole",
        "machine.ncpus=2",
        "machine.interleave=4ms",
        wset="group",
        speed=speed,
    )
    # One process ran ahead and the other's pages went: the group far below the kernel's.
    assert sum(p.majflt for p in whole.values()) < 0.7 * min(r["majflt"] for r in runs)


@pytest.mark.parametrize("config", ["zram", "file_pc3"])
@pytest.mark.parametrize("name", ["two_random_80", "cache_and_hog_72"])
def test_processes_in_groups_side_by_side_fault_as_the_kernels_do(
    config: str, name: str, tmp_path: Path
) -> None:
    # The processes of a group workload each in a 32 MiB group of its own (cgroup.groups=2), on the
    # recorded machine's 2 CPUs (bench/kernel_truth.py group --groups 2: groups2_<config>.json), and
    # cache_and_hog_72 in one 64 MiB group (group_<config>.json). Each group reclaims only its own
    # pages: two_random_80's processes fault as if alone, neither gets ahead (in one 64 MiB group the
    # kernel's runs split 2 486..6 749 a process on zram); cache_and_hog_72's cache fits its group
    # and never faults, while its hog, confined to 32 MiB, takes 61 493 major faults on zram, where
    # in one 64 MiB group it borrows the pages the cache left and takes none.
    speed = None if config == "zram" else DISK
    doc = recorded(config, "groups2")
    wl = doc["workloads"][name]
    assert wl["sha256"] == trace_sha(name) and len(wl["runs"]) >= 6
    assert doc["settings"]["groups"] == 2
    sims = _simulate_all(
        config,
        name,
        tmp_path / "groups",
        "machine.ncpus=2",
        "cgroup.groups=2",
        wset="groups2",
        speed=speed,
        limit=doc["settings"]["limit_bytes"],
    )
    runs = wl["runs"]
    for i, p in enumerate(sims.values()):
        assert _within(p.majflt, _spread([r["procs"][i]["majflt"] for r in runs]), 0.02), (i, p.majflt)
        assert _within(p.minflt, _spread([r["procs"][i]["minflt"] for r in runs]), 0.01), (i, p.minflt)
    p1, p2 = sims.values()
    if name == "two_random_80":
        assert 0.9 < p1.majflt / p2.majflt < 1.1  # no process gets ahead of the other
        return
    assert p1.majflt == 0 and p2.majflt > 7_000
    one = recorded(config, "group")["workloads"][name]
    assert one["sha256"] == trace_sha(name)
    shared = _simulate_all(config, name, tmp_path / "one", "machine.ncpus=2", wset="group", speed=speed)
    for i, p in enumerate(shared.values()):
        assert _within(p.majflt, _spread([r["procs"][i]["majflt"] for r in one["runs"]]), 0.02), (i, p.majflt)
    assert sum(p.majflt for p in shared.values()) < 0.01 * p2.majflt


@pytest.mark.parametrize("config", ["zram", "file_pc3"])
@pytest.mark.parametrize(
    "name",
    [
        "cache_and_hog_72",
        pytest.param(
            "two_random_80",
            marks=pytest.mark.xfail(
                strict=True,
                reason="under the parent the simulator's first reclaim ages only the first group's list (a "
                "walk down to priority 0 on it) and the second process never faults (zram: 4 185 / 0 against "
                "the kernel's 4 957..7 457 / 2 632..6 465), where the kernel's two processes reclaim at once, "
                'share the walk\'s position, and age both (docs/kernel-truth.md, "A parent over the groups")',
            ),
        ),
    ],
)
def test_groups_inside_a_parent_fault_as_the_kernels_do(config: str, name: str, tmp_path: Path) -> None:
    # Each process in a 64 MiB group of its own, both inside a 64 MiB parent (cgroup.parent_max;
    # bench/kernel_truth.py group --groups 2 --parent: parent2_<config>.json): the parent's limit is
    # the one met, and its reclaim goes round both groups' lists. cache_and_hog_72 takes no major
    # fault on either side (the cache's pages are active, the hog's 48 MiB loop and the cache fit
    # 64 MiB between them), where in 32 MiB groups of their own the hog faults on every page.
    speed = None if config == "zram" else DISK
    doc = recorded(config, "parent2")
    wl = doc["workloads"][name]
    assert wl["sha256"] == trace_sha(name) and len(wl["runs"]) >= 6
    assert (doc["settings"]["groups"], doc["settings"]["parent_bytes"]) == (2, 64 * MIB)
    sims = _simulate_all(
        config,
        name,
        tmp_path,
        "machine.ncpus=2",
        "cgroup.groups=2",
        f"cgroup.parent_max={doc['settings']['parent_bytes']}",
        wset="parent2",
        speed=speed,
        limit=doc["settings"]["limit_bytes"],
    )
    runs = wl["runs"]
    for i, p in enumerate(sims.values()):
        assert _within(p.majflt, _spread([r["procs"][i]["majflt"] for r in runs]), 0.02), (i, p.majflt)
        assert _within(p.minflt, _spread([r["procs"][i]["minflt"] for r in runs]), 0.01), (i, p.minflt)
    if name == "cache_and_hog_72":
        alone = recorded(config, "groups2")["workloads"][name]["runs"]
        assert min(r["procs"][1]["majflt"] for r in alone) > 7_000  # the hog in a 32 MiB group of its own


IRQ_CPU = "irq_cpu_two_random_80"  # bench/kernel_truth.py irq-cpu two_random_80 --record


@functools.cache
def _irq_cpu_recorded() -> tuple[dict[str, Any], int, int, int]:
    """The recorded runs of two_random_80 with each replayer held to one CPU, both ways round: (the
    file, the CPU the swap disk interrupts, a read's median ns from that CPU, how much longer from
    the other)."""
    doc = recorded("file_pc3", IRQ_CPU)
    (irq,) = {c for cpus in doc["irqs"].values() for c in cpus}  # one request queue, one CPU
    reads = {int(c): statistics.median(v) for c, v in doc["read_ns_by_cpu"].items()}
    (other,) = set(reads) - {irq}
    return doc, irq, round(reads[irq]), round(reads[other] - reads[irq])


@functools.cache
def _irq_cpu_simulated() -> dict[int, list[tuple[int, int]]]:
    """The simulator on that machine: by ``machine.swap_irq_cpu``, each nearby limit's (majflt of the
    process on the other CPU, majflt of the one on the interrupt's), CPU 0 being process 1's."""
    _, _, read_ns, wake = _irq_cpu_recorded()
    speed = K.DeviceSpeed(read_ns, DISK.bandwidth)
    out: dict[int, list[tuple[int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="vmexp-irq-") as tmp:
        for irq in (0, 1):
            out[irq] = []
            for k in NEARBY_PAGES:
                run = _simulate_all(
                    "file_pc3",
                    "two_random_80",
                    Path(tmp) / f"{irq}_{k}",
                    "machine.ncpus=2",
                    f"machine.swap_irq_cpu={irq}",
                    f"machine.cost.remote_wakeup={wake}ns",
                    wset=IRQ_CPU,
                    speed=speed,
                    limit=LIMIT + k * PAGE,
                )
                p1, p2 = run[1].majflt, run[2].majflt
                out[irq].append((p1, p2) if irq == 1 else (p2, p1))
    return out


def _irq_cpu_kernel_faults(contending: bool = False) -> tuple[list[int], list[int]]:
    """The kernel's runs: each run's majflt of the process on the other CPU, and of the one on the
    interrupt's CPU; ``contending``: only the runs where both contend to the end (the group's faults
    at least 90 % of the median run's: not the mode where one process gets ahead and ends early)."""
    doc, irq, _, _ = _irq_cpu_recorded()
    runs = doc["workloads"]["two_random_80"]["runs"]
    assert doc["workloads"]["two_random_80"]["sha256"] == trace_sha("two_random_80") and len(runs) >= 8
    if contending:
        middle = statistics.median(r["majflt"] for r in runs)
        runs = [r for r in runs if r["majflt"] >= 0.9 * middle]
    remote = [r["procs"][1 - r["cpus"].index(irq)]["majflt"] for r in runs]
    local = [r["procs"][r["cpus"].index(irq)]["majflt"] for r in runs]
    return remote, local


def test_the_process_off_the_swap_disks_interrupt_cpu_faults_more_as_the_kernels_do() -> None:
    # This machine's disk has one request queue, and it interrupts CPU 1: a page read from a task
    # on CPU 0 takes 12 us longer (67.0 against 54.7 us, medians of 3 x 1 000 reads), the wakeup
    # sent across. With each replayer held to one CPU, both ways round, the process on CPU 0 took
    # more major faults in every one of the 12 recorded runs (6 317..6 639 against 3 456..5 982):
    # it waits longer for each read, touches its pages less often, and reclaim, which takes the
    # group's least recently used, takes more of them. With machine.swap_irq_cpu and the measured
    # machine.cost.remote_wakeup the simulator does the same at every nearby limit, both ways
    # round; without them it sends either process ahead as it happens (process 1 more at 2 of the
    # 5 limits; docs/kernel-truth.md, "Which CPU the disk interrupts").
    _, _, read_ns, wake = _irq_cpu_recorded()
    assert wake > 8_000, (read_ns, wake)
    remote, local = _irq_cpu_kernel_faults()
    assert all(a > b for a, b in zip(remote, local, strict=True)), (remote, local)
    for irq, pairs in _irq_cpu_simulated().items():
        assert all(a > b for a, b in pairs), (irq, pairs)


@pytest.mark.xfail(
    strict=True,
    reason="the process on the interrupt's CPU runs too far ahead: with a swap-in's CPU time as this "
    "VM's kernel spends it (machine.cost.swap_read) it faults 5 028 / 5 248 times where the kernel's "
    "faults 5 554 at least, and the group is 2.4 % short with process 1 there; what slows the kernel's "
    'is open (docs/kernel-truth.md, "Which CPU the disk interrupts")',
)
def test_two_processes_held_to_their_cpus_fault_as_many_times_as_the_kernels() -> None:
    # The same runs, counted: in the 10 runs where both contend to the end, the process on CPU 0
    # took 6 354..6 639 major faults, the one on CPU 1 5 554..5 982, the group 11 734..12 357. The
    # simulator (medians over the nearby limits, for either placement): 6 431 and 6 445, 5 028 and
    # 5 248, the group 11 459 and 11 719 (before machine.cost.swap_read: 6 322 and 6 311, 4 743 and
    # 4 868, 11 055 and 11 220).
    remote, local = _irq_cpu_kernel_faults(contending=True)
    group = [a + b for a, b in zip(remote, local, strict=True)]
    for irq, pairs in _irq_cpu_simulated().items():
        for sim, kernel in zip(zip(*pairs, strict=True), (remote, local), strict=True):
            assert _within(int(statistics.median(sim)), _spread(kernel), 0.02), (irq, sim, _spread(kernel))
        got = int(statistics.median(a + b for a, b in pairs))
        assert _within(got, _spread(group), 0.02), (irq, got, _spread(group))


def test_a_swap_limit_on_cgroup_v1_counts_memory_and_swap_together_as_the_kernel_does(tmp_path: Path) -> None:
    # This machine's cgroup v1 has no swap-only limit: validate kernel sets memory.memsw.limit_in_bytes
    # to cgroup.memory_max + cgroup.swap_max. uniform_128_read on the swap file at page-cluster 0
    # keeps most pages' slots while they are read back, which memsw counts once. Measured
    # 2026-12-08 (python -m vmexp.validate kernel uniform_128_read.trace --swap file --runs 3
    # cgroup.memory_max=64M cgroup.swap_max=72M machine.page_cluster=0, twice): all 6 runs finished,
    # majflt 25 216..25 264 and minflt 32 792..33 011; at 66M 2 of 2 finished; at 65M and 65 500 KiB
    # every run was OOM-killed (the simulator's edge is lower: it finishes at 65M, as on zram with
    # uniform_80, where the kernel needed 17 to 17.5M of swap and the simulator 16.8M). Counted as
    # memory.swap.max counts it (slots), the simulator's group killed the process in its first
    # sweep at 72M, which validate reported as DIFFER.
    def run(swap_max: str) -> tuple[str, Any]:
        out = tmp_path / swap_max
        r = _simulate("file_pc0", "uniform_128_read", out, f"cgroup.swap_max={swap_max}", "cgroup.version=1")
        return json.loads((out / "r" / "metrics.json").read_text())["processes"][0]["exit"], r

    exit, r = run("72M")
    assert exit == "ok"
    assert _within(r.majflt, _spread([25_216, 25_264]), 0.01) and _within(
        r.minflt, _spread([32_792, 33_011]), 0.01
    )
    assert run("66M")[0] == "ok" and run("65500k")[0] == "oom-killed"


@pytest.mark.parametrize(
    "config",
    [
        "zram",
        pytest.param(
            "file_pc3",
            marks=pytest.mark.xfail(
                strict=True,
                reason="at 64 MiB -16..+16 pages the simulator takes 3 891..6 496 major faults, the kernel "
                "7 528..9 366: once the global readahead window is open the simulator's stays open, the "
                "kernel's shuts and reopens, and the simulator's two processes never reclaim at once, so "
                "a readahead window holds one process's pages (docs/kernel-truth.md, \"Several processes in "
                'one group", "Two reclaimers at once")',
            ),
        ),
    ],
)
def test_two_processes_sweeping_in_loops_fault_as_the_kernels_do(config: str, tmp_path: Path) -> None:
    # Two processes each sweeping its own 40 MiB block three times in one 64 MiB group (group_<config>.json,
    # 8 runs). On zram, which reads no page ahead, the kernel's runs where both contend to the end
    # refault every page of the later sweeps (41 003 major faults at most; in others one process
    # finished first: 10 269 at least), and so does the simulator. On the swap file at page-cluster 3
    # the kernel's readahead makes most refaults minor (7 499..9 776 major faults; at 64 MiB -16..+16
    # pages 7 528..9 366, 3 runs each). The simulator's made too few of them minor while its device
    # took transfers in the order the engine ran the CPUs (23 175: its two processes faulted in
    # strict turn and the window never opened); now it makes too many (3 891..6 496 at those limits;
    # 4 104..7 293 before a swap-in's CPU time was the kernel's, machine.cost.swap_read and
    # swap_cache_hit, and 4 101..5 720 before reclaim's writes took time, machine.cost.swap_write).
    wl = recorded(config, "group")["workloads"]["two_loops_80"]
    assert wl["sha256"] == trace_sha("two_loops_80") and len(wl["runs"]) >= 6
    runs = wl["runs"]
    if config == "zram":
        procs = _simulate_all(config, "two_loops_80", tmp_path, "machine.ncpus=2", wset="group").values()
        assert [p.minflt for p in procs] == [
            40 * MIB // PAGE + 1
        ] * 2  # the kernel's: each page once, and the tcache's
        most = max(r["majflt"] for r in runs)
        group = sum(p.majflt for p in procs)
        assert abs(group - most) <= 0.001 * most, (group, most)
        return
    # One limit is one draw: the median over the nearby limits, as the contending processes' test.
    groups = [sum(p.majflt for p in procs) for procs in _group_nearby(config, "two_loops_80", tmp_path, DISK)]
    assert _within(int(statistics.median(groups)), _spread([r["majflt"] for r in runs]), 0.02), groups


@pytest.mark.xfail(
    strict=True,
    reason="the simulator runs a process's reclaim pass whole, so its writes take runs of slots "
    "(0.2 % two slots on, against the kernel's 12 to 22 %; branch exp/concurrent-reclaim: "
    'docs/kernel-truth.md, "Two reclaimers at once")',
)
def test_two_processes_reclaiming_at_once_take_alternate_swap_slots_as_the_kernels_do() -> None:
    # On a rotational disk the kernel hands swap slots out from one cursor (global_cluster), so two
    # processes reclaiming at once on two CPUs take alternate slots, and a readahead window then
    # holds pages of both. Traced on two_loops_80 (block_bio_queue, slot_order_*.json: python
    # bench/kernel_truth.py slots two_loops_80 --record): a replayer's next write went two slots on
    # from its last (the other's between) in 12 to 22 % of its writes.
    doc = json.loads((DATA / "slot_order_two_loops_80_file_pc3.json").read_text())
    wl = doc["workloads"]["two_loops_80"]
    assert wl["sha256"] == trace_sha("two_loops_80") and len(wl["runs"]) >= 6
    kernel = [r["+2"] for r in wl["runs"]]
    assert min(kernel) >= 0.1 and all(r["switches"] > 5_000 for r in wl["runs"]), wl["runs"]
    kt = _kernel_truth()
    sim = kt.slots_simulated("two_loops_80", "file_pc3", kt.FAST_DISK, 0)
    assert min(kernel) <= sim["+2"] <= max(kernel), (sim, kernel)


def _stretched(config: str, name: str) -> tuple[dict[str, Any], str]:
    """A workload's recorded runs stretched by ``kernel_truth stretch`` (stretched_CONFIG.json), and
    that stretched trace's text, checked against the one the runs replayed."""
    doc = json.loads((DATA / f"stretched_{config}.json").read_text())
    text = _kernel_truth().stretch_text(generate(name), doc["settings"]["stretch_seconds"])
    assert sha256(text) == doc["workloads"][name]["sha256"]
    return doc["workloads"][name], text


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_run_over_many_statistics_flushes_ages_the_active_list_as_the_kernels_runs_do(
    tmp_path: Path,
) -> None:
    # zipf_120_clustered (unseen set) on the swap file at page-cluster 0 lasts 1.3-1.9 s on the kernel
    # and no run deactivates a page: inactive_is_low reads statistics flushed every 2 s. Stretched by
    # 20 s of compute spread over its touches (the same operations; validate kernel spins for them),
    # every real run ages the active list, and the major faults stay where they were. The simulator's
    # time model must do the same: with live statistics (stats_flush=0) it took 21 436 major faults,
    # below every run; with no flush after the first, no deactivation.
    real, text = _stretched("file_pc0", "zipf_120_clustered")
    as_written = recorded("file_pc0", "fresh_unseen")["workloads"]["zipf_120_clustered"]
    assert all(r["vmstat"]["pgdeactivate"] == 0 for r in as_written["runs"])
    assert all(r["vmstat"]["pgdeactivate"] > 1000 for r in real["runs"])
    majflts = [r["majflt"] for r in real["runs"]]

    sim = _simulate("file_pc0", "zipf_120_clustered", tmp_path, wset="fresh_unseen", speed=DISK, text=text)
    vmstat = json.loads((tmp_path / "r" / "metrics.json").read_text())["system"]["vmstat"]
    assert min(majflts) <= sim.majflt <= max(majflts), (sim.majflt, majflts)
    assert vmstat["pgdeactivate"] > 1000


def _churn(seed: int) -> tuple[dict[str, Any], str]:
    """A churn trace's recorded runs (``kernel_truth churn``: churn_file_pc3.json) and its text,
    checked against the one the runs replayed."""
    spec = importlib.util.spec_from_file_location("churn_traces", ROOT / "bench" / "churn_traces.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.churn_trace(seed)
    wl = recorded("file_pc3", "churn")["workloads"][f"t{seed}"]
    assert sha256(text) == wl["sha256"]
    return wl, text


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_with_the_statistics_flushed_at_a_known_period_random_churn_agrees_with_the_kernel(
    tmp_path: Path,
) -> None:
    # Random churn traces (bench/churn_traces.py) at page-cluster 3 on the swap file part from the
    # kernel by when its 2 s statistics timer falls: on t17 (8 000 operations, 6-7 s a run) the
    # group's OOM killer ended 4 of 6 runs as measured. With memory.stat read every 100 ms (each read
    # flushes) it finished all 6, and the simulator given the same period (validate kernel
    # --stats-every 100ms) lands inside those runs on both counts. Where the period's first flush
    # falls is the reader's phase, not known to the millisecond: held over three phases (the
    # median), as one limit is one draw (at 100 ms alone its minflt has been 38 above the highest
    # run since reclaim's writes take time; from 10 to 100 ms, in 10 ms steps, on a disk of 42 µs a
    # request, its major faults stayed inside: 38 994..44 853).
    wl, text = _churn(17)
    runs = [r for r in wl["stats_runs"] if r is not None]
    assert len(runs) == len(wl["stats_runs"]) >= 5
    assert any(r is None for r in wl["runs"])
    every = f"{round(recorded('file_pc3', 'churn')['settings']['stats_every_s'] * 1000)}ms"
    sims = [
        _simulate(
            "file_pc3",
            "t17",
            tmp_path / first,
            f"policy.params.stats_flush={every}",
            f"policy.params.stats_flush_first={first}",
            wset="churn",
            speed=DISK,
            text=text,
        )
        for first in ("10ms", "50ms", every)
    ]
    for count in ("majflt", "minflt"):
        real = [r[count] for r in runs]
        got = statistics.median(getattr(s, count) for s in sims)
        assert min(real) <= got <= max(real), (count, [getattr(s, count) for s in sims], real)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_longer_run_takes_fewer_major_faults_at_page_cluster_3_on_the_kernel_and_in_the_simulator(
    tmp_path: Path,
) -> None:
    # hotcold_80 on the swap file at page-cluster 3: as written (1-2 s) the kernel takes 24 039..25 161
    # major faults; stretched by 20 s of compute every run takes fewer (21 650..23 866), in two modes:
    # refaults activated by the thousands once the flushed statistics show an active list (14 240 and
    # 16 021 workingset_activate_anon), or not (669..1 532). The simulator follows from one to the
    # other (it lands in the first mode): with no flush after the first it stayed at 24 527, with
    # live statistics 25 339. Both held at their median over nearby limits (NEARBY_PAGES): the
    # first sweep ends on a knife edge. As written, a run lasts 1.4 to 1.9 s on the kernel and about
    # as long in the simulator, so where the group's first statistics flush falls in it (the 2 s
    # timer's phase, which each kernel run takes as it comes) is another draw: held at the median
    # over the phase's quartiles, 0.5 and 1.5 s, as well (at 1 s alone the simulator's median is
    # 23 820, its refaults activated by the thousands at two limits; at 0.5, 1.5 and 2 s 24 410,
    # 24 609 and 24 609).
    runs, text = _stretched("file_pc3", "hotcold_80")
    real = [r["majflt"] for r in runs["runs"]]
    as_written = recorded("file_pc3", "fresh")["workloads"]["hotcold_80"]["majflt"]
    assert max(real) < as_written["min"]

    short = statistics.median(
        _simulate(
            "file_pc3",
            "hotcold_80",
            tmp_path / f"short_{phase}_{k}",
            f"policy.params.stats_flush_first={phase}ms",
            wset="fresh",
            speed=DISK,
            limit=LIMIT + k * PAGE,
        ).majflt
        for phase in (500, 1500)
        for k in NEARBY_PAGES
    )
    long, _ = _simulate_nearby(
        "file_pc3", "hotcold_80", tmp_path / "long", wset="fresh", speed=DISK, text=text
    )
    assert as_written["min"] <= short <= as_written["max"], (short, as_written)
    assert min(real) <= long <= max(real), (long, real)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
@pytest.mark.parametrize(
    ("cluster", "name", "maj_tol", "min_tol"),
    [(3, "seq_read_160", 0.001, 0.001), (0, "zipf_160_read", 0.01, 0.02)],
)
def test_reads_on_a_disk_as_slow_as_hdd_last_as_long_and_fault_as_on_the_kernel(
    cluster: int, name: str, maj_tol: float, min_tol: float, tmp_path: Path
) -> None:
    # A swap disk that takes hdd's 12.7 ms a request plus the bytes at 150 MB/s: a FUSE file served
    # by one thread that sleeps that long before each read or write, under a loop device
    # (bench/slow_disk.py; docs/kernel-truth.md, "A disk as slow as hdd"). On it seq_read_160 at
    # page-cluster 3 lasts 75 s on the kernel, and zipf_160_read (Zipf reads, 8 600 single-page
    # major faults) at page-cluster 0 126 s, where on this machine's own disk each lasts 1-2 s. The
    # simulator, given the same device (a FIFO server paying the latency once a request, the loop
    # queue's 128-page requests), must last as long and take the same faults: the reads, one
    # request a cluster or a page, are what the time is made of. (The kernel's long runs take 1 to 2 %
    # more minor faults than its short ones, pages found in the swap cache while their writes are in
    # flight, which the simulator does not have: zipf_160_read's minflt is held to 2 %.)
    doc = recorded(f"pc{cluster}", "slowdisk")
    st = doc["settings"]
    assert (st["device_latency_ns"], st["device_bandwidth"]) == (12_700_000, 150_000_000)
    assert st["page_cluster"] == cluster and st["swap_max_segments"] == 128 and st["swap_device"] == "hdd"
    real = doc["workloads"][name]
    assert real["sha256"] == trace_sha(name) and len(real["runs"]) >= 2
    seconds = sorted(r["seconds"] for r in real["runs"])

    sim = _simulate(
        f"pc{cluster}", name, tmp_path, wset="slowdisk", speed=K.DeviceSpeed(12_700_000, 150_000_000)
    )
    sim_s = json.loads((tmp_path / "r" / "metrics.json").read_text())["system"]["sim_time_s"]
    assert _within(sim.majflt, real["majflt"], maj_tol), (sim.majflt, real["majflt"])
    assert _within(sim.minflt, real["minflt"], min_tol), (sim.minflt, real["minflt"])
    assert 0.9 * seconds[0] <= sim_s <= 1.1 * seconds[-1], (sim_s, seconds)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_on_a_disk_as_slow_as_hdd_refaults_are_activated_and_a_sweep_faults_less_as_on_the_kernel(
    tmp_path: Path,
) -> None:
    # blocks at page-cluster 0: 12 mappings swept twice, 85 MiB in a 64 MiB group. On this machine's
    # own disk a run lasts 1.5-1.9 s, the group's statistics are flushed once at most, few refaults
    # find an active list to be measured against, and the kernel activates 0 to 2 069 of them
    # (median 299) and takes 27 636..28 183 major faults (fresh device; the first session's runs, on
    # a slower day, lasted up to 10 s and took down to 25 619). On a disk as slow as hdd, its write
    # throttle aiming at a rotational disk's 75 ms, a run lasts 467-487 s, the statistics are flushed
    # every 2 s, and the kernel activates 1 364 and 4 416 refaults and takes 24 110 and 24 858 (with
    # the loop device's own 2 ms target: 6 915 and 8 961, 24 619..24 809). The held-out command's hdd
    # is that disk: the simulator must go the same way with the time its device gives it. It takes
    # 25 778 there (+5.3 % of the median; +4.3 % of the 2 ms runs') with 10 152 activations, more
    # than the kernel's, and 28 194 (+0.2 %) with 596 on the fast disk. A model that read live
    # statistics, or never flushed them, would not move with the disk.
    slow = recorded("pc0", "slowdisk")["workloads"]["blocks"]
    fast = recorded("file_pc0", "fresh")["workloads"]["blocks"]
    assert slow["sha256"] == fast["sha256"] == trace_sha("blocks")
    assert slow["majflt"]["max"] < fast["majflt"]["min"]
    fast_acts = [r["vmstat"]["workingset_activate_anon"] for r in fast["runs"]]
    assert min(r["vmstat"]["workingset_activate_anon"] for r in slow["runs"]) > statistics.median(fast_acts)

    def run(config: str, wset: str, speed: K.DeviceSpeed, out: Path) -> tuple[int, int]:
        r = _simulate(config, "blocks", out, wset=wset, speed=speed)
        vmstat = json.loads((out / "r" / "metrics.json").read_text())["system"]["vmstat"]
        return r.majflt, vmstat["workingset_activate_anon"]

    slow_maj, slow_act = run("pc0", "slowdisk", K.DeviceSpeed(12_700_000, 150_000_000), tmp_path / "slow")
    fast_maj, fast_act = run("file_pc0", "fresh", DISK, tmp_path / "fast")
    assert _within(fast_maj, fast["majflt"], 0.01), (fast_maj, fast["majflt"])
    assert fast_act <= max(fast_acts), (fast_act, max(fast_acts))
    assert slow_act > max(fast_acts), (slow_act, max(fast_acts))
    assert _within(slow_maj, slow["majflt"], 0.06), (slow_maj, slow["majflt"])
    assert slow_maj < fast["majflt"]["min"], (slow_maj, fast["majflt"])


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_cgroups_deep_reclaim_pass_writes_ahead_as_the_kernels_does(tmp_path: Path) -> None:
    # uniform_128_read on the swap file at page-cluster 0: a 128 MiB write sweep, then 50 000 random
    # reads. The kernel's runs take 33 to 275 minor faults beyond the 32 769 first touches. The
    # vmscan and block tracepoints say where they come from: near the sweep's end a priority-0 pass
    # scans the whole inactive list and writes about 2 900 pages, all held in shrink_lruvec's block
    # plug (a cgroup's reclaim does not throttle), and the reads then find those pages in the swap
    # cache. A reclaimer that waited for its own first write after each chunk freeing nothing wrote
    # 56 there, and its 31 extra minor faults fell below every real run.
    real = recorded("file_pc0")["workloads"]["uniform_128_read"]
    sim = _simulate("file_pc0", "uniform_128_read", tmp_path)
    assert real["minflt"]["min"] <= sim.minflt <= real["minflt"]["max"], (sim.minflt, real["minflt"])
    assert _within(sim.majflt, real["majflt"], AGREEMENT["file_pc0"][0]), (sim.majflt, real["majflt"])


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_the_programs_own_pages_fault_back_in_after_a_sweep_as_on_the_kernel(tmp_path: Path) -> None:
    # seq_write_80 on zram: three write sweeps of 80 MiB, each of which reads back every page the
    # last one swapped out, make the trace's own 40 960 major faults; the kernel counts 40 980 to
    # 40 983: the replayer's stack frame, GOT and TLS pages, swapped out by each sweep and faulted
    # back in after it (perf record -e major-faults -d). The hot image pages (cgroup.image_hot) are
    # most of that excess; without them the simulator counts the trace's faults alone.
    real = recorded("zram")["workloads"]["seq_write_80"]["majflt"]
    assert real["min"] > 40_960 + 16
    without = _simulate("zram", "seq_write_80", tmp_path / "cold", "cgroup.image_hot=0")
    assert without.majflt == 40_960
    sim = _simulate("zram", "seq_write_80", tmp_path / "hot")
    assert abs(sim.majflt - real["median"]) <= 0.0002 * real["median"], (sim.majflt, real)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
@pytest.mark.parametrize("name", ["seq_read_160", "seq_write_160_twice"])
def test_a_process_preempted_in_its_reclaim_reads_its_rseq_page_back_as_on_the_kernel(
    name: str, tmp_path: Path
) -> None:
    # Sweeps of 160 MiB on zram, where swap-ins never sleep. Every 512 pages its own reclaim scans,
    # vmpressure's kworker preempts the replayer, and on its way back to user space the kernel reads
    # its rseq area. Traced on seq_read_160 (sched_switch with stacks, page_fault_kernel): 241
    # preemptions, yet the rseq page faulted back only 5 times, each right after a reclaim call the
    # replayer was preempted in (a long one: the next test). x86 clears accessed bits without a TLB
    # flush, and most runs flush reclaim's unmaps a page at a time, so a read through the still-cached
    # entry marks nothing; the simulator's read marks nothing and faults only if reclaim took the page. The kernel
    # takes 40 975..40 979 and 40 975..40 977 major faults; with those reads left out the simulator
    # took 40 973 on both, and with them as sleeps (the page written and marked young each time)
    # 40 972.
    real = recorded("zram", _set_of(name))["workloads"][name]["majflt"]
    sim = _simulate("zram", name, tmp_path)
    assert real["min"] <= sim.majflt <= real["max"], (sim.majflt, real)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_the_rseq_page_faults_after_the_long_reclaim_calls_which_the_simulator_makes_as_the_kernel_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # seq_read_160 on zram, traced (`kernel_truth.py flushes seq_read_160 --runs 10 --record`): in every
    # run 5 of the replayer's 1 603 reclaim calls took 7.6 to 11.9 ms (the others about 0.2 ms), and
    # its rseq page faulted 5 times, each within 0.1 ms of the end of one of them. Such a call scans
    # the whole inactive list, every page young at its first arrival, then reclaims the first pages
    # it kept, the rseq page among them, with no return to user space between to mark it. The
    # simulator makes the same long calls, and its image goes on the lists in the order the kernel's
    # does (vmexp.kernel.memcg.IMAGE_ORDER: the rseq page 13th), so they take it as the kernel's do.
    from vmexp.kernel import fault
    from vmexp.kernel.policies import linux

    doc = json.loads((DATA / "tlb_flushes_seq_read_160_zram.json").read_text())
    wl = doc["workloads"]["seq_read_160"]
    assert wl["sha256"] == trace_sha("seq_read_160") and len(wl["runs"]) >= 5
    for run in wl["runs"]:
        assert len([c for c in run["long_calls"] if c[1] >= 5]) == 5
        assert len(run["rseq"]) == 5 and all(r is not None and r[0] < 0.1 and r[1] >= 5 for r in run["rseq"])

    scanned: list[int] = []
    rseq_faults = 0

    def shrink(self: Any, nr: int, *, cgroup: bool, kswapd: bool = False) -> int:
        before = self.ev["pgscan_anon"]
        got = original_shrink(self, nr, cgroup=cgroup, kswapd=kswapd)
        scanned.append(self.ev["pgscan_anon"] - before)
        return got

    def fault_(self: Any, mm: Any, vpn: int, e: int, w: int) -> bool:
        nonlocal rseq_faults
        rseq_faults += e < 0 and bool(mm.hot) and vpn == mm.hot[0]
        return original_fault(self, mm, vpn, e, w)

    original_shrink, original_fault = linux.LinuxLRU.shrink, fault.FaultHandler.fault
    monkeypatch.setattr(linux.LinuxLRU, "shrink", shrink)
    monkeypatch.setattr(fault.FaultHandler, "fault", fault_)
    trace = tmp_path / "seq_read_160.trace"
    trace.write_text(generate("seq_read_160"))
    simulate_with(
        "workload=trace", f"workload.path={trace}", "nprocs=1", "ram=1G", "swap=1G", "cgroup.memory_max=64M",
        "policy=linux", "machine.swap_device=zram", "duration=1000000s", check=False,
    )  # fmt: skip
    assert abs(len(scanned) - 1_603) <= 5, len(scanned)
    assert len([n for n in scanned if n >= 4_096]) == 5, sorted(scanned)[-8:]
    assert abs(rseq_faults - 5) <= 1, rseq_faults


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_the_allocators_own_state_faults_back_in_after_a_sweep_as_on_the_kernel(tmp_path: Path) -> None:
    # blocks on zram: 214 mallocs (12 mappings, 200 heap blocks) between sweeps of its 92 MiB. The
    # first allocation after a sweep faults back the C library's allocator state: perf record -e
    # major-faults -d names malloc, _int_malloc, __sbrk, sysmalloc, free and munmap_chunk, 21 faults
    # a run on 6 pages of libc's and ld.so's data (and 3 the kernel takes reading the TLS). The
    # recorded kernel counts 28 356 (median); without those pages (cgroup.image_alloc=0) the
    # simulator is more than 15 short.
    real = recorded("zram")["workloads"]["blocks"]["majflt"]
    without = _simulate("zram", "blocks", tmp_path / "without", "cgroup.image_alloc=0")
    assert real["median"] - without.majflt > 15, (without.majflt, real)
    sim = _simulate("zram", "blocks", tmp_path / "with")
    assert abs(sim.majflt - real["median"]) <= 0.0002 * real["median"], (sim.majflt, real)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
@pytest.mark.parametrize(
    ("name", "queue"),
    [
        pytest.param(
            "seq_write_80",
            "file",
            marks=pytest.mark.xfail(
                strict=True,
                reason="the simulator's deep passes are about 1 000 pages smaller than the kernel's (its hot "
                "image pages come back as stores, freeing slots whose holes split the plug's requests; the "
                "kernel's replayer loads six of its seven): median 3 112 major faults against 2 536..2 870 "
                "(docs/kernel-truth.md, 'What a deep pass is made of')",
            ),
        ),
        ("seq_write_80", "loop"),
        ("seq_loop_72", "file"),
        ("seq_loop_72", "loop"),
    ],
)
def test_the_kernels_two_modes_at_page_cluster_3_follow_the_disk_queues_request_size(
    name: str, queue: str, tmp_path: Path
) -> None:
    # Write sweeps at page-cluster 3, every run on a device swapped on again (measure
    # --fresh-device), on one disk through two queues: a swap file on the virtio disk, whose
    # requests hold up to 254 pages, and a loop device over a file on it, 128. On the loop device
    # the kernel frees every page it writes before the sweep comes back to it and takes about twice
    # the major faults (docs/kernel-truth.md, "A second queue on the same disk"). The simulator, given each
    # queue's max_segments as the kernel reports it and the disk's speed, lands in each mode (its
    # median over nearby limits, NEARBY_PAGES: the first sweep ends on a knife edge).
    speed = K.DeviceSpeed(44_000, 1_760_000_000)  # device_speed of both, 2026-12-05: 41-44 us, 1.6-1.8 GB/s
    file_real = recorded("file_pc3", "fresh")["workloads"][name]["majflt"]
    loop_doc = recorded("loop_pc3", "fresh")
    loop_real = loop_doc["workloads"][name]["majflt"]
    assert loop_doc["settings"]["swap_max_segments"] == 128
    assert loop_real["min"] > 1.3 * file_real["max"]  # two modes, not one spread
    real = file_real if queue == "file" else loop_real
    majflt, _ = _simulate_nearby(f"{queue}_pc3", name, tmp_path, wset="fresh", speed=speed)
    assert _within(majflt, real, 0.01), (majflt, real)


def test_records_stay_out_of_the_cgroup_charge_when_tmpfs_is_there(tmp_path: Path) -> None:
    # The records file goes to /dev/shm (tmpfs, written by this process) and is removed after.
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm")
    trace = write_trace(tmp_path, "malloc 1 1M\ntouch 1\n")
    with K.records_file(trace) as rec:
        assert rec.startswith("/dev/shm/") and os.path.getsize(rec) == 24 + 2 * 48
    assert not os.path.exists(rec)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="needs a C compiler")
def test_the_kernel_replay_spends_a_traces_compute_time_and_nothing_else(tmp_path: Path) -> None:
    # The simulator spends a `compute` line's time, and the kernel's reclaim depends on time (the
    # memory cgroup statistics are flushed every 2 s, writes complete): the real side spins for it,
    # on the vDSO's clock, without a fault or a syscall of its own. The glibc validation, whose
    # malloc does not depend on time, leaves it out.
    def replay(text: str, name: str) -> tuple[float, dict[str, int]]:
        with K.records_file(write_trace(tmp_path, text, name)) as rec:
            t0 = time.monotonic()
            out = subprocess.run([str(build_replayer()), rec], capture_output=True, text=True, check=True)
            return time.monotonic() - t0, K._parse(out.stdout)

    body = "malloc 1 64K\ntouch 1\n{}touch 1 0 4096 r\nfree 1\n"
    took, with_compute = replay(body.format("compute 300ms\ncompute 50ms\n"), "c.trace")
    _, without = replay(body.format(""), "n.trace")
    assert took >= 0.35
    assert (with_compute.pop("ops"), without.pop("ops")) == (6, 4)
    # Spun on the CPU, in user space: the loop's CPU time (getrusage) holds the 350 ms when it has a
    # CPU to itself; beside the suite's other workers it is preempted (174 ms of CPU has been seen),
    # and a sleep would show none: at least a quarter of it tells the two apart.
    assert with_compute.pop("cpu_us") - without.pop("cpu_us") >= 350_000 // 4
    assert with_compute == without  # the same faults: the clock's pages were touched before the loop
    trace = parse_trace(write_trace(tmp_path, body.format("compute 300ms\n")))
    assert len(_records(trace.ops[1], trace.op_index[1])) == 24 + 4 * 48
    assert len(_records(trace.ops[1], trace.op_index[1], timed=True)) == 24 + 5 * 48


def test_spread_summarises_repeated_counts() -> None:
    assert K.spread([3, 1, 2, 2]) == {"min": 1, "max": 3, "median": 2.0, "mean": 2.0, "sd": 0.82}
    assert K.spread([5]) == {"min": 5, "max": 5, "median": 5, "mean": 5.0, "sd": 0.0}


def _kernel_truth() -> Any:
    """bench/kernel_truth.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernel_truth", ROOT / "bench" / "kernel_truth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session(date: str, kernel: str, majflts: list[int], sha: str = "s1", cluster: int = 0) -> dict[str, Any]:
    runs = [{"minflt": 100, "majflt": m, "oom_reruns": 0} for m in majflts]
    settings = {"config": "file_pc0", "limit_bytes": LIMIT, "swap_device": "hdd", "page_cluster": cluster}
    return {
        "date": date,
        "kernel": kernel,
        "settings": {**settings, "kernel": kernel},
        "repetitions": len(runs),
        "workloads": {"w": {"sha256": sha, "runs": runs}},
    }


def test_another_session_adds_its_runs_to_the_recorded_file_and_says_which_are_whose() -> None:
    kt = _kernel_truth()
    day1 = _session("2026-12-01", "6.18.44-a", [10, 12])
    day2 = _session("2026-12-04", "6.18.44-b", [30, 31, 32])
    both = kt.merge_sessions(day1, day2)
    assert [r["majflt"] for r in both["workloads"]["w"]["runs"]] == [10, 12, 30, 31, 32]
    assert both["repetitions"] == 5 and both["workloads"]["w"]["majflt"]["median"] == 30
    assert (both["workloads"]["w"]["majflt"]["min"], both["workloads"]["w"]["majflt"]["max"]) == (10, 32)
    assert both["sessions"] == [
        {"date": "2026-12-01", "kernel": "6.18.44-a", "repetitions": 2},
        {"date": "2026-12-04", "kernel": "6.18.44-b", "repetitions": 3},
    ]
    assert (both["date"], both["kernel"], both["settings"]["kernel"]) == (
        "2026-12-04",
        "6.18.44-b",
        "6.18.44-b",
    )
    assert len(day1["workloads"]["w"]["runs"]) == 2  # the recorded document is left as it was
    third = kt.merge_sessions(both, _session("2026-12-05", "6.18.44-b", [20]))
    assert [s["repetitions"] for s in third["sessions"]] == [2, 3, 1] and third["repetitions"] == 6
    with pytest.raises(ValueError, match="w: the generator no longer makes the recorded trace"):
        kt.merge_sessions(day1, _session("2026-12-04", "x", [1], sha="s2"))
    with pytest.raises(ValueError, match=r"settings.page_cluster: the recorded file has 0, this session 3"):
        kt.merge_sessions(day1, _session("2026-12-04", "x", [1], cluster=3))


def test_a_disks_request_size_is_read_from_its_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """max_segments, or fewer where max_sectors_kb allows fewer pages: a loop device's 128 (1280 KiB
    allows 320), a disk whose 64 KiB max_sectors_kb holds 16 pages of its 168 segments; unreadable:
    the presets' 254."""
    queues = {"loop0": ("128", "1280"), "sda": ("168", "64"), "vda": ("254", "4096")}

    def read(path: str | Path) -> str:
        block, _, knob = str(path).removeprefix("/sys/block/").partition("/queue/")
        if block not in queues:
            raise FileNotFoundError(path)
        return queues[block][("max_segments", "max_sectors_kb").index(knob)] + "\n"

    monkeypatch.setattr(K, "_read", read)
    assert K.PAGE == 4096  # x86_64; the sizes below are in its pages
    assert [K._request_pages(b) for b in ("loop0", "sda", "vda", "nvme9", None)] == [128, 16, 254, 254, 254]


def test_a_disks_queue_depth_is_its_tags_over_its_hardware_queues(tmp_path: Path) -> None:
    """blk-mq's nr_tags summed over the disk's hardware queues (this machine's virtio disk: one of
    128; an NVMe drive: one per CPU); a disk without them, or unreadable: one request at a time.
    The measured device the validation gives the simulator carries it."""
    for block, tags in {"vda": ["128"], "nvme0n1": ["1023", "1023"], "odd": ["x"]}.items():
        for i, n in enumerate(tags):
            (tmp_path / block / "mq" / str(i)).mkdir(parents=True)
            (tmp_path / block / "mq" / str(i) / "nr_tags").write_text(n + "\n")
    (tmp_path / "sda").mkdir()
    assert [K._queue_depth(b, tmp_path) for b in ("vda", "nvme0n1", "odd", "sda", None)] == [
        128,
        2046,
        1,
        1,
        1,
    ]
    disk = K.SwapArea("/swapfile", "file", True, 1 << 30, 0, -2, 254, 128)
    facts = K.KernelFacts("6.18", 3, 60, False, "madvise", "v1", (disk,))
    (device,) = (
        o for o in simulator_overrides(facts, LIMIT, speed=DISK, new_keys=True) if "swap_device" in o
    )
    assert device.endswith(",max_segments:254,queue_depth:128}"), device
    assert facts.as_dict()["swap_queue_depth"] == 128


def test_nearby_moves_only_the_groups_limit_and_keeps_the_held_out_commands_64M() -> None:
    """``kernel_truth.py nearby``: the held-out command's keys, the limit moved by whole pages (in
    bytes: 64M plus 8 pages is no whole number of MiB); at no offset, its ``64M`` as written."""
    kt = _kernel_truth()
    at = kt._held_out_keys("file_pc3", "hdd")
    moved = kt._held_out_keys("file_pc3", "hdd", LIMIT + 8 * PAGE)
    assert "cgroup.memory_max=64M" in at and f"cgroup.memory_max={(64 << 20) + 32768}" in moved
    assert [k for k in at if "memory_max" not in k] == [k for k in moved if "memory_max" not in k]


def test_agree_gives_the_loop_devices_configurations_the_request_size_its_runs_were_recorded_with() -> None:
    """``kernel_truth.py agree --disk loop``: whatever speed ``--device`` gives, the simulator's device
    for a loop configuration has the loop queue's 128 pages a request; a swap file's keeps the disk's."""
    kt = _kernel_truth()
    assert kt._queue_device("loop_pc3", "hdd") == (
        "{name:hdd,latency:12700000ns,bandwidth:150000000,rotational:true,max_segments:128}"
    )
    measured = "{name:measured,latency:41270ns,bandwidth:1500000000,rotational:true,max_segments:254}"
    assert kt._queue_device("loop_pc0", measured) == measured.replace("254", "128")
    assert kt._queue_device("file_pc3", measured) == measured
    with pytest.raises(K.KernelRunError, match="--fresh"):
        kt.agree(1, "hdd", "main", False, "loop")


def test_the_aging_command_refuses_a_step_it_cannot_replay_before_it_touches_swap() -> None:
    """``kernel_truth.py aging``: a bad step or a device without a swap file is one line, before any swapon."""
    kt = _kernel_truth()
    for steps, said in (
        (["2", "fill:0"], "step 'fill:0'"),
        (["fill:64M"], "step 'fill:64M'"),
        (["-1"], "step '-1'"),
        (["twice"], "step 'twice'"),
        (["seq_write_80x2"], "step 'seq_write_80x2'"),
    ):
        with pytest.raises(K.KernelRunError, match=said):
            kt.aging("seq_write_80", steps)
    with pytest.raises(K.KernelRunError, match=r"step others: /x/y\.trace is a trace file"):
        kt.aging("/x/y.trace", ["others"])
    with pytest.raises(K.KernelRunError, match="zram is not a swap file"):
        kt.aging("seq_write_80", ["1"], "zram")
    with pytest.raises(K.KernelRunError, match="nosuch: neither a workload nor a trace file"):
        kt.aging("nosuch", ["1"])
    with pytest.raises(K.KernelRunError, match="--size 16: a swap file of at least 64 MiB"):
        kt.aging("seq_write_80", ["1"], size_mib=16)


def test_a_deep_reclaim_pass_is_found_and_the_order_its_pages_are_freed_in_is_read_from_the_trace() -> None:
    """``aging --trace-reclaim``: which reclaim calls wrote a deep pass, and whether reclaim freed its pages
    in the order they were written (1) or in the reverse order (0)."""
    kt = _kernel_truth()
    lines: list[str] = []
    t = [1.0]

    def ev(what: str, comm: str = "replayer-4ea03b-8669") -> None:
        t[0] += 1e-5
        lines.append(f" {comm}    [001] ..... {t[0]:.6f}: {what}")

    def reclaim_call(pfns: range) -> None:
        ev("mm_vmscan_memcg_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE")
        for p in pfns:
            ev(f"mm_vmscan_write_folio: page=0000 pfn=0x{p:x} flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
        ev("mm_vmscan_memcg_reclaim_end: nr_reclaimed=32")

    def free(pfns: range) -> None:
        for p in pfns:
            ev(f"mm_page_free_batched: page=0000 pfn=0x{p:x} order=0")

    in_order, reverse, small = (
        range(0x1000, 0x1000 + 2000),
        range(0x9000, 0x9000 + 1500),
        range(0x20000, 0x20020),
    )
    free(reverse)  # freed before the pass that writes them: not its frees
    reclaim_call(in_order)
    reclaim_call(small)
    free(in_order)
    reclaim_call(reverse)
    free(range(reverse[-1], reverse[0] - 1, -1))
    ev("block_rq_issue: 252,0 W 1040384 () 12345 + 2032 none,0,0 [replayer]", comm="<idle>-0")
    ev("block_rq_issue: 252,0 W 8192 () 99999 + 16 none,0,0 [kworker/1:1]", comm="kworker/1:1-52")
    ev("block_rq_issue: 252,0 R 32768 () 5 + 64 none,0,0 [replayer]")  # a read: not counted
    got = kt.reclaim_passes("\n".join(lines))
    assert got["deep"] == [(2000, 1.0), (1500, 0.0)]
    assert got["requests"] == 2 and got["pages_per_request"] == (254 + 2) / 2


def test_each_reclaim_calls_writes_frees_and_a_deep_passs_requests_are_read_from_the_trace() -> None:
    """``passes``: what each of the replayer's reclaim calls wrote and freed, and the requests its plug
    held when a call wrote a deep pass (kind, pages, where: pages from the lowest sector used)."""
    kt = _kernel_truth()
    lines: list[str] = []

    def ev(what: str) -> None:
        lines.append(f" replayer-4ea03b-8669    [001] ..... {1000 + len(lines) / 1e6:.6f}: {what}")

    write = "mm_vmscan_write_folio: page=0000 pfn=0x100 flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC"
    ev("block_rq_insert: 254,0 W 4096 () 5000 + 8 be,0,4 [replayer]")  # outside a call: not its
    ev("mm_vmscan_memcg_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE")
    for _ in range(3):
        ev(write)
    ev("mm_vmscan_memcg_reclaim_end: nr_reclaimed=41")
    ev("mm_vmscan_memcg_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE")
    for _ in range(kt.DEEP_PASS):
        ev(write)
    ev("block_rq_insert: 254,0 R 8192 () 1000 + 16 be,0,4 [replayer]")  # swap readahead's read
    ev("block_rq_insert: 254,0 WS 1040384 () 1024 + 2032 be,0,4 [replayer]")  # 254 pages
    ev("block_rq_insert: 254,0 W 4096 () 800 + 8 be,0,4 [replayer]")  # one page, in a hole lower down
    ev("mm_vmscan_memcg_reclaim_end: nr_reclaimed=32")
    got = kt.reclaim_calls("\n".join(lines))
    assert got["calls"] == [[3, 41], [kt.DEEP_PASS, 32]]
    assert got["deep"] == [
        {"call": 1, "written": kt.DEEP_PASS, "requests": [["R", 2, 25], ["W", 254, 28], ["W", 1, 0]]}
    ]
    report = kt.passes_report([{"majflt": 7, "minflt": 9, **got}], "kernel run")
    assert report.splitlines() == [
        "kernel run 1: majflt 7 minflt 9, 2 reclaim calls, deep passes (call: pages) 1: 1000",
        "  call 1: R2@25 W254 W1@0",
    ]


@pytest.mark.slow
def test_the_simulators_deep_passes_are_read_as_the_kernels_are() -> None:
    # passes_simulated: seq_write_80 at page-cluster 3 on the held-out command's keys. The kernel's
    # traced runs take a deep pass as the first sweep ends, then one or two in each later sweep
    # (six a run); the simulator as well, its first at the call that follows the first sweep's last
    # page (the sweep's 4 096 pages past 64 MiB, at some 44 freed a call).
    kt = _kernel_truth()
    got = kt.passes_simulated("seq_write_80", "file_pc3")
    written = [w for w, _ in got["calls"]]
    assert [d["written"] for d in got["deep"]] == [w for w in written if w >= kt.DEEP_PASS]
    assert 5 <= len(got["deep"]) <= 8, got["deep"]
    sweep = 20 * 1024 - 16 * 1024  # the pages past the 64 MiB the first sweep writes, 32-odd a call
    assert abs(got["deep"][0]["call"] - sweep / 44) <= 10, got["deep"][0]["call"]
    for d in got["deep"]:
        assert sum(p for _, p, _ in d["requests"]) <= d["written"]
        assert all(1 <= p <= 254 for _, p, _ in d["requests"]), d["requests"]


def test_own_pages_met_in_flight_after_a_long_reclaim_call_are_read_from_the_trace() -> None:
    """``own-faults``: the replayer's pages faulting right after a long reclaim call, with whether a write
    issued since the page was written was still incomplete, and the disk's request times."""
    kt = _kernel_truth()
    stack, libc = "[stack] rw-p 7fff0000-7fff2000", "libc.so.6 rw-p 7f000000-7f002000"
    pages = {0x100: (stack, 1, ""), 0x200: (libc, 0, ""), 0x300: (libc, 1, "rseq")}
    lines: list[str] = []

    def ev(ms: float, what: str) -> None:
        lines.append(f" replayer-4ea03b-8669    [001] ..... {1000 + ms / 1000:.6f}: {what}")

    ev(0.0, "mm_vmscan_memcg_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE")
    ev(7.0, "mm_vmscan_write_folio: page=0000 pfn=0x100 flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
    ev(7.1, "mm_vmscan_write_folio: page=0000 pfn=0x999 flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
    ev(7.2, "mm_vmscan_write_folio: page=0000 pfn=0x200 flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
    ev(7.9, "block_rq_issue: 254,0 W 12288 () 800 + 24 be,0,4 [replayer]")
    ev(8.0, "mm_vmscan_memcg_reclaim_end: nr_reclaimed=35")
    ev(8.02, "page_fault_user: address=0x7fff1008 ip=0x401000 error_code=0x6")  # written, in flight
    ev(8.03, "page_fault_kernel: address=0x7f001040 ip=__get_user_8 error_code=0x0")  # never written
    ev(8.3, "block_rq_complete: 254,0 W () 800 + 24 be,0,4 [0]")
    ev(8.5, "page_fault_user: address=0x7f000010 ip=0x401000 error_code=0x6")  # written, write done
    ev(9.5, "page_fault_user: address=0x7fff1000 ip=0x401000 error_code=0x4")  # past the window: a load
    ev(10.0, "mm_vmscan_memcg_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE")
    ev(10.2, "mm_vmscan_memcg_reclaim_end: nr_reclaimed=32")  # short: not a long call
    ev(11.0, "block_rq_issue: 254,0 R 4096 () 900 + 8 be,0,4 [replayer]")
    ev(11.05, "block_rq_complete: 254,0 R () 900 + 8 be,0,4 [0]")
    got = kt.own_faults_report("\n".join(lines), pages)
    assert got["long_calls"] == [
        {
            "begin_ms": 0.0,
            "end_ms": 8.0,
            "written": 3,
            "own": 2,
            "own_faults": [
                [20, "[stack]", 1, "", True],
                [30, "libc.so.6", 1, "rseq", False],
                [500, "libc.so.6", 0, "", False],
            ],
        }
    ]
    assert got["disk"] == {"read_us": [50, 50, 50], "write_us": [400, 400, 400], "most_in_flight": 1}
    # Every fault on an own page, anywhere: ms, its number among the trace's faults, reclaim calls so
    # far, the page, and the access: a store (error code 0x6: user, write), the kernel's, a load.
    assert got["own_page_faults"] == [
        [8.02, 1, 1, "[stack]", 1, "", "W"],
        [8.03, 2, 1, "libc.so.6", 1, "rseq", "K"],
        [8.5, 3, 1, "libc.so.6", 0, "", "W"],
        [9.5, 4, 1, "[stack]", 1, "", "R"],
    ]


def test_where_the_replayer_slept_is_read_from_its_kernel_stacks() -> None:
    """``aging --trace-sleeps`` and ``slow_disk.py sleeps``: each of the replayer's sleeps, by the first
    function of ``SLEEP_KINDS`` on its stack, and those inside a memory cgroup's reclaim."""
    kt = _kernel_truth()

    def sleep(*frames: str) -> str:
        head = (
            " replayer-4ea03b-8669 [001] d..2. 15230.1: sched_switch: prev_comm=replayer-4ea03b prev_state=D"
        )
        return "\n".join([head, " replayer-4ea03b-8669 [001] d..3. 15230.1: <stack trace>"]) + "".join(
            f"\n => {f}+0x1a/0x40" for f in ("__traceiter_sched_switch", "__schedule", "schedule", *frames)
        )

    text = "\n".join(
        [
            sleep("io_schedule", "rq_qos_wait", "wbt_wait", "submit_bio", "swap_writepage", "pageout",
                  "shrink_folio_list", "shrink_lruvec", "try_to_free_mem_cgroup_pages", "try_charge_memcg"),
            sleep("io_schedule", "folio_wait_bit_common", "__folio_lock_or_retry", "do_swap_page"),
            sleep("io_schedule", "folio_wait_bit_common", "__folio_lock_or_retry", "do_swap_page"),
            sleep("io_schedule", "folio_wait_bit", "folio_wait_writeback", "shrink_folio_list",
                  "try_to_free_mem_cgroup_pages"),
            sleep("schedule_timeout", "msleep"),
        ]
    )  # fmt: skip
    assert kt.where_slept(text) == {
        "write throttle (blk-wbt): too many writes in flight": 1,
        "a swap-in": 2,
        "reclaim waits for a page's write (cgroup v1)": 1,
        "other": 1,
        "in reclaim": 2,
    }


def _deep_passes_simulated(monkeypatch: pytest.MonkeyPatch, overrides: list[str]) -> list[tuple[int, float]]:
    """The simulator's deep reclaim passes (pages written, share freed in the order written), as
    ``kernel_truth.reclaim_passes`` reads the kernel's from its tracepoints."""
    from vmexp.kernel import fault, reclaim
    from vmexp.kernel.policies.base import PAGE_CLEAN, PAGE_WRITEBACK

    kt = _kernel_truth()
    deep_pass = kt.DEEP_PASS
    calls: list[list[int]] = []  # the frames each group reclaim call wrote, in order
    current: list[list[int]] = []
    freed: dict[int, list[int]] = {}  # deep pass -> the positions of its pages, in the order freed
    where: dict[int, tuple[int, int]] = {}  # frame -> (call, position) while it waits to be freed

    def reclaim_memcg(self: Any, cg: Any, nr: int) -> int:
        current.append([])
        try:
            return original_reclaim(self, cg, nr)
        finally:
            calls.append(current.pop())
            if len(calls[-1]) >= deep_pass:
                where.update({f: (len(calls) - 1, i) for i, f in enumerate(calls[-1])})

    def pageout(self: Any, frame: int) -> int:
        got = original_pageout(self, frame)
        if got == PAGE_WRITEBACK and current:
            current[-1].append(frame)
        elif got == PAGE_CLEAN and frame in where:
            call, i = where.pop(frame)
            freed.setdefault(call, []).append(i)
        return got

    def swap_cache_hit(self: Any, mm: Any, vpn: int, slot: int, f: int, w: int) -> bool:
        where.pop(f, None)  # mapped again before reclaim freed it
        return original_hit(self, mm, vpn, slot, f, w)

    original_reclaim, original_pageout = reclaim.Reclaim.reclaim_memcg, reclaim.Reclaim.pageout
    original_hit = fault.FaultHandler.swap_cache_hit
    monkeypatch.setattr(reclaim.Reclaim, "reclaim_memcg", reclaim_memcg)
    monkeypatch.setattr(reclaim.Reclaim, "pageout", pageout)
    monkeypatch.setattr(fault.FaultHandler, "swap_cache_hit", swap_cache_hit)
    simulate_with(*overrides, check=False)
    deep = []
    for call, frames in enumerate(calls):
        if len(frames) >= deep_pass:
            deep.append((len(frames), kt.share_in_order(freed.get(call, []), len(frames))))
    return deep


@pytest.mark.slow
def test_a_new_swap_files_deep_reclaim_passes_and_the_order_they_are_freed_in_are_the_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # seq_loop_90 (four sweeps of 90 MiB) at page-cluster 3, traced on the kernel with
    # `kernel_truth.py aging seq_loop_90 1 others 1 others 1 others 1 --trace-reclaim --record`: on the
    # new swap file, seven deep passes (reclaim calls writing 1 300 to 8 000 pages, swap readahead's
    # charges going down to priority 0), each freed last written first, so the next sweep meets the
    # first written in the swap cache (the low mode); after the set's other workloads have aged the
    # device, passes freed about in the order written (the high mode), which the simulator, whose
    # device starts new, does not have (docs/kernel-truth.md, "Which pages a deep pass frees first").
    doc = json.loads((DATA / "reclaim_passes_seq_loop_90_file_pc3.json").read_text())
    wl = doc["workloads"]["seq_loop_90"]
    assert wl["sha256"] == trace_sha("seq_loop_90") and doc["settings"]["page_cluster"] == 3
    new, *aged = wl["runs"]
    assert all(share <= 0.2 for _, share in new["deep"])
    assert any(share >= 0.3 for run in aged for _, share in run["deep"])

    trace = tmp_path / "seq_loop_90.trace"
    trace.write_text(generate("seq_loop_90"))
    sim = _deep_passes_simulated(
        monkeypatch,
        ["workload=trace", f"workload.path={trace}", "nprocs=1", "ram=1G", "swap=1G", "cgroup.memory_max=64M",
         "policy=linux", "machine.swap_device=hdd", "machine.page_cluster=3", "duration=1000000s"],
    )  # fmt: skip
    written, real_written = sum(w for w, _ in sim), sum(w for w, _ in new["deep"])
    assert abs(len(sim) - len(new["deep"])) <= 1, (sim, new["deep"])
    assert abs(written - real_written) <= 0.1 * real_written, (written, real_written)
    assert all(share <= 0.2 for _, share in sim), sim


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_fault_on_a_page_still_being_written_counts_as_a_readahead_hit(tmp_path: Path) -> None:
    # PG_readahead is PG_reclaim (include/linux/page-flags.h; both bit 16 in this kernel's BTF):
    # reclaim sets it on a page it writes, and a fault that finds that page in the swap cache before
    # the write completes counts a readahead hit (swap_update_readahead). So at page-cluster 0, where
    # nothing is read ahead, the kernel still counts hits: 0 to 6 a run on the sweeps, 11 to 15 on
    # the heap workloads. Traced (own_faults_small_blocks_105_file_pc0.json), those are the
    # replayer's own pages: its first long reclaim call writes them and its next operation touches
    # them while the writes are in flight (13 of the run's 13 hits). The simulator, its image on the
    # lists in the kernel's order and its disk overlapping requests as the kernel's does
    # (queue_depth), counts 22, about four in five of them its own pages. In address order it
    # counted 14, all the workload's; on a disk serving one request at a time, 45, most of them the
    # workload's (docs/kernel-truth.md); it counted none before it had the alias.
    runs = recorded("file_pc0", "fresh_heap")["workloads"]["small_blocks_105"]["runs"]
    assert all(r["vmstat"]["swap_ra"] == 0 and r["vmstat"]["swap_ra_hit"] >= 10 for r in runs)
    _simulate("file_pc0", "small_blocks_105", tmp_path, wset="fresh_heap", speed=DISK)
    vm = json.loads((tmp_path / "r" / "metrics.json").read_text())["system"]["vmstat"]
    assert vm["swap_ra"] == 0
    assert 6 <= vm["swap_ra_hit"] <= 30, vm["swap_ra_hit"]


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_swap_in_from_a_disk_costs_the_simulated_process_the_cpu_it_costs_the_kernels(
    tmp_path: Path,
) -> None:
    # cpu_file_pc3.json (python bench/kernel_truth.py cpu ... --config file_pc3 --record): the
    # replay loop's CPU time (getrusage, user and system) on the swap file at page-cluster 3, 3 runs
    # of each main workload. The kernel's CPU beyond the simulator's, apportioned by least squares to
    # its major faults, minor faults and written pages: without machine.cost.swap_read and
    # swap_cache_hit (a minor fault then costing minor_fault, 1 us, whatever it maps) about 18 us a
    # major fault (the bio, the block layer and the virtio doorbell's exit to the hypervisor, which
    # zram's swap-ins do not have: there the same fit gives about nothing a major fault) and 3 us a
    # minor one (most of them pages found in the swap cache); with them about 1 us and nothing
    # (docs/kernel-truth.md, "What a fault costs this VM's CPU").
    kt = _kernel_truth()
    doc = json.loads((DATA / "cpu_file_pc3.json").read_text())
    names = ("seq_write_80", "seq_read_160", "hotcold_80", "uniform_80", "zipf_160_read", "blocks")

    def extra_per_event(*overrides: str) -> dict[str, float]:
        rows = []
        for name in names:
            wl = doc["workloads"][name]
            assert wl["sha256"] == trace_sha(name) and len(wl["runs"]) >= 3
            real = sorted(wl["runs"], key=lambda r: r["cpu_seconds"])[len(wl["runs"]) // 2]
            out = tmp_path / f"{name}{len(overrides)}"
            _simulate("file_pc3", name, out, *overrides, wset="cpu", speed=DISK)
            procs = json.loads((out / "r" / "metrics.json").read_text())["processes"]
            kernel = {k: real[k] for k in ("cpu_seconds", "majflt", "minflt")} | {
                "pswpout": real["vmstat"]["pswpout"]
            }
            rows.append({"kernel": kernel, "simulator_cpu_seconds": sum(p["cpu_time_s"] for p in procs)})
        return kt.cpu_per_event(rows)

    with_cost = extra_per_event()
    without = extra_per_event("machine.cost.swap_read=0", "machine.cost.swap_cache_hit=1us")
    assert abs(with_cost["majflt"]) < 5 < 12 < without["majflt"], (with_cost, without)
    assert abs(with_cost["minflt"]) < 1 < 2 < without["minflt"], (with_cost, without)


@pytest.mark.slow
@pytest.mark.skipif(not SIM_AGREEMENT_ENABLED, reason="policy=linux not yet built (SIM_AGREEMENT_ENABLED)")
def test_a_run_as_long_as_the_kernels_meets_the_first_stats_flush_at_any_phase(tmp_path: Path) -> None:
    # The memory cgroup statistics reclaim reads are flushed every 2 s by one timer for the whole
    # machine, so a new group's first flush comes anywhere from 0 to 2 s after it. churn_120 at
    # page-cluster 0 runs 2.2 to 3.0 s on the kernel, and every one of its fresh-device runs ages
    # the active list (pgdeactivate 17 333 to 42 858). The simulator's run lasts as long (the CPU
    # this VM's kernel spends submitting each read, machine.cost.swap_read), so its first flush, at
    # 1 s or at the latest phase, 2 s, falls inside it, and it ages the list and is inside the runs'
    # major faults. Without that cost its run lasted 1.95 s: a first flush at 2 s came after its end,
    # nothing was aged, and it was short of the kernel's fewest.
    runs = recorded("file_pc0", "fresh_later")["workloads"]["churn_120"]
    seconds = [r["seconds"] for r in runs["runs"]]
    assert all(r["vmstat"]["pgdeactivate"] > 10_000 for r in runs["runs"])

    def simulated(name: str, *extra: str) -> tuple[int, float, int]:
        out = tmp_path / name
        p = _simulate("file_pc0", "churn_120", out, *extra, wset="fresh_later", speed=DISK)
        system = json.loads((out / "r" / "metrics.json").read_text())["system"]
        return p.majflt, system["sim_time_s"], system["vmstat"]["pgdeactivate"]

    for first in ("1s", "2s"):
        majflt, sim_s, aged = simulated(first, f"policy.params.stats_flush_first={first}")
        assert min(seconds) <= sim_s <= max(seconds), (first, sim_s, seconds)
        assert aged > 10_000, (first, aged)
        assert runs["majflt"]["min"] <= majflt <= runs["majflt"]["max"], (first, majflt, runs["majflt"])
    majflt, sim_s, aged = simulated("short", "policy.params.stats_flush_first=2s", "machine.cost.swap_read=0")
    assert sim_s < 2 and aged == 0 and majflt < runs["majflt"]["min"], (majflt, sim_s, aged)


def test_a_stretched_trace_is_the_same_operations_with_the_time_spread_over_its_later_touches() -> None:
    kt = _kernel_truth()
    text = generate("phases_112")
    out = kt.stretch_text(text, 20.0)
    lines = out.splitlines()
    computes = [ln for ln in lines if ln.startswith("compute ")]
    assert [ln for ln in lines[1:] if not ln.startswith("compute ")] == text.splitlines()
    assert len(computes) == 5000 and sum(int(c.split()[1].removesuffix("us")) for c in computes) == 20_000_000
    first = next(i for i, ln in enumerate(lines) if ln.startswith("touch"))
    assert not lines[first + 1].startswith("compute")  # the first write sweep keeps its pace
    short = kt.stretch_text("malloc 1 1M\ntouch 1\ntouch 1 0 4096 r\ntouch 1 0 4096 w\n", 1.0).splitlines()
    assert short[1:] == [
        "malloc 1 1M",
        "touch 1",
        "touch 1 0 4096 r",
        "compute 500000us",
        "touch 1 0 4096 w",
        "compute 500000us",
    ]
    assert parse_trace_text("\n".join(short)).ops[1][-1] == (
        5,
        500_000_000,
    )  # what the simulator and replayer read
    with pytest.raises(ValueError, match="positive"):
        kt.stretch_text(text, 0)
    with pytest.raises(ValueError, match="nothing to stretch"):
        kt.stretch_text("malloc 1 1M\ntouch 1\n", 5)


def test_agree_counts_a_workload_only_when_both_its_faults_agree() -> None:
    kt = _kernel_truth()
    real = {
        "a": {"majflt": K.spread([100, 110, 120]), "minflt": K.spread([50, 50, 50])},
        "b": {"majflt": K.spread([1000, 1010, 1020]), "minflt": K.spread([70, 70, 70])},
    }
    # a: majflt 121 is outside 100..120, within 1 % of the median 110? no (10 %); within the spread 20: yes.
    # b: majflt 1015 inside; minflt 71 outside, 1.4 % off, within a spread of 0: no.
    sim = {"a": {"majflt": 121, "minflt": 50}, "b": {"majflt": 1015, "minflt": 71}}
    assert kt._pairs_agreeing(sim, real) == (0, 0, 1)
    sim["b"]["minflt"] = 70
    assert kt._pairs_agreeing(sim, real) == (1, 1, 2)


def test_the_kernel_against_itself_holds_each_run_of_the_last_session_to_the_earlier_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kt = _kernel_truth()
    monkeypatch.setattr(kt, "DATA", tmp_path)

    def run(maj: int, mino: int) -> dict[str, int]:
        return {"majflt": maj, "minflt": mino}

    # Two earlier runs of "a" span majflt 100..120 and minflt 50; "b" 1000..1020 and 70. The last
    # session's two runs: a inside, then 121 (outside, 10 % off the median 110, within the spread 20);
    # b inside both times at page-cluster 0, and at 3 its minflt 71 (outside, 1.4 % off, spread 0).
    for c, b_last in (("file_pc0", [run(1010, 70), run(1005, 70)]), ("file_pc3", [run(1010, 71)] * 2)):
        doc = {
            "repetitions": 4,
            "sessions": [{"repetitions": 2}, {"repetitions": 2}],
            "workloads": {
                "a": {"runs": [run(100, 50), run(120, 50), run(110, 50), run(121, 50)]},
                "b": {"runs": [run(1000, 70), run(1020, 70), *b_last]},
            },
        }
        (tmp_path / f"unseen_{c}.json").write_text(json.dumps(doc))
    # Inside: a in 1 of 2 runs, twice (0.5 + 0.5); b 2 of 2 at pc0, 0 at pc3: 1 + 1 = 2 over 4 pairs.
    # Within 1 %: the same. Within one spread: a always (2), b at pc0 only (1): 3.
    assert kt.kernel_against_itself(("unseen",)) == (2.0, 2.0, 3.0, 4)
    (tmp_path / "unseen_file_pc0.json").write_text(
        json.dumps({"repetitions": 2, "sessions": [{"repetitions": 2}], "workloads": {}})
    )
    with pytest.raises(ValueError, match="one session only"):
        kt.kernel_against_itself(("unseen",))


def test_criterion_counts_every_pair_of_a_simulator_at_the_real_medians_and_none_far_off() -> None:
    kt = _kernel_truth()

    def docs(shift: float) -> dict[str, dict[str, Any]]:
        # Every count at the sessions' median, times 1 + shift.
        out: dict[str, dict[str, Any]] = {}
        for wset, names in kt.SETS.items():
            doc: dict[str, Any] = {}
            for c in ("zram", "file_pc0", "file_pc3"):
                real = json.loads(kt._real(c, wset).read_text())["workloads"]
                doc[c] = {
                    n: {k: round(real[n][k]["median"] * (1 + shift)) for k in ("majflt", "minflt")}
                    for n in names
                }
            out[wset] = doc
        return {"hdd": out}

    rows = kt.criterion_rows(docs(0.0))
    fitted = sum(len(kt.SETS[w]) for w in ("main", "later", "heap")) * 2
    sessions = {r[0]: r[3:] for r in rows if r[1] == "sessions"}
    assert sessions == {
        "main, later, heap": (fitted, fitted, fitted, fitted),
        "unseen": (2 * len(kt.SETS["unseen"]),) * 4,
        "ops": (2 * len(kt.SETS["ops"]),) * 4,
    }
    assert "median on 43 of 43 workloads, those or inside the real range on 43" in kt.criterion_table(
        docs(0.0)
    )
    far = kt.criterion_rows(docs(1.0))  # twice the median: outside every range, 1 % and spread
    assert [r[3:6] for r in far] == [(0, 0, 0)] * len(far) and len(far) == 6
    assert "median on 0 of 43 workloads, those or inside the real range on 0" in kt.criterion_table(docs(1.0))
