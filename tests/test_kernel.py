"""Demand paging, replacement and swap through the whole system, held to textbook answers."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import settings as composed
from tests.conftest import simulate_with
from vmexp.config import Settings
from vmexp.kernel.layout import compute_regions
from vmexp.kernel.mm import AddressSpace
from vmexp.sim import simulate
from vmexp.workload import build

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


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=40), st.integers(1, 6))
def test_lru_and_opt_never_fault_more_with_more_frames(refs: list[int], frames: int) -> None:
    for policy in ("lru", "opt"):
        assert stack_faults(policy, frames + 1, refs) <= stack_faults(policy, frames, refs)


@functools.cache
def _stack_settings(policy: str, frames: int) -> Settings:
    return composed("workload=pageref", "workload.refs=[0]", f"policy={policy}", f"ram={frames * 4}k",
                    "machine.min_free=0")  # fmt: skip


def stack_faults(policy: str, frames: int, refs: list[int]) -> int:
    """``faults`` for many reference strings: the config composed once per policy and size."""
    s = _stack_settings(policy, frames)
    s = dataclasses.replace(s, workload=dataclasses.replace(s.workload, refs=tuple(refs)))
    p = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=True).processes[0]
    return p.minflt + p.majflt


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


# --- demand paging through malloc, against what the real kernel does -------------------


def trace_run(tmp_path, text: str, *overrides: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "t.trace"
    path.write_text(text)
    return simulate_with("workload=trace", f"workload.path={path}", "machine.min_free=0", *overrides)


def test_malloc_of_one_mib_costs_two_faults_and_each_page_written_one_more(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Measured with the real glibc and kernel on this machine (tests/test_real_glibc.py):
    # the tcache structure's heap page and the mmapped chunk's header page.
    base = trace_run(tmp_path, "malloc 0 1M\n").processes[0]
    assert (base.minflt, base.majflt) == (2, 0)
    for pages in (1, 10, 100):
        p = trace_run(tmp_path, f"malloc 0 1M\ntouch 0 4080 {pages * 4096} w\n").processes[0]
        assert p.minflt - base.minflt == pages


def test_a_read_maps_the_zero_page_and_a_later_write_faults_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # malloc(1 MiB) is mmapped: pages 1.. are untouched. Read 10 of them: 10 minor
    # faults, no frames (RSS does not grow); write them: 10 more minor faults.
    base = trace_run(tmp_path, "malloc 0 1M\n").processes[0]
    read = trace_run(tmp_path, "malloc 0 1M\ntouch 0 4080 40960 r\n").processes[0]
    both = trace_run(tmp_path, "malloc 0 1M\ntouch 0 4080 40960 r\ntouch 0 4080 40960 w\n").processes[0]
    assert read.minflt - base.minflt == 10
    assert read.rss_peak_bytes == base.rss_peak_bytes
    assert both.minflt - base.minflt == 20
    assert both.rss_peak_bytes == base.rss_peak_bytes + 10 * 4096


def test_munmap_and_a_shrinking_brk_free_frames_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # free 1 merges the heap block into top, which then exceeds the trim threshold: brk
    # shrinks. (A fixed threshold: glibc's dynamic one would double the trim threshold
    # when the 1 MiB chunk is freed, and keep the heap.)
    # Real glibc here: brk +135168, mmap, brk +200704, munmap, brk -102400, brk -98304.
    text = (
        "malloc 0 1M\ntouch 0\nmalloc 1 100000\nmalloc 2 100000\ntouch 1\ntouch 2\nfree 0\nfree 2\nfree 1\n"
    )
    r = trace_run(tmp_path, text, "threshold=128k")
    p = r.processes[0]
    assert [(c[3], c[5]) for c in r.syscalls][-3:] == [("munmap", 1052672), ("brk", -102400), ("brk", -98304)]
    # 57 pages written in all (1 MiB block, two 100000-byte blocks); what stays
    # resident is the heap's first pages only, within the 132 KiB kept (top_pad).
    assert p.rss_peak_bytes >= (257 + 49) * 4096
    assert p.rss_bytes <= 33 * 4096
    assert p.rss_peak_bytes > (256 + 24) * 4096


def test_maps_listing_has_the_x86_64_layout_with_aslr_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = trace_run(tmp_path, "malloc 0 100\nmalloc 1 1M\n").processes[0]
    lines = p.maps
    assert lines[0].startswith("555555554000-555555556000 r-xp")
    heap = next(line for line in lines if line.endswith("[heap]"))
    assert heap.startswith("555555558000-")  # right after text (8k), data (4k) and bss (4k)
    assert lines[-1].startswith("7ffffffde000-7ffffffff000 rw-p") and lines[-1].endswith("[stack]")
    # The mmapped chunk sits just below the mmap base, 128 MiB under the stack top.
    anon = [line for line in lines if line.split()[-1] == "0" and "rw-p" in line and "[" not in line]
    assert any(
        line.endswith("7ffff7fff000 rw-p 00000000 00:00 0") or "-7ffff7fff000 " in line for line in anon
    ), lines


def test_maps_addresses_have_linuxs_minimum_width_of_eight_hex_digits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # fs/proc/task_mmu.c show_map_vma: seq_put_hex_ll(m, NULL, start, 8), as /proc/PID/maps of an
    # i386 program shows "08048000-0804a000 r-xp" (it read "000008048000-00000804a000 r-xp").
    p = trace_run(tmp_path, "malloc 0 100\n", "address_space=i386").processes[0]
    assert p.maps[0].startswith("08048000-0804a000 r-xp 00000000 08:01 1048577 "), p.maps[0]


def test_aslr_moves_the_regions_with_the_seed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def heap_start(seed: int) -> str:
        p = trace_run(tmp_path, "malloc 0 100\n", "address_space.aslr=true", f"seed={seed}").processes[0]
        return next(line for line in p.maps if line.endswith("[heap]")).split("-")[0]

    assert heap_start(1) == heap_start(1)
    assert heap_start(1) != heap_start(2)


def test_aslr_leaves_a_non_pie_program_at_its_link_address_and_moves_a_pie(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Linux loads an ET_EXEC where it was linked (a -no-pie program's main stays at 0x401136 run
    # after run on this machine, randomize_va_space 2); its heap, mmap area and stack still move.
    def regions(*overrides: str) -> tuple[str, str, str]:
        maps = trace_run(tmp_path, "malloc 0 100\n", "address_space.aslr=true", *overrides).processes[0].maps
        text = maps[0].split("-")[0]
        heap = next(line for line in maps if line.endswith("[heap]")).split("-")[0]
        stack = maps[-1].split("-")[0]
        return text, heap, stack

    i386 = [regions("address_space=i386", f"seed={seed}") for seed in (1, 2)]
    assert [text for text, _, _ in i386] == ["08048000", "08048000"]
    assert i386[0][1] != i386[1][1] and i386[0][2] != i386[1][2]
    x86_64 = [regions(f"seed={seed}") for seed in (1, 2)]  # a PIE: the program moves too
    assert x86_64[0][0] != x86_64[1][0] and "555555554000" not in {text for text, _, _ in x86_64}


def test_i386_runs_out_of_address_space_with_enomem_not_a_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 3 GiB of user space: 64 blocks of 64 MiB (4 GiB) cannot all be mapped.
    text = "".join(f"malloc {i} 64M\n" for i in range(64))
    p = trace_run(tmp_path, text, "address_space=i386").processes[0]
    assert p.exit == "ok"
    assert 0 < p.enomem < 64
    assert p.vsz_peak_bytes < 3 << 30


def test_i386_heap_meeting_the_mmap_area_falls_back_to_mmap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # With M_MMAP_MAX=0 every block comes from brk until the heap reaches the
    # mmap area; then brk fails and glibc maps memory instead (sysmalloc's fallback).
    text = "".join(f"malloc {i} 256M\n" for i in range(14))
    r = trace_run(tmp_path, text, "address_space=i386", "allocator.mmap_max=0")
    p = r.processes[0]
    failed_brk = [c for c in r.syscalls if c[3] == "brk" and c[5] == 0 and c[4] != 0]
    assert failed_brk, "the heap never hit the mmap area"
    assert p.syscalls["mmap"] > 0
    assert p.exit == "ok"


def test_two_mib_pages_fault_once_per_two_mib(tmp_path) -> None:  # type: ignore[no-untyped-def]
    small = trace_run(tmp_path, "malloc 0 8M\ntouch 0\n").processes[0]
    huge = trace_run(tmp_path, "malloc 0 8M\ntouch 0\n", "page_size=2M", "ram=1G").processes[0]
    assert small.minflt >= 2048
    assert huge.minflt <= 8
    assert huge.page_table_peak_bytes < small.page_table_peak_bytes


def test_page_tables_are_counted_as_four_levels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # One page touched at each end of the address space: PGD + two of each lower level.
    r = simulate_with("workload=pageref", "workload.refs=[1,34359738366]", "machine.min_free=0")
    assert r.processes[0].page_table_peak_bytes == (1 + 2 + 2 + 2) * 4096


def test_oom_kills_the_biggest_process_and_the_run_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Four 2 MiB blocks (each within Linux's overcommit limit of RAM + swap), all touched: 8 MiB > 6 MiB.
    p1 = "".join(f"p1: malloc {i} 2M\np1: touch {i}\n" for i in range(4)) + "p1: compute 50ms\n"
    text = p1 + "p2: malloc 0 512k\np2: touch 0\np2: compute 100ms\np2: touch 0\n"
    r = trace_run(tmp_path, text, "ram=4M", "swap=2M")
    exits = {p.pid: p.exit for p in r.processes}
    assert r.system["oom_kills"] == 1
    assert exits == {1: "oom-killed", 2: "ok"}


def test_a_process_killed_for_another_says_for_which(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # p1 holds 3 MiB and computes; p2's touches need more than the 1 MiB left, and nothing can be
    # swapped: the OOM killer takes p1, the biggest, for p2. Its error was empty ("ended oom-killed").
    text = "p1: malloc 0 3M\np1: touch 0\np1: compute 100ms\np2: compute 10ms\np2: malloc 0 2M\np2: touch 0\n"
    r = trace_run(tmp_path, text, "ram=4M", "swap=0")
    p1, p2 = r.processes
    assert (p1.exit, p2.exit) == ("oom-killed", "ok")
    assert p1.error == "killed by the OOM killer for pid 2, the process with the most memory"


def test_local_scope_keeps_a_process_within_its_share(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = "p1: malloc 0 4M\np1: touch 0\np1: compute 20ms\np1: touch 0\np2: malloc 0 256k\np2: touch 0\np2: compute 300ms\n"
    r = trace_run(tmp_path, text, "ram=2M", "policy=lru", "policy.scope=local")
    p2_end = next(p for p in r.processes if p.pid == 2).end_s
    while_both = [s["rss_bytes"] for s in r.samples if s["pid"] == 1 and s["time_s"] < p2_end]
    assert while_both and max(while_both) == 1 << 20  # an equal share of 2 MiB between two processes
    p1 = next(p for p in r.processes if p.pid == 1)
    assert p1.rss_peak_bytes == 2 << 20  # alone, it may use all of RAM


@pytest.mark.slow
def test_kswapd_reclaims_in_the_background_above_min(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.trace"
    path.write_text("malloc 0 8M\ntouch 0\ncompute 10ms\ntouch 0\n")
    r = simulate_with("workload=trace", f"workload.path={path}", "ram=4M", "machine.min_free=256k")
    wm = r.system["watermarks_bytes"]
    assert wm["min"] == 256 << 10 and wm["min"] < wm["low"] < wm["high"]
    assert r.system["pgsteal_kswapd"] > 0


@pytest.mark.slow
def test_a_slower_swap_device_makes_the_same_work_take_longer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = "malloc 0 2M\ntouch 0\ntouch 0\ntouch 0\n"  # twice RAM, three passes: about 1000 swap-ins
    times = {
        dev: trace_run(tmp_path, text, "ram=1M", f"machine.swap_device={dev}").system["sim_time_s"]
        for dev in ("nvme", "ssd", "hdd")
    }
    assert times["nvme"] < times["ssd"] < times["hdd"]


def test_explain_narrates_each_reference_fault_and_eviction() -> None:
    r = simulate_with(
        "workload=pageref",
        f"workload.refs=[{BELADY}]",
        "policy=fifo",
        "ram=12k",
        "machine.min_free=0",
        "explain=true",
    )
    log = "\n".join(r.explain or [])
    assert log.count("minor fault") == 5 and log.count("MAJOR fault") == 4 and log.count(": hit") == 3
    assert "evict frame 0" in log and "written to swap slot" in log


@pytest.mark.slow
def test_the_programs_own_pages_are_touched_by_every_operation_and_narrated_only_when_they_fault(
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    # Writing a 1 MiB block in a 1 MiB group unmaps the whole image, its 9 hot pages included. The
    # next operation touches those 9 first and faults them back in (from the swap cache here, as
    # their writes are still in flight: minor faults): 9 faults more than without them. The 4
    # touched after the last operation are resident again by then.
    text = "malloc 0 4096\ntouch 0\nmalloc 1 1M\ntouch 1\ntouch 0 0 1 r\n"
    common = ("ram=64M", "swap=64M", "cgroup.memory_max=1M", "explain=true")
    hot = trace_run(tmp_path, text, *common).processes[0]
    cold = trace_run(tmp_path, text, *common, "cgroup.image_hot=0").processes[0]
    assert hot.majflt + hot.minflt == cold.majflt + cold.minflt + 9
    r = simulate_with("workload=trace", f"workload.path={tmp_path / 't.trace'}", *common)
    log = "\n".join(r.explain or [])
    assert (
        log.count("(the program's own page): MAJOR fault") + log.count("(the program's own page): minor") == 9
    )
    assert "(the program's own page): hit" not in log


@pytest.mark.slow
def test_an_allocator_call_also_faults_back_the_allocators_own_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # After the 1 MiB sweep has unmapped the whole image, a malloc faults back the 9 pages every
    # operation uses and the 6 of the C library's allocator state (main_arena, mp_, the brk pointer,
    # ld.so's page size): 6 faults more than without those (cgroup.image_alloc=0). A touch in the
    # malloc's place faults back only the 9: the allocator's pages are not every operation's.
    common = ("ram=64M", "swap=64M", "cgroup.memory_max=1M")
    sweep = "malloc 0 4096\ntouch 0\nmalloc 1 1M\ntouch 1\n"

    def faults(last: str, *extra: str) -> int:
        p = trace_run(tmp_path, sweep + last, *common, *extra).processes[0]
        return p.majflt + p.minflt

    assert faults("malloc 2 100\n") == faults("malloc 2 100\n", "cgroup.image_alloc=0") + 6
    assert faults("touch 0 0 1 r\n") == faults("touch 0 0 1 r\n", "cgroup.image_alloc=0")


@pytest.mark.slow
def test_the_kernel_writes_the_rseq_area_after_each_sleep_so_a_waiting_process_keeps_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # On the way back to user space after a context switch the kernel updates the thread's struct
    # rseq, in its TLS (rseq_handle_notify_resume). perf record -e major-faults -d on seq_read_160
    # shows it: on zram, whose swap-ins do not sleep, a sweep swaps the TLS page out and the kernel
    # faults it back at __get_user_8 only when something preempts the process; on the swap file the
    # process sleeps at every major fault, so the page is written again and again and stays. Here
    # the write sweep of 1 MiB swaps the image out; with a disk the reclaimer's waits bring the TLS
    # page back within the sweep, so the read sweep that follows finds it and faults back the 8
    # other hot pages only; with zram nothing waits, and all 9 fault back at each sweep.
    text = "malloc 0 4096\ntouch 0\nmalloc 1 1M\ntouch 1\ntouch 1 0 1048560 r\ntouch 0 0 1 r\n"
    common = ("ram=64M", "swap=64M", "cgroup.memory_max=1M", "explain=true")

    def own_faults(device: str) -> list[int]:
        log = trace_run(tmp_path, text, *common, f"machine.swap_device={device}").explain or []
        starts = [i for i, line in enumerate(log) if line.startswith("t=")] + [len(log)]
        return [sum("(the program's own page)" in x for x in log[a:b]) for a, b in itertools.pairwise(starts)]

    assert own_faults("hdd")[3:5] == [1, 8]
    assert own_faults("zram")[3:5] == [0, 9]


@pytest.mark.slow
@pytest.mark.parametrize("device", ["zram", "hdd"])
def test_the_programs_pages_of_zeros_are_reclaimed_without_a_write(tmp_path, device: str) -> None:  # type: ignore[no-untyped-def]
    # 107 of the replayer's 132 own pages hold only zeros (its stack grown at start, its bss
    # tables: /proc/PID/pagemap and /proc/PID/mem with the replayer stopped before its loop), and
    # Linux 6.12 and later reclaim such a page without I/O (swap_writeout: is_folio_zero_filled ->
    # swap_zeromap_folio_set; counted in /proc/vmstat's swpout_zero, not pswpout): that is how the
    # kernel's first full reclaim of a 64 MiB group freed 41 pages it had never written. The 1 MiB
    # sweep in a 1 MiB group unmaps the whole image: all its pages of zeros go without a write, the
    # others are written (freeing those at once changes which other pages the reclaim takes, by a
    # page or two, so the writes saved are 107 give or take that).
    text = "malloc 0 4096\ntouch 0\nmalloc 1 1M\ntouch 1\n"
    common = ("ram=64M", "swap=64M", "cgroup.memory_max=1M", f"machine.swap_device={device}")
    with_zeros = trace_run(tmp_path, text, *common, "explain=true")
    none = trace_run(tmp_path, text, *common, "cgroup.image_zero=0")
    assert with_zeros.system["vmstat"]["swpout_zero"] == 107 and none.system["vmstat"]["swpout_zero"] == 0
    assert "\n".join(with_zeros.explain or []).count("only zeros: not written") == 107
    assert 100 <= none.processes[0].pswpout - with_zeros.processes[0].pswpout <= 110


@pytest.mark.slow
def test_the_own_pages_shortcut_measures_what_the_reference_loop_measures() -> None:
    # Without an observer the hot pages' hits are answered by Process._touch_own; with explain's
    # narrator attached every reference goes through the reference loop. A group tight enough that
    # the pages fault back in now and then: both ways must count and time the same run.
    args = ("cgroup.memory_max=8M", "duration=0.05s")
    fast, loop = simulate_with(*args, check=False), simulate_with(*args, "explain=true", check=False)
    assert loop.explain and not fast.explain
    assert [p.__dict__ for p in fast.processes] == [p.__dict__ for p in loop.processes]
    assert (fast.system, fast.samples) == (loop.system, loop.samples)
    assert sum(p.majflt for p in fast.processes) > 0


def test_a_failed_allocation_is_counted_and_its_later_uses_are_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # i386: a 3.5 GiB block cannot be mapped; the program checks for NULL.
    p = trace_run(
        tmp_path, "malloc 0 3584M\ntouch 0\nfree 0\nmalloc 1 100\n", "address_space=i386"
    ).processes[0]
    assert (p.exit, p.enomem, p.skipped_ops) == ("ok", 1, 1)


def test_malloc_of_a_live_id_stops_the_process_with_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = trace_run(tmp_path, "malloc 0 100\n# again\nmalloc 0 200\n").processes[0]
    assert p.exit == "bad-id" and "trace line 3" in p.error


def test_clearing_a_page_table_frees_what_removing_each_entry_frees() -> None:
    from vmexp.kernel.memcg import MemCgroup
    from vmexp.kernel.pagetable import PageTable

    def filled() -> tuple[PageTable, MemCgroup]:
        pt = PageTable(48, 4096, 8)
        cg = MemCgroup("g", None, None, 0, 0)
        pt.memcg = cg
        cg.pt_pages = pt.pages
        for vpn in (1, 2, 600, 1 << 27, (1 << 35) - 1):
            pt.add(vpn, vpn % 7)  # frame numbers
        return pt, cg

    one_by_one, cg1 = filled()
    for vpn in list(one_by_one.pte):
        one_by_one.remove(vpn)
    at_once, cg2 = filled()
    assert at_once.pages == 1 + 3 + 3 + 4  # the PGD; 3 PUDs, 3 PMDs, 4 PTE tables
    at_once.clear()
    assert (at_once.pte, at_once.pages, cg2.pt_pages) == ({}, 1, 1)
    assert (one_by_one.pages, cg1.pt_pages, one_by_one.pages_peak) == (1, 1, at_once.pages_peak)


def test_removing_a_range_at_once_frees_the_tables_removing_each_entry_frees() -> None:
    from vmexp.kernel.memcg import MemCgroup
    from vmexp.kernel.pagetable import PageTable

    # Two whole leaf tables and part of a third, plus entries far away that keep higher tables alive.
    vpns = [*range(512, 1536), *range(1536, 1600), 1 << 27, (1 << 35) - 1]

    def filled() -> tuple[PageTable, MemCgroup]:
        pt = PageTable(48, 4096, 8)
        cg = MemCgroup("g", None, None, 0, 0)
        pt.memcg = cg
        cg.pt_pages = pt.pages
        for vpn in vpns:
            pt.add(vpn, vpn % 7)
        return pt, cg

    gone = [*range(512, 1600), 1 << 27]
    one_by_one, cg1 = filled()
    entries = [one_by_one.remove(vpn) for vpn in gone]
    at_once, cg2 = filled()
    assert at_once.remove_many(gone) == entries
    # Left: the PGD, and the PUD, PMD and leaf table of the last entry; the emptied ones are freed.
    assert (at_once.pte, at_once.pages, cg2.pt_pages) == ({(1 << 35) - 1: ((1 << 35) - 1) % 7}, 4, 4)
    assert (one_by_one.pte, one_by_one.pages, cg1.pt_pages) == (at_once.pte, 4, 4)


@pytest.mark.parametrize(("layout", "column"), [("x86_64", 73), ("i386", 49)])
def test_maps_names_start_where_the_kernel_of_that_word_size_puts_them(layout: str, column: int) -> None:
    # Linux pads a maps line to 25 + 6 * sizeof(void *) - 1 columns and a space: a 32-bit kernel's
    # (i386's 3G/1G split) names start at column 49, not at the 64-bit kernel's 73.
    s = composed(f"address_space={layout}")
    lines = AddressSpace(compute_regions(s.layout, 4096, None), 4096, prog="server").maps()
    named = [line for line in lines if line.endswith(("server", "[stack]"))]
    assert named and all(line.index(line.split()[5]) == column for line in named)


@pytest.mark.parametrize(
    ("layout", "brk_range", "pie_range"),
    [("x86_64", 1 << 30, (1 << 28) * 4096), ("i386", 32 << 20, 0)],  # i386: a non-PIE, left in place
)
def test_aslr_moves_the_heap_and_a_pie_as_far_as_linux_does(
    layout: str, brk_range: int, pie_range: int
) -> None:
    # arch_randomize_brk: randomize_page(mm->brk, SZ_1G) for a 64-bit task since Linux 6.9 (SZ_32M for
    # ia32; measured on this machine's 6.18: a PIE's break 870 MiB past its bss); a PIE's load bias is
    # arch_mmap_rnd(), mmap_rnd_bits = 28 pages on x86_64.
    s = composed(f"address_space={layout}", "address_space.aslr=true")
    still = compute_regions(s.layout, 4096, None)
    moved = [compute_regions(s.layout, 4096, np.random.default_rng(seed)) for seed in range(40)]
    brk = [r.start_brk - r.bss[1] for r in moved]
    pie = [r.text[0] - still.text[0] for r in moved]
    assert all(0 <= b < brk_range for b in brk) and max(brk) > brk_range // 2
    assert all(0 <= d <= pie_range for d in pie) and (
        max(pie) > pie_range // 2 if pie_range else max(pie) == 0
    )
