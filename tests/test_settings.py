"""One declaration per setting and per metric, and everything that is made from them.

A setting is declared once (``vmexp/config.py``): the schema Hydra composes
against, the checks, ``settings.json``, ``--help`` and README's tables all
come from that declaration, so these tests compare each product with the
declarations rather than with copies of them. The same for metrics
(``vmexp/metrics.py``).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, compose_cfg, settings
from vmexp.app import run_settings
from vmexp.config import ConfigError, Settings, validate
from vmexp.docs import BLOCKS, update_readme
from vmexp.fields import iter_specs
from vmexp.metrics import COLUMNS, METRICS, SUMMARY_METRICS, TIMESERIES_COLUMNS, metric, summary_of

TRACE = ROOT / "tests" / "traces"


# ---------------------------------------------------------------------------------------------- README


def test_the_readme_tables_are_the_declarations() -> None:
    """README's knob, cost, component and metric tables are generated; this fails when one is stale.

    Fix: python -m vmexp.docs --write README.md
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count("<!-- generated: ") == len(BLOCKS)
    assert update_readme(text) == text, "README.md is stale: python -m vmexp.docs --write README.md"


def test_the_readme_says_what_each_timeseries_column_holds_at_its_sample(tmp_path: Path) -> None:
    """timeseries.csv's columns in the file's order, each with what a row holds: rss_bytes and
    arena_bytes read "at exit" (the metric's metrics.json meaning), pswpin_per_s had unit count."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- generated: timeseries -->\n")[1].split("<!-- end: timeseries -->")[0]
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ")[2:] for line in block.splitlines()[2:]}
    assert list(rows) == TIMESERIES_COLUMNS
    assert not [c for c, (meaning, _unit) in rows.items() if "at exit" in meaning]
    assert rows["rss_bytes"] == ["the process's RSS at the sample's time", "bytes |"]
    assert rows["arena_bytes"][0] == "the process's brk heap (mallinfo2 arena) at the sample's time"
    assert rows["pswpin_per_s"] == ["pages swapped in per second since the last sample", "pages/s |"]
    # The rate is what the rows hold: a swap-in count per second of the interval before the row.
    doc = _run(tmp_path, "malloc 1 4M\ntouch 1\ntouch 1 0 4096 r\n", "ram=2M", "swap=8M", "machine.min_free=0",
               "sample_interval=1ms", "policy=lru")  # fmt: skip
    with open(tmp_path / "run" / "timeseries.csv") as fh:
        machine = [r for r in csv.DictReader(fh) if r["pid"] == "0"]
    t = [float(r["time_s"]) for r in machine]
    pages = sum(float(r["pswpout_per_s"]) * (b - a) for r, a, b in zip(machine[1:], t, t[1:], strict=False))
    assert round(pages) == doc["system"]["pswpout"] > 0


def test_the_readme_outputs_table_names_every_file_a_run_writes() -> None:
    """explain.log, error.txt and Hydra's .hydra/ were written into run directories but not listed."""
    from vmexp.metrics import _RUN_FILES

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("A run directory (")[1].split("\n\n")[1]
    names = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert {*_RUN_FILES, ".hydra/", "maps/<pid>.txt", "figures/*.png"} == names


def test_every_declared_key_is_in_the_readme_and_means_something() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for key, spec in iter_specs(Settings):
        assert spec.doc, f"{key} has no meaning"
        if spec.kind not in ("section", "open"):
            assert f"| `{key}` | `{spec.written_default()}` |" in text, key


# ---------------------------------------------------------------------------------------------- declarations


def test_the_schema_defaults_are_the_declared_defaults() -> None:
    """Composing without overrides gives, for every key not set by a group file, the declared default."""
    s = settings()
    assert (s.page_size, s.ram, s.swap, s.nprocs, s.seed) == (4096, 64 << 20, 256 << 20, 4, 0)
    assert (s.duration, s.sample_interval, s.job_timeout, s.job_memory) == (None, 10**7, None, 4 << 30)
    assert s.layout == Settings().layout  # conf/address_space/x86_64.yaml only names it
    assert s.machine == Settings().machine  # conf/machine/server.yaml too
    assert (s.machine.swap_latency, s.machine.swap_bandwidth) == (100_000, 500_000_000)


@pytest.mark.parametrize(("bandwidth", "bytes_per_s"), [("500M", 500 << 20), (500_000_000, 500_000_000)])
def test_a_described_devices_bandwidth_is_a_binary_size_a_second(bandwidth: object, bytes_per_s: int) -> None:
    """README (Swap devices): the presets are decimal, as makers quote them; 500M is 500 MiB/s, and
    500000000 is the ssd preset's bandwidth."""
    s = settings(f"machine.swap_device={{latency: 100us, bandwidth: {bandwidth}, rotational: false}}")
    assert (s.machine.swap_latency, s.machine.swap_bandwidth) == (100_000, bytes_per_s)


def test_a_swap_devices_request_size_is_its_queues_max_segments() -> None:
    """A preset's write requests hold up to 254 pages (virtio-blk's max_segments, the disk the
    kernel model was measured on); a described device can give its own, as a loop device's 128."""
    for dev in ("hdd", "ssd", "nvme", "{latency: 100us, bandwidth: 500M}"):
        assert settings(f"machine.swap_device={dev}").machine.swap_max_segments == 254
    s = settings("machine.swap_device={latency: 42us, bandwidth: 1G, rotational: true, max_segments: 128}")
    assert (s.machine.swap_max_segments, s.machine.swap_rotational) == (128, True)


def test_a_described_device_can_overlap_requests_and_the_presets_serve_one_at_a_time() -> None:
    """``queue_depth``: how many requests a device works on at once (a disk's blk-mq tags, 128 on
    this machine's virtio disk); the presets are textbook FIFO servers."""
    for dev in ("hdd", "ssd", "nvme", "{latency: 100us, bandwidth: 500M}"):
        assert settings(f"machine.swap_device={dev}").machine.swap_queue_depth == 1
    s = settings("machine.swap_device={latency: 42us, bandwidth: 1700000000, queue_depth: 128}")
    assert s.machine.swap_queue_depth == 128


@pytest.mark.parametrize("written", ["64k", "64K", "64kb", "64kB", "64KB", "64KiB", "65536", "0x10000"])
def test_kb_and_kib_are_both_1024_bytes_as_in_proc_meminfo(written: str) -> None:
    """The decision README.md states (The knobs, Units): there are no decimal sizes."""
    assert settings(f"threshold={written}").allocator.mmap_threshold == 65536


@pytest.mark.parametrize(
    ("override", "ok"),
    [
        ("threshold=32M", True),  # HEAP_MAX_SIZE / 2: the largest threshold do_set_mmap_threshold takes
        ("threshold=33554433", False),
        ("allocator.trim_threshold=2147483647", True),  # mallopt(int param, int value)
        ("allocator.trim_threshold=2G", False),
        ("allocator.top_pad=2147483647", True),
        ("allocator.top_pad=2147483648", False),
        ("allocator.mmap_max=0", True),
        ("allocator.mmap_max=2147483647", True),
        ("allocator.mmap_max=2147483648", False),
        ("allocator.mmap_max=-1", False),
    ],
)
def test_glibc_parameters_are_refused_where_mallopt_refuses_them(override: str, ok: bool) -> None:
    if ok:
        settings(override)
    else:
        with pytest.raises(ConfigError, match=rf"^{override.split('=')[0]}: "):
            settings(override)


def test_the_allocator_receives_ints() -> None:
    """Parsed once: the allocator settings the engine reads hold bytes, not the text a user wrote."""
    a = settings("threshold=64k", "allocator.trim_threshold=1M", "allocator.top_pad=0").allocator
    assert (a.mmap_threshold, a.trim_threshold, a.top_pad, a.mmap_max) == (65536, 1 << 20, 0, None)
    assert settings("policy=ws", "policy.params.tau=5ms").policy.params == {"tau": 5_000_000}


def test_validation_takes_a_plain_mapping_too() -> None:
    raw: Any = compose_cfg("ram=32M")
    assert validate(raw).ram == 32 << 20


# ---------------------------------------------------------------------------------------------- settings.json


def test_each_run_writes_its_resolved_settings_beside_its_metrics(tmp_path: Path) -> None:
    s = settings(
        "workload=trace",
        f"workload.path={TRACE / 'trim.trace'}",
        "threshold=64k",
        "policy=ws",
        "figures=false",
    )
    run_settings(s, tmp_path, quiet=True, choices={"policy": "ws", "workload": "trace"})
    doc = json.loads((tmp_path / "settings.json").read_text())
    got = doc["settings"]
    assert got["threshold"] == {"value": 65536, "unit": "bytes"}
    assert got["duration"]["value"] is None  # a trace runs to its end
    assert got["duration"]["null"].startswith("trace and page-reference workloads run to their end")
    assert got["policy.params.tau"] == {"value": 10_000_000, "unit": "ns"}
    assert got["allocator.trim_threshold"]["value"] is None
    assert got["allocator.trim_threshold"]["null"].startswith("glibc's default")
    assert got["workload.path"]["value"] == str(TRACE / "trim.trace")
    assert got["machine.swap_latency"] == {"value": 100_000, "unit": "ns"}
    assert doc["choices"] == {"policy": "ws", "workload": "trace"}
    # Every declared key is there, under the name a user writes.
    for key, spec in iter_specs(Settings):
        if spec.kind not in ("section", "open"):
            assert key in got, key


# ---------------------------------------------------------------------------------------------- metrics


def _run(tmp_path: Path, text: str, *overrides: str) -> dict[str, Any]:
    trace = tmp_path / "t.trace"
    trace.write_text(text)
    s = settings("workload=trace", f"workload.path={trace}", "figures=false", *overrides)
    doc: dict[str, Any] = run_settings(s, tmp_path / "run", quiet=True)
    return doc


def test_every_key_the_engine_writes_is_a_declared_metric(tmp_path: Path) -> None:
    doc = _run(tmp_path, "p1: malloc 1 1M\np1: touch 1\np2: malloc 1 100\np2: touch 1\n")
    declared_process = {m.json[0] for m in METRICS if m.scope == "process" and m.json}
    declared_system = {m.json[0] for m in METRICS if m.scope == "system" and m.json}
    for p in doc["processes"]:
        assert list(p) == list(dict.fromkeys(m.json[0] for m in METRICS if m.scope == "process" and m.json))
        assert set(p) == declared_process
    assert set(doc["system"]) == declared_system - {"zram", "memcg"}  # those two only with zram or a cgroup
    header = (tmp_path / "run" / "timeseries.csv").read_text().splitlines()[0]
    assert header.split(",") == TIMESERIES_COLUMNS


def test_summary_columns_objective_names_and_labels_come_from_the_declarations() -> None:
    assert tuple(m.column for m in METRICS if m.column) == COLUMNS
    assert set(SUMMARY_METRICS) <= set(COLUMNS)
    for name in COLUMNS:
        m = metric(name)
        assert m.label and m.short and m.unit in ("count", "bytes", "ratio", "s", "")
        assert m.better in (-1, 0, 1) and m.over_seeds == "mean"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"`{c}` (" in readme for c in COLUMNS)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("brk_trims", "counted from syscalls.csv after the run, so objective cannot weigh it (valid: "),
        ("objective", "objective cannot weigh itself (valid: "),
        ("happiness", "not a summary metric (valid: "),
    ],
)
def test_an_objective_weight_that_cannot_be_summed_says_why(name: str, why: str) -> None:
    # brk_trims is a summary.csv column; "not a summary metric" told its user otherwise.
    with pytest.raises(ConfigError) as e:
        settings(f"+objective={{{name}: 1}}")
    assert str(e.value).startswith(f"objective.{name}: {why}")


def test_machine_peak_rss_is_the_peak_of_the_sum_not_the_sum_of_peaks(tmp_path: Path) -> None:
    """Two processes hold 1 MiB each, one after the other: the machine never holds both.

    p1 touches 1 MiB and unmaps it at once; p2 sleeps first (compute 20 ms,
    five time slices) and then does the same. Each process's peak is about
    1 MiB, so their sum is about 2 MiB; the machine's peak is about 1 MiB.
    """
    text = (
        "p1: malloc 1 1M\np1: touch 1\np1: free 1\np1: compute 1ms\n"
        "p2: compute 20ms\np2: malloc 1 1M\np2: touch 1\np2: free 1\n"
    )
    doc = _run(tmp_path, text, "machine.min_free=0")
    s = summary_of(doc)
    assert s["rss_peak_bytes"] == doc["system"]["ram_bytes"] - doc["system"]["free_bytes_min"]
    assert 1 << 20 <= s["rss_peak_bytes"] < (1 << 20) + (64 << 10)
    assert s["rss_peak_sum_bytes"] >= 2 << 20
    assert s["rss_peak_sum_bytes"] == sum(p["rss_peak_bytes"] for p in doc["processes"])


# ---------------------------------------------------------------------------------------------- imports


def test_reading_results_does_not_load_the_engine() -> None:
    """The report, the metrics, the settings and the docs import without the simulator or the kernel."""
    code = (
        "import sys\n"
        "import vmexp.report, vmexp.report.sweep, vmexp.report.table, vmexp.report.report\n"
        "import vmexp.report.run_figures, vmexp.report.sweep_figures, vmexp.report.__main__\n"
        "import vmexp.metrics, vmexp.config, vmexp.results, vmexp.registry, vmexp.fields\n"
        "bad = sorted(m for m in sys.modules if m in ('vmexp.sim', 'vmexp.app') or m.startswith('vmexp.kernel'))\n"
        "print(bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
