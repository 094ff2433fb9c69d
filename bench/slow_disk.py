"""The real kernel on a disk as slow as the simulator's ``hdd``: ground truth for long runs.

    python bench/slow_disk.py measure NAME... [--page-cluster 3] [--runs 2]   # root, libfuse3-dev
    python bench/slow_disk.py compare [--page-cluster 3]                       # the simulator beside it
    python bench/slow_disk.py sleeps NAME [--page-cluster 3]   # where the replayer slept in one run

The held-out command runs a swap file as ``machine.swap_device=hdd``: 12.7 ms
a request. This machine's disk serves one in about 42 µs, so the kernel's
runs last 1 to 5 s where the simulator's last tens to hundreds of seconds,
and the kernel's reclaim depends on time (docs/kernel-truth.md, "How long a
run lasts"). To see what the kernel does on a disk that slow, ``measure``
gives it one: ``slowdisk.c`` is a FUSE file system of one file served by a
single thread that sleeps ``--latency`` plus the bytes at ``--bandwidth``
before each read or write (the simulator's own device model: a FIFO server,
latency once per request), and a loop device with direct I/O over that
file, marked rotational as ``hdd`` is, with the block layer's write
throttle (blk-wbt) aiming at a rotational disk's 75 ms (``--wbt-latency``;
the loop device is made with a solid-state disk's 2 ms), is the swap. Its queue holds
requests of at most 128 pages (the loop device's ``max_segments``), so
``compare`` gives the simulator that request size:
``machine.swap_device={latency: 12.7ms, bandwidth: 150M, rotational: true,
max_segments: 128}``. Each run starts on the device just swapped on
(``swapoff``/``swapon``) in a new 64 MiB group, as ``kernel_truth.py
measure --fresh-device`` runs them.

``sleeps`` runs one workload once on the slow disk with the replayer's
uninterruptible sleeps traced (``kernel_truth.where_slept``): on this
disk the kernel's reclaim is held back by blk-wbt at either target (2 ms
or 75 ms: a reclaimer's swap writes are neither synchronous nor
kswapd's, so while swap-ins run blk-wbt's ``get_limit`` gives them its
background limit, a quarter of its depth), which the swap file's disk
never applies (docs/kernel-truth.md, "A disk as slow as `hdd`").

``measure`` writes ``tests/data/real_kernel/slowdisk_pc<N>.json`` (the
shape of ``kernel_truth.py measure``'s files, with the device in
``settings``; the workloads recorded there before on a disk of the same
speed are kept, those measured again replaced) and takes everything down
again — swap, loop device, mount, daemon, backing file — also on an error
or Ctrl-C. It needs root, a kernel with FUSE, and libfuse 3 to build the
daemon (``apt-get install libfuse3-dev fuse3``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import kernel_truth as KT  # noqa: E402  (bench/kernel_truth.py: the recorded runs' shape, the simulator's runs)

from vmexp.config import SWAP_DEVICES  # noqa: E402
from vmexp.units import parse_duration, parse_size  # noqa: E402
from vmexp.validate import kernel as K  # noqa: E402
from vmexp.validate.workloads import LIMIT, SETS, write_all  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "slowdisk.c"
LATENCY, BANDWIDTH = SWAP_DEVICES["hdd"]  # 12.7 ms a request, 150 MB/s: the simulator's hdd
LOOP_SEGMENTS = 128  # a loop device's queue: max_segments 128 (max_sectors_kb 1280 allows more)
# blk-wbt's latency target for a rotational disk (block/blk-wbt.c, wbt_default_latency_nsec: 2 ms
# for non-rotational storage, 75 ms for rotational), as this machine's own disk has it. The loop
# device gets 2 ms when it is made (it says it is not rotational then) and keeps it when it is
# marked rotational; the runs recorded before 2026-12-06 were taken with that (``wbt_lat_usec`` of
# each workload in the recorded files).
WBT_ROTATIONAL_USEC = 75_000


def _file(cluster: int) -> Path:
    return KT.DATA / f"slowdisk_pc{cluster}.json"


def _device(latency_ns: int, bandwidth: int) -> str:
    """The simulator's description of the slow disk (a loop device's request size)."""
    return K.device_override("slowdisk", latency_ns, bandwidth, True, LOOP_SEGMENTS)


def _build(directory: str) -> str:
    missing = [tool for tool in ("gcc", "pkg-config") if shutil.which(tool) is None]
    if missing:
        raise K.KernelUnavailable(f"{' and '.join(missing)} missing (apt-get install gcc pkg-config)")
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True)
    if pc.returncode != 0:
        raise K.KernelUnavailable("libfuse 3 is missing (apt-get install libfuse3-dev fuse3)")
    exe = os.path.join(directory, "slowdisk")
    r = subprocess.run(
        ["gcc", "-O2", "-o", exe, str(SOURCE), *pc.stdout.split()], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise K.KernelUnavailable(f"building {SOURCE.name} failed: {r.stderr.strip()[-300:]}")
    return exe


@contextlib.contextmanager
def slow_swap(
    latency_ns: int, bandwidth: int, wbt_usec: int = WBT_ROTATIONAL_USEC, size: int = 1 << 30
) -> Iterator[str]:
    """A swap area on a loop device over a FUSE file that takes ``latency_ns`` + bytes/``bandwidth``
    per request, its write throttle's target ``wbt_usec`` (0: off); yields the loop device, and
    takes every piece down in reverse order."""
    if K.swap_areas():
        raise K.KernelUnavailable("swap is already on (swapoff -a first): its runs would use it")
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="vmexp-slowdisk-"))
        exe = _build(work)
        backing = os.path.join("/var/tmp", f"vmexp-slowdisk-{os.getpid()}.img")
        with open(backing, "wb") as fh:
            fh.truncate(size)
        stack.callback(os.unlink, backing)
        mnt = os.path.join(work, "mnt")
        os.mkdir(mnt)
        log = open(os.path.join(work, "daemon.log"), "w+")  # noqa: SIM115  (read back on failure)
        stack.callback(log.close)
        daemon = subprocess.Popen(
            [exe, backing, str(latency_ns), str(bandwidth), mnt, "-s", "-f"], stdout=log, stderr=log
        )

        def stop_daemon() -> None:
            subprocess.run(["umount", mnt], capture_output=True)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

        stack.callback(stop_daemon)
        for _ in range(100):
            if os.path.ismount(mnt) or daemon.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.ismount(mnt):
            log.seek(0)
            raise K.KernelUnavailable(f"the FUSE daemon did not mount: {log.read().strip()[-300:]}")
        r = subprocess.run(
            ["losetup", "--show", "--direct-io=on", "-f", os.path.join(mnt, "disk")],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise K.KernelUnavailable(f"losetup: {r.stderr.strip()}")
        dev = r.stdout.strip()
        stack.callback(subprocess.run, ["losetup", "-d", dev], capture_output=True)
        # A loop device over FUSE says it is not rotational; hdd is, and the kernel picks its
        # readahead by it (swap_cluster_readahead) when the area is swapped on.
        queue = Path(f"/sys/block/{os.path.basename(dev)}/queue")
        (queue / "rotational").write_text("1\n")
        # ... and a rotational disk's write throttle: the loop device's was set when it was made.
        (queue / "wbt_lat_usec").write_text(f"{wbt_usec}\n")
        stack.callback(subprocess.run, ["swapoff", dev], capture_output=True)
        for cmd in (["mkswap", dev], ["swapon", dev]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise K.KernelUnavailable(f"{cmd[0]} {dev}: {(r.stderr or r.stdout).strip()}")
        yield dev


def _requests(dev: str) -> dict[str, int]:
    """The loop device's requests so far (``/sys/block/loopN/stat``): what the kernel's block layer
    made of its swap I/O, merged, as the slow disk served it, one latency each."""
    f = Path(f"/sys/block/{os.path.basename(dev)}/stat").read_text().split()
    return {
        "reads": int(f[0]),
        "read_pages": int(f[2]) // 8,
        "writes": int(f[4]),
        "write_pages": int(f[6]) // 8,
    }


def _kept(out: Path, doc: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The workloads already recorded in ``out`` on the same slow disk, other than ``names``.

    A run of a long workload on this disk takes minutes, so measuring one more
    workload must not cost the ones recorded before; runs on a disk of
    another speed are not comparable and are dropped. Those at another
    write-throttle target are kept: each workload says its own
    (``wbt_lat_usec``), and ``compare`` shows it.
    """
    try:
        old = json.loads(out.read_text())
    except FileNotFoundError:
        return {}
    same = all(
        old["settings"].get(k) == doc["settings"][k] for k in ("device_latency_ns", "device_bandwidth")
    )
    # the file's date becomes this session's: each workload keeps the date it was measured on
    return {n: {"date": old["date"], **wl} for n, wl in old["workloads"].items() if same and n not in names}


def measure(
    names: list[str], cluster: int, runs: int, latency_ns: int, bandwidth: int, wbt_usec: int
) -> Path:
    out = _file(cluster)
    with slow_swap(latency_ns, bandwidth, wbt_usec) as dev, K.session("existing", cluster=cluster) as facts:
        assert facts.swap is not None
        doc = KT.record(
            facts,
            "minflt/majflt of each workload's replay loop on a swap disk as slow as hdd, a fresh group per run",
            names,
            runs,
            True,
            config=f"slowdisk_pc{cluster}",
            device_latency_ns=latency_ns,
            device_bandwidth=bandwidth,
            simulator_device=_device(latency_ns, bandwidth),
            swap_queue_depth=1,  # one thread serves the file: one request at a time, whatever the loop's tags
        )
        for wl in doc["workloads"].values():
            wl["date"] = doc["date"]
            wl["wbt_lat_usec"] = wbt_usec
        doc["workloads"] = {**_kept(out, doc, names), **doc["workloads"]}
        # Every workload's trace, as kernel_truth measure replays them (the later, heap and unseen
        # sets' are written only when asked for).
        traces = KT._workload_dir()
        write_all(traces, names)
        with contextlib.ExitStack() as stack:
            recs = {n: stack.enter_context(K.records_file(traces / f"{n}.trace")) for n in names}
            t0 = time.monotonic()
            for rep in range(runs):
                for n in names:
                    K.reswap(facts.swap)
                    before = _requests(dev)
                    r = K.replay_kernel(recs[n], LIMIT, timeout=3600.0)
                    after = _requests(dev)
                    run = r.as_dict()
                    run["requests"] = {k: after[k] - before[k] for k in after}
                    doc["workloads"][n]["runs"].append(run)
                    print(
                        f"[slowdisk_pc{cluster} {rep + 1}/{runs} {time.monotonic() - t0:6.0f}s] {n:<18}"
                        f" minflt {r.minflt:>7} majflt {r.majflt:>7}  {r.seconds:6.1f}s",
                        flush=True,
                    )
                for wl in doc["workloads"].values():
                    if wl["runs"]:
                        KT._summarise(wl)
                doc["repetitions"] = rep + 1
                out.write_text(json.dumps(doc, indent=1) + "\n")
    return out


def sleeps(name: str, cluster: int, latency_ns: int, bandwidth: int, wbt_usec: int) -> str:
    """One run of ``name`` on the slow disk, and where the replayer slept (``KT.where_slept``)."""
    with slow_swap(latency_ns, bandwidth, wbt_usec) as dev, K.session("existing", cluster=cluster) as facts:
        assert facts.swap is not None
        target = Path(f"/sys/block/{os.path.basename(dev)}/queue/wbt_lat_usec").read_text().strip()
        traces = KT._workload_dir()
        write_all(traces, [name])
        with K.records_file(traces / f"{name}.trace") as rec:
            K.reswap(facts.swap)
            with KT._sleep_trace() as traced:
                r = K.replay_kernel(rec, LIMIT, timeout=3600.0)
    slept = ", ".join(f"{k} {v}" for k, v in sorted(KT.where_slept(traced.text).items()))
    return (
        f"{name}, page-cluster {cluster}, the loop device's wbt_lat_usec {target}: majflt {r.majflt} "
        f"minflt {r.minflt} in {r.seconds:.1f} s; slept: {slept}"
    )


def _writes(runs: list[dict[str, Any]]) -> str:
    """The runs' write requests on the slow disk and their mean size, ``min..max (pages)``."""
    reqs = [r["requests"] for r in runs if "requests" in r]
    if not reqs:
        return "not recorded"
    n = sorted(q["writes"] for q in reqs)
    size = sum(q["write_pages"] for q in reqs) / max(sum(q["writes"] for q in reqs), 1)
    return f"{n[0]}..{n[-1]} ({size:.0f})"


def compare(cluster: int) -> str:
    """The simulator on the recorded workloads with the slow disk's description, as a Markdown table."""
    doc = json.loads(_file(cluster).read_text())
    device = doc["settings"]["simulator_device"]
    config = f"file_pc{cluster}"  # the held-out keys of a swap file at this page-cluster
    rows = [
        "| workload | real majflt | simulator | real minflt | simulator | real s | simulated s"
        " | real pgdeactivate | simulator | real write requests (pages each) | blk-wbt target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = [n for names in SETS.values() for n in names]  # the sets' order, whenever each was measured
    for name, wl in sorted(doc["workloads"].items(), key=lambda kv: order.index(kv[0])):
        _c, _n, sim = KT._agree_one((config, name, device, LIMIT))
        secs = [r["seconds"] for r in wl["runs"]]
        deact = [r["vmstat"].get("pgdeactivate", 0) for r in wl["runs"]]
        rows.append(
            f"| {name} | {KT._fmt(wl['majflt'])} | {KT._cell(sim['majflt'], wl['majflt'])}"
            f" | {KT._fmt(wl['minflt'])} | {KT._cell(sim['minflt'], wl['minflt'])}"
            f" | {min(secs):.0f}..{max(secs):.0f} | {sim['seconds']:.0f}"
            f" | {min(deact)}..{max(deact)} | {sim['vmstat'].get('pgdeactivate', 0)} | {_writes(wl['runs'])}"
            f" | {wl['wbt_lat_usec'] / 1000:g} ms |"
        )
    return "\n".join([*rows, "", f"Simulator: machine.swap_device={device} machine.page_cluster={cluster}."])


def _usec(text: str) -> int:
    """A duration on the command line as wbt_lat_usec takes it (``75ms`` -> 75000)."""
    return parse_duration(text) // 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="real runs on the slow disk (root, libfuse3-dev)")
    m.add_argument("names", nargs="+", help="workloads of vmexp/validate/workloads.py")
    m.add_argument("--page-cluster", type=int, default=3, choices=range(0, 10), metavar="N")
    m.add_argument("--runs", type=int, default=2)
    m.add_argument("--latency", default=f"{LATENCY}ns", help="per request (default hdd's, 12.7ms)")
    m.add_argument("--bandwidth", default=BANDWIDTH, help="bytes per second (default hdd's, 150000000)")
    wbt_help = "blk-wbt's latency target on the loop device (default 75ms, a rotational disk's; 0: off)"
    m.add_argument("--wbt-latency", default="75ms", help=wbt_help)
    sl = sub.add_parser("sleeps", help="one run traced: where the replayer slept (root, libfuse3-dev)")
    sl.add_argument("name", help="a workload of vmexp/validate/workloads.py")
    sl.add_argument("--page-cluster", type=int, default=3, choices=range(0, 10), metavar="N")
    sl.add_argument("--wbt-latency", default="75ms", help=wbt_help)
    c = sub.add_parser("compare", help="the simulator beside the recorded runs")
    c.add_argument("--page-cluster", type=int, default=3, choices=range(0, 10), metavar="N")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the swap and mount come down
    try:
        known = {n for ws in SETS.values() for n in ws}
        if a.cmd == "sleeps":
            if a.name not in known:
                raise K.KernelUnavailable(f"not a workload: {a.name} (known: {', '.join(sorted(known))})")
            print(sleeps(a.name, a.page_cluster, LATENCY, BANDWIDTH, _usec(a.wbt_latency)))
        elif a.cmd == "measure":
            bad = [n for n in a.names if n not in known]
            if bad:
                raise K.KernelUnavailable(
                    f"not a workload: {', '.join(bad)} (known: {', '.join(sorted(known))})"
                )
            latency, bandwidth = parse_duration(a.latency), parse_size(a.bandwidth)
            print(measure(a.names, a.page_cluster, a.runs, latency, bandwidth, _usec(a.wbt_latency)))
        else:
            print(compare(a.page_cluster))
    except (K.KernelUnavailable, K.KernelRunError, FileNotFoundError) as e:
        print(f"slow_disk: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
