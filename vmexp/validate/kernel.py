"""Replay a trace on the machine's real kernel, in a fresh memory cgroup with swap: the paging ground truth.

The glibc side of vmexp is held to the real glibc by ``real.py``; this module
does the same for the kernel side. One process of a trace is replayed by the
same C replayer (``replayer.c``) inside a memory cgroup created for that run
alone, with a limit (``cgroup.memory_max``) far below the machine's RAM, so
that the kernel reclaims from the group's own LRU lists and swaps, and the
replay loop's minor and major faults are read back.

Set-up and teardown, as root:

- swap: a fresh zram device (``/sys/class/zram-control/hot_add``, its
  ``disksize``, ``mkswap``, ``swapon``) or a swap file (``mkswap``,
  ``swapon``), at the highest priority, removed again afterwards
  (:func:`zram_swap`, :func:`file_swap`); or the machine's own active swap.
- ``vm.page-cluster`` set for the session and restored (:func:`page_cluster`).
- a new memory cgroup per run (:func:`memory_cgroup`): cgroup v2's
  ``memory.max`` / ``memory.swap.max`` where the v2 memory controller is
  enabled, else v1's ``memory.limit_in_bytes`` then
  ``memory.memsw.limit_in_bytes`` (which must not be below it). Reusing one
  group for several runs carries reclaim history (its LRU balance, its
  workingset's eviction clock) into the next run and makes the results
  multi-modal, measured on kernel 6.18: every run gets its own.

Every step registers its undo before it returns, and the undos run in reverse
order when the ``with`` block ends, also on an exception, on Ctrl-C
(``KeyboardInterrupt``), on SIGTERM/SIGHUP (turned into ``SystemExit`` while a
session is open) and at interpreter exit (``atexit``). A lock file serialises
sessions of several harnesses on one machine.

What the group is charged for besides the trace's anonymous pages: the
replayer's own touched pages (its stack, grown to 256 KiB before the replay
loop; the written-back data pages of itself, libc and ld.so; the used part of
its block tables), its page tables, and the slab objects and pages the kernel
allocates for it after it joined the group (cgroup v1 charges kernel memory to
``memory.usage_in_bytes`` too). The records file is written to tmpfs from
*outside* the group and mapped by the replayer, so its pages stay charged to
the harness's group, whatever the length of the trace. :func:`probe_charge`
measures the rest; see docs/kernel-truth.md ("What the measurements show").

A v1 group sometimes OOM-kills its process at a swap-in although swap is far
from full (measured: about one run in eight on a swap file, rarely on zram).
:func:`replay_kernel` detects the kill (the group's ``oom_kill`` counter, or a
SIGKILL), runs again in a new group, and reports how many runs it discarded.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import mmap
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TypeVar

from vmexp.config import DEFAULT_MAX_SEGMENTS, DEFAULT_QUEUE_DEPTH
from vmexp.validate.real import RealGlibcError, _records, build_replayer
from vmexp.workload.traces import parse_trace

__all__ = [
    "VMSTAT_KEYS",
    "Cgroup",
    "KernelFacts",
    "KernelRun",
    "KernelUnavailable",
    "KernelRunError",
    "DeviceSpeed",
    "SwapArea",
    "cleanup_pending",
    "device_override",
    "device_speed",
    "file_swap",
    "kernel_facts",
    "loop_swap",
    "memory_cgroup",
    "missing",
    "page_cluster",
    "probe_charge",
    "records_file",
    "measure",
    "outcomes",
    "spread",
    "replay_kernel",
    "reswap",
    "session",
    "zram_swap",
]

PAGE = os.sysconf("SC_PAGESIZE")

# /proc/vmstat counters read around each run. Only the run's group swaps on a
# machine where the session's swap is the only one, so their deltas are the
# run's (other processes' page faults are not: pgfault/pgmajfault are left out).
# pgrefill, pgscan_direct and pgsteal_direct are not counted globally for
# cgroup reclaim (mm/vmscan.c: `if (!cgroup_reclaim(sc))`), so they are left
# out too; pgdeactivate, pgscan_anon and pgsteal_anon are. pgactivate and
# pgdeactivate also count the rest of the machine's LRU traffic (file pages): a
# run that reclaims nothing (seq_write_fit) still shows 0..1915 activations.
VMSTAT_KEYS = (
    "pswpin",
    "pswpout",
    "swap_ra",
    "swap_ra_hit",
    "workingset_refault_anon",
    "workingset_activate_anon",
    "workingset_restore_anon",
    "pgactivate",
    "pgdeactivate",
    "pgscan_anon",
    "pgsteal_anon",
)


class KernelUnavailable(RuntimeError):
    """The real-kernel replay cannot be done here; the message says what is missing and how to provide it."""


class KernelRunError(RuntimeError):
    """The set-up or a run failed on a machine that should support it; the message says where."""


class OOMKilledEveryTry(KernelRunError):
    """The group's OOM killer ended a run each time it was made (``replay_kernel``'s reruns spent).

    Not a failure of the machine: at those limits the kernel does not run the trace to its end.
    """

    def __init__(self, tries: int, why: str) -> None:
        super().__init__(f"every one of {tries} runs was OOM-killed in its group: {why}")
        self.tries = tries


# ---------------------------------------------------------------------------------------------
# Teardown that always happens.

_pending: list[tuple[str, Callable[[], None]]] = []


def _push(what: str, undo: Callable[[], None]) -> tuple[str, Callable[[], None]]:
    entry = (what, undo)
    _pending.append(entry)
    return entry


def _pop(entry: tuple[str, Callable[[], None]]) -> None:
    """Run one undo (and forget it), with SIGINT/SIGTERM held off so a second Ctrl-C cannot cut it short."""
    if entry not in _pending:
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        _pending.remove(entry)
        entry[1]()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def cleanup_pending() -> list[str]:
    """Undo everything still set up, newest first; returns what failed (empty when all went well)."""
    failed = []
    while _pending:
        entry = _pending[-1]
        try:
            _pop(entry)
        except Exception as e:  # every undo must get its turn
            failed.append(f"{entry[0]}: {e}")
    return failed


atexit.register(cleanup_pending)


@contextlib.contextmanager
def _undo(what: str, undo: Callable[[], None]) -> Iterator[None]:
    entry = _push(what, undo)
    try:
        yield
    finally:
        _pop(entry)


def _read(path: str | Path) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _write(path: str | Path, value: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(value)


def _run(cmd: Sequence[str]) -> None:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise KernelRunError(f"{' '.join(cmd)} failed: {msg[-1] if msg else f'exit {r.returncode}'}")


# ---------------------------------------------------------------------------------------------
# Facts about the machine's kernel.


@dataclass(frozen=True)
class SwapArea:
    """One active swap area of ``/proc/swaps``."""

    name: str
    kind: Literal["zram", "file", "partition"]
    rotational: bool
    size: int
    used: int
    priority: int
    max_segments: int = DEFAULT_MAX_SEGMENTS  # the pages one request to its disk holds at most
    queue_depth: int = DEFAULT_QUEUE_DEPTH  # the requests its disk works on at once (blk-mq tags)

    @property
    def device(self) -> Literal["zram", "hdd", "ssd"]:
        """What the simulator calls it (``machine.swap_device``): the kernel tells rotational devices
        apart (``SWP_SOLIDSTATE``), and zram is synchronous (``SWP_SYNCHRONOUS_IO``)."""
        if self.kind == "zram":
            return "zram"
        return "hdd" if self.rotational else "ssd"


@dataclass(frozen=True)
class KernelFacts:
    """The settings of this machine's kernel that decide its paging."""

    release: str
    page_cluster: int
    swappiness: int
    mglru: bool
    thp: str
    cgroup: Literal["v1", "v2"] | None
    swaps: tuple[SwapArea, ...]

    @property
    def swap(self) -> SwapArea | None:
        """The swap area a group's pages go to first: the highest priority."""
        return max(self.swaps, key=lambda s: s.priority) if self.swaps else None

    def as_dict(self) -> dict[str, Any]:
        sw = self.swap
        return {
            "kernel": self.release,
            "page_cluster": self.page_cluster,
            "swappiness": self.swappiness,
            "mglru": self.mglru,
            "thp": self.thp,
            "cgroup": self.cgroup,
            "swap_device": sw.device if sw else None,
            "swap_kind": sw.kind if sw else None,
            "swap_bytes": sw.size if sw else 0,
            "swap_max_segments": sw.max_segments if sw else None,
            "swap_queue_depth": sw.queue_depth if sw else None,
        }


def _block_of(path: str) -> str | None:
    """The ``/sys/block`` name of the disk holding a file or block device (a partition's parent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    dev = st.st_rdev if path.startswith("/dev/") else st.st_dev
    sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    try:
        real = sys_dev.resolve(strict=True)
    except OSError:
        return None
    # .../block/vda/vda1 -> vda; .../block/vda -> vda
    if (real / "partition").exists():
        real = real.parent
    return real.name


def interrupt_cpus(path: str) -> dict[str, set[int]]:
    """The completion interrupts of the disk holding a swap area, by their ``/proc/interrupts`` name,
    each with the CPUs it is delivered to (``effective_affinity_list``): those whose name begins
    with the disk's device (``virtio1-req.0``, ``nvme0q3``), its configuration interrupt left out.
    Empty where the disk has none of its own to find (zram, a loop device) or they cannot be read."""
    block = _block_of(path)
    if block is None:
        return {}
    try:
        device = Path(f"/sys/block/{block}/device").resolve(strict=True).name  # virtio1, nvme0
        lines = _read("/proc/interrupts").splitlines()[1:]
    except OSError:
        return {}
    out: dict[str, set[int]] = {}
    for line in lines:
        irq, _, rest = line.partition(":")
        words = rest.split()
        if not irq.strip().isdigit() or not words or not words[-1].startswith(device):
            continue
        name = words[-1]
        if name.endswith("config"):
            continue
        try:
            out[name] = _cpu_list(_read(f"/proc/irq/{irq.strip()}/effective_affinity_list"))
        except (OSError, ValueError):
            continue
    return out


def _cpu_list(text: str) -> set[int]:
    """A kernel CPU list (``0-2,5``) as a set."""
    cpus: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def swap_interrupt_cpu(path: str) -> int | None:
    """The one CPU that every completion of the disk holding ``path`` interrupts (a disk with one
    request queue, as this machine's virtio disk), or None (a queue per CPU, several CPUs, none)."""
    cpus = set().union(*interrupt_cpus(path).values())
    return next(iter(cpus)) if len(cpus) == 1 else None


def read_ns_by_cpu(path: str, cpus: Sequence[int], *, rounds: int = 3, reads: int = 400) -> dict[int, int]:
    """A page's read time of a swap area from each of ``cpus``: the median of :func:`device_speed`'s
    page times over ``rounds`` rounds, the CPUs taken in turn within each (a disk's speed drifts).
    The calling thread is put back on the CPUs it had."""
    had = os.sched_getaffinity(0)
    got: dict[int, list[int]] = {c: [] for c in cpus}
    try:
        for _ in range(rounds):
            for cpu in cpus:
                os.sched_setaffinity(0, {cpu})
                got[cpu].append(device_speed(path, reads=reads).page_ns)
    finally:
        os.sched_setaffinity(0, had)
    return {c: round(statistics.median(v)) for c, v in got.items()}


def _rotational(block: str | None) -> bool:
    if block is None:
        return True  # the kernel assumes rotational unless the queue says otherwise
    try:
        return _read(f"/sys/block/{block}/queue/rotational").strip() == "1"
    except OSError:
        return True


def _request_pages(block: str | None) -> int:
    """The most pages one request to the disk holds: its queue's ``max_segments`` (a swapped-out
    page is a segment of its own), or fewer where ``max_sectors_kb`` says so (a loop device: 128
    segments, 1280 KiB; this machine's virtio disk: 254 and 4096 KiB)."""
    try:
        segments = int(_read(f"/sys/block/{block}/queue/max_segments"))
        sectors_kb = int(_read(f"/sys/block/{block}/queue/max_sectors_kb"))
    except (OSError, ValueError):
        return DEFAULT_MAX_SEGMENTS
    return max(1, min(segments, sectors_kb * 1024 // PAGE))


def _queue_depth(block: str | None, sys_block: Path = Path("/sys/block")) -> int:
    """The requests the disk works on at once: blk-mq's tags over its hardware queues
    (``/sys/block/DEV/mq/*/nr_tags``: this machine's virtio disk has one queue of 128), or 1 for a
    disk without them. A disk served by one thread behind a deep queue (a loop device over a file
    that a single-threaded FUSE server holds) still serves one at a time, which no tag count shows.
    """
    if block is None:
        return DEFAULT_QUEUE_DEPTH
    total = 0
    for tags in (sys_block / block / "mq").glob("*/nr_tags"):
        try:
            total += int(tags.read_text())
        except (OSError, ValueError):
            continue
    return total or DEFAULT_QUEUE_DEPTH


def swap_areas() -> tuple[SwapArea, ...]:
    out = []
    try:
        lines = _read("/proc/swaps").splitlines()[1:]
    except OSError:
        return ()
    for line in lines:
        f = line.split()
        if len(f) < 5:
            continue
        name = f[0].replace("\\040", " ")
        block = _block_of(name)
        kind: Literal["zram", "file", "partition"]
        if f[1] == "file":
            kind = "file"
        elif block is not None and block.startswith("zram"):
            kind = "zram"
        else:
            kind = "partition"
        out.append(
            SwapArea(
                name,
                kind,
                kind != "zram" and _rotational(block),
                int(f[2]) * 1024,
                int(f[3]) * 1024,
                int(f[4]),
                _request_pages(block),
                _queue_depth(block) if kind != "zram" else DEFAULT_QUEUE_DEPTH,
            )
        )
    return tuple(out)


def device_override(
    name: str,
    latency_ns: int,
    bandwidth: int,
    rotational: bool,
    max_segments: int,
    queue_depth: int = DEFAULT_QUEUE_DEPTH,
) -> str:
    """A described ``machine.swap_device`` as a Hydra override value (no spaces: one shell word)."""
    depth = f",queue_depth:{queue_depth}" if queue_depth != DEFAULT_QUEUE_DEPTH else ""
    return (
        f"{{name:{name},latency:{latency_ns}ns,bandwidth:{bandwidth},"
        f"rotational:{str(rotational).lower()},max_segments:{max_segments}{depth}}}"
    )


@dataclass(frozen=True)
class DeviceSpeed:
    """How fast a swap area serves pages, measured: the simulator's ``{latency, bandwidth}`` device.

    The preset a kernel fact names (``hdd`` for a rotational disk) can be
    far from the machine's disk: a virtual disk that reports rotational
    serves a page in tens of microseconds, the preset in 12.7 ms. A replay
    on ``hdd`` then lasts hundreds of times longer in simulated time than
    on the kernel, and what depends on time follows it: the memory
    cgroup's statistics that reclaim reads are flushed every 2 s
    (``policy=linux``'s ``stats_flush``), and a page under writeback is in
    the swap cache for as long as its write takes.
    """

    page_ns: int  # median of random one-page O_DIRECT reads
    bandwidth: int  # bytes a second of sequential 1 MiB O_DIRECT reads

    @property
    def latency_ns(self) -> int:
        """The fixed cost of a request, as the simulator's device takes it: a page's time less its transfer."""
        return max(1, self.page_ns - PAGE * 1_000_000_000 // self.bandwidth)

    def override(
        self,
        rotational: bool,
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        queue_depth: int = DEFAULT_QUEUE_DEPTH,
    ) -> str:
        """``machine.swap_device`` as a Hydra override value, with the queue's facts the kernel reports."""
        return device_override(
            "measured", self.latency_ns, self.bandwidth, rotational, max_segments, queue_depth
        )

    def describe(self) -> str:
        return (
            f"a random {PAGE >> 10} KiB read takes {self.page_ns / 1000:.0f} us, "
            f"sequential reads {self.bandwidth / 1e9:.2g} GB/s"
        )


def device_speed(path: str, *, reads: int = 400, span: int = 64 << 20) -> DeviceSpeed:
    """Time reads of a swap area (a swap file or a block device) past the page cache, read-only.

    ``span`` bytes from the start in 1 MiB reads give the bandwidth; then
    ``reads`` single pages at offsets drawn over the whole area (seeded: the
    same offsets every time) give a page's time, their median. Reading an
    active swap area is harmless: the kernel refuses only writes to it.
    Raises ``OSError`` where the file system has no ``O_DIRECT`` (tmpfs).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    try:
        size = os.lseek(fd, 0, os.SEEK_END)  # a block device's st_size is 0
        if size < (1 << 20):
            raise OSError(errno.EINVAL, f"{path}: {size} bytes, too small to time")
        chunk = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
        page = memoryview(chunk)[:PAGE]
        done = 0
        start = time.perf_counter_ns()
        while done + len(chunk) <= min(span, size):
            n = os.preadv(fd, [chunk], done)
            if n <= 0:  # a short file (it cannot be: size came from it), not a loop for ever
                break
            done += n
        if not done:
            raise OSError(errno.EIO, f"{path}: no data read")
        bandwidth = done * 1_000_000_000 // max(1, time.perf_counter_ns() - start)
        rng = random.Random(0)
        times = []
        for _ in range(reads):
            offset = rng.randrange(size // PAGE) * PAGE
            t = time.perf_counter_ns()
            os.preadv(fd, [page], offset)
            times.append(time.perf_counter_ns() - t)
        page.release()
        chunk.close()
    finally:
        os.close(fd)
    return DeviceSpeed(round(statistics.median(times)), max(1, bandwidth))


def _mounts() -> list[tuple[str, str, list[str]]]:
    out = []
    for line in _read("/proc/mounts").splitlines():
        f = line.split()
        if len(f) >= 4:
            out.append((f[1], f[2], f[3].split(",")))
    return out


def _v2_root() -> Path | None:
    """The cgroup2 mount whose root offers the memory controller to its children, if any."""
    for mnt, fstype, _opts in _mounts():
        if fstype == "cgroup2":
            try:
                if "memory" in _read(Path(mnt) / "cgroup.subtree_control").split():
                    return Path(mnt)
            except OSError:
                continue
    return None


def _v1_parent() -> Path | None:
    """The v1 memory cgroup this process is in (the new groups nest inside it, within its accounting)."""
    mnt = next((Path(m) for m, t, o in _mounts() if t == "cgroup" and "memory" in o), None)
    if mnt is None:
        return None
    try:
        for line in _read("/proc/self/cgroup").splitlines():
            _h, ctrls, path = line.split(":", 2)
            if "memory" in ctrls.split(","):
                parent = mnt / path.lstrip("/")
                return parent if parent.is_dir() else mnt
    except (OSError, ValueError):
        pass
    return mnt


def _int_file(path: str, default: int = -1) -> int:
    try:
        return int(_read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return default


def kernel_facts() -> KernelFacts:
    mglru = False
    with contextlib.suppress(OSError, ValueError):
        mglru = int(_read("/sys/kernel/mm/lru_gen/enabled").strip(), 0) != 0
    thp = "never"
    with contextlib.suppress(OSError):
        m = re.search(r"\[(\w+)\]", _read("/sys/kernel/mm/transparent_hugepage/enabled"))
        thp = m.group(1) if m else thp
    cg: Literal["v1", "v2"] | None = "v2" if _v2_root() else ("v1" if _v1_parent() else None)
    return KernelFacts(
        release=platform.release(),
        page_cluster=_int_file("/proc/sys/vm/page-cluster"),
        swappiness=_int_file("/proc/sys/vm/swappiness"),
        mglru=mglru,
        thp=thp,
        cgroup=cg,
        swaps=swap_areas(),
    )


def missing(swap: Literal["zram", "file", "loop", "existing"] = "zram") -> str | None:
    """None when the real-kernel replay can run here; else one line: what is missing, how to provide it."""
    if platform.system() != "Linux":
        return f"the real-kernel replay needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "the real-kernel replay needs root (cgroups and swap are set up for it): run it with sudo"
    if _v2_root() is None and _v1_parent() is None:
        return (
            "no memory cgroup controller: enable it (cgroup v2: echo +memory > /sys/fs/cgroup/cgroup.subtree_control;"
            " v1: mount -t cgroup -o memory none /sys/fs/cgroup/memory)"
        )
    if swap == "zram" and not (Path("/sys/class/zram-control").is_dir() or Path("/sys/block/zram0").is_dir()):
        return "no zram device: load the module (modprobe zram), or use a swap file (--swap file)"
    if swap == "existing" and not swap_areas():
        return "no active swap: turn one on (see the README), or let the command make one (--swap zram)"
    if swap == "loop" and not Path("/dev/loop-control").exists():
        return "no loop devices: load the module (modprobe loop), or use a swap file (--swap file)"
    for tool in ("mkswap", "swapon", "swapoff", *(("losetup",) if swap == "loop" else ())):
        if swap != "existing" and not any(
            Path(d, tool).is_file() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
        ):
            return f"{tool} not found: install util-linux"
    return None


# ---------------------------------------------------------------------------------------------
# Swap, page-cluster, the lock.


def _swapon(dev: str) -> None:
    _run(["mkswap", dev])
    # The highest priority, so the group's pages go here even if the machine has other swap.
    _run(["swapon", "-p", "32767", dev])


def reswap(area: SwapArea) -> None:
    """``swapoff`` and ``swapon`` again: the kernel's state of the device as right after ``swapon``.

    Why: on Linux 6.18 the page faults of a swap file at page-cluster 3
    depend on the device's history since ``swapon``, not only on the run
    (docs/kernel-truth.md, "the swap device's history since swapon": the first runs on a new
    swap file take 2 520..2 925 major faults on ``seq_write_80``, later ones
    3 800..4 800, and ``swapoff``/``swapon`` of the same file brings the first
    back). A device swapped on again before every run gives every run the
    same start. Its pages are read back into memory first (it is empty
    between runs of this harness).
    """
    _run(["swapoff", area.name])
    _run(["swapon", "-p", str(area.priority), area.name])


@contextlib.contextmanager
def zram_swap(size: int = 1 << 30) -> Iterator[SwapArea]:
    """A new zram device of ``size`` bytes as swap (its default compressor), removed afterwards."""
    ctl = Path("/sys/class/zram-control")
    if ctl.is_dir():
        n = int(_read(ctl / "hot_add").strip())
        remove: Callable[[], None] = lambda: _write(ctl / "hot_remove", str(n))  # noqa: E731
    elif Path("/sys/block/zram0").is_dir() and _int_file("/sys/block/zram0/initstate") == 0:
        n, remove = 0, lambda: None
    else:
        raise KernelUnavailable("no free zram device: load the zram module (modprobe zram num_devices=2)")
    dev = f"/dev/zram{n}"
    reset = f"/sys/block/zram{n}/reset"
    with _undo(f"remove zram{n}", remove), _undo(f"reset zram{n}", lambda: _write(reset, "1")):
        _write(f"/sys/block/zram{n}/disksize", str(size))
        for _ in range(50):  # udev may create the node a moment later
            if os.path.exists(dev):
                break
            time.sleep(0.02)
        with _undo(f"swapoff {dev}", lambda: _run(["swapoff", dev])):
            _swapon(dev)
            yield next(s for s in swap_areas() if s.name == dev)


@contextlib.contextmanager
def _zero_file(size: int, directory: str, prefix: str) -> Iterator[str]:
    """A new file of ``size`` bytes of zeros in ``directory`` (written out, not sparse), removed afterwards."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=directory)
    os.close(fd)
    with _undo(f"rm {path}", lambda: os.unlink(path)):
        os.chmod(path, 0o600)
        chunk = bytes(1 << 20)
        with open(path, "wb") as fh:
            for _ in range(size >> 20):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        yield path


@contextlib.contextmanager
def file_swap(size: int = 1 << 30, directory: str = "/var/tmp") -> Iterator[SwapArea]:
    """A swap file of ``size`` bytes in ``directory``, removed afterwards."""
    with (
        _zero_file(size, directory, "vmexp-swap-") as path,
        _undo(f"swapoff {path}", lambda: _run(["swapoff", path])),
    ):
        _swapon(path)
        yield next(s for s in swap_areas() if s.name == path)


@contextlib.contextmanager
def loop_swap(size: int = 1 << 30, directory: str = "/var/tmp") -> Iterator[SwapArea]:
    """A loop device over a new file of ``size`` bytes in ``directory`` as swap, removed afterwards.

    A second kind of disk for the same kernel: a loop device's queue takes
    requests of at most 128 pages (``max_segments``; the virtio disk under
    the swap file takes 254), and its worker writes the file with direct
    I/O, past the page cache. The kernel's faults at page-cluster 3 change
    with it, and the simulator's ``machine.swap_device.max_segments``
    follows them (docs/kernel-truth.md, "A second queue on the same disk").
    """
    with _zero_file(size, directory, "vmexp-loop-") as path:
        r = subprocess.run(
            ["losetup", "--show", "--direct-io=on", "-f", path], capture_output=True, text=True
        )
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise KernelUnavailable(
                f"losetup: no loop device for the swap: {msg[-1] if msg else r.returncode}"
            )
        dev = r.stdout.strip()
        with (
            _undo(f"losetup -d {dev}", lambda: _run(["losetup", "-d", dev])),
            _undo(f"swapoff {dev}", lambda: _run(["swapoff", dev])),
        ):
            _swapon(dev)
            yield next(s for s in swap_areas() if s.name == dev)


@contextlib.contextmanager
def page_cluster(n: int | None) -> Iterator[int]:
    """``vm.page-cluster`` = ``n`` for the block (None: as it is), restored afterwards."""
    path = "/proc/sys/vm/page-cluster"
    old = _int_file(path)
    if n is None or n == old:
        yield old
        return
    with _undo(f"page-cluster back to {old}", lambda: _write(path, str(old))):
        _write(path, str(n))
        yield n


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One harness at a time sets up swap on this machine (the runs would disturb each other)."""
    path = (
        "/run/vmexp-kernel.lock"
        if os.path.isdir("/run")
        else os.path.join(tempfile.gettempdir(), "vmexp-kernel.lock")
    )
    with open(path, "w", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(
                f"vmexp.validate: waiting for another real-kernel session to finish (lock {path})", flush=True
            )
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def session(
    swap: Literal["zram", "file", "loop", "existing"] = "zram",
    *,
    swap_size: int = 1 << 30,
    cluster: int | None = None,
    swap_dir: str = "/var/tmp",
) -> Iterator[KernelFacts]:
    """Everything a series of runs needs, torn down at the end whatever happens.

    ``swap``: a new zram device, a new swap file in ``swap_dir``, a loop
    device over a new file there, or the machine's own active swap. ``cluster``: ``vm.page-cluster`` for the
    session. Yields the kernel's facts as they are inside the session.
    """
    why = missing(swap)
    if why:
        raise KernelUnavailable(why)
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: keep the handler as it is
            handlers[sig] = signal.signal(sig, _raise_exit)
    try:
        with _lock(), page_cluster(cluster), contextlib.ExitStack() as stack:
            if swap == "zram":
                stack.enter_context(zram_swap(swap_size))
            elif swap == "file":
                stack.enter_context(file_swap(swap_size, swap_dir))
            elif swap == "loop":
                stack.enter_context(loop_swap(swap_size, swap_dir))
            yield kernel_facts()
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)


# ---------------------------------------------------------------------------------------------
# Memory cgroups.


@dataclass
class Cgroup:
    """One memory cgroup made for one run."""

    path: Path
    version: Literal["v1", "v2"]

    def _f(self, v1: str, v2: str) -> Path:
        return self.path / (v1 if self.version == "v1" else v2)

    def join(self) -> None:
        """Move the calling process in (used between fork and exec: what it allocates from then on is charged here)."""
        _write(self.path / "cgroup.procs", "0")

    def usage(self) -> int:
        return _int_file(str(self._f("memory.usage_in_bytes", "memory.current")), 0)

    def peak(self) -> int:
        return _int_file(str(self._f("memory.max_usage_in_bytes", "memory.peak")), 0)

    def kernel_usage(self) -> int:
        """Kernel memory charged (page tables, stacks, slab): v1's kmem counter, v2's ``kernel`` stat."""
        if self.version == "v1":
            return _int_file(str(self.path / "memory.kmem.usage_in_bytes"), 0)
        return self.stat().get("kernel", 0)

    def stat(self) -> dict[str, int]:
        out = {}
        with contextlib.suppress(OSError):
            for line in _read(self.path / "memory.stat").splitlines():
                k, _, v = line.partition(" ")
                if v.strip().lstrip("-").isdigit():
                    out[k] = int(v)
        return out

    def oom_kills(self) -> int:
        f = self._f("memory.oom_control", "memory.events")
        with contextlib.suppress(OSError):
            m = re.search(r"^oom_kill (\d+)", _read(f), re.MULTILINE)
            if m:
                return int(m.group(1))
        return 0

    def procs(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(x) for x in _read(self.path / "cgroup.procs").split()]
        return []


_serial = 0


@contextlib.contextmanager
def memory_cgroup(limit: int, swap_max: int | None = None, under: Cgroup | None = None) -> Iterator[Cgroup]:
    """A fresh memory cgroup limited to ``limit`` bytes (and ``swap_max`` bytes of swap; None = any).

    On cgroup v1 the swap limit is ``memory.memsw.limit_in_bytes`` = limit +
    swap_max, written after ``memory.limit_in_bytes`` (the kernel refuses a
    memsw limit below the memory limit). ``under``: inside that group (made
    here too), whose limit then counts this one's charge as well
    (``cgroup.parent_max``; v1's hierarchy is always on since Linux 5.11, v2
    has the memory controller enabled for its children here). The group is
    removed at the end; processes still in it (a run cut short) are killed first.
    """
    global _serial
    root = _v2_root()
    version: Literal["v1", "v2"] = "v2" if root else "v1"
    parent = under.path if under is not None else root if root else _v1_parent()
    if parent is None:
        raise KernelUnavailable("no memory cgroup controller (see vmexp.validate.kernel.missing)")
    if under is not None and version == "v2":
        _write(parent / "cgroup.subtree_control", "+memory")
    _serial += 1
    path = parent / f"vmexp-{os.getpid()}-{_serial}-{time.monotonic_ns() % 10**9}"
    path.mkdir()

    def remove() -> None:
        for _ in range(100):
            for pid in Cgroup(path, version).procs():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                path.rmdir()
                return
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return
                if e.errno != errno.EBUSY:
                    raise
            time.sleep(0.05)
        path.rmdir()

    with _undo(f"rmdir {path}", remove):
        cg = Cgroup(path, version)
        try:
            if version == "v1":
                _write(path / "memory.limit_in_bytes", str(limit))
                if swap_max is not None:
                    memsw = path / "memory.memsw.limit_in_bytes"
                    if not memsw.exists():
                        raise KernelUnavailable(
                            "cgroup v1 without swap accounting: boot with swapaccount=1 to limit a group's swap"
                        )
                    _write(memsw, str(limit + swap_max))
            else:
                _write(path / "memory.max", str(limit))
                if swap_max is not None:
                    _write(path / "memory.swap.max", str(swap_max))
        except OSError as e:
            raise KernelRunError(f"cannot set the limits of {path}: {e.strerror or e}") from None
        yield cg


# ---------------------------------------------------------------------------------------------
# Runs.


@contextlib.contextmanager
def records_file(trace_path: str | os.PathLike[str], pid: int = 1) -> Iterator[str]:
    """The replayer's records of one process of a trace, on tmpfs, written by this (outside) process.

    tmpfs pages are charged to the group of the process that first touches
    them, so the records never count against the run's limit, and a memory
    mapping of them does not either (only its page-table pages do).
    """
    trace = parse_trace(trace_path)
    if pid not in trace.ops:
        raise KernelRunError(
            f"{trace_path}: no process {pid} in the trace (it has {', '.join(map(str, trace.ops))})"
        )
    data = _records(trace.ops[pid], trace.op_index[pid], timed=True)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="vmexp-records-", suffix=".bin", dir=shm)
    with _undo(f"rm {path}", lambda: os.unlink(path)):
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield path


@dataclass
class KernelRun:
    """One replay on the real kernel: the replay loop's faults, and what the group and the kernel saw."""

    minflt: int
    majflt: int
    seconds: float
    peak: int
    oom_reruns: int = 0
    vmstat: dict[str, int] = field(default_factory=dict)
    # Several processes replayed at once in the group: each one's (minflt, majflt), in the order
    # their records were given; minflt and majflt above are then the group's sums.
    procs: list[tuple[int, int]] = field(default_factory=list)
    # CPU time of the replay loops (user and system, getrusage), the group's sum: the kernel's own
    # work for each fault is most of it.
    cpu: float = 0.0
    # With ``sample_every``: (seconds since the replay loops began, each process's (minflt, majflt)
    # in the order its records were given), read from /proc as they ran; the last entry is the loops'
    # totals.
    timeline: list[tuple[float, tuple[tuple[int, int], ...]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = {
            "minflt": self.minflt,
            "majflt": self.majflt,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu, 4),
            "peak_bytes": self.peak,
            "oom_reruns": self.oom_reruns,
            "vmstat": self.vmstat,
        }
        if self.procs:
            d["procs"] = [{"minflt": a, "majflt": b} for a, b in self.procs]
        return d


def _vmstat() -> dict[str, int]:
    out = {}
    for line in _read("/proc/vmstat").splitlines():
        k, _, v = line.partition(" ")
        if k in VMSTAT_KEYS:
            out[k] = int(v)
    return out


def _parse(stdout: str) -> dict[str, int]:
    out = {}
    for line in stdout.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def _proc_faults(pid: int) -> tuple[int, int]:
    """A process's minflt and majflt from ``/proc/PID/stat`` (the counters getrusage sums, read from
    outside: reading them touches none of the process's memory)."""
    fields = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
    return int(fields[7]), int(fields[9])


class _Timeline:
    """The faults of a run's replayers as they go, for ``validate kernel --figure``.

    Each replayer stops itself before its loop and after it (``-S``): the
    counts at the first stop are its baseline (the loop's first getrusage
    reads the same), and the time it reaches the second is its end. In
    between a thread reads ``/proc/PID/stat`` every ``interval`` seconds,
    which touches none of the replayer's memory. After its loop's last
    getrusage the replayer walks its heap for ``mallinfo2`` and prints,
    which can fault its pages back (measured: 5 to 11 major faults past the
    loop's count); a read that falls there is held to the loop's totals,
    which end the timeline (:meth:`points`).
    """

    def __init__(self, procs: Sequence[subprocess.Popen[str]], interval: float) -> None:
        self.procs = procs
        self.interval = interval
        self.base = [_proc_faults(p.pid) for p in procs]  # at the stop before the loop
        self.last = list(self.base)
        self.ended = [False] * len(procs)
        self.samples: list[tuple[float, tuple[tuple[int, int], ...]]] = []
        self.t0 = self.t_end = 0.0

    def start(self) -> threading.Thread:
        """Sample from now (the replayers have just been let go into their loops)."""
        self.t0 = time.monotonic()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while not all(self.ended) and any(p.poll() is None for p in self.procs):
            for i, proc in enumerate(self.procs):
                if not self.ended[i]:
                    with contextlib.suppress(OSError, IndexError, ValueError):  # gone: an OOM kill
                        self.last[i] = _proc_faults(proc.pid)
            counts = tuple((a - c, b - d) for (a, b), (c, d) in zip(self.last, self.base, strict=True))
            self.samples.append((time.monotonic() - self.t0, counts))
            time.sleep(self.interval)

    def end(self, i: int) -> None:
        """Replayer ``i`` is at its stop after the loop."""
        self.ended[i] = True
        self.t_end = time.monotonic() - self.t0

    def points(self, totals: Sequence[tuple[int, int]]) -> list[tuple[float, tuple[tuple[int, int], ...]]]:
        """The samples, each process's held to its loop's totals, then the totals at the last loop's end."""
        end = self.t_end or (self.samples[-1][0] if self.samples else 0.0)
        held = [
            (t, tuple((min(a, c), min(b, d)) for (a, b), (c, d) in zip(counts, totals, strict=True)))
            for t, counts in self.samples
            if t < end
        ]
        return [*held, (end, tuple(totals))]


def _wait_stopped(proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Wait until the replayer stops itself (``-S``); raise if it exits instead."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise KernelRunError(f"the replayer exited ({proc.returncode}) before it stopped")
        with contextlib.suppress(OSError):
            stat = _read(f"/proc/{proc.pid}/stat")
            if stat.rpartition(")")[2].split()[0] in ("T", "t"):
                return
        time.sleep(0.002)
    raise KernelRunError("the replayer did not reach its stop point")


def _status(pid: int) -> dict[str, int]:
    """The ``kB`` lines of ``/proc/PID/status`` (VmRSS, RssAnon, VmPTE, VmStk, ...), in bytes."""
    out = {}
    with contextlib.suppress(OSError):
        for line in _read(f"/proc/{pid}/status").splitlines():
            k, _, v = line.partition(":")
            f = v.split()
            if len(f) == 2 and f[1] == "kB":
                out[k] = int(f[0]) * 1024
    return out


# A sampler of a running replay's group: called with the group and the replayer's pid.
Watch = Callable[[Cgroup, int], None]


def _poll_stats(
    cgs: Sequence[Cgroup], procs: Sequence[subprocess.Popen[str]], interval: float, watch: Watch | None = None
) -> None:
    """Read each group's ``memory.stat`` every ``interval`` s while the replayers run: each read
    flushes the memcg statistics that reclaim decides on (docs/kernel-truth.md, "What the measurements show").

    ``watch(cg, pid)``, if given, is called instead of the bare read (of the first group) and reads
    what it samples itself.
    """
    while any(p.poll() is None for p in procs):
        with contextlib.suppress(OSError):
            if watch is None:
                for cg in cgs:
                    _read(cg.path / "memory.stat")
            else:
                watch(cgs[0], procs[0].pid)
        time.sleep(interval)


REPLAY_TIMEOUT = 600.0  # seconds one real run may take before it is called a failure


def _replay_once(
    records: str | Sequence[str],
    limit: int | Sequence[int],
    swap_max: int | None,
    probe: dict[str, Any] | None,
    timeout: float | None,
    poll_stats: float | None = None,
    watch: Watch | None = None,
    cpus: Sequence[int] | None = None,
    parent_max: int | None = None,
    sample_every: float | None = None,
) -> tuple[KernelRun | None, str]:
    """One run in a new group; ``(None, why)`` when the group's OOM killer ended it.

    Several records files (the processes of one trace) run at once in the group, one replayer
    each, started together: each stops itself before its loop (``-S``) and all are continued
    at once; each stops again after its loop and is continued to print and exit, freeing its
    memory as it would. ``limit`` a list: one new group for each of its limits, side by side (each
    with ``swap_max``), the i-th replayer in group i mod their number (``cgroup.groups``,
    ``cgroup.limits``). ``parent_max``: those groups inside one more, of that limit (``cgroup.parent_max``).
    ``sample_every``: also read the replayers' faults that often (seconds) as they run, into the
    run's ``timeline`` (:class:`_Timeline`); a lone replayer then stops and is let go as a group's are.
    """
    recs = [records] if isinstance(records, str) else list(records)
    group = len(recs) > 1
    if group and probe is not None:
        raise ValueError("a probe reads one process")
    limits = [limit] if isinstance(limit, int) else list(limit)
    groups = len(limits)
    if not 0 < groups <= len(recs):
        raise ValueError(f"{groups} groups for {len(recs)} processes")
    exe = str(build_replayer())
    with contextlib.ExitStack() as made:
        top = made.enter_context(memory_cgroup(parent_max)) if parent_max is not None else None
        cgs = [made.enter_context(memory_cgroup(each, swap_max, top)) for each in limits]
        cg = cgs[0]
        before = _vmstat()
        t0 = time.monotonic()
        together = group or sample_every is not None  # stopped before the loop, let go at once
        stop = probe is not None or together
        procs: list[subprocess.Popen[str]] = []
        timeline: _Timeline | None = None
        sampler: threading.Thread | None = None
        with contextlib.ExitStack() as undo:
            for i, rec in enumerate(recs):
                cmd = [exe, "-S", rec] if stop else [exe, rec]
                its = cgs[i % groups]
                join = its.join if not cpus else functools.partial(_join_on, its, cpus[i % len(cpus)])
                proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=join
                )
                procs.append(proc)
                undo.enter_context(_undo(f"kill replayer {proc.pid}", functools.partial(_kill, proc)))
            poller = None
            if poll_stats is not None:
                poller = threading.Thread(
                    target=_poll_stats, args=(cgs, procs, poll_stats, watch), daemon=True
                )
            if probe is not None:
                (proc,) = procs
                if poller is not None:
                    poller.start()
                for point in ("before", "after"):
                    _wait_stopped(proc)
                    probe[point] = {
                        "usage": cg.usage(),
                        "kernel": cg.kernel_usage(),
                        "stat": cg.stat(),
                        "status": _status(proc.pid),
                    }
                    os.kill(proc.pid, signal.SIGCONT)
            elif together:
                for proc in procs:
                    _wait_stopped(proc)
                timeline = _Timeline(procs, sample_every) if sample_every is not None else None
                t0 = time.monotonic()
                if poller is not None:
                    poller.start()
                for proc in procs:
                    os.kill(proc.pid, signal.SIGCONT)
                if timeline is not None:
                    sampler = timeline.start()
                enders = [
                    threading.Thread(
                        target=_continue_at_end,
                        args=(p, timeout, None if timeline is None else functools.partial(timeline.end, i)),
                        daemon=True,
                    )
                    for i, p in enumerate(procs)
                ]
                for t in enders:
                    t.start()
            elif poller is not None:
                poller.start()
            outs: list[tuple[str, str]] = []
            for proc in procs:
                try:
                    outs.append(proc.communicate(timeout=timeout))
                except subprocess.TimeoutExpired:
                    raise KernelRunError(f"the real-kernel replay took longer than {timeout} s") from None
            if poller is not None:
                poller.join()
            if sampler is not None:
                sampler.join()
        seconds = time.monotonic() - t0
        after = _vmstat()
        kills = sum(c.oom_kills() for c in [*cgs, *([top] if top is not None else [])])
        codes = [p.returncode for p in procs]
        if kills or -signal.SIGKILL in codes:
            return None, f"OOM kill in the group (oom_kill {kills}, exit {', '.join(map(str, codes))})"
        counts = []
        cpu_us = 0
        for proc, (out, err) in zip(procs, outs, strict=True):
            if proc.returncode != 0:
                last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
                raise KernelRunError(f"the replayer failed in the cgroup: {last}")
            vals = _parse(out)
            if "minflt" not in vals or "majflt" not in vals:
                raise KernelRunError(f"the replayer's output lacks minflt/majflt: {out.strip()[:200]!r}")
            counts.append((vals["minflt"], vals["majflt"]))
            cpu_us += vals.get("cpu_us", 0)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in VMSTAT_KEYS if k in before}
        minflt, majflt = sum(c[0] for c in counts), sum(c[1] for c in counts)
        peak = max(c.peak() for c in cgs)
        run = KernelRun(minflt, majflt, seconds, peak, 0, delta, counts if group else [], cpu_us / 1e6)
        if timeline is not None:
            run.timeline = timeline.points(counts)
        return run, ""


def _join_on(cg: Cgroup, cpu: int) -> None:
    """Between fork and exec: into the group, and onto one CPU for good."""
    cg.join()
    os.sched_setaffinity(0, {cpu})


def _continue_at_end(
    proc: subprocess.Popen[str], timeout: float | None, at_end: Callable[[], None] | None = None
) -> None:
    """A replayer of a group run stops itself after its loop (``-S``): let it go on to print and exit
    (``at_end`` is called at the stop, before)."""
    with contextlib.suppress(KernelRunError):  # it was killed (the group's OOM killer): nothing to continue
        _wait_stopped(proc, timeout if timeout is not None else REPLAY_TIMEOUT)
        if at_end is not None:
            at_end()
        os.kill(proc.pid, signal.SIGCONT)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def replay_kernel(
    records: str | Sequence[str],
    limit: int | Sequence[int],
    *,
    swap_max: int | None = None,
    max_oom_reruns: int = 5,
    timeout: float | None = REPLAY_TIMEOUT,
    poll_stats: float | None = None,
    watch: Watch | None = None,
    cpus: Sequence[int] | None = None,
    parent_max: int | None = None,
    sample_every: float | None = None,
) -> KernelRun:
    """Replay a records file (:func:`records_file`) once in a fresh group of ``limit`` bytes; several
    (the processes of one trace): all at once in that group (:func:`_replay_once`).

    Call it inside a :func:`session` (swap must be on). A run the group's
    OOM killer ends is discarded and run again in a new group, up to
    ``max_oom_reruns`` times; ``oom_reruns`` says how many were discarded.
    ``poll_stats``: read the group's ``memory.stat`` this often (seconds)
    during the run; each read flushes the kernel's memcg statistics, so
    reclaim decides on sizes at most that old instead of up to 2 s old, at
    a known period instead of the machine's timer's unknown phase
    (``validate kernel --stats-every``); ``watch(cg, pid)``, with ``poll_stats``, samples the group
    at each of those reads instead (``bench/kernel_truth.py stock``). ``cpus``: the replayers (one, or
    a trace's several in order) each held to one CPU, the i-th to ``cpus[i % len(cpus)]``, where the
    scheduler would otherwise place them (``bench/kernel_truth.py irq-cpu``). ``limit`` a list: the
    replayers in a group of each of those limits, side by side, and with ``parent_max`` inside a
    group of that limit (:func:`_replay_once`). ``sample_every``: the run's ``timeline`` of faults, read
    that often (seconds).
    """
    reasons = []
    for attempt in range(max_oom_reruns + 1):
        run, why = _replay_once(
            records, limit, swap_max, None, timeout, poll_stats, watch, cpus, parent_max, sample_every
        )
        if run is not None:
            run.oom_reruns = attempt
            return run
        reasons.append(why)
    raise OOMKilledEveryTry(max_oom_reruns + 1, reasons[-1])


def probe_charge(records: str, limit: int = 1 << 40) -> dict[str, Any]:
    """What one replay costs its group besides the trace's pages, measured at the replayer's stop points.

    The replayer stops itself right before its replay loop and right after
    it; the group's charge, its kernel-memory part and its ``memory.stat``
    and the process's ``/proc/PID/status`` are read at both. With no limit
    to speak of (the default), nothing is reclaimed, so the charge after
    the loop is every page the trace touched plus everything else.
    """
    for _ in range(5):
        probe: dict[str, Any] = {}
        run, _why = _replay_once(records, limit, None, probe, REPLAY_TIMEOUT)
        if run is not None:
            probe["run"] = run.as_dict()
            return probe
    raise KernelRunError("the probe run was OOM-killed every time")


def describe_failure(e: BaseException) -> str:
    if isinstance(e, RealGlibcError | KernelUnavailable | KernelRunError):
        return str(e)
    return f"{type(e).__name__}: {e}"


def spread(values: Sequence[int]) -> dict[str, float]:
    """min, max, median, mean and sample standard deviation of repeated counts."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        return {}
    mean = sum(v) / n
    sd = (sum((x - mean) ** 2 for x in v) / (n - 1)) ** 0.5 if n > 1 else 0.0
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"min": v[0], "max": v[-1], "median": med, "mean": round(mean, 2), "sd": round(sd, 2)}


_R = TypeVar("_R")


def _each_run(
    trace_path: str | os.PathLike[str],
    runs: int,
    pids: Sequence[int],
    fresh: SwapArea | None,
    progress: Callable[[int, _R], None] | None,
    replay: Callable[[str | list[str]], _R],
) -> list[_R]:
    """``runs`` calls of ``replay`` on the records of the trace's processes ``pids`` (one: its
    records file; several: the list), each after swapping ``fresh`` off and on."""
    out: list[_R] = []
    with contextlib.ExitStack() as files:
        recs = [files.enter_context(records_file(trace_path, pid)) for pid in pids]
        rec: str | list[str] = recs[0] if len(recs) == 1 else recs
        for i in range(runs):
            if fresh is not None:
                reswap(fresh)
            out.append(replay(rec))
            if progress is not None:
                progress(i + 1, out[-1])
    return out


def outcomes(
    trace_path: str | os.PathLike[str],
    limit: int | Sequence[int],
    runs: int,
    *,
    pids: Sequence[int] = (1,),
    swap_max: int | None = None,
    fresh: SwapArea | None = None,
    progress: Callable[[int, KernelRun | None], None] | None = None,
    poll_stats: float | None = None,
    cpus: Sequence[int] | None = None,
    parent_max: int | None = None,
    sample_every: float | None = None,
) -> list[KernelRun | None]:
    """``runs`` replays as :func:`measure`'s, each run once: None for one the group's OOM killer ended.

    Whether the group's OOM killer fires can depend on the run (when the
    statistics flush falls: docs/kernel-truth.md, "Random churn traces, and
    the group's OOM killer"), so this counts the runs it ends where
    :func:`measure` runs them again.
    """

    def once(rec: str | list[str]) -> KernelRun | None:
        return _replay_once(
            rec, limit, swap_max, None, REPLAY_TIMEOUT, poll_stats, None, cpus, parent_max, sample_every
        )[0]

    return _each_run(trace_path, runs, pids, fresh, progress, once)


def measure(
    trace_path: str | os.PathLike[str],
    limit: int | Sequence[int],
    runs: int,
    *,
    pids: Sequence[int] = (1,),
    swap_max: int | None = None,
    fresh: SwapArea | None = None,
    progress: Callable[[int, KernelRun], None] | None = None,
    poll_stats: float | None = None,
    cpus: Sequence[int] | None = None,
    parent_max: int | None = None,
    sample_every: float | None = None,
) -> list[KernelRun]:
    """``runs`` replays of processes ``pids`` of a trace (all at once), each run in its own group
    (inside a :func:`session`);
    ``fresh``: swap that area off and on again before each (:func:`reswap`); ``progress`` is told
    each run (its number from 1) as it ends: a trace's runs can take minutes; ``poll_stats``, ``cpus``,
    ``limit`` (one or a list), ``parent_max``, ``sample_every``: as :func:`replay_kernel`'s."""

    def rerun_killed(rec: str | list[str]) -> KernelRun:
        return replay_kernel(
            rec,
            limit,
            swap_max=swap_max,
            poll_stats=poll_stats,
            cpus=cpus,
            parent_max=parent_max,
            sample_every=sample_every,
        )

    return _each_run(trace_path, runs, pids, fresh, progress, rerun_killed)
