"""The typed schema of an experiment and the checks that turn it into settings.

Two stages, on purpose. Hydra composes YAML and command-line overrides
against the dataclasses below (registered in its ConfigStore), which catches
unknown keys and wrong scalar types at composition time. Sizes and durations
stay strings at that stage (``64k``, ``5ms`` arrive from the command line as
text), so ``validate`` then parses every one of them, checks the values that
only make sense together (a page size that is a power of two, RAM of at least
one page, a threshold glibc accepts) and returns ``Settings``: plain frozen
dataclasses of ints, which is all the engine ever sees. Every failure is a
``ConfigError`` whose message names the key, so the user gets one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from vmexp.units import UnitError, parse_duration, parse_size

__all__ = [
    "ConfigError",
    "Config",
    "Settings",
    "CgroupSettings",
    "validate",
    "register_configs",
    "SWAP_DEVICES",
    "GLIBC_MMAP_THRESHOLD_MAX",
]

GLIBC_MMAP_THRESHOLD_MAX = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit (malloc.c:972)
PAGE_SIZES = (4 << 10, 16 << 10, 64 << 10, 2 << 20)


class ConfigError(ValueError):
    """A configuration value that cannot run; the message starts with the key."""


# ---------------------------------------------------------------------------
# Schema (what Hydra composes against). Sizes/durations are `Any` so that
# "64k" and 65536 are both accepted here and parsed by `validate`.
# ---------------------------------------------------------------------------


@dataclass
class AddressSpaceConf:
    name: str = "x86_64"
    va_bits: int = 47
    task_size: Any = 0x7FFFFFFFF000
    text_start: Any = 0x555555554000
    text_size: Any = "8k"
    data_size: Any = "4k"
    bss_size: Any = "4k"
    stack_size: Any = "132k"
    stack_limit: Any = "8M"
    mmap_min_gap: Any = "128M"
    pte_bytes: int = 8
    aslr: bool = False


@dataclass
class CostConf:
    ref: Any = "1ns"
    page_walk: Any = "30ns"
    minor_fault: Any = "1us"
    zero_page: Any = "250ns"
    major_fault: Any = "6us"
    syscall: Any = "100ns"
    brk: Any = "1us"
    mmap: Any = "2us"
    munmap: Any = "3us"
    mremap: Any = "2us"
    malloc: Any = "20ns"
    free: Any = "15ns"
    reclaim_page: Any = "300ns"


# --- issue 11: Linux's reclaim, swap readahead, zram, memory cgroups (every new key is here) -------
@dataclass
class ZramConf:
    # zram.rst ("Set Disksize"): "we expect a 2:1 compression ratio"; 1.9 measured here on /usr files.
    compression_ratio: float = 2.0
    read: Any = "5us"  # decompress one page (lzo-rle, measured: tests/data/real_kernel/zram_device.json)
    write: Any = "10us"  # compress one page (same measurement)


@dataclass
class CgroupConf:
    memory_max: Any = None  # memory.max / memory.limit_in_bytes; null = no limit
    swap_max: Any = None  # memory.swap.max; null = no limit of its own
    image: Any = "528k"  # each process's own pages (stack, program and library data): 132 pages measured
    kernel: Any = "64k"  # each process's kernel memory beyond its page tables: slab, libraries' tables


# --- end of issue 11's keys ------------------------------------------------------------------------


@dataclass
class MachineConf:
    name: str = "server"
    ncpus: int = 1
    quantum: Any = "4ms"
    min_free: Any = "256k"
    swap_device: Any = "ssd"
    page_cluster: int = 3  # issue 11: vm.page-cluster, swap readahead of up to 2^N pages
    zram: ZramConf = field(default_factory=ZramConf)  # issue 11: swap_device=zram
    cost: CostConf = field(default_factory=CostConf)


@dataclass
class PolicyConf:
    name: str = "linux"
    scope: str = "global"
    allocation: str = "equal"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AllocatorConf:
    name: str = "glibc"
    trim_threshold: Any = None
    top_pad: Any = None
    mmap_max: Any = None


@dataclass
class ReportConf:
    # Summary metrics the sweep figures show (names of summary.csv columns); empty = the standard set.
    metrics: list[str] = field(default_factory=list)


@dataclass
class Config:
    # Short top-level knobs (DESIGN.md contract).
    threshold: Any = None
    page_size: Any = "4k"
    ram: Any = "64M"
    swap: Any = "256M"
    nprocs: int = 4
    seed: int = 0
    duration: Any = "10s"
    sample_interval: Any = "10ms"
    explain: bool = False
    figures: bool = True
    heap_snapshots: list[Any] = field(default_factory=list)
    # Sweep robustness (wall clock and host memory, not simulated quantities).
    resume: bool = False
    job_timeout: Any = None
    job_memory: Any = "4G"
    # What the preset asks, for the report; presets set these.
    name: str = "default"
    question: str = ""
    expected: str = ""
    address_space: AddressSpaceConf = field(default_factory=AddressSpaceConf)
    machine: MachineConf = field(default_factory=MachineConf)
    policy: PolicyConf = field(default_factory=PolicyConf)
    allocator: AllocatorConf = field(default_factory=AllocatorConf)
    cgroup: CgroupConf = field(default_factory=CgroupConf)  # issue 11: the run's memory cgroup
    workload: Any = None
    report: ReportConf = field(default_factory=ReportConf)
    # A cost to minimise (hydra/sweeper=optuna): summary metric -> weight; the job returns the weighted sum.
    objective: dict[str, float] = field(default_factory=dict)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; config.yaml names it in its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="vmexp_schema", node=Config)


# ---------------------------------------------------------------------------
# Settings (what the engine consumes): ints in bytes and nanoseconds.
# ---------------------------------------------------------------------------

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
ZRAM = "zram"  # machine.swap_device=zram: compressed RAM (machine.zram), not a queue


@dataclass(frozen=True)
class LayoutSettings:
    name: str
    va_bits: int
    task_size: int
    text_start: int
    text_size: int
    data_size: int
    bss_size: int
    stack_size: int
    stack_limit: int
    mmap_min_gap: int
    pte_bytes: int
    aslr: bool


@dataclass(frozen=True)
class CostSettings:
    ref: int
    page_walk: int
    minor_fault: int
    zero_page: int
    major_fault: int
    syscall: int
    brk: int
    mmap: int
    munmap: int
    mremap: int
    malloc: int
    free: int
    reclaim_page: int


@dataclass(frozen=True)
class MachineSettings:
    name: str
    ncpus: int
    quantum: int
    min_free: int
    swap_device: str
    swap_latency: int
    swap_bandwidth: int
    cost: CostSettings
    # issue 11
    page_cluster: int = 3  # vm.page-cluster
    swap_rotational: bool = False  # cluster readahead (hdd), else VMA readahead
    zram_ratio: float = 2.0  # machine.zram.compression_ratio
    zram_read: int = 5_000  # ns per page
    zram_write: int = 10_000  # ns per page


@dataclass(frozen=True)
class CgroupSettings:
    """issue 11: the run's memory cgroup; sizes in bytes (``None`` = no limit)."""

    memory_max: int | None = None
    swap_max: int | None = None
    image: int = 528 << 10
    kernel: int = 64 << 10

    @property
    def enabled(self) -> bool:
        return self.memory_max is not None or self.swap_max is not None


@dataclass(frozen=True)
class PolicySettings:
    name: str
    scope: str
    allocation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class AllocatorSettings:
    name: str
    mmap_threshold: int | None
    trim_threshold: int | None
    top_pad: int | None
    mmap_max: int | None


@dataclass(frozen=True)
class Settings:
    page_size: int
    ram: int
    swap: int
    nprocs: int
    seed: int
    duration: int
    sample_interval: int
    explain: bool
    figures: bool
    heap_snapshots: tuple[int, ...]
    objective: dict[str, float]
    job_timeout: int | None
    job_memory: int
    name: str
    question: str
    layout: LayoutSettings
    machine: MachineSettings
    policy: PolicySettings
    allocator: AllocatorSettings
    workload: dict[str, Any]
    cgroup: CgroupSettings = CgroupSettings()  # issue 11

    @property
    def ram_pages(self) -> int:
        return self.ram // self.page_size

    @property
    def swap_pages(self) -> int:
        return self.swap // self.page_size


def _size(key: str, value: Any, *, allow_none: bool = False) -> Any:
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"{key}: a size is required (such as 4096, 64k or 2M)")
    try:
        return parse_size(value)
    except UnitError as e:
        raise ConfigError(f"{key}: {e}") from None


def _duration(key: str, value: Any) -> int:
    try:
        return parse_duration(value)
    except UnitError as e:
        raise ConfigError(f"{key}: {e}") from None


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _no_unknown_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Keys added with ``+key=`` bypass the schema's struct check; refuse them here, by name."""
    if not isinstance(node, DictConfig):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        name = f"{prefix}{key!s}"
        if key == "hydra" and not prefix:
            continue  # Hydra's own node, present when composed with return_hydra_config
        if key not in fields:
            raise ConfigError(f"{name}: unknown key (see python run.py --cfg job for the valid keys)")
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            _no_unknown_keys(node[key], sub, f"{name}.")


def validate(cfg: DictConfig | Config) -> Settings:
    """Check every value and return the engine's settings; ConfigError names the key."""
    _no_unknown_keys(cfg, Config)
    c = cfg
    page_size = _size("page_size", c.page_size)
    if page_size not in PAGE_SIZES:
        raise ConfigError("page_size: must be one of 4k, 16k, 64k, 2M (a power of two the MMU supports)")
    ram = _size("ram", c.ram)
    if ram < page_size:
        raise ConfigError(f"ram: {c.ram} is smaller than one page ({page_size} bytes)")
    swap = _size("swap", c.swap)
    if not isinstance(c.nprocs, int) or c.nprocs < 1:
        raise ConfigError(f"nprocs: must be an integer >= 1, got {c.nprocs!r}")
    if c.nprocs > 4096:
        raise ConfigError(f"nprocs: at most 4096 processes, got {c.nprocs}")
    if not isinstance(c.seed, int) or isinstance(c.seed, bool) or c.seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {c.seed!r}")
    duration = _duration("duration", c.duration)
    if duration <= 0:
        raise ConfigError("duration: must be greater than 0")
    sample_interval = _duration("sample_interval", c.sample_interval)
    if sample_interval <= 0:
        raise ConfigError("sample_interval: must be greater than 0")

    job_timeout = None if c.job_timeout is None else _duration("job_timeout", c.job_timeout)
    if job_timeout is not None and job_timeout <= 0:
        raise ConfigError("job_timeout: must be greater than 0 (or null for no limit)")
    job_memory = _size("job_memory", c.job_memory)
    if job_memory < 16 << 20:
        raise ConfigError(f"job_memory: {c.job_memory} is too small to run anything (at least 16M)")

    a = c.address_space
    layout = LayoutSettings(
        name=str(a.name),
        va_bits=int(a.va_bits),
        task_size=_size("address_space.task_size", a.task_size),
        text_start=_size("address_space.text_start", a.text_start),
        text_size=_size("address_space.text_size", a.text_size),
        data_size=_size("address_space.data_size", a.data_size),
        bss_size=_size("address_space.bss_size", a.bss_size),
        stack_size=_size("address_space.stack_size", a.stack_size),
        stack_limit=_size("address_space.stack_limit", a.stack_limit),
        mmap_min_gap=_size("address_space.mmap_min_gap", a.mmap_min_gap),
        pte_bytes=int(a.pte_bytes),
        aslr=bool(a.aslr),
    )
    if layout.va_bits not in (32, 39, 47, 48, 56, 57):
        raise ConfigError(
            f"address_space.va_bits: {layout.va_bits} is not a supported width (32, 39, 47, 48, 56, 57)"
        )
    if layout.task_size > (1 << layout.va_bits) or layout.task_size % 4096:
        raise ConfigError(
            f"address_space.task_size: must be 4 KiB aligned and at most 2^{layout.va_bits}, got {layout.task_size:#x}"
        )
    program_end = layout.text_start + layout.text_size + layout.data_size + layout.bss_size
    if program_end >= layout.task_size - layout.mmap_min_gap:
        raise ConfigError(
            f"address_space.text_start: the program ({layout.text_start:#x}..{program_end:#x}) does not fit below the mmap area"
        )
    if layout.pte_bytes not in (4, 8):
        raise ConfigError(f"address_space.pte_bytes: must be 4 or 8, got {layout.pte_bytes}")

    m = c.machine
    if not isinstance(m.ncpus, int) or m.ncpus < 1:
        raise ConfigError(f"machine.ncpus: must be an integer >= 1, got {m.ncpus!r}")
    quantum = _duration("machine.quantum", m.quantum)
    if quantum <= 0:
        raise ConfigError("machine.quantum: must be greater than 0")
    min_free = _size("machine.min_free", m.min_free)
    if min_free >= ram:
        raise ConfigError(f"machine.min_free: {m.min_free} leaves no RAM for processes (ram is {c.ram})")
    dev = _plain(m.swap_device)
    rotational = False
    if isinstance(dev, str):
        if dev not in SWAP_DEVICES and dev != ZRAM:
            raise ConfigError(
                f"machine.swap_device: {dev!r} is not one of {', '.join([*SWAP_DEVICES, ZRAM])} "
                "(or give latency and bandwidth)"
            )
        dev_name = dev
        latency, bandwidth = SWAP_DEVICES.get(dev, (0, 0))
        rotational = dev in ROTATIONAL
    elif isinstance(dev, dict):
        extra = set(dev) - {"name", "latency", "bandwidth", "rotational"}
        if extra:
            raise ConfigError(
                f"machine.swap_device.{sorted(extra)[0]}: unknown key (valid: name, latency, bandwidth, rotational)"
            )
        rotational = dev.get("rotational", False)
        if not isinstance(rotational, bool):
            raise ConfigError(f"machine.swap_device.rotational: true or false, got {rotational!r}")
        if "latency" not in dev or "bandwidth" not in dev:
            raise ConfigError("machine.swap_device: needs both latency and bandwidth")
        dev_name = str(dev.get("name", "custom"))
        latency = _duration("machine.swap_device.latency", dev["latency"])
        bandwidth = _size("machine.swap_device.bandwidth", dev["bandwidth"])
        if bandwidth <= 0:
            raise ConfigError("machine.swap_device.bandwidth: must be greater than 0 (bytes per second)")
    else:
        raise ConfigError("machine.swap_device: a preset name (hdd, ssd, nvme, zram) or {latency, bandwidth}")
    # issue 11: swap readahead and zram
    page_cluster = m.page_cluster
    if isinstance(page_cluster, bool) or not isinstance(page_cluster, int) or not 0 <= page_cluster <= 31:
        raise ConfigError(f"machine.page_cluster: an integer 0..31 (vm.page-cluster), got {page_cluster!r}")
    z = m.zram
    try:
        zram_ratio = float(z.compression_ratio)
    except (TypeError, ValueError):
        zram_ratio = -1.0
    if not zram_ratio >= 1.0:
        raise ConfigError(f"machine.zram.compression_ratio: a number >= 1, got {z.compression_ratio!r}")
    zram_read = _duration("machine.zram.read", z.read)
    zram_write = _duration("machine.zram.write", z.write)
    if dev_name == ZRAM:
        latency = zram_read
    cost_values = {
        f.name: _duration(f"machine.cost.{f.name}", getattr(m.cost, f.name))
        for f in dataclasses.fields(CostConf)
    }
    machine = MachineSettings(
        name=str(m.name),
        ncpus=m.ncpus,
        quantum=quantum,
        min_free=min_free,
        swap_device=dev_name,
        swap_latency=latency,
        swap_bandwidth=bandwidth,
        cost=CostSettings(**cost_values),
        page_cluster=page_cluster,
        swap_rotational=rotational,
        zram_ratio=zram_ratio,
        zram_read=zram_read,
        zram_write=zram_write,
    )

    p = c.policy
    policy = PolicySettings(
        name=str(p.name),
        scope=_choice("policy.scope", p.scope, ("global", "local")),
        allocation=_choice("policy.allocation", p.allocation, ("equal", "proportional")),
        params=dict(_plain(p.params) or {}),
    )

    al = c.allocator
    name = _choice("allocator.name", al.name, ("glibc", "first_fit", "best_fit"))
    threshold = _size("threshold", c.threshold, allow_none=True)
    if threshold is not None and threshold > GLIBC_MMAP_THRESHOLD_MAX:
        raise ConfigError(
            f"threshold: {c.threshold} is above glibc's maximum of 32M (or null for glibc's dynamic default)"
        )
    trim = _size("allocator.trim_threshold", al.trim_threshold, allow_none=True)
    top_pad = _size("allocator.top_pad", al.top_pad, allow_none=True)
    mmap_max = al.mmap_max
    if mmap_max is not None and (not isinstance(mmap_max, int) or isinstance(mmap_max, bool) or mmap_max < 0):
        raise ConfigError(f"allocator.mmap_max: must be a non-negative integer or null, got {mmap_max!r}")
    allocator = AllocatorSettings(name, threshold, trim, top_pad, mmap_max)

    # issue 11: the memory cgroup
    cg = c.cgroup
    memory_max = _size("cgroup.memory_max", cg.memory_max, allow_none=True)
    swap_max = _size("cgroup.swap_max", cg.swap_max, allow_none=True)
    image = _size("cgroup.image", cg.image)
    kernel_mem = _size("cgroup.kernel", cg.kernel)
    cgroup = CgroupSettings(memory_max, swap_max, image, kernel_mem)
    if cgroup.enabled:
        if image > layout.stack_limit:
            raise ConfigError(
                f"cgroup.image: {cg.image} does not fit on the stack (address_space.stack_limit is "
                f"{a.stack_limit})"
            )
        per_proc = -(-image // page_size) + -(-kernel_mem // page_size) + 2
        if memory_max is not None and memory_max // page_size < c.nprocs * per_proc + 32:
            raise ConfigError(
                f"cgroup.memory_max: {cg.memory_max} cannot hold the {c.nprocs} processes' own pages "
                f"(cgroup.image {cg.image} and cgroup.kernel {cg.kernel} each) and a batch of reclaim"
            )

    workload = _plain(c.workload)
    if not isinstance(workload, dict) or "kind" not in workload:
        raise ConfigError("workload: pick one with workload=NAME (see conf/workload/)")
    if "path" in workload and workload["path"] is not None:
        workload["path"] = str(Path(str(workload["path"])).expanduser())

    return Settings(
        page_size=page_size,
        ram=ram,
        swap=swap,
        nprocs=c.nprocs,
        seed=c.seed,
        duration=duration,
        sample_interval=sample_interval,
        explain=bool(c.explain),
        figures=bool(c.figures),
        heap_snapshots=tuple(
            sorted(_duration(f"heap_snapshots[{i}]", v) for i, v in enumerate(_plain(c.heap_snapshots) or []))
        ),
        objective={str(k): float(v) for k, v in dict(_plain(c.objective) or {}).items()},
        job_timeout=job_timeout,
        job_memory=job_memory,
        name=str(c.name),
        question=str(c.question),
        layout=layout,
        machine=machine,
        policy=policy,
        allocator=allocator,
        workload=workload,
        cgroup=cgroup,
    )
