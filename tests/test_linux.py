"""policy=linux and Linux's swap path: readahead, zram, memory cgroups, writeback that throttles.

The numbers are the kernel's (measured on Linux 6.18, ``tests/data/real_kernel``,
recorded in docs/kernel-truth.md) or follow from its
rules; ``test_real_kernel.py`` holds the simulator to the measured workloads.
Groups here are tiny (1 MiB, no per-process image or kernel memory) so that
the invariant checker can run after every reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vmexp.kernel.swap as swap_module
from tests.conftest import simulate_with
from vmexp.config import ConfigError
from vmexp.sim import Result

GROUP = ("ram=64M", "swap=64M", "cgroup.memory_max=1M", "cgroup.image=0", "cgroup.kernel=0")
SEQ = "malloc 1 4M\ntouch 1 0 4194288 w\ntouch 1 0 4194288 r\n"  # 1024 pages, four times the group


def run(tmp_path: Path, text: str, *overrides: str, check: bool = True) -> Result:
    path = tmp_path / "t.trace"
    path.write_text(text)
    return simulate_with(
        "workload=trace", f"workload.path={path}", "duration=1000000s", *overrides, check=check
    )


def test_linux_is_the_default_policy(tmp_path: Path) -> None:
    r = run(tmp_path, "malloc 1 64k\ntouch 1\n")
    assert "vmstat" in r.system  # the Linux counters only policy=linux reports


def test_a_sweep_larger_than_the_group_misses_on_every_page_read_back(tmp_path: Path) -> None:
    # Write 4 MiB through a 1 MiB group, then read it in the same order: reclaim takes the
    # oldest pages first, so every page is gone by the time it is read (zram, measured:
    # seq_read_160 faults 40 976 times on 40 960 pages; + 1 here for the tcache page).
    p = run(tmp_path, SEQ, *GROUP, "machine.swap_device=zram").processes[0]
    assert (p.minflt, p.majflt) == (1025, 1024)


def test_cluster_readahead_turns_seven_in_eight_sequential_major_faults_into_minor_ones(
    tmp_path: Path,
) -> None:
    # vm.page-cluster 3 on a rotational device (swap_cluster_readahead): each major fault reads
    # its aligned cluster of 8 slots; the 7 others are found in the swap cache. Measured on a
    # swap file: seq_read_160 40 971 -> 5 142 major faults (22 above 40 960 / 8: the window
    # starts at one page and doubles with readahead hits); the total stays the same.
    faults = {}
    for pc in (0, 3):
        r = run(tmp_path, SEQ, *GROUP, "machine.swap_device=hdd", f"machine.page_cluster={pc}")
        p = r.processes[0]
        faults[pc] = (p.minflt, p.majflt, r.system["vmstat"])
    assert faults[0][1] == 1024 and faults[0][2]["swap_ra"] == 0
    assert 1024 // 8 + 1 < faults[3][1] <= 1024 // 8 + 8
    assert faults[3][0] + faults[3][1] == faults[0][0] + faults[0][1]
    assert faults[3][2]["swap_ra_hit"] >= faults[3][2]["swap_ra"] - 1 > 0


def test_random_reads_after_a_sweep_start_with_a_window_of_one_page(tmp_path: Path) -> None:
    # swapin_nr_pages' state is the machine's, left by earlier swapping: no pending readahead
    # hits, so a fault far from the previous one reads its page alone. Measured on a swap file
    # at page-cluster 3, zipf_96 (a sweep, then scattered references): two of 5 runs read ahead
    # 2 and 4 pages in all, fewer than the 11 of a first full window and its halvings (7 + 3 + 1).
    pages = (600, 17, 512, 260, 377, 64, 401, 133)
    text = SEQ.rsplit("touch", 1)[0] + "".join(f"touch 1 {p * 4096} 1 r\n" for p in pages)
    r = run(tmp_path, text, *GROUP, "machine.swap_device=hdd", "machine.page_cluster=3")
    assert r.processes[0].majflt == len(pages)
    assert r.system["vmstat"]["swap_ra"] == 0


def test_zram_does_no_readahead_and_writes_a_page_again_each_time_it_leaves(tmp_path: Path) -> None:
    # zram (SWP_SYNCHRONOUS_IO): swap-in skips the swap cache and frees the slot, whatever
    # vm.page-cluster says, so a page read back and evicted again is written again. A disk
    # keeps the slot of a page read back clean (the swap cache) and drops it without a write.
    zram = {
        pc: run(tmp_path, SEQ, *GROUP, "machine.swap_device=zram", f"machine.page_cluster={pc}")
        for pc in (0, 3)
    }
    assert zram[0].processes[0].majflt == zram[3].processes[0].majflt == 1024
    assert zram[3].system["vmstat"]["swap_ra"] == 0
    disk = run(tmp_path, SEQ, *GROUP, "machine.swap_device=ssd", "machine.page_cluster=0")
    assert disk.system["pswpout"] == 1025  # every page written once
    assert zram[0].system["pswpout"] > disk.system["pswpout"] + 700  # the read sweep's evictions again


def test_zram_stores_its_pages_in_ram_at_the_compression_ratio(tmp_path: Path) -> None:
    text = "malloc 1 4M\ntouch 1\ncompute 1ms\n"
    r = run(
        tmp_path, text, *GROUP, "machine.swap_device=zram", "machine.zram.compression_ratio=4", check=False
    )
    z = r.system["zram"]
    stored = r.processes[0].swap_peak_bytes
    assert stored > 700 * 4096
    assert z["stored_bytes_peak"] == stored
    # The pool took a quarter of the stored pages' frames from RAM, and gave them back at exit.
    assert z["pool_bytes_peak"] == -(-stored // (4 * 4096)) * 4096
    assert z["pool_bytes"] == 0
    # The pool is RAM but nobody's resident set: the machine's peak RSS is what the 1 MiB group
    # let its process hold (it was the group's pages plus the pool's, 1.7 MiB here).
    assert r.system["rss_peak_bytes"] <= 1 << 20
    assert r.system["rss_peak_bytes"] >= r.processes[0].rss_peak_bytes


def test_zram_never_holds_the_pages_of_zeros_the_kernel_keeps_in_its_zeromap(tmp_path: Path) -> None:
    # Since Linux 6.12 swap_writeout records a page of only zeros in the swap device's zeromap and
    # never hands it to zram, so such a page takes no room in zram's pool, and freeing its slot
    # (here at exit) gives none back: the pool ends at nothing, not below (it ended at -26 pages).
    text = "malloc 1 4M\ntouch 1\ncompute 1ms\n"
    keys = ("ram=64M", "swap=64M", "cgroup.memory_max=1M", "machine.swap_device=zram")
    r = run(tmp_path, text, *keys, "machine.zram.compression_ratio=4", check=False)
    z, zeros = r.system["zram"], r.system["vmstat"]["swpout_zero"]
    assert zeros > 100  # the replayer's zero-filled stack and bss pages (cgroup.image_zero)
    stored = z["stored_bytes_peak"] // 4096
    assert stored <= r.system["pswpout"] < stored + zeros  # what was written, not the zeros
    assert z["pool_bytes_peak"] == -(-stored // 4) * 4096
    assert z["pool_bytes"] == 0


def test_a_page_used_on_two_trips_is_activated_and_survives_a_stream(tmp_path: Path) -> None:
    # folio_check_references: young at the inactive tail -> PG_referenced and another trip;
    # young again -> the active list, which reclaim does not touch in a young group (stale
    # statistics, mm/memcontrol.c FLUSH_TIME). A hot 256 KiB set used between every 64 KiB
    # of a stream written once stops faulting once it is active, however long the stream;
    # under FIFO it keeps faulting in proportion to the stream.
    def majflt(policy: str, chunks: int) -> int:
        lines = ["malloc 1 256k", f"malloc 2 {chunks * 64}k", "touch 1"]
        for k in range(chunks):
            lines += [f"touch 2 {k * 65536} 65536 w", "touch 1 0 262128 r"]
        text = "\n".join(lines) + "\n"
        r = run(tmp_path, text, *GROUP, "machine.swap_device=zram", f"policy={policy}", check=False)
        return r.processes[0].majflt

    assert majflt("linux", 64) == majflt("linux", 128) < 100
    assert majflt("fifo", 128) > 1.8 * majflt("fifo", 64) > 300


def test_at_its_limit_the_group_kills_its_largest_process(tmp_path: Path) -> None:
    # mem_cgroup_out_of_memory: no swap for the group, nothing to reclaim -> the group's
    # OOM killer takes the process with the highest badness, not the one that asked.
    text = (
        "p1: malloc 1 700k\np1: touch 1\np1: compute 10ms\n"
        "p2: malloc 1 400k\np2: compute 1ms\np2: touch 1\np2: compute 1ms\n"
    )
    r = run(tmp_path, text, *GROUP, "cgroup.swap_max=0")
    exits = {p.pid: p.exit for p in r.processes}
    assert exits == {1: "oom-killed", 2: "ok"}
    (kill,) = r.system["oom_kill_log"]
    assert (kill["pid"], kill["for_pid"], kill["memcg"]) == (1, 2, "vmexp")
    assert r.system["memcg"]["usage_peak_bytes"] <= 1 << 20


def test_each_group_has_a_swap_limit_of_its_own(tmp_path: Path) -> None:
    # cgroup.swap_max bounds each group's own slots (memory.swap.max; mem_cgroup_try_charge_swap
    # charges the group of the page given a slot). In two 1 MiB groups with 512 KiB of swap each,
    # a process writing 1.25 MiB fits its group's memory and swap, and one writing 2 MiB does not:
    # its group's OOM killer takes it, and the first group's slots stay its own to use.
    text = (
        "p1: malloc 1 1280k\np1: touch 1\np1: compute 20ms\np1: touch 1 0 1310704 r\n"
        "p2: malloc 1 2M\np2: touch 1\np2: touch 1 0 2097136 r\n"
    )
    r = run(tmp_path, text, *GROUP, "cgroup.groups=2", "cgroup.swap_max=512k", "machine.swap_device=zram")
    assert {p.pid: p.exit for p in r.processes} == {1: "ok", 2: "oom-killed"}
    (kill,) = r.system["oom_kill_log"]
    assert (kill["pid"], kill["memcg"]) == (2, "vmexp-1")
    first, second = r.system["memcg"]["groups"]
    assert 0 < first["swap_peak_bytes"] <= 512 << 10 and second["swap_peak_bytes"] == 512 << 10
    assert (first["oom_kills"], second["oom_kills"]) == (0, 1)


def test_a_swap_limit_counts_slots_on_cgroup_v2_and_each_page_once_on_v1(tmp_path: Path) -> None:
    # SEQ writes 1 024 pages and reads them back in a 256-page group, on a disk, where a page read
    # back keeps its slot (the swap cache) unless something frees it.
    def seq(swap_max: str, version: int) -> Any:
        keys = ("machine.swap_device=ssd", "machine.page_cluster=0", f"cgroup.version={version}")
        r = run(tmp_path, SEQ, *GROUP, *keys, f"cgroup.swap_max={swap_max}", check=False)
        return r.processes[0].exit, r.system["pswpout"]

    # v1 (memory.memsw.limit_in_bytes = memory + swap) counts each page once, in memory or swapped
    # out: 256 + 800 pages hold the 1 024 and the 9 page-table pages, 256 + 775 do not, and a page
    # read back with its slot costs nothing more (every page written once).
    assert seq("3200k", 1) == ("ok", 1025)
    assert seq("3100k", 1)[0] == "oom-killed"
    # v2 (memory.swap.max) counts slots. Once the group has used half of its swap, a swap-in frees
    # the page's slot (mem_cgroup_swap_full in should_try_to_free_swap), and the page is written
    # again when it leaves: 1 024 slots are enough (without that rule every page read back kept
    # its slot and 1 024 were not), at the cost of the writes.
    exit, written = seq("4M", 2)
    assert exit == "ok" and written > 1.5 * 1025
    assert seq("3200k", 2)[0] == "oom-killed"  # where v1's 800 pages were enough


def test_a_textbook_policy_at_its_groups_swap_limit_ends_in_the_groups_oom_killer(tmp_path: Path) -> None:
    # 512 pages written in a 256-page group with 128 slots of swap: once the slots are spent nothing
    # can be freed, and the group's OOM killer takes the process after its retries. With the textbook
    # pager the charge waited for room in the disk's queue, which its clock never reached: the run
    # never ended (policy=lru, cgroup.swap_max=4M and a 16 MiB group hung the default run too).
    for device in ("hdd", "ssd"):
        keys = ("policy=lru", f"machine.swap_device={device}", "cgroup.swap_max=512k")
        r = run(tmp_path, "malloc 1 2M\ntouch 1\n", *GROUP, *keys, check=False)
        assert [p.exit for p in r.processes] == ["oom-killed"] and r.system["pswpout"] == 128


def test_the_group_never_holds_more_than_its_limit(tmp_path: Path) -> None:
    r = run(tmp_path, SEQ, *GROUP, "machine.swap_device=hdd", "machine.page_cluster=3")
    assert r.system["memcg"]["usage_peak_bytes"] == 1 << 20  # full, never over (readahead included)


@pytest.mark.parametrize("policy", ["lru", "linux"])
def test_writes_never_queue_seconds_ahead_of_a_thrashing_machine(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12: 20 processes on 2 MiB of RAM. A pager that frees a frame as soon as its write
    # is queued, with no bound on the queue, queued seconds of writes in front of every read:
    # the device busy, no page moving, every process waiting. The block layer's request
    # limit (BLKDEV_DEFAULT_RQ) and Linux's writeback keep the queue short.
    def stalled(r: Result) -> int:
        rows = [s for s in r.samples if s["pid"] == 0]
        return sum(
            1
            for s in rows
            if s["cpu_util"] < 0.01 and s["swap_util"] > 0.5 and s["pswpin_per_s"] + s["pswpout_per_s"] == 0
        )

    overrides = ("nprocs=20", "ram=2M", f"policy={policy}", "duration=1s")
    assert stalled(simulate_with(*overrides, check=False)) == 0
    if policy == "lru":  # the same machine without the bound stalls: the test can fail
        monkeypatch.setattr(swap_module, "NR_REQUESTS", 1 << 40)
        assert stalled(simulate_with(*overrides, check=False)) > 40


def test_a_deep_queue_overlaps_its_requests_latencies_and_takes_their_transfers_in_turn() -> None:
    # Four one-page requests arriving together at a device with latency L = 40 us and a page's
    # transfer P = 4 us (4 KiB at ~1 GB/s). A FIFO server (depth 1) finishes them at k(L + P); a
    # pipelined one at depth >= 4 at L + kP; at depth 2 the third waits for the first (done at
    # L + P), pays its latency, and finishes at 2L + 2P, the fourth right after the third's transfer.
    def dones(depth: int) -> list[int]:
        dev = swap_module.SwapDevice(40_000, 1_024_000_000, 4096, False, 254, depth)
        assert dev.page_ns == 4_000
        return [dev.submit_pages(0, 1, swap_module.WRITE) for _ in range(4)]

    lat, p = 40_000, 4_000
    assert dones(1) == [k * (lat + p) for k in (1, 2, 3, 4)]
    assert dones(4) == dones(128) == [lat + k * p for k in (1, 2, 3, 4)]
    assert dones(2) == [lat + p, lat + 2 * p, 2 * lat + 2 * p, 2 * lat + 3 * p]
    # A request of several pages pays the latency once at any depth.
    dev = swap_module.SwapDevice(40_000, 1_024_000_000, 4096, False, 254, 128)
    assert dev.submit_pages(0, 8, swap_module.WRITE) == lat + 8 * p


def test_a_request_of_an_earlier_time_that_reaches_the_device_later_is_not_served_after_it() -> None:
    # On several CPUs the engine runs each CPU's stretch at its start, so CPU 1's read at 50 us can
    # reach the device after CPU 0's at 60 us. The device serves transfers in order of time, not in
    # the order the engine ran the CPUs: the read of 50 us is ready at 90 us and transfers then, in
    # the gap before the other's transfer at 100 us (L = 40 us, P = 4 us, 128 tags).
    class Env:
        now = 0

    class Clock:
        env = Env()

    dev = swap_module.SwapDevice(40_000, 1_024_000_000, 4096, False, 254, 128, Clock())  # type: ignore[arg-type]
    assert dev.submit_pages(60_000, 1, swap_module.READ) == 104_000
    assert dev.submit_pages(50_000, 1, swap_module.READ) == 94_000  # it was 108 us behind the other
    # A transfer that does not fit the gap before a booked one goes after it: 8 pages (32 us) ready
    # at 70 us would overlap the transfers at 90 and 100 us.
    assert dev.submit_pages(30_000, 8, swap_module.READ) == 104_000 + 32_000
    # The device is busy while any of them is unfinished, counted once: 30..136 us.
    assert dev.busy_by(1_000_000) == 106_000
    assert [d for d, _ in dev.inflight] == [94_000, 104_000, 136_000]  # in order of completion
    # Requests that arrive in order of time are served as a FIFO of transfers, as before: two at
    # 100 us are ready at 140 us, and the second's transfer waits for the first's.
    assert dev.submit_pages(100_000, 1, swap_module.READ) == 144_000
    assert dev.submit_pages(100_000, 1, swap_module.READ) == 148_000


def test_a_deep_queues_busy_time_is_the_time_any_request_is_unfinished() -> None:
    # The utilisation the samples report (as iostat's %util, the kernel's io_ticks): overlapping
    # requests count once, so it never exceeds the time elapsed.
    dev = swap_module.SwapDevice(40_000, 1_024_000_000, 4096, False, 254, 128)
    for _ in range(10):
        dev.submit_pages(0, 1, swap_module.WRITE)  # all done by 40 + 10 x 4 = 80 us
    dev.submit_pages(200_000, 1, swap_module.READ)  # 200..244 us
    assert dev.in_service(220_000) and not dev.in_service(100_000)
    assert dev.busy_by(80_000) == 80_000
    assert dev.busy_by(1_000_000) == 80_000 + 44_000


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("machine.page_cluster=32", "machine.page_cluster: must be an integer between 0 and 31"),
        ("machine.zram.compression_ratio=0.5", "machine.zram.compression_ratio: must be a number >= 1"),
        ("cgroup.memory_max=8M policy=lru policy.scope=local", "policy.scope=local: a memory cgroup"),
        ("cgroup.groups=2 policy=lru", "cgroup.groups: 2 groups need policy=linux"),
        ("cgroup.groups=0", "cgroup.groups: must be an integer >= 1"),
        ("cgroup.limits=[1M,2M] cgroup.groups=3", r"cgroup.limits: 2 limits for cgroup.groups=3 \(leave"),
        ("cgroup.limits=[1M,lots] cgroup.groups=2", r"cgroup.limits\[1\]: expected a size"),
        ("cgroup.limits=1M", "cgroup.limits: expected a list of sizes"),
    ],
)
def test_bad_kernel_keys_name_themselves(override: str, message: str) -> None:
    from tests.conftest import settings

    with pytest.raises(ConfigError, match=message):
        settings(*override.split())


def test_a_group_too_small_for_what_its_processes_bring_is_refused_before_the_run(tmp_path: Path) -> None:
    # Four generated processes bring 132 + 16 + 2 pages each, and reclaim needs a batch of 32.
    with pytest.raises(ConfigError, match=r"cgroup.memory_max: 100 KiB is too small for 4 processes"):
        simulate_with("cgroup.memory_max=100k")
    # A trace says how many processes it has: one here, whatever nprocs says.
    one = "malloc 1 64k\ntouch 1\n"
    assert run(tmp_path, one, "cgroup.memory_max=1M", "nprocs=4", check=False).processes[0].minflt == 17
    with pytest.raises(ConfigError, match=r"is too small for 1 process: its own pages"):
        run(tmp_path, one, "cgroup.memory_max=512k", check=False)
    # Each group its own: the default run's four processes in two groups, pids 2 and 4 in the second.
    with pytest.raises(
        ConfigError, match=r"cgroup.limits\[1\]: 100 KiB is too small for group 1's 2 processes"
    ):
        simulate_with("cgroup.limits=[2M,100k]")  # two groups: as many as it lists
    # A parent over them all must hold what all of them bring.
    with pytest.raises(
        ConfigError, match=r"cgroup.parent_max: 1 MiB is too small for all 4 processes: their own pages"
    ):
        simulate_with("cgroup.groups=2", "cgroup.parent_max=1M")


# A cache of 512 KiB written, then read four times, beside a hog that writes 4 MiB twice over.
CACHE_AND_HOG = (
    "p1: malloc 1 512k\np1: touch 1 0 524272 w\n"
    + "p1: touch 1 0 524272 r\n" * 4
    + "p2: malloc 1 4M\n"
    + "p2: touch 1 0 4194288 w\n" * 2
)


def test_groups_side_by_side_each_reclaim_only_their_own_pages(tmp_path: Path) -> None:
    # Process i joins group i mod cgroup.groups, and each group has a limit and lists of its own
    # (mem_cgroup_lruvec): the cache fits its 1 MiB group, and the hog, pressing on its own limit
    # on the other CPU, never takes a page of it; its second sweep misses on every page, as alone in
    # 1 MiB (test_a_sweep_larger_than_the_group_misses_on_every_page_read_back). Sharing one 1 MiB
    # group, the hog's reclaim writes some of the cache's pages out.
    keys = (*GROUP, "machine.swap_device=zram", "machine.ncpus=2")
    r = run(tmp_path, CACHE_AND_HOG, *keys, "cgroup.groups=2")
    cache, hog = r.processes
    assert (cache.minflt, cache.majflt, cache.pswpout) == (129, 0, 0)
    assert hog.majflt == 1024
    groups = r.system["memcg"]["groups"]
    assert [g["pids"] for g in groups] == [[1], [2]]
    assert [g["name"] for g in groups] == ["vmexp-0", "vmexp-1"]
    assert all(g["usage_peak_bytes"] <= 1 << 20 for g in groups)
    assert groups[0]["swap_peak_bytes"] == 0 and groups[1]["swap_peak_bytes"] >= 3 << 20
    shared = run(tmp_path, CACHE_AND_HOG, *keys).processes
    assert shared[0].pswpout > 0


def test_each_group_may_have_a_limit_of_its_own(tmp_path: Path) -> None:
    # cgroup.limits: the groups' limits in order. The hog fills its 2 MiB group, and its 4 MiB read
    # back in the order written still misses on every page, as in 1 MiB: a loop larger than memory
    # defeats LRU however little it overruns; the cache's 1 MiB group is untouched.
    keys = (*GROUP, "machine.swap_device=zram", "machine.ncpus=2", "cgroup.groups=2")
    r = run(tmp_path, CACHE_AND_HOG, *keys, "cgroup.limits=[1M,2M]")
    cache, hog = r.processes
    assert (cache.majflt, cache.pswpout) == (0, 0)
    groups = r.system["memcg"]["groups"]
    assert [g["limit_bytes"] for g in groups] == [1 << 20, 2 << 20]
    assert groups[0]["usage_peak_bytes"] <= 1 << 20 < groups[1]["usage_peak_bytes"] <= 2 << 20
    even = run(tmp_path, CACHE_AND_HOG, *keys).processes[1]
    assert even.majflt == hog.majflt == 1024


def test_a_parent_over_one_group_is_that_limit_and_one_above_its_own_changes_nothing(tmp_path: Path) -> None:
    # cgroup.parent_max: a group above the groups, whose counter counts their charges too
    # (page_counter_try_charge charges every level). Over one group without a limit of its own it
    # is that group's limit: the sweep through 1 MiB misses on every page read back, as in a 1 MiB
    # group; above a 1 MiB group's own limit, a 64 MiB parent is never reached.
    free = ("ram=64M", "swap=64M", "cgroup.image=0", "cgroup.kernel=0", "machine.swap_device=zram")
    under = run(tmp_path, SEQ, *free, "cgroup.parent_max=1M")
    (p,) = under.processes
    assert (p.minflt, p.majflt) == (1025, 1024)
    memcg = under.system["memcg"]
    assert memcg["parent"] == {
        "name": "vmexp",
        "limit_bytes": 1 << 20,
        "usage_peak_bytes": 1 << 20,
        "oom_kills": 0,
    }
    assert [(g["name"], g["limit_bytes"]) for g in memcg["groups"]] == [("vmexp-0", None)]
    own = run(tmp_path, SEQ, *GROUP, "machine.swap_device=zram", "cgroup.parent_max=64M").processes[0]
    assert (own.minflt, own.majflt) == (1025, 1024)


def test_a_parent_reclaims_from_every_group_below_it_and_its_oom_killer_takes_the_largest_of_all(
    tmp_path: Path,
) -> None:
    # Two groups without limits of their own in a 1 MiB parent: the hog's charges meet the parent's
    # limit, and its reclaim goes round both groups' lists (shrink_node_memcgs below the target,
    # try_to_free_mem_cgroup_pages on mem_over_limit), so the cache loses pages to it, which in
    # groups of 1 MiB each it never does (test_groups_side_by_side_each_reclaim_only_their_own_pages).
    free = ("ram=64M", "swap=64M", "cgroup.image=0", "cgroup.kernel=0", "machine.swap_device=zram")
    keys = (*free, "machine.ncpus=2", "cgroup.groups=2", "cgroup.parent_max=1M")
    r = run(tmp_path, CACHE_AND_HOG, *keys)
    cache, hog = r.processes
    assert cache.pswpout > 0 and hog.majflt > 0
    memcg = r.system["memcg"]
    assert memcg["parent"]["usage_peak_bytes"] == 1 << 20
    assert sum(g["usage_peak_bytes"] for g in memcg["groups"]) > 1 << 20  # each at its peak at other times
    # With no swap to reclaim to, the parent's OOM killer chooses among both groups' processes: in
    # 2 MiB the hog reaches 1.5 MiB beside the cache's 0.5, and is the largest, killed in the
    # parent's name; the cache runs on.
    r = run(tmp_path, CACHE_AND_HOG, *keys, "cgroup.parent_max=2M", "cgroup.swap_max=0")
    assert {p.pid: p.exit for p in r.processes} == {1: "ok", 2: "oom-killed"}
    (kill,) = r.system["oom_kill_log"]
    assert (kill["pid"], kill["memcg"]) == (2, "vmexp")
    assert r.system["memcg"]["parent"]["oom_kills"] == 1


def test_a_page_read_ahead_from_another_groups_slot_is_charged_to_that_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cluster readahead reads the aligned slots around the faulting one, whoever's pages they hold:
    # two processes written out in turns (1 ms slices) have their slots interleaved, so a window of
    # one's may take a page of the other's. Linux charges that page to the group its swap entry
    # records (mem_cgroup_swapin_charge_folio), not the faulting process's: the invariant checker,
    # after every reference, holds each group's charge to its own processes' pages and slots.
    import vmexp.kernel.physmem as physmem

    crossed = []
    alloc_unmapped = physmem.PhysMem.alloc_unmapped

    def counted(self: physmem.PhysMem, mm: Any, vpn: int, charge_to: Any, **kw: Any) -> int:
        crossed.append(mm.memcg is not charge_to.memcg)
        return alloc_unmapped(self, mm, vpn, charge_to, **kw)

    monkeypatch.setattr(physmem.PhysMem, "alloc_unmapped", counted)
    text = (
        "p1: malloc 1 2M\np1: touch 1 0 2097136 w\np1: compute 100ms\np1: touch 1 0 2097136 r\n"
        "p2: malloc 1 2M\np2: touch 1 0 2097136 w\np2: compute 300ms\n"
    )
    keys = ("cgroup.groups=2", "machine.swap_device=hdd", "machine.page_cluster=3", "machine.quantum=1ms")
    r = run(tmp_path, text, *GROUP, *keys)
    assert any(crossed) and r.system["vmstat"]["swap_ra"] > 100
    assert all(p.exit == "ok" for p in r.processes)


def test_the_machines_reclaim_goes_round_the_groups_lists(tmp_path: Path) -> None:
    # Groups without a limit of their own, on a machine too small for both processes: global
    # reclaim (shrink_node_memcgs) takes from each group's lists in turn, not from the first alone.
    text = "".join(
        f"p{p}: malloc 1 2M\np{p}: touch 1 0 2097136 w\np{p}: touch 1 0 2097136 r\n" for p in (1, 2)
    )
    r = run(
        tmp_path, text, "ram=3M", "swap=64M", "cgroup.groups=2", "cgroup.image=0", "cgroup.kernel=0",
        "machine.swap_device=ssd", "machine.min_free=0", "machine.ncpus=2",
    )  # fmt: skip
    groups = r.system["memcg"]["groups"]
    assert [g["pids"] for g in groups] == [[1], [2]]
    assert all(g["swap_peak_bytes"] > 1 << 20 for g in groups)
    assert all(p.exit == "ok" and p.majflt > 0 for p in r.processes)
    assert r.system["memcg"]["limit_bytes"] is None


def test_a_trace_of_many_block_ids_brings_the_programs_tables_of_them(tmp_path: Path) -> None:
    # The replayer keeps a pointer, a size and a state byte per block id (8 + 8 + 1 bytes), in
    # three tables it clears at start; their first pages are among the hot image pages, so a trace
    # of 2 100 ids brings 4 + 4 + 0 pages more (ptrs and sizes take 5 pages each, live one). Each
    # operation uses its block's entries, which stay resident here: the faults do not change.
    text = "".join(f"malloc {i} 16\ntouch {i} 0 16 w\n" for i in range(1, 2101))
    keys = ("ram=64M", "swap=64M", "cgroup.memory_max=16M")
    on = run(tmp_path, text, *keys)
    # Checked once: 4 200 operations over 2 100 live blocks make the checker 100 times the run.
    off = run(tmp_path, text, *keys, "cgroup.image_ids=false", check=False)
    grown = on.system["memcg"]["usage_peak_bytes"] - off.system["memcg"]["usage_peak_bytes"]
    assert grown == 8 * 4096
    assert (on.processes[0].minflt, on.processes[0].majflt) == (off.processes[0].minflt, 0)
    # A trace of 512 ids or fewer has each table in its first page: nothing more.
    few = "".join(f"malloc {i} 16\n" for i in range(1, 513))
    assert (
        run(tmp_path, few, *keys, check=False).system["memcg"]["usage_peak_bytes"]
        == run(tmp_path, few, *keys, "cgroup.image_ids=false", check=False).system["memcg"][
            "usage_peak_bytes"
        ]
    )


def test_a_page_reference_string_in_a_group_is_charged_its_pages_and_page_tables(tmp_path: Path) -> None:
    # A reference string has no program: no image, no kernel memory. A loop over 100 pages
    # in a 64-page group (minus its page tables) misses on every reference under LRU, the
    # textbook result for a loop longer than memory; with room for all it faults 100 times.
    loop = ",".join(str(i) for i in range(100))
    refs = f"workload.refs=[{','.join([loop] * 5)}]"
    small = simulate_with("workload=pageref", refs, "policy=lru", "cgroup.memory_max=256k").processes[0]
    assert small.minflt + small.majflt == 500
    large = simulate_with("workload=pageref", refs, "policy=lru", "cgroup.memory_max=8M").processes[0]
    assert large.minflt + large.majflt == 100
    with pytest.raises(ConfigError, match=r"64 KiB is too small for 1 process: its page tables"):
        simulate_with("workload=pageref", refs, "cgroup.memory_max=64k")


def test_linux_swap_slots_fill_the_holes_of_older_clusters_once_the_current_one_is_used_up() -> None:
    # mm/swapfile.c (6.18), a rotational device: the header takes offset 0; allocation goes on in
    # one cluster of 512 slots; slots freed meanwhile put their cluster on the nonfull list, which
    # is used (oldest first, each scanned from its start) before a new cluster. The cluster being
    # allocated from goes back to the frag list at its next allocation (relocate_cluster), so a
    # hole behind its cursor waits. An emptied cluster goes behind the untouched ones.
    # Slot s is offset s + 1.
    space = swap_module.SwapSpace(4 * 512, sequential=True)
    assert space.usable == 4 * 512 - 1
    got = [space.alloc() for _ in range(600)]
    assert got == list(range(600))  # offsets 1..511 (cluster 0), then cluster 1
    for slot in (5, 6, 100, 520):
        space.release(slot)
    rest_of_cluster_1 = 1024 - 601  # offsets 601..1023
    more = [space.alloc() for _ in range(rest_of_cluster_1 + 5)]
    assert more[:rest_of_cluster_1] == list(range(600, 1023))
    assert more[rest_of_cluster_1:] == [5, 6, 100, 1023, 1024]  # cluster 0's holes, then cluster 2
    space.release(1023)
    space.release(1024)  # cluster 2 is empty: behind the untouched cluster 3 on the free list
    assert space.alloc() == 3 * 512 - 1  # offset 1536
    space.release(3 * 512 - 1)  # cluster 3 empty too: no untouched cluster is left
    assert [space.alloc() for _ in range(2)] == [1023, 1024]  # emptied clusters, first emptied first
    textbook = swap_module.SwapSpace(8)
    a, b = textbook.alloc(), textbook.alloc()
    textbook.release(a)
    assert textbook.alloc() == a != b  # the textbook pager reuses the slot freed last


def test_a_page_read_back_and_written_keeps_its_swap_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # do_swap_page maps an exclusive page writable even for a read fault, so a later write sets
    # the dirty bit without a fault: the page stays in the swap cache with its slot, and reclaim
    # writes it again to that slot (shrink_folio_list calls folio_alloc_swap only for a page
    # outside the swap cache). The textbook pager frees the slot on the first write.
    from vmexp.kernel.reclaim import Reclaim

    slots: dict[int, list[int]] = {}
    pageout = Reclaim.pageout

    def recording(self: Reclaim, frame: int) -> int:
        vpn = self.mem.frame_vpn[frame]
        outcome = pageout(self, frame)
        slot = self.cache.slot_of.get(frame, -1)
        if slot >= 0 and frame in self.writeback:
            slots.setdefault(vpn, []).append(slot)
        return outcome

    monkeypatch.setattr(Reclaim, "pageout", recording)
    text = SEQ.rsplit("touch", 1)[0] + "touch 1 0 262128 r\ntouch 1 0 262128 w\ntouch 1 262144 3932144 w\n"
    run(tmp_path, text, *GROUP, "machine.swap_device=hdd", "machine.page_cluster=0")
    # The block's first page (its 1025 pages are the highest; the heap's page is far below):
    # pages first..first+63 were read back, then written.
    first = min(v for v in slots if max(slots) - v <= 1024)
    reread = [slots[v] for v in range(first, first + 64)]
    assert all(len(s) == 2 and s[0] == s[1] for s in reread), reread
    # The other pages were swapped in by a write fault, which frees the slot (should_try_to_free_swap):
    # written out again, they take a new one.
    assert all(len(set(s)) == len(s) for v, s in slots.items() if v >= first + 64)


@pytest.mark.parametrize("policy", ["linux", "fifo"])
def test_a_process_the_machine_oom_kills_while_it_faults_leaves_no_charge_in_its_group(
    tmp_path: Path, policy: str
) -> None:
    # The group's limit is far above the RAM: the page is charged, then the machine's own
    # reclaim finds nothing to free (no swap) and the OOM killer takes the faulting process.
    # Linux charges a folio only once it is allocated, so the group holds nothing afterwards;
    # the invariant checker recomputes the charge from the page tables after every step.
    text = "malloc 1 900k\ntouch 1\n"  # with the process's own image, more than the 1 MiB of RAM
    r = run(tmp_path, text, "ram=1M", "swap=0", "cgroup.memory_max=64M", f"policy={policy}")
    assert r.processes[0].exit == "oom-killed"
    assert r.system["oom_kill_log"][0]["for_pid"] == 1


def test_a_page_whose_write_completes_during_reclaim_is_freed_not_the_process_killed() -> None:
    # One frame: the page in it is young on reclaim's first trip and written on the second; the
    # write completes while the pass throttles, after its last priority, leaving the page clean at
    # the inactive tail. The allocator retries reclaim (should_reclaim_retry) before the OOM killer.
    # The textbook answer for one frame: every reference faults.
    r = simulate_with("workload=pageref", "workload.refs=[1,2,3,1]", "ram=4k", "machine.min_free=0",
                      "machine.page_cluster=0")  # fmt: skip
    (p,) = r.processes
    assert (p.exit, r.system["oom_kills"]) == ("ok", 0)
    assert (p.minflt, p.majflt) == (3, 1)


@pytest.mark.parametrize("device", ["ssd", "hdd"])
def test_swap_readahead_gives_up_a_neighbour_rather_than_oom_kill(device: str) -> None:
    # One frame and page-cluster 3: the faulting page takes the frame, and its neighbours in swap
    # find no frame to read into. Readahead is worth no process: it reads the page alone. FIFO's
    # and LRU's answer for one frame on Belady's string is 12 faults, the same for Linux.
    r = simulate_with("workload=pageref", "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]", "ram=4k",
                      "machine.min_free=0", f"machine.swap_device={device}", "machine.page_cluster=3")  # fmt: skip
    (p,) = r.processes
    assert (p.exit, r.system["oom_kills"]) == ("ok", 0)
    assert (p.minflt, p.majflt) == (5, 7)


def test_only_pages_read_back_unchanged_leave_memory_as_clean_drops(tmp_path: Path) -> None:
    # A page written to a disk stays in the swap cache until its write completes, and is freed
    # after: that eviction was a write (pswpout), not a drop without one. Written once and never
    # read back, no page has a clean copy to drop; read back (and not written), each page that
    # leaves memory again has one.
    disk = (*GROUP, "machine.swap_device=hdd", "machine.page_cluster=0")
    written = run(tmp_path, "malloc 1 4M\ntouch 1 0 4194288 w\n", *disk).system
    assert written["pswpout"] > 0 and written["clean_drops"] == 0
    read_back = run(tmp_path, SEQ, *disk).system
    assert read_back["pswpin"] == 1024
    assert 1024 - 256 <= read_back["clean_drops"] <= read_back["pswpin"]  # all but what the 1 MiB group keeps


def test_a_realloc_copying_swapped_out_pages_faults_major_once_per_read_not_per_page(tmp_path: Path) -> None:
    # glibc's realloc of a heap block that cannot grow in place (a second block sits above it)
    # allocates the new one and copies (memcpy, source and destination page by page; a mapped
    # block would be moved by mremap instead): here 3 MiB swapped out through a 1 MiB group, on
    # the heap with the mmap threshold above it. The kernel's thread sleeps at
    # each major fault until its read completes, so the neighbours read ahead with it are in the
    # swap cache by the next access: measured on a random program of reallocs and touches on a swap
    # file at page-cluster 3, majflt = pswpin - swap_ra to within 0.1 % (73 725 = 456 403 - 382 734
    # + 56). The allocator's accesses run on without stopping at a fault, which counted every page
    # of a readahead still in flight as a major fault of its own.
    text = "malloc 1 3M\ntouch 1 0 3145712 w\nmalloc 2 4M\ntouch 2 0 4194288 w\nrealloc 1 6M\ntouch 1 0 1 r\n"
    r = run(tmp_path, text, *GROUP, "machine.swap_device=hdd", "machine.page_cluster=3", "threshold=16M")
    p, vm = r.processes[0], r.system["vmstat"]
    assert vm["swap_ra"] > 0 and vm["swap_ra_hit"] > 0
    assert p.majflt == r.system["pswpin"] - vm["swap_ra"]


def test_each_cpu_adds_pages_to_the_lists_through_its_own_batch_and_reclaim_drains_only_its_own() -> None:
    # mm/swap.c: folio_add_lru puts a page in the running CPU's lru_add batch (31 pages, a
    # folio_batch); the batch goes onto the lists in order when it is full or the CPU drains it
    # (lru_add_drain: reclaim, a readahead window, freeing pages). Two CPUs whose processes fault
    # in turn thus leave runs of one process's pages on the list, not pages in alternation.
    import numpy as np

    from vmexp.kernel.policies import make_policy
    from vmexp.kernel.policies.linux import FOLIO_BATCH_SIZE, LinuxLRU

    class View:
        running = 1

        def cpu(self) -> int:
            return self.running

        def can_swap(self, memcg: object = None) -> bool:
            return True

        def now(self) -> int:
            return 0

    view = View()
    lru = make_policy("linux", None, view, np.random.default_rng(0))  # type: ignore[arg-type]
    assert isinstance(lru, LinuxLRU)
    lru.lru_add_batch = FOLIO_BATCH_SIZE
    for frame in range(61):  # frames 0, 2, 4, ... fault on CPU 1, the odd ones on CPU 2, in turn
        view.running = 1 + frame % 2
        lru.inserted(frame)
    # CPU 1's batch filled at its 31st page (frame 60) and went onto the list whole, in order; CPU 2's
    # holds its 30 still.
    assert lru.lists()[0] == list(range(0, 61, 2))
    assert len(lru) == 61  # every page is tracked, on a list or in a batch
    lru.removed(59)  # freed while in CPU 2's batch
    view.running = 2
    lru.lru_add_drain()  # CPU 2 reclaims: its own batch goes on (CPU 1's is empty)
    assert lru.lists()[0] == list(range(0, 61, 2)) + list(range(1, 59, 2)) and len(lru) == 60
    # A page that refaults with a short distance is activated at once and reaches the active list
    # at the drain, not before.
    lru.refault(100, 0)
    assert lru.lists()[1] == [] and len(lru) == 61
    lru.lru_add_drain()
    assert lru.lists()[1] == [100]
    # Without the batch (one CPU: every reclaim drains it first) a page is on the list at once.
    lru.lru_add_batch = 0
    lru.inserted(200)
    assert lru.lists()[0][-1] == 200


def test_reclaim_spends_swap_write_on_each_page_it_writes_to_a_disk_and_not_on_zram(tmp_path: Path) -> None:
    # The kernel's reclaim takes 4 us from one page it writes to a swap file to the next (a slot,
    # the unmap, the bio; bench/kernel_truth.py reclaim-cost, docs/kernel-truth.md "What reclaim's
    # time is made of"): the writing process's CPU time, so its run lasts that much longer. zram
    # compresses in the same call, and its own write cost stands for the whole of it.
    def cpu_and_writes(device: str, cost: str) -> tuple[float, int, float]:
        r = run(tmp_path, SEQ, *GROUP, f"machine.swap_device={device}", f"machine.cost.swap_write={cost}")
        p = r.processes[0]
        return p.cpu_time_s, p.pswpout, p.end_s

    for device in ("nvme", "hdd"):
        cpu0, written, end0 = cpu_and_writes(device, "0")
        cpu4, written4, end4 = cpu_and_writes(device, "4us")
        # Each page of the sweep is written once; read back unchanged, it leaves again with no write.
        assert written == written4 >= 1024
        assert cpu4 - cpu0 == pytest.approx(written * 4e-6, rel=1e-9)
        assert end4 > end0
    assert cpu_and_writes("zram", "0")[0] == cpu_and_writes("zram", "4us")[0]
