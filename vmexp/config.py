"""Every setting of an experiment, declared once, and the one function that turns a config into them.

The dataclasses below are the declarations: each field is a key of the
config (``ram``, ``machine.quantum``, ...) with its type, default, unit,
meaning and valid values (``vmexp.fields``). They are also what the engine
receives: ``validate`` parses a composed config into a frozen ``Settings``
of ints in bytes and nanoseconds, every value parsed once, every failure a
``ConfigError`` whose message starts with the key. From the same
declarations come the Hydra schema (``register_configs``), each run's
``settings.json`` (``settings_json``), ``python run.py --help`` and the
README's knob table (``vmexp.docs``).

Three sections belong to a component chosen by name (``vmexp.registry``),
which declares their keys: ``policy.params`` (the replacement policy's),
``allocator`` (the allocator's mallopt-like parameters) and ``workload``
(the workload kind's). The schema leaves them open; ``validate`` checks
them against the chosen component, so an unknown key lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from vmexp import fields as decl
from vmexp.fields import ConfigError, Spec, declared, parse_section, parse_value, spec_of, to_plain
from vmexp.registry import ALLOCATORS, POLICIES, WORKLOAD_KINDS, import_plugins
from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "GENERATED_HORIZON",
    "GLIBC_MMAP_THRESHOLD_MAX",
    "INT_MAX",
    "SWAP_DEVICES",
    "AllocatorSettings",
    "Config",
    "ConfigError",
    "CgroupSettings",
    "CostSettings",
    "LayoutSettings",
    "MachineSettings",
    "PolicySettings",
    "ReportSettings",
    "Settings",
    "compose_settings",
    "spec_for_key",
    "read_settings_json",
    "register_configs",
    "schema",
    "settings_json",
    "validate",
]

# HEAP_MAX_SIZE / 2 on 64-bit: glibc's do_set_mmap_threshold refuses larger values (malloc.c).
GLIBC_MMAP_THRESHOLD_MAX = 32 << 20
# mallopt(int param, int value): no value above INT_MAX reaches glibc.
INT_MAX = (1 << 31) - 1
# The horizon of a generated workload when ``duration`` is null: 10 s of simulated time.
GENERATED_HORIZON = 10_000_000_000
PAGE_SIZES = (4 << 10, 16 << 10, 64 << 10, 2 << 20)

# Swap devices: (latency of one 4 KiB random access in ns, sustained bytes/s).
# hdd: 7200 rpm disk, ~8.5 ms average seek + 4.2 ms half rotation, ~150 MB/s
#      sequential (typical datasheets, e.g. Seagate Exos 7E8: 4.16 ms latency).
# ssd: SATA SSD, ~100 us 4 KiB random read latency, ~500 MB/s (SATA III limit).
# nvme: PCIe 4 NVMe SSD, ~20 us 4 KiB read latency at queue depth 1,
#      ~3 GB/s (e.g. Samsung 980 Pro datasheet: 7 GB/s seq, QD1 ~15-20 us).
SWAP_DEVICES: dict[str, tuple[int, int]] = {
    "hdd": (12_700_000, 150_000_000),
    "ssd": (100_000, 500_000_000),
    "nvme": (20_000, 3_000_000_000),
}
ROTATIONAL = frozenset({"hdd"})  # the block queue's rotational flag: swap readahead by cluster
# The most pages one write request holds: the block queue's max_segments (a swapped-out page is
# a segment of its own), here virtio-blk's 254, the disk the kernel model was measured on
# (/sys/block/vda/queue/max_segments; its max_sectors_kb, 4096, allows more). A loop device
# has 128 (and max_sectors_kb 1280), which puts seq_write_80 at page-cluster 3 in the kernel's
# other mode: docs/kernel-truth.md, "A second queue on the same disk".
DEFAULT_MAX_SEGMENTS = 254
# How many requests a device works on at once: their latencies overlap and their transfers take
# turns. The presets serve one at a time (a textbook FIFO server). A described device can give
# its queue's depth (/sys/block/DEV/mq/0/nr_tags: 128 on this machine's virtio disk), which the
# kernel validation does for the disk it measured: docs/kernel-truth.md, "A disk that overlaps
# its requests".
DEFAULT_QUEUE_DEPTH = 1
ZRAM = "zram"  # machine.swap_device=zram: compressed RAM (machine.zram), not a queue


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _group_limits(value: Any, key: str, error: type[Exception]) -> tuple[int, ...] | None:
    """``cgroup.limits``: each group's memory.max in bytes, from a list of sizes (None: not given)."""
    v = _plain(value)
    if v is None or isinstance(v, tuple):  # not given, or already parsed (a copy of settings)
        return v
    if not isinstance(v, list) or not v:
        raise error(f"{key}: expected a list of sizes, one a group, such as [32M, 96M], got {v!r}")
    out = []
    for i, x in enumerate(v):
        try:
            n = parse_size(x)
        except (UnitError, TypeError) as e:
            raise error(f"{key}[{i}]: {e}") from None
        if n <= 0:
            raise error(f"{key}[{i}]: a group's limit must be more than 0, got {x!r}")
        out.append(n)
    return tuple(out)


def _swap_device(value: Any, key: str, error: type[Exception]) -> tuple[str, int, int, bool, int, int]:
    """(name, latency ns, bandwidth bytes/s, rotational, max_segments, queue_depth) from a preset or ``{latency, bandwidth}``.

    ``zram`` is no queue (``machine.zram`` gives its costs): its latency and
    bandwidth here are 0. A rotational device (``hdd``, or ``rotational:
    true``) gets the kernel's cluster readahead, any other its VMA readahead.
    ``max_segments`` caps the pages of one write request (a preset's is
    ``DEFAULT_MAX_SEGMENTS``); ``queue_depth`` is how many requests overlap
    their latencies (a preset's is 1).
    """
    dev = _plain(value)
    if isinstance(dev, tuple):  # already parsed (dataclasses.replace, a copy of settings)
        return dev
    if isinstance(dev, str):
        if dev == ZRAM:
            return (dev, 0, 0, False, DEFAULT_MAX_SEGMENTS, DEFAULT_QUEUE_DEPTH)
        if dev not in SWAP_DEVICES:
            raise error(
                f"{key}: {dev!r} is not one of {', '.join([*SWAP_DEVICES, ZRAM])} (or give latency and bandwidth)"
            )
        return (dev, *SWAP_DEVICES[dev], dev in ROTATIONAL, DEFAULT_MAX_SEGMENTS, DEFAULT_QUEUE_DEPTH)
    if isinstance(dev, dict):
        extra = set(dev) - {"name", "latency", "bandwidth", "rotational", "max_segments", "queue_depth"}
        if extra:
            raise error(
                f"{key}.{sorted(extra)[0]}: unknown key "
                "(valid: name, latency, bandwidth, rotational, max_segments, queue_depth)"
            )
        rotational = dev.get("rotational", False)
        if not isinstance(rotational, bool):
            raise error(f"{key}.rotational: true or false, got {rotational!r}")
        segments = dev.get("max_segments", DEFAULT_MAX_SEGMENTS)
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise error(f"{key}.max_segments: a whole number of pages, at least 1, got {segments!r}")
        depth = dev.get("queue_depth", DEFAULT_QUEUE_DEPTH)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise error(f"{key}.queue_depth: a whole number of requests, at least 1, got {depth!r}")
        if "latency" not in dev or "bandwidth" not in dev:
            raise error(f"{key}: needs both latency and bandwidth")
        try:
            latency = parse_duration(dev["latency"])
        except UnitError as e:
            raise error(f"{key}.latency: {e}") from None
        try:
            bandwidth = parse_size(dev["bandwidth"])
        except UnitError as e:
            raise error(f"{key}.bandwidth: {e}") from None
        if bandwidth <= 0:
            raise error(f"{key}.bandwidth: must be greater than 0 (bytes per second)")
        return (str(dev.get("name", "custom")), latency, bandwidth, rotational, segments, depth)
    raise error(f"{key}: a preset name (hdd, ssd, nvme, zram) or {{latency, bandwidth}}")


def _page_size(v: int) -> str | None:
    return None if v in PAGE_SIZES else "must be one of 4k, 16k, 64k, 2M (a power of two the MMU supports)"


def _va_bits(v: int) -> str | None:
    ok = (32, 39, 47, 48, 56, 57)
    return None if v in ok else f"{v} is not a supported width ({', '.join(map(str, ok))})"


def _pte_bytes(v: int) -> str | None:
    return None if v in (4, 8) else f"must be 4 or 8, got {v}"


def _cgroup_version(v: int) -> str | None:
    return None if v in (1, 2) else f"must be 1 or 2, got {v}"


def _summary_metric(name: str) -> str | None:
    from vmexp.metrics import FILE_METRICS, SUMMARY_METRICS

    valid = f"(valid: {', '.join(SUMMARY_METRICS)})"
    if name in SUMMARY_METRICS:
        return None
    if name == "objective":
        return f"objective cannot weigh itself {valid}"
    if name in FILE_METRICS:  # a summary.csv column all the same: "not a summary metric" misled
        return f"counted from syscalls.csv after the run, so objective cannot weigh it {valid}"
    return f"not a summary metric {valid}"


def _report_metrics(entries: tuple[str, ...]) -> str | None:
    from vmexp.metrics import COLUMNS

    for entry in entries:
        for name in entry.split("|"):
            if name not in COLUMNS:
                return f"{name!r} is not a summary.csv column (valid: {', '.join(COLUMNS)})"
    return None


# ---------------------------------------------------------------------------
# The declarations.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutSettings:
    """The address-space layout of every process (the ``address_space`` group: x86_64, i386)."""

    name: str = decl.text("x86_64", "the layout's name")
    va_bits: int = decl.integer(
        47, "user virtual address bits", check=_va_bits, valid="32 | 39 | 47 | 48 | 56 | 57"
    )
    task_size: int = decl.size(
        "0x7ffffffff000", "TASK_SIZE: the top of user space (x86_64: one guard page below 2^47)"
    )
    text_start: int = decl.size(
        "0x555555554000", "where the program is loaded (a PIE at ELF_ET_DYN_BASE with ASLR off)"
    )
    pie: bool = decl.flag(
        True,
        "the program is a PIE, which ASLR moves; false: a non-PIE executable, loaded at text_start "
        "with ASLR on too (as Linux loads an ET_EXEC at its link address; i386's 0x08048000)",
    )
    text_size: int = decl.size("8k", "the program's code")
    data_size: int = decl.size("4k", "initialised data")
    bss_size: int = decl.size("4k", "zero-initialised data; the brk heap starts right after it")
    stack_size: int = decl.size("132k", "the initial stack mapping ([stack])")
    stack_limit: int = decl.size("8M", "RLIMIT_STACK: reserved below the stack top; sets the mmap base")
    mmap_min_gap: int = decl.size(
        "128M", "MIN_GAP (arch/x86/mm/mmap.c): the mmap base is at least this far below the stack top"
    )
    pte_bytes: int = decl.integer(
        8, "page-table entry size (8: 512 entries a table; 4: i386's 1024)", check=_pte_bytes, valid="4 | 8"
    )
    aslr: bool = decl.flag(
        False,
        "randomise the program (a PIE), heap, mmap base and stack (seeded: runs stay reproducible)",
    )


@dataclass(frozen=True)
class CostSettings:
    """CPU time charged to the process that causes each event (sources in README.md, CPU cost model)."""

    ref: int = decl.duration("1ns", "a reference to a resident page (a TLB-hit load or store, amortised)")
    minor_fault: int = decl.duration(
        "1us", "an anonymous fault incl. zeroing 4 KiB (entry/exit ~0.3 µs, clear_page ~0.2 µs)"
    )
    swap_cache_hit: int = decl.duration(
        "4500ns",
        "with policy=linux, a minor fault on a page still in the swap cache (read ahead, or written and "
        "not yet freed): the lookup, the folio's lock, the slot's release, the map (4.5 us on this "
        "machine's VM, bench/kernel_truth.py cpu)",
    )
    zero_page: int = decl.duration("250ns", "a read fault that maps the shared zero page")
    major_fault: int = decl.duration(
        "6us", "the CPU part of a swap-in (the device time is the swap device's)"
    )
    syscall: int = decl.duration("100ns", "kernel entry and exit with mitigations")
    brk: int = decl.duration("1us", "brk: the VMA update")
    mmap: int = decl.duration("2us", "mmap: VMA allocation and placement")
    munmap: int = decl.duration("3us", "munmap: unmap, free the pages, TLB shootdown")
    mremap: int = decl.duration("2us", "mremap: move page-table entries")
    malloc: int = decl.duration("20ns", "one malloc/calloc/realloc in user space (glibc's fast path)")
    free: int = decl.duration("15ns", "one free in user space")
    reclaim_page: int = decl.duration("300ns", "scanning and unmapping one page during reclaim")
    swap_write: int = decl.duration(
        "4us",
        "reclaim's part in writing one page to a swap disk: a slot, the unmap, the bio "
        "(add_to_swap, try_to_unmap, swap_writepage; 4 us a page on this machine's VM)",
    )
    swap_read: int = decl.duration(
        "18us",
        "a swap-in's submission of its read to a swap disk, before it sleeps: the bio, the block layer, "
        "the doorbell (an exit to the hypervisor in a VM; 18 us a read request beyond major_fault on this "
        "machine's VM, bench/kernel_truth.py cpu); not zram's",
    )
    # Single-page O_DIRECT reads of this VM's disk, whose one request queue interrupts CPU 1:
    # median 39 us from a task on CPU 1, 52-56 us from one on CPU 0 (docs/kernel-truth.md,
    # "Which CPU the disk interrupts").
    remote_wakeup: int = decl.duration(
        "14us",
        "with machine.swap_irq_cpu set, how much later a process on another CPU wakes from a swap "
        "device's completion than one on that CPU: the interrupt's CPU sends a wakeup to the sleeper's "
        "idle CPU (an IPI and the exit from idle; 14 us measured on this machine's VM)",
    )


@dataclass(frozen=True)
class ZramSettings:
    """zram's costs (drivers/block/zram): it compresses on the CPU, synchronously, into RAM."""

    # zram.rst ("Set Disksize"): "we expect a 2:1 compression ratio"; 1.9 measured here on /usr files.
    compression_ratio: float = decl.number(
        2.0, "stored pages take RAM at 1/ratio (zram.rst expects 2:1; 1.9 measured on this machine)", lo=1.0
    )
    # lzo-rle, measured on this machine (tests/data/real_kernel/zram_device.json).
    read: int = decl.duration("5us", "decompress one page (lzo-rle, measured on this machine)")
    write: int = decl.duration("10us", "compress one page (lzo-rle, measured on this machine)")


@dataclass(frozen=True)
class CgroupSettings:
    """The memory cgroups of the run's processes: one holding every process, as a container's, or several."""

    memory_max: int | None = decl.size(
        None,
        "each group's limit (memory.max): at it the charging process reclaims, then the group's OOM killer kills",
        null="no group (unless cgroup.groups > 1: groups with no limit of their own)",
    )
    swap_max: int | None = decl.size(
        None,
        "swap each group may use: with cgroup.version 2 its swap slots (memory.swap.max), with 1 its pages swapped "
        "out, as memory.memsw.limit_in_bytes = cgroup.memory_max + this counts them",
        null="no limit of its own",
    )
    version: int = decl.integer(
        2,
        "the cgroup interface whose swap accounting cgroup.swap_max follows: 2 counts every swap slot a group's "
        "pages hold, also a page read back that keeps its slot (memory.swap.max); 1 counts memory and swap "
        "together (memory.memsw), a page once, so a page read back costs no swap and at the limit the charging "
        "process may not swap (the group's OOM killer runs); nothing else differs",
        check=_cgroup_version,
        valid="1 | 2",
    )
    groups: int | None = decl.integer(
        None,
        "how many groups the processes are split into, each with cgroup.memory_max and cgroup.swap_max of its own "
        "(process i joins group i mod groups, as containers side by side); global reclaim goes round their lists; "
        "more than 1 needs policy=linux",
        lo=1,
        null="1, or as many as cgroup.limits gives",
    )
    limits: tuple[int, ...] | None = decl.custom(
        None,
        "each group's own limit in place of cgroup.memory_max, in the groups' order: a list of sizes, as many as "
        "cgroup.groups (such as [32M, 96M])",
        _group_limits,
        typed_default=None,
        null="cgroup.memory_max for every group",
        valid="null | [SIZE, ...]",
        unit_override="bytes",
    )
    parent_max: int | None = decl.size(
        None,
        "a parent group over all the groups, with this limit (its memory.max): a pod's or a slice's limit over "
        "containers that may have limits of their own; at it the charging process reclaims from every group "
        "below it (going round their lists), then the parent's OOM killer kills the largest of all their processes",
        null="no parent: the groups are the root's children",
    )
    image: int = decl.size(
        "528k",
        "each process's own pages (stack, program and library data), written at start, then evictable (132 pages measured); "
        "a page-reference string, which has no program, has none",
    )
    image_hot: int = decl.size(
        "36k",
        "of cgroup.image, the pages every operation uses (stack frame, GOT, TLS, the block's table entries: 9 "
        "measured), touched before each "
        "operation and 4 of them after the last (at most cgroup.image): they fault back in after an operation "
        "that swept them out; the first holds the rseq area, which the kernel also writes each time the process "
        "comes back from a sleep or a wait for the CPU",
    )
    image_alloc: int = decl.size(
        "24k",
        "of cgroup.image besides cgroup.image_hot, the C library's allocator state (main_arena, mp_, the brk "
        "pointer, ld.so's page size: 6 pages measured), touched by each malloc, calloc, realloc and free: they "
        "fault back in at the first allocation after a sweep",
    )
    image_zero: int = decl.size(
        "428k",
        "of cgroup.image's cold pages (not cgroup.image_hot or cgroup.image_alloc), those that hold only zeros (the stack "
        "the program grows at start, its bss tables: 107 pages measured): with policy=linux reclaim frees them without "
        "a write, as Linux 6.12 and later do (swap_zeromap)",
    )
    image_ids: bool = decl.flag(
        True,
        "the program's own tables of a trace's block ids (the replayer's pointer, size and state of each block: 8, 8 "
        "and 1 bytes an id): their first pages are among cgroup.image_hot; the rest, for a trace of more than 512 "
        "ids, are written at start and used by each operation on a block of theirs (loads; stores for malloc, "
        "calloc, realloc and free)",
    )
    kernel: int = decl.size(
        "64k",
        "each process's kernel memory beyond its page tables (slab, the libraries' page tables), not evictable; "
        "none for a page-reference string",
    )

    @property
    def enabled(self) -> bool:
        return (
            self.memory_max is not None
            or self.swap_max is not None
            or self.count > 1
            or self.limits is not None
            or self.parent_max is not None
        )

    @property
    def count(self) -> int:
        """How many groups: cgroup.groups, or as many as cgroup.limits lists, or one."""
        if self.groups is not None:
            return self.groups
        return len(self.limits) if self.limits is not None else 1

    def limit_of(self, group: int) -> int | None:
        """Group ``group``'s limit in bytes (memory.max); None: no limit of its own."""
        return self.limits[group] if self.limits is not None else self.memory_max


@dataclass(frozen=True)
class MachineSettings:
    """CPUs, the time slice, the free-memory watermark, the swap device, the CPU cost model."""

    name: str = decl.text("server", "the machine's name")
    ncpus: int = decl.integer(1, "CPUs shared by the processes (round-robin time slices)", lo=1)
    # A slice is one SimPy event, and an operation is never split: a slice shorter than a fault's
    # CPU time (minor 1 us, a swap-in's 6 us) ends after its first fault whatever it says, and the
    # run crawls (the default run, 2 s simulated: 6.8 s at 4ms, 8.4 s at 10us, 22 s at 1us, about
    # 4 min at 100ns; 1ns simulated 20 ms in 2 min). 10us still holds a few faults.
    quantum: int = decl.duration(
        "4ms",
        "the round-robin time slice; it runs to the end of the operation that uses it up, so the shortest "
        "is a few faults' CPU time",
        lo=10_000,
        lo_msg="{text} is shorter than 10us, the shortest time slice: a slice runs to the end of the operation "
        "that uses it up (a fault takes 1 to 6 us of CPU), so a shorter one stops meaning its length, and "
        "each slice costs the simulator an event (at 1ns the default run takes hours)",
    )
    # Two 40 MiB processes of random touches in a 64 MiB group, on this machine's 2 CPUs and a swap
    # file: the kernel's 11 574..12 370 major faults; the simulator's 6 880 with stretches as long as
    # the 4 ms slice, 12 419 with 50 us ones (docs/kernel-truth.md, "Several processes in one group").
    interleave: int = decl.duration(
        "50us",
        "with several CPUs, the longest stretch of a time slice that one CPU's process runs before the "
        "others' catch up: the engine applies a stretch at its start, one CPU's after another's, so a "
        "shorter one is closer to CPUs running side by side, and costs an event; one CPU runs whole slices",
        lo=10_000,
        lo_msg="{text} is shorter than 10us: a stretch runs to the end of the operation that uses it up "
        "(a fault takes 1 to 6 us of CPU), so a shorter one stops meaning its length",
    )
    min_free: int = decl.size(
        "256k",
        "vm.min_free_kbytes: the min watermark (low and high derive from it); 0 = no kswapd, evict only when RAM is full",
    )
    swap_device: str = decl.custom(
        "ssd",
        "the swap device: a preset, zram (compressed RAM), or {latency: 100us, bandwidth: 500M, rotational: false, "
        "max_segments: 254, queue_depth: 1} (bandwidth in bytes a second, binary as every size: 500M is "
        "500 MiB/s; the presets' are decimal; max_segments: the most pages one write request holds, "
        "/sys/block/DEV/queue/max_segments; queue_depth: the requests it serves at once, latencies "
        "overlapping, /sys/block/DEV/mq/0/nr_tags; the presets serve one at a time)",
        _swap_device,
        typed_default=("ssd", *SWAP_DEVICES["ssd"], False, DEFAULT_MAX_SEGMENTS, DEFAULT_QUEUE_DEPTH),
        valid="hdd | ssd | nvme | zram | {latency, bandwidth, rotational, max_segments, queue_depth}",
    )
    swap_latency: int = decl.duration(None, "latency of one swap request", derived=True)
    swap_bandwidth: int = decl.size(None, "bytes per second the swap device transfers", derived=True)
    swap_rotational: bool = decl.flag(
        False, "the device is rotational: cluster readahead (hdd), else VMA readahead", derived=True
    )
    swap_max_segments: int = decl.integer(
        DEFAULT_MAX_SEGMENTS,
        "the most pages one write request to the device holds (its queue's max_segments; a preset's is "
        "virtio-blk's 254): consecutive swap slots written together merge into one request up to it",
        derived=True,
    )
    swap_queue_depth: int = decl.integer(
        DEFAULT_QUEUE_DEPTH,
        "how many requests the device serves at once (its queue's nr_tags for a described device; the "
        "presets' is 1): their latencies overlap, their transfers take turns",
        derived=True,
    )
    swap_irq_cpu: int | None = decl.integer(
        None,
        "the CPU that takes the swap device's completion interrupts (one request queue; "
        "/proc/interrupts): a process waiting for the device on another CPU wakes "
        "machine.cost.remote_wakeup later; processes run on CPUs 0, 1, ... in order of pid, each on its "
        "last CPU when free",
        null="each CPU its own queue (multi-queue NVMe, virtio-blk with a queue per CPU, zram): no remote wakeups",
        lo=0,
    )
    page_cluster: int = decl.integer(
        3,
        "vm.page-cluster: swap readahead of up to 2^N pages (policy=linux); 0 = one page per fault",
        lo=0,
        hi=31,
    )
    zram: ZramSettings = decl.section(ZramSettings, "swap_device=zram: compressed swap in RAM")
    cost: CostSettings = decl.section(CostSettings, "CPU time of each event")
    load_control: str = decl.choice(
        "none",
        "Denning's load control: none (as Linux) or ws (a process runs only while the running working sets fit in RAM)",
        ("none", "ws"),
    )
    # tau below the interval is allowed: with several processes sharing the CPU each gets only part
    # of an interval's CPU time, and the window still tells them apart (12 processes of the thrashing
    # preset at 16M: tau 5ms with a 10ms interval stops 6 and keeps 88 % CPU, as 5ms/5ms: 8, 90 %).
    load_control_tau: int = decl.duration(
        "50ms",
        "the working-set window the controller measures, in each process's CPU time; the accessed bits "
        "are read every machine.load_control_interval, so it is measured in steps of the CPU time a "
        "process has in one interval (coarsely when tau is shorter)",
        lo=1,
    )
    load_control_interval: int = decl.duration(
        "10ms",
        "how often the controller samples the working sets and acts; at least machine.quantum (it acts "
        "between slices)",
        lo=1,
    )

    def __post_init__(self) -> None:
        # swap_device is declared once, as what the user writes; its parse yields the derived values.
        dev = self.swap_device
        if isinstance(dev, tuple):
            object.__setattr__(self, "swap_device", dev[0])
            object.__setattr__(self, "swap_latency", dev[1] if dev[0] != ZRAM else self.zram.read)
            object.__setattr__(self, "swap_bandwidth", dev[2])
            object.__setattr__(self, "swap_rotational", dev[3])
            object.__setattr__(self, "swap_max_segments", dev[4])
            object.__setattr__(self, "swap_queue_depth", dev[5])

    # The engine's names for zram's parameters.
    @property
    def zram_ratio(self) -> float:
        return self.zram.compression_ratio

    @property
    def zram_read(self) -> int:
        return self.zram.read

    @property
    def zram_write(self) -> int:
        return self.zram.write


@dataclass(frozen=True)
class PolicySettings:
    """The page-replacement policy (the ``policy`` group) and how frames are shared."""

    name: str = decl.text("linux", "the policy (a module of vmexp/kernel/policies/)")
    scope: str = decl.choice(
        "global",
        "global: reclaim may take any process's page; local: a process at its frame quota replaces its own",
        ("global", "local"),
    )
    allocation: str = decl.choice(
        "equal",
        "local scope: frames split equally, or in proportion to each process's virtual size",
        ("equal", "proportional"),
    )
    # The policy's own parameters, typed (ints in bytes and ns): a dict, so the kernel can pass it on.
    params: dict[str, Any] = decl.open_section(
        "the policy's parameters (see the policies below)", POLICIES, typed_default={}, schema_default={}
    )


@dataclass(frozen=True)
class AllocatorSettings:
    """The allocator (the ``allocator`` group) and its parameters, as the engine reads them.

    ``mmap_threshold`` is the top-level ``threshold``; the other three are
    the allocator's parameters of those names (None: not set, the
    allocator's default). ``params`` is the allocator's whole typed
    parameter object, for allocators with parameters of their own.
    """

    name: str = "glibc"
    mmap_threshold: int | None = None
    trim_threshold: int | None = None
    top_pad: int | None = None
    mmap_max: int | None = None
    params: Any = None


@dataclass(frozen=True)
class ReportSettings:
    """What a sweep's report shows."""

    metrics: tuple[str, ...] = decl.names(
        [],
        "the sweep's figures: summary.csv columns; a|b|c draws several on one axis; [] = the standard set",
        check=_report_metrics,
    )


@dataclass(frozen=True)
class Settings:
    """One experiment, typed: what ``validate`` returns and the engine runs."""

    threshold: int | None = decl.size(
        None,
        "mmap threshold: a size = mallopt(M_MMAP_THRESHOLD, size), fixed (the dynamic adjustment off)",
        null="glibc's default (dynamic): 128 KiB, raised when a larger mmapped chunk is freed (up to 32 MiB)",
        hi=GLIBC_MMAP_THRESHOLD_MAX,
        hi_msg="{text} is above glibc's maximum of 32M (or null for glibc's dynamic default)",
    )
    page_size: int = decl.size("4k", "the MMU's page size", check=_page_size, valid="4k | 16k | 64k | 2M")
    ram: int = decl.size("64M", "physical memory shared by all processes (at least one page)")
    swap: int = decl.size("256M", "swap space")
    nprocs: int = decl.integer(
        4,
        "number of processes (a trace says its own; a page-reference string is one process)",
        lo=1,
        hi=4096,
        lo_msg="must be an integer >= 1, got {v!r}",
        hi_msg="at most 4096 processes, got {v}",
    )
    seed: int = decl.integer(
        0,
        "every random stream of the run derives from it (one SeedSequence child per process)",
        lo=0,
        lo_msg="must be a non-negative integer, got {v!r}",
    )
    duration: int | None = decl.duration(
        None,
        "simulated time at which the run stops if the processes are not done (a stopped run says so)",
        null="trace and page-reference workloads run to their end; generated workloads stop at 10 s",
        lo=1,
    )
    sample_interval: int = decl.duration("10ms", "period of timeseries.csv (simulated time)", lo=1)
    heap_snapshots: tuple[int, ...] = decl.durations(
        [],
        "times at which to record every heap (heap_snapshots.csv, figures/heap_N.png: N is the time's "
        "place in the list in time order, from 0; no file for a time without a heap yet), e.g. [0.5s,1s]",
    )
    explain: bool = decl.flag(
        False,
        "narrate every operation, reference, fault and syscall "
        "(explain.log; the console shows its first 2000 lines, in a sweep the path of each job's file); "
        "for small runs",
    )
    figures: bool = decl.flag(
        True, "draw each run's figures (~1 s a run); false for big sweeps (python -m vmexp.report redraws)"
    )
    objective: dict[str, float] = decl.weights(
        "a cost for hydra/sweeper=optuna: summary metric -> weight; the job returns the weighted sum "
        "(on the command line: ++objective={majflt: 1})",
        check=_summary_metric,
    )
    resume: bool = decl.flag(False, "in a sweep directory with results: skip the jobs that are complete")
    job_timeout: int | None = decl.duration(
        None,
        "wall-clock limit of one job (e.g. 30min); the job is marked failed",
        null="no limit",
        lo=1,
        lo_msg="must be greater than 0 (or null for no limit)",
    )
    job_memory: int = decl.size(
        "4G",
        "host-memory limit of one job's simulation "
        "(estimated from the pages it tracks and the rows of its time series, ~400 bytes each)",
        lo=16 << 20,
        lo_msg="{text} is too small to run anything (at least 16M)",
    )
    plugins: tuple[str, ...] = decl.names(
        [], "Python modules imported before the run; their registrations add policies, allocators, workloads"
    )
    name: str = decl.text("default", "the experiment's name (run directories and the report use it)")
    question: str = decl.text("", "what the experiment asks (presets set it; the report quotes it)")
    expected: str = decl.text("", "the known result the preset expects (the report quotes it)")
    report: ReportSettings = decl.section(ReportSettings, "what a sweep's report shows")
    layout: LayoutSettings = decl.section(
        LayoutSettings, "the process layout: x86_64 (47-bit) | i386 (3G/1G)", key="address_space", group=True
    )
    machine: MachineSettings = decl.section(
        MachineSettings, "CPUs, time slice, watermarks, swap device, CPU costs", group=True
    )
    policy: PolicySettings = decl.section(PolicySettings, "page replacement", group=True)
    cgroup: CgroupSettings = decl.section(
        CgroupSettings,
        "memory cgroups: one holding every process of the run, as a container, or several side by side",
    )
    allocator: AllocatorSettings = decl.open_section(
        "the user-space malloc and its parameters",
        ALLOCATORS,
        typed_default=AllocatorSettings(),
        schema_default={},
        group=True,
    )
    workload: Any = decl.open_section("what the processes do (conf/workload/)", WORKLOAD_KINDS, group=True)

    @property
    def stop_at(self) -> int | None:
        """When the run stops (ns), None = when its processes are done.

        A trace or a page-reference string has an end, and a count taken before
        it is not the trace's count; a generated workload is a model of a
        process that could go on, so it gets a horizon (``GENERATED_HORIZON``).
        """
        if self.duration is not None:
            return self.duration
        w = self.workload
        if w is None:
            return GENERATED_HORIZON
        # Parsed parameters, or (from code that builds Settings by hand) the plain mapping.
        comp = (
            WORKLOAD_KINDS.get(w.get("kind", "generator"))
            if isinstance(w, dict)
            else WORKLOAD_KINDS.component_of(w)
        )
        return None if "finite" in comp.traits else GENERATED_HORIZON

    @property
    def ram_pages(self) -> int:
        return self.ram // self.page_size

    @property
    def swap_pages(self) -> int:
        return self.swap // self.page_size


# ---------------------------------------------------------------------------
# The Hydra schema, generated from the declarations.
# ---------------------------------------------------------------------------


def _copier(value: list[Any] | dict[str, Any]) -> Any:
    return lambda: type(value)(value)


def _schema_class(cls: type, name: str) -> type:
    fields: list[tuple[str, Any, Any]] = []
    for key, _f, spec in declared(cls):
        if spec.kind == "section" and spec.section is not None:
            sub = _schema_class(spec.section, f"{name}_{key}")
            fields.append((key, sub, dataclasses.field(default_factory=sub)))
        elif spec.kind == "open":
            if isinstance(spec.schema_default, dict):
                fields.append((key, Any, dataclasses.field(default_factory=dict)))
            else:
                fields.append((key, Any, dataclasses.field(default=None)))
        else:
            default = spec.default
            if isinstance(default, list | dict):
                fields.append((key, spec.schema, dataclasses.field(default_factory=_copier(default))))
            else:
                fields.append((key, spec.schema, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name, fields)


def schema() -> type:
    """The dataclass Hydra composes against: every declared key with its default as written."""
    return _schema_class(Settings, "Config")


Config = schema()


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; config.yaml names it in its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="vmexp_schema", node=Config)


# ---------------------------------------------------------------------------
# Validation: a composed config in, Settings out.
# ---------------------------------------------------------------------------


def _unknown_top_level(raw: dict[str, Any]) -> None:
    known = {name for name, _f, _s in declared(Settings)}
    for key in raw:
        if key == "hydra" or key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"{key}: unknown key ({hint}see python run.py --help for the valid keys)")


def _allocator(raw: Any, threshold: int | None, threshold_text: Any) -> AllocatorSettings:
    section_ = _plain(raw) or {}
    if not isinstance(section_, dict):
        raise ConfigError(f"allocator: pick one with allocator=NAME (valid: {', '.join(ALLOCATORS.names())})")
    name = section_.get("name", "glibc")
    comp = ALLOCATORS.get(name, "allocator.name")
    values = {k: v for k, v in section_.items() if k != "name"}
    # A parameter some other allocator takes may be present as null (the schema's group option
    # of another allocator); set to a value it is an error that lists this allocator's parameters.
    params = ALLOCATORS.parse_params(comp, {k: v for k, v in values.items() if v is not None}, "allocator")
    if threshold is not None and "mmap_threshold" not in comp.traits:
        takes = ", ".join(c.name for c in ALLOCATORS.items() if "mmap_threshold" in c.traits)
        raise ConfigError(
            f"threshold: allocator {name} has no mmap threshold (set it with allocator={takes}, or leave threshold null)"
        )
    return AllocatorSettings(
        name=str(name),
        mmap_threshold=threshold,
        trim_threshold=getattr(params, "trim_threshold", None),
        top_pad=getattr(params, "top_pad", None),
        mmap_max=getattr(params, "mmap_max", None),
        params=params,
    )


def check_cgroup_capacity(s: Settings, bare: Sequence[bool]) -> None:
    """Each group's limit must hold what its processes bring before the workload's first page.

    Known only once the workload is built (a trace says how many processes
    it has): ``bare`` says of each process, in order, whether it is a pure
    page-reference string (no program) or not. Process i joins group i mod
    ``cgroup.groups``. Each program brings ``cgroup.image`` and
    ``cgroup.kernel``, a page-reference string only its page tables; every
    process two page-table pages to start with, and each group a batch of reclaim.
    """
    cg = s.cgroup
    n = len(bare)
    if cg.count > n:
        raise ConfigError(
            f"cgroup.groups: {cg.count} groups for {n} processes leave a group empty "
            "(process i joins group i mod groups)"
        )
    per_program = -(-cg.image // s.page_size) + -(-cg.kernel // s.page_size) + 2
    if cg.parent_max is not None:
        strings = sum(bare)
        need = (n - strings) * per_program + strings * 2 + 32
        if cg.parent_max // s.page_size < need:
            who = f"{n} processes: their" if n != 1 else "1 process: its"
            own = "own pages (cgroup.image and cgroup.kernel each)" if n > strings else "page tables"
            raise ConfigError(
                f"cgroup.parent_max: {format_size(cg.parent_max)} is too small for all {who} {own} and a batch "
                f"of reclaim need {format_size(need * s.page_size)}"
            )
    for g in range(cg.count):
        limit = cg.limit_of(g)
        if limit is None:
            continue
        members = bare[g :: cg.count]
        strings = sum(members)
        programs = len(members) - strings
        need = programs * per_program + strings * 2 + 32  # 32: SWAP_CLUSTER_MAX, one batch of reclaim
        if limit // s.page_size < need:
            k = len(members)
            who = f"{k} processes: their" if k != 1 else "1 process: its"
            if cg.count > 1:
                who = f"group {g}'s {who}"
            own = "own pages (cgroup.image and cgroup.kernel each)" if programs else "page tables"
            key = "cgroup.memory_max" if cg.limits is None else f"cgroup.limits[{g}]"
            raise ConfigError(
                f"{key}: {format_size(limit)} is too small for {who} {own} and a batch "
                f"of reclaim need {format_size(need * s.page_size)}"
            )


def _policy(p: PolicySettings) -> PolicySettings:
    comp = POLICIES.get(p.name, "policy")
    raw = _plain(p.params) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"policy.params: expected a mapping of parameters, got {raw!r}")
    typed = POLICIES.parse_params(comp, raw, "policy.params")
    params = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)}
    return dataclasses.replace(p, params=params)


def _workload(raw: Any) -> Any:
    from vmexp.workload import parse_workload

    spec = _plain(raw)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError("workload: pick one with workload=NAME (see conf/workload/)")
    return parse_workload(spec)


def validate(cfg: DictConfig | dict[str, Any]) -> Settings:
    """Check every value and return the engine's settings; ConfigError names the key."""
    # Hydra's own node (present when composed with return_hydra_config) is not resolved: it
    # refers to run-time values (hydra.job.num) that a composed config does not have yet.
    node: Any = cfg
    raw = {str(k): _plain(node[k]) for k in node if k != "hydra"}
    _unknown_top_level(raw)
    plugins_spec = spec_of(next(f for f in dataclasses.fields(Settings) if f.name == "plugins"))
    assert plugins_spec is not None
    import_plugins(parse_value(plugins_spec, raw.get("plugins", []), "plugins"))

    s: Settings = parse_section(Settings, raw, "", ConfigError, what="the config")
    if s.ram < s.page_size:
        raise ConfigError(f"ram: {raw.get('ram')} is smaller than one page ({s.page_size} bytes)")
    if s.machine.min_free >= s.ram:
        min_free = (raw.get("machine") or {}).get("min_free")
        raise ConfigError(
            f"machine.min_free: {min_free} leaves no RAM for processes (ram is {raw.get('ram')})"
        )
    lay = s.layout
    if lay.task_size > (1 << lay.va_bits) or lay.task_size % 4096:
        raise ConfigError(
            f"address_space.task_size: must be 4 KiB aligned and at most 2^{lay.va_bits}, got {lay.task_size:#x}"
        )
    program_end = lay.text_start + lay.text_size + lay.data_size + lay.bss_size
    if program_end >= lay.task_size - lay.mmap_min_gap:
        raise ConfigError(
            f"address_space.text_start: the program ({lay.text_start:#x}..{program_end:#x}) does not fit below the mmap area"
        )
    cg = s.cgroup
    if cg.enabled:
        raw_cg = raw.get("cgroup") or {}
        if cg.image > lay.stack_limit:
            raise ConfigError(
                f"cgroup.image: {raw_cg.get('image')} does not fit on the stack (address_space.stack_limit is "
                f"{lay.stack_limit} bytes)"
            )
        if cg.limits is not None and len(cg.limits) != cg.count:
            raise ConfigError(
                f"cgroup.limits: {len(cg.limits)} limits for cgroup.groups={cg.count} "
                f"(leave cgroup.groups out, or set it to {len(cg.limits)})"
            )
        if cg.count > 1 and not getattr(POLICIES.get(s.policy.name, "policy").obj, "batch", False):
            raise ConfigError(
                f"cgroup.groups: {cg.count} groups need policy=linux, whose lists are a group's own "
                f"(policy={s.policy.name} keeps one list for the whole machine)"
            )
        if (
            cg.version == 1
            and cg.swap_max is not None
            and any(cg.limit_of(g) is None for g in range(cg.count))
        ):
            raise ConfigError(
                "cgroup.swap_max: with cgroup.version=1 it is a limit on memory and swap together "
                "(memory.memsw.limit_in_bytes = cgroup.memory_max + cgroup.swap_max), so every group needs a "
                "memory limit (cgroup.memory_max or cgroup.limits)"
            )
        if s.policy.scope == "local":
            raise ConfigError(
                "policy.scope=local: a memory cgroup (cgroup.memory_max, cgroup.swap_max) reclaims from the "
                "group's own lists, not from a process's frame quota (use scope=global)"
            )
    policy = _policy(s.policy)
    if s.machine.load_control != "none" and getattr(POLICIES.get(policy.name).obj, "batch", False):
        raise ConfigError(
            f"machine.load_control={s.machine.load_control}: needs a textbook policy (lru, clock, ws, ...); "
            f"policy={policy.name} reclaims in batches from its own lists"
        )
    m = s.machine
    if m.load_control != "none" and m.load_control_interval < m.quantum:
        # A deactivated process stops at the end of its time slice (Process.suspend), so a scan more
        # often than once a quantum cannot act sooner, and each scan walks every frame: 10 processes
        # in 64 MiB took 20 s for 0.5 s simulated at 100us (results equal to 4ms's), 1ns never ends.
        raise ConfigError(
            f"machine.load_control_interval: {format_duration(m.load_control_interval)} is shorter than "
            f"machine.quantum ({format_duration(m.quantum)}): the load controller stops and restarts "
            "processes between time slices, so it samples at most once a slice"
        )
    if m.swap_irq_cpu is not None and m.swap_irq_cpu >= m.ncpus:
        which = f"CPUs 0 to {m.ncpus - 1}" if m.ncpus > 1 else "CPU 0 only"
        raise ConfigError(
            f"machine.swap_irq_cpu: CPU {m.swap_irq_cpu} does not exist (machine.ncpus is {m.ncpus}: {which})"
        )
    allocator = _allocator(raw.get("allocator"), s.threshold, raw.get("threshold"))
    workload = _workload(raw.get("workload"))
    needs_future = getattr(POLICIES.get(policy.name).obj, "needs_future", False)
    if needs_future:
        knows = [c.name for c in WORKLOAD_KINDS.items() if "future" in c.traits]
        if "future" not in WORKLOAD_KINDS.component_of(workload).traits:
            cls_name = POLICIES.get(policy.name).obj.__name__
            raise ConfigError(
                f"policy={policy.name}: {cls_name} needs the future, so it runs only with "
                f"workload={'|'.join(knows)} (one process)"
            )
    return dataclasses.replace(s, policy=policy, allocator=allocator, workload=workload)


def spec_for_key(key: str) -> Spec | None:
    """The declaration of a config key as a user writes it (``ram``, ``policy.params.tau``,
    ``workload.lifetime.long_lived``); None when no declaration has it.

    For reading a value written without its run's settings.json (``vmexp.compare`` joins two
    sweeps on their override text): the value is then parsed by its declaration, never by a
    guess from the key's name.
    """
    from vmexp.fields import iter_specs
    from vmexp.registry import ACCESS_PATTERNS, LIFETIMES, SIZE_DISTS

    top = dict(iter_specs(Settings))
    if key in top:
        return top[key]
    head, _, rest = key.partition(".")
    if head == "policy" and rest.startswith("params."):
        return _first_spec(POLICIES, rest.removeprefix("params."))
    if head == "allocator":
        return _first_spec(ALLOCATORS, rest)
    if head == "workload":
        parts = [p for p in rest.split(".") if not p.isdigit() and p != "processes"]
        nested = {"sizes": SIZE_DISTS, "lifetime": LIFETIMES, "access": ACCESS_PATTERNS}
        if len(parts) >= 2 and parts[0] in nested:
            return _first_spec(nested[parts[0]], ".".join(parts[1:]))
        return _first_spec(WORKLOAD_KINDS, ".".join(parts))
    return None


def _first_spec(registry: Any, key: str) -> Spec | None:
    from vmexp.fields import iter_specs

    for comp in registry.items():
        found = dict(iter_specs(comp.params)).get(key)
        if found is not None:
            return found
    return None


def compose_settings(overrides: list[str], config_dir: Path | None = None) -> Settings:
    """The settings ``python run.py OVERRIDES`` would run: composed by Hydra from conf/, then validated."""
    from hydra import compose, initialize_config_dir

    import vmexp.app  # noqa: F401  (registers the schema, the resolvers and the help)

    conf = config_dir or Path(__file__).resolve().parent / "conf"  # vmexp/conf: the package's config tree
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        cfg = compose("config", overrides=list(overrides))
    return validate(cfg)


# ---------------------------------------------------------------------------
# settings.json: the resolved settings of a run, beside its metrics.json.
# ---------------------------------------------------------------------------

SETTINGS_SCHEMA = 1


def _entries(s: Settings) -> list[tuple[str, Any, str, str | None]]:
    out = list(to_plain(s))
    comp = POLICIES.get(s.policy.name)
    typed = comp.params(**s.policy.params)
    out += [(f"policy.params.{k}", v, u, n) for k, v, u, n in to_plain(typed)]
    out.append(("allocator.name", s.allocator.name, "", None))
    if s.allocator.params is not None:
        out += [(f"allocator.{k}", v, u, n) for k, v, u, n in to_plain(s.allocator.params)]
    if s.workload is not None:
        out += list(WORKLOAD_KINDS.plain(s.workload, "workload"))
    return out


def settings_json(s: Settings, choices: dict[str, str] | None = None) -> str:
    """The run's resolved settings: every key as a user writes it, its typed value, its unit.

    ``{"schema": 1, "settings": {"ram": {"value": 67108864, "unit": "bytes"}, ...},
    "choices": {"policy": "lru", ...}}``; a null value carries what null means.
    Reports, the sweep table and ``vmexp.validate`` read this, never the
    override strings.
    """
    settings: dict[str, Any] = {}
    for key, value, unit, null in _entries(s):
        entry: dict[str, Any] = {"value": value}
        if unit:
            entry["unit"] = unit
        if value is None and null:
            entry["null"] = null
        settings[key] = entry
    doc = {"schema": SETTINGS_SCHEMA, "settings": settings, "choices": dict(choices or {})}
    return json.dumps(doc, indent=1) + "\n"


def read_settings_json(run_dir: Path) -> dict[str, Any] | None:
    """A run's settings.json as a dict (None when the run wrote none)."""
    path = Path(run_dir) / "settings.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
