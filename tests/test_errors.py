"""Every error a user can cause, with the message the program gives for it.

Errors in the configuration or the input end the run with one line on
stderr that names the key or the line, exit status 2 and no traceback; they
are checked through ``python run.py`` as a user types it. Errors of the
simulated program at run time (a double free, a use after free, ENOMEM, an
OOM kill) are not errors of vmexp: the process stops or goes on as a real
one would, and metrics.json says what happened.

The last sections check that README.md's error table says what the program
prints, and that the simulator's resources are bounded: memory follows the
pages touched, not ``ram`` or the address space, and a run that would go on
forever stops at ``duration`` or at the job limits.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import settings as composed
from vmexp.kernel.system import System
from vmexp.metrics import write_run
from vmexp.sim import Result, simulate
from vmexp.validate.__main__ import main as main_validate
from vmexp.workload import build

ROOT = Path(__file__).resolve().parent.parent
_NO_TOOLS = [t for t in ("gcc", "strace") if shutil.which(t) is None]


# run.py is started once for all the cases of this file: each case runs run.py as __main__ (runpy)
# with its own sys.argv, stdout and stderr, in one interpreter, so that ~60 command lines cost one
# Python and Hydra start-up instead of sixty. What each case sees is what a user's shell shows.
# The working directory is the batch's own, so that a run without hydra.run.dir lands in its outputs/.
_DRIVER = r"""
import contextlib, io, json, runpy, sys
from hydra.core.global_hydra import GlobalHydra
run_py, argvs = json.loads(sys.stdin.read())
results = []
for argv in argvs:
    GlobalHydra.instance().clear()
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [run_py, *argv]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(run_py, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # what a user would see as a traceback
            import traceback
            err.write(traceback.format_exc())
            code = 1
    results.append([code, out.getvalue(), err.getvalue()])
sys.__stdout__.write(json.dumps(results))
"""

# Files the cases read, written into the batch's directory ({dir} in a case's command line).
FILES: dict[str, bytes] = {
    "my.trace": b"\n" * 11 + b"mallok 1 100\n",  # README's example: line 12
    "empty.trace": b"# nothing here\n\n",
    "not-utf8.trace": b"malloc 1 100\nfree 1\xff\n",
    "nul.trace": b"malloc 1 100\n\nfree\x001\n",
    "double-free.trace": b"malloc 1 100\nfree 1\nfree 1\nmalloc 2 10\n",
    "long.trace": b"malloc 0 64M\n" + b"touch 0\n" * 1000,
    "big.trace": b"malloc 0 1G\ntouch 0\n",
    "one.trace": b"malloc 1 1\n",
}


@dataclass(frozen=True)
class Outcome:
    """What ``python run.py ARGS`` did: exit status, stdout, stderr, and its run directory."""

    code: int
    stdout: str
    stderr: str
    run_dir: Path


class Batch:
    """Every command line of this file, run once; ``run(*args)`` looks one up."""

    def __init__(self, root: Path, cases: list[tuple[str, ...]]) -> None:
        self.dir = root
        for name, data in FILES.items():
            (root / name).write_bytes(data)
        self.cases = list(dict.fromkeys(cases))
        argvs = [
            [self.fill(a) for a in c] + ([] if c in DEFAULT_DIR else [f"hydra.run.dir={root / f'run{i}'}"])
            for i, c in enumerate(self.cases)
        ]
        # Two interpreters side by side, half the cases each: the machine has two cores.
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        halves = [list(range(len(argvs)))[k::2] for k in (0, 1)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _DRIVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=root,
                text=True,
                env=env,
            )
            for _ in halves
        ]
        with ThreadPoolExecutor(2) as pool:  # both at once: each communicate() waits for its process
            outputs = list(
                pool.map(
                    lambda ph: ph[0].communicate(
                        json.dumps([str(ROOT / "run.py"), [argvs[i] for i in ph[1]]]), timeout=600
                    ),
                    zip(procs, halves, strict=True),
                )
            )
        results: dict[int, list[Any]] = {}
        for p, half, (out, err) in zip(procs, halves, outputs, strict=True):
            assert p.returncode == 0, err[-3000:]
            results.update(zip(half, json.loads(out), strict=True))
        self.results = {
            c: Outcome(results[i][0], results[i][1], results[i][2], root / f"run{i}")
            for i, c in enumerate(self.cases)
        }

    def fill(self, text: str) -> str:
        return text.replace("{dir}", str(self.dir))

    def run(self, *args: str) -> Outcome:
        return self.results[args]


CASES: list[tuple[str, ...]] = []
DEFAULT_DIR: set[tuple[str, ...]] = set()  # cases run without hydra.run.dir: config.yaml's default place


def case(*args: str, default_dir: bool = False) -> tuple[str, ...]:
    """Register a command line for the batch (at collection time) and return its key."""
    CASES.append(args)
    if default_dir:
        DEFAULT_DIR.add(args)
    return args


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    return Batch(tmp_path_factory.mktemp("errors"), CASES)


PROGRESS = re.compile(r"simulated [0-9.e+]+ [a-z]+( of at most [0-9.e+]+ [a-z]+)? \([0-9]+ s\)")


def one_error_line(r: Outcome) -> str:
    """The contract of a user error: status 2, no traceback, exactly one line on stderr.

    A run that fails after two seconds of wall time has printed progress lines first ("simulated 130 ms
    of at most 10 s (2 s)"): on a loaded machine the runs stopped by job_memory do. They are output a
    user wants, not part of the error, and are left out of the count.
    """
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert r.code == 2, (r.code, r.stderr)
    lines = [line for line in r.stderr.splitlines() if not PROGRESS.fullmatch(line)]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("vmexp: error: "), lines[0]
    return lines[0]


def trace_file(tmp_path: Path, text: str | bytes, name: str = "t.trace") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------- config values

_SHORT_SLICE = (
    "is shorter than 10us, the shortest time slice: a slice runs to the end of the operation that uses it up "
    "(a fault takes 1 to 6 us of CPU), so a shorter one stops meaning its length, and each slice costs the "
    "simulator an event (at 1ns the default run takes hours)"
)
CONFIG_ERRORS = [
    ("threshold=banana", "threshold: expected a size such as 4096, 64k, 128K, 2M or 1G, got 'banana'"),
    ("threshold=64M", "threshold: 64M is above glibc's maximum of 32M (or null for glibc's dynamic default)"),
    ("page_size=3000", "page_size: must be one of 4k, 16k, 64k, 2M (a power of two the MMU supports)"),
    ("ram=1k", "ram: 1k is smaller than one page (4096 bytes)"),
    ("ram=-1", "ram: a size cannot be negative, got -1"),
    # Hydra reads 1e400 as a float, infinity: int(inf) was an OverflowError and a traceback.
    ("ram=1e400", "ram: expected a whole, non-negative number of bytes, got inf"),
    ("swap=1e20", "swap: 1e+20 is too large for a size (at most 2^64-1 bytes)"),  # Hydra: a float
    ("nprocs=0", "nprocs: must be an integer >= 1, got 0"),
    # The schema's type checks are OmegaConf's; their wording is put in vmexp's.
    ("nprocs=abc", "nprocs: expected an integer, got 'abc'"),
    ("seed=1.5", "seed: expected an integer, got '1.5'"),
    ("address_space.aslr=maybe", "address_space.aslr: expected true or false, got 'maybe'"),
    ("figures=2", "figures: expected true or false, got 2"),  # OmegaConf's bool took any integer as true
    ("heap_snapshots=50ms", "heap_snapshots: expected a list, written in brackets: heap_snapshots=[...]"),
    ("++objective=minflt", "objective: expected a mapping, written in braces: ++objective='{KEY: VALUE}'"),
    ("duration=-1s", "duration: a duration cannot be negative, got '-1s'"),
    ("duration=0", "duration: must be greater than 0"),
    ("duration=1e400s", "duration: '1e400s' is too long a duration (at most 2^63-1 ns, about 292 years)"),
    ("machine.quantum=0", f"machine.quantum: 0 {_SHORT_SLICE}"),
    ("machine.quantum=1ns", f"machine.quantum: 1ns {_SHORT_SLICE}"),  # accepted, it ran for hours
    ("machine.ncpus=2 machine.swap_irq_cpu=2",
     "machine.swap_irq_cpu: CPU 2 does not exist (machine.ncpus is 2: CPUs 0 to 1)"),
    ("machine.swap_irq_cpu=-1", "machine.swap_irq_cpu: must be an integer >= 0, got -1"),
    (
        "machine.swap_device=floppy",
        "machine.swap_device: 'floppy' is not one of hdd, ssd, nvme, zram (or give latency and bandwidth)",
    ),
    ("machine.swap_device={latency:40us,bandwidth:1G,max_segments:0}",
     "machine.swap_device.max_segments: a whole number of pages, at least 1, got 0"),
    ("machine.swap_device={latency:40us,bandwidth:1G,segments:128}",
     "machine.swap_device.segments: unknown key "
     "(valid: name, latency, bandwidth, rotational, max_segments, queue_depth)"),
    ("machine.swap_device={latency:40us,bandwidth:1G,queue_depth:0}",
     "machine.swap_device.queue_depth: a whole number of requests, at least 1, got 0"),
    ("machine.swap_device={latency:40us,bandwidth:1G,queue_depth:2.5}",
     "machine.swap_device.queue_depth: a whole number of requests, at least 1, got 2.5"),
    ("policy.scope=sideways", "policy.scope: 'sideways' is not one of global, local"),
    ("job_timeout=0", "job_timeout: must be greater than 0 (or null for no limit)"),
    ("job_memory=1M", "job_memory: 1M is too small to run anything (at least 16M)"),
    ("workload=trace", "workload.path: workload=trace needs a trace file (workload.path=FILE)"),
    ("workload=pageref", "workload.path: workload=pageref needs workload.path=FILE or workload.refs=[...]"),
    ("workload=pageref workload.refs=[1,-2]", "workload.refs:2: bad page number '-2' (expected a non-negative integer)"),
    # i386's user space ends at 3 GiB: page 2^20 (4 GiB) ran, in a VMA past the top of user space.
    ("workload=pageref workload.refs=[1,1048576] address_space=i386",
     "workload.refs: page 1,048,576 of the reference string lies above the user address space "
     "(i386: pages 0 to 786,431 of 4 KiB)"),
    ("policy=opt", "policy=opt: OPT needs the future, so it runs only with workload=pageref (one process)"),
    ("policy=opt workload=trace workload.path={dir}/one.trace",
     "policy=opt: OPT needs the future, so it runs only with workload=pageref (one process)"),
    # Unknown keys below the top level: Hydra's struct check, turned into one line.
    # ... and below a component, the component's parameters are the valid keys.
    ("workload.bogus=1", "workload.bogus: not a parameter of workload kind mix (valid: processes)"),
    ("policy.params.bogus=1",
     "policy.params.bogus: not a parameter of policy linux "
     "(valid: inactive_ratio, page_size, stats_flush, stats_flush_first, swappiness)"),
    ("policy=ws policy.params.tua=10ms", "policy.params.tua: not a parameter of policy ws (valid: tau)"),
    ("allocator=best_fit allocator.top_pad=1M",
     "allocator.top_pad: not a parameter of allocator best_fit (valid: trim_threshold)"),
    ("foo=1", "foo: unknown key (see python run.py --help for the valid keys)"),
    # Values glibc's mallopt would refuse (mallopt takes an int; M_MMAP_THRESHOLD at most HEAP_MAX_SIZE/2).
    ("allocator.trim_threshold=9223372036854775808",
     "allocator.trim_threshold: 9223372036854775808 is more than mallopt takes (an int: at most 2147483647)"),
    ("allocator.top_pad=2G", "allocator.top_pad: 2G is more than mallopt takes (an int: at most 2147483647)"),
    ("allocator.mmap_max=2147483648", "allocator.mmap_max: 2147483648 is more than mallopt takes (an int: at most 2147483647)"),
    ("allocator.mmap_max=1.5", "allocator.mmap_max: must be an integer between 0 and 2147483647, got 1.5"),
    ("threshold=32M+1", "threshold: expected a size such as 4096, 64k, 128K, 2M or 1G, got '32M+1'"),
    ("threshold=33554433", "threshold: 33554433 is above glibc's maximum of 32M (or null for glibc's dynamic default)"),
    ("allocator=first_fit threshold=64k",
     "threshold: allocator first_fit has no mmap threshold (set it with allocator=glibc, or leave threshold null)"),
    # Files.
    ("workload=trace workload.path={dir}/nope.trace", "{dir}/nope.trace: no such file"),
    ("workload=trace workload.path={dir}", "{dir}: is a directory, not a trace file"),
    ("workload=pageref workload.path=/dev/zero", "/dev/zero: is a device, not a trace file"),  # read forever
    ("workload=trace workload.path={dir}/not-utf8.trace", "{dir}/not-utf8.trace:2: not UTF-8 text (byte 0xff at offset 19)"),
    ("workload=trace workload.path={dir}/nul.trace", "{dir}/nul.trace:3: not a text file (NUL byte at offset 18)"),
    ("workload=trace workload.path={dir}/empty.trace", "workload.path: {dir}/empty.trace holds no operations"),
    ("workload=pageref workload.path={dir}/refs.txt", "{dir}/refs.txt: no such file"),
    ("workload=pageref workload.path={dir}/empty.trace", "workload.path: {dir}/empty.trace holds no page numbers"),
]  # fmt: skip
CONFIG_KEYS = [case(*o.split()) for o, _ in CONFIG_ERRORS]


@pytest.mark.parametrize(("overrides", "message"), CONFIG_ERRORS, ids=[o for o, _ in CONFIG_ERRORS])
def test_a_bad_value_key_or_file_is_one_line_naming_it(batch: Batch, overrides: str, message: str) -> None:
    r = batch.run(*overrides.split())
    assert one_error_line(r) == batch.fill(f"vmexp: error: {message}")
    assert not (r.run_dir / "metrics.json").exists()


GROUPS = [case(f"{g}=nope") for g in ("policy", "allocator", "address_space")]

# ---------------------------------------------------------------------------------------------- hints (issue 14)

HINTS = [
    # A comma list without -m: Hydra's advice (add --multirun) was cut off; it is the message now.
    (("threshold=64k,128k",),
     "threshold: 64k,128k is several values: a sweep needs -m (python run.py -m threshold=64k,128k); "
     "a list is written threshold=[64k,128k], text with a comma threshold='\"64k,128k\"'"),
    (("experiment=thrashing",),
     "experiment=thrashing: this preset is a sweep (nprocs=range(1,13), machine.load_control=none,ws): add -m "
     "(python run.py -m experiment=thrashing"),
    (("policy=LRU",),
     "In 'config': Could not find 'policy/LRU' (valid: clock, fifo, lfu, linux, lru, lru2q, opt, random, ws; "
     "names are lower case: policy=lru)"),
    (("hydra.run.dir={dir}/a=b",),
     "hydra.run.dir: a value with '=' in it must be quoted: hydra.run.dir='{dir}/a=b' (Hydra's override syntax)"),
    (("+threshhold=64k", "workload=trace", "workload.path={dir}/one.trace"),
     "threshhold: unknown key (did you mean threshold? see python run.py --help for the valid keys)"),
    # Hydra checks its own flags before anything runs: that ValueError was a traceback.
    (("--cfg", "hydra", "-m", "threshold=64k,128k"),
     "Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified"),
    # A parameter the group's YAML leaves out is refused by Hydra's struct mode: it used to say
    # "not a parameter of workload kind generator (valid: ..., volume)", listing the key it refused.
    (("workload=batch", "workload.volume=1G"),
     "workload.volume: a parameter of workload kind generator that this config does not set; "
     "add it with '+': +workload.volume=1G"),
    (("workload=batch", "workload.arrival.mode=every"),
     "workload.arrival: a parameter of workload kind generator that this config does not set; "
     "add it with '+': +workload.arrival.mode=every"),
    (("workload=batch", "workload.access.compute=1us"),
     "workload.access.compute: a parameter of access pattern uniform that this config does not set; "
     "add it with '+': +workload.access.compute=1us"),
    # A mapping of another kind is merged into the preset's, not put in its place.
    (("workload=batch", "workload.sizes={dist: fixed, size: 100}"),
     "workload.sizes.size: a parameter of sizes dist fixed, but workload.sizes={...} is merged into this "
     "config's workload.sizes, which does not set it; to replace workload.sizes: "
     "'~workload.sizes' '+workload.sizes={dist: fixed, size: 100}'"),
    (("workload=batch", "~workload.sizes", "+workload.sizes={dist: fixed, size: 100}", "workload.allocs=5",
      "figures=false"), ""),
    # majflt is a metric objective takes: the map starts empty, and Hydra adds keys only with '+'.
    (("objective={majflt: 1}",),
     "objective.majflt: objective's keys are yours to add, with '++': ++objective.majflt=1 or ++objective={majflt: 1}"),
]  # fmt: skip
HINT_KEYS = [case(*a) for a, _ in HINTS]


@pytest.mark.parametrize(("args", "message"), HINTS, ids=[a[0] for a, _ in HINTS])
def test_an_error_keeps_its_hint(batch: Batch, args: tuple[str, ...], message: str) -> None:
    r = batch.run(*args)
    if not message:  # the command a hint recommends: it runs
        assert r.code == 0, r.stderr
        return
    line = one_error_line(r)
    assert line.startswith(batch.fill(f"vmexp: error: {message}")), line
    assert not (r.run_dir / "metrics.json").exists()


PRESET_WITHOUT_M = case("experiment=thrashing", "figures=false")


def test_a_preset_without_m_suggests_the_sweep_into_the_directory_asked_for(batch: Batch) -> None:
    """A sweep ignores hydra.run.dir: the suggested command asks for the same place as hydra.sweep.dir."""
    r = batch.run(*PRESET_WITHOUT_M)  # the batch gives it hydra.run.dir=<its run dir>
    line = one_error_line(r)
    assert line.endswith(
        f"add -m (python run.py -m experiment=thrashing figures=false hydra.sweep.dir={r.run_dir})"
    ), line


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["experiment=thrashing", "hydra.run.dir=out/x"], "experiment=thrashing hydra.sweep.dir=out/x"),
        (["++hydra.run.dir=out/x", "experiment=thrashing"], "++hydra.sweep.dir=out/x experiment=thrashing"),
        # A sweep directory the user gave wins; the run directory, which -m ignores, goes.
        (["hydra.run.dir=a", "hydra.sweep.dir=b", "experiment=t"], "hydra.sweep.dir=b experiment=t"),
        # Flags keep their values (-cn NAME), --run would contradict -m, and the shell gets quotes.
        (["-cn", "mine", "--run", "experiment=t", "hydra.run.dir=my runs/x", "nprocs=range(1,3)"],
         "-cn mine experiment=t 'hydra.sweep.dir=my runs/x' 'nprocs=range(1,3)'"),
    ],
)  # fmt: skip
def test_the_suggested_sweep_command_is_one_a_shell_runs(argv: list[str], command: str) -> None:
    from vmexp.app import _multirun_command

    assert _multirun_command(argv) == command


def test_a_value_mallopt_refuses_is_a_user_error_not_a_crash(batch: Batch) -> None:
    """The confirmed bug: this escaped as an internal error (exit 1, a traceback file)."""
    r = batch.run("allocator.trim_threshold=9223372036854775808")
    one_error_line(r)
    assert not (r.run_dir / "error.txt").exists()
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"


HELP = case("--help", default_dir=True)  # alone, as typed: vmexp renders it without Hydra
HELP_VIA_HYDRA = case("--help", "seed=0")  # an override: Hydra composes the config and renders the help


def test_help_alone_is_the_text_hydra_renders(batch: Batch) -> None:
    """``--help`` alone skips Hydra (2 s of CPU listing config groups); it must print Hydra's text."""
    alone, hydra = batch.run(*HELP), batch.run(*HELP_VIA_HYDRA)
    assert alone.code == hydra.code == 0, hydra.stderr
    assert alone.stdout == hydra.stdout and alone.stderr == hydra.stderr == ""


def test_help_explains_every_key_with_its_unit_and_default(batch: Batch) -> None:
    from vmexp.config import Settings
    from vmexp.fields import iter_specs

    r = batch.run(*HELP)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    for key, spec in iter_specs(Settings):
        if spec.kind in ("section", "open"):
            if spec.group:  # a group: its heading says what it is and its default option
                assert any(line.startswith(f"== {key} ==  {key}=OPTION (default ") for line in lines), key
            continue
        at = next((i for i, line in enumerate(lines) if line.split()[:1] == [key]), None)
        assert at is not None, f"--help does not explain {key}"
        row = lines[at]
        # Under its own heading: cgroup.memory_max is not a key of the policy group printed before it.
        heading = next(line for line in reversed(lines[:at]) if line.startswith("== "))
        assert heading.split()[1] == (key.split(".")[0] if "." in key else "Settings"), (key, heading)
        assert spec.doc in " ".join(lines), key
        assert spec.written_default() in row or spec.written_default() in " ".join(lines), key
    ram = next(line for line in lines if line.split()[:1] == ["ram"])
    assert ram.split()[1:3] == ["64M", "bytes"] and "physical memory" in ram
    assert "tau (10ms, time): the working-set window" in r.stdout  # a policy's parameters
    assert "kB, KB and KiB all mean 1024 bytes" in r.stdout
    assert "policy: clock, fifo, lfu, linux, lru, lru2q, opt, random, ws" in r.stdout  # the group options
    for group in ("address_space", "machine", "policy", "allocator", "workload"):
        assert f"\n== {group} ==  {group}=OPTION" in r.stdout, group
    assert "\nexperiment: address_space, belady," in r.stdout  # the presets, listed with the option files


def test_the_validate_command_help_points_to_files_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main_validate(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "DESIGN.md" not in out and "README.md" in out
    assert (ROOT / "README.md").is_file()


@pytest.mark.parametrize("args", GROUPS, ids=[a[0] for a in GROUPS])
def test_an_unknown_group_option_names_the_group(batch: Batch, args: tuple[str, ...]) -> None:
    group = args[0].split("=")[0]
    line = one_error_line(batch.run(*args))
    assert line.startswith(f"vmexp: error: In 'config': Could not find '{group}/nope'")


def test_an_unknown_group_option_lists_the_valid_ones(batch: Batch) -> None:
    line = one_error_line(batch.run("policy=nope"))
    assert "clock" in line and "lru2q" in line and "ws" in line


def test_an_unknown_top_level_key_is_named_as_unknown(batch: Batch) -> None:
    line = one_error_line(batch.run("foo=1"))
    assert line == "vmexp: error: foo: unknown key (see python run.py --help for the valid keys)"


ADDED = case("+threshhold=64k", "workload=trace", "workload.path={dir}/one.trace")


def test_an_added_unknown_key_is_refused(batch: Batch) -> None:
    assert one_error_line(batch.run(*ADDED)).startswith("vmexp: error: threshhold: unknown key")


OPT = case("policy=opt", "workload=pageref", "workload.refs=[7,0,1,2,0,3,0,4,2,3,0,3,2,1,2,0,1,7,0,1]",
           "ram=12k", "machine.min_free=0", "figures=false")  # fmt: skip


def test_policy_opt_runs_with_a_page_reference_string(batch: Batch) -> None:
    """The other side of the opt error: with the future known, OPT gives the textbook 9 faults."""
    r = batch.run(*OPT)
    assert r.code == 0, r.stderr
    (p,) = json.loads((r.run_dir / "metrics.json").read_text())["processes"]
    assert p["minflt"] + p["majflt"] == 9


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a file without read permission, so the error cannot happen as root"
)
def test_a_trace_file_without_read_permission(tmp_path: Path) -> None:
    path = trace_file(tmp_path, "malloc 1 100\n")
    path.chmod(0)
    try:
        r = subprocess.run(
            [sys.executable, "run.py", "workload=trace", f"workload.path={path}", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        path.chmod(0o644)
    line = one_error_line(Outcome(r.returncode, r.stdout, r.stderr, tmp_path))
    assert line == f"vmexp: error: {path}: cannot read the file (permission denied)"


def test_a_python_without_vmexps_packages_is_told_so_in_one_line(tmp_path: Path) -> None:
    # The commonest slip: run.py started by another Python than the one vmexp was installed
    # into. `-S` leaves out site-packages, so vmexp's own modules import and the first third-party
    # one (hydra, numpy, yaml...) does not.
    r = subprocess.run(
        [sys.executable, "-S", "run.py", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_error_line(Outcome(r.returncode, r.stdout, r.stderr, tmp_path))
    assert re.fullmatch(
        rf"vmexp: error: {re.escape(sys.executable)} cannot import \w+: install vmexp .*", line
    )
    assert not (tmp_path / "run").exists()


def test_a_trace_file_without_read_permission_is_a_trace_error_in_process(tmp_path: Path) -> None:
    """The same path whoever runs the tests: the OS's refusal becomes the one-line message."""
    from vmexp.workload.traces import TraceError, parse_trace

    def denied(*_a: object, **_k: object) -> object:
        raise PermissionError(13, "Permission denied")

    path = trace_file(tmp_path, "malloc 1 100\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("builtins.open", denied)
        with pytest.raises(
            TraceError, match=rf"^{re.escape(str(path))}: cannot read the file \(permission denied\)$"
        ):
            parse_trace(path)


# ---------------------------------------------------------------------------------------------- malformed traces

MALFORMED = [
    ("malloc 1 100\nmallok 2 100\n",
     "2: unknown operation 'mallok' (expected one of malloc, calloc, realloc, free, touch, compute)"),
    ("malloc x 100\n", "1: id must be a non-negative integer, got 'x'"),
    ("malloc -1 100\n", "1: id must be a non-negative integer, got '-1'"),
    ("# header\n\nmalloc 1\n", "3: wrong number of fields for 'malloc': expected 'malloc ID SIZE', got 1 argument(s)"),
    ("malloc 1 12q\n", "1: bad size '12q': expected a size such as 4096, 64k, 128K, 2M or 1G, got '12q'"),
    ("malloc 1 100\ntouch 1 0 10 x\n", "2: touch mode must be r or w, got 'x'"),
    ("compute fast\n", "1: bad duration 'fast': expected a duration such as 10us, 5ms or 2s, got 'fast'"),
    ("p1: malloc 1 100\nfree 1\n", "2: this line has no pPID: prefix but earlier lines have one (prefix all or none)"),
    ("p0: malloc 1 100\n", "1: bad process prefix 'p0:': PID must be between 1 and 2^63-1"),
    ("malloc 99999999999999999999 1\n", "1: id 99999999999999999999 is larger than 2^63-1"),
]  # fmt: skip
for _i, (_text, _m) in enumerate(MALFORMED):
    FILES[f"malformed{_i}.trace"] = _text.encode()
MALFORMED_KEYS = [
    case("workload=trace", f"workload.path={{dir}}/malformed{i}.trace") for i in range(len(MALFORMED))
]


@pytest.mark.parametrize("i", range(len(MALFORMED)), ids=[m.split(":")[1].strip()[:30] for _, m in MALFORMED])
def test_a_malformed_trace_line_is_named(batch: Batch, i: int) -> None:
    line = one_error_line(batch.run(*MALFORMED_KEYS[i]))
    assert line == batch.fill(f"vmexp: error: {{dir}}/malformed{i}.trace:{MALFORMED[i][1]}")


DOUBLE_FREE = case("workload=trace", "workload.path={dir}/double-free.trace", "figures=false")


def test_a_double_free_ends_its_process_in_metrics_json_not_the_run(batch: Batch) -> None:
    """Through run.py: the run succeeds (status 0, run.json ok) and metrics.json says what happened."""
    r = batch.run(*DOUBLE_FREE)
    assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    (p,) = json.loads((r.run_dir / "metrics.json").read_text())["processes"]
    assert p["exit"] == "double-free" and p["ops"] == 3  # malloc 2 never ran
    assert p["error"] == (
        "operation 2 (trace line 3): free of id 1, which is not allocated (glibc would abort: free(): double free detected)"
    )
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "ok"


# Errors of the simulated program, not of the input: glibc would abort or the program would crash;
# the simulator stops that process cleanly, records why, and the run goes on.
RUNTIME = [
    # An id the trace never allocated is a pointer malloc never returned, not a double free.
    ("malloc 1 100\n# a comment\nfree 7\n", "invalid-pointer",
     "operation 1 (trace line 3): free of id 7, which the trace never allocated (glibc would abort: free(): invalid pointer)"),
    # A double free is one also after the id was reused, or freed by realloc(p, 0).
    ("malloc 1 100\nfree 1\nmalloc 1 50\nfree 1\nfree 1\n", "double-free",
     "operation 4 (trace line 5): free of id 1, which is not allocated (glibc would abort: free(): double free detected)"),
    ("malloc 1 100\nrealloc 1 0\nfree 1\n", "double-free",
     "operation 2 (trace line 3): free of id 1, which is not allocated (glibc would abort: free(): double free detected)"),
    ("malloc 1 100\nfree 1\ntouch 1\n", "use-after-free",
     "operation 2 (trace line 3): touch of id 1, which is not allocated (it was freed: a use after free)"),
    ("malloc 1 100\nrealloc 1 0\ntouch 1 0 8 r\n", "use-after-free",
     "operation 2 (trace line 3): touch of id 1, which is not allocated (it was freed: a use after free)"),
    # A pointer malloc never returned maps nothing: the program takes SIGSEGV, it frees nothing.
    ("malloc 1 100\ntouch 7 0 8 r\n", "segfault",
     "operation 1 (trace line 2): touch of id 7, which the trace never allocated (a wild pointer: SIGSEGV)"),
    ("malloc 1 100\nfree 1\nrealloc 1 20\ntouch 1\n", "ok", ""),  # realloc of a freed id is realloc(NULL, n), as in C
    ("malloc 1 100\nmalloc 1 200\n", "bad-id",
     "operation 1 (trace line 2): malloc of id 1, which is still allocated (free it first)"),
    ("malloc 1 100\ntouch 1 96 8\n", "segfault",
     "operation 1 (trace line 2): touch 1 [96, 104) is outside its 100-byte block"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "exit", "error"), RUNTIME, ids=[e if e != "ok" else "realloc-null" for _, e, _ in RUNTIME]
)
def test_a_program_error_stops_that_process_cleanly(tmp_path: Path, text: str, exit: str, error: str) -> None:
    """In-process, with the invariant checker on, and through metrics.json as run.py writes it."""
    r = simulate_text(tmp_path, text)
    write_run(tmp_path / "run", r)
    (p,) = json.loads((tmp_path / "run" / "metrics.json").read_text())["processes"]
    assert (p["exit"], p["error"]) == (exit, error)


def test_a_double_free_stops_only_its_own_process(tmp_path: Path) -> None:
    text = "p1: malloc 1 100\np1: free 1\np1: free 1\np1: malloc 2 10\np2: malloc 1 100\np2: touch 1\np2: free 1\n"
    procs = {p.pid: p for p in simulate_text(tmp_path, text).processes}
    assert procs[1].exit == "double-free" and procs[1].ops == 3  # malloc 2 never ran
    assert procs[2].exit == "ok" and procs[2].ops == 3


# ---------------------------------------------------------------------------------------------- the other commands


@pytest.mark.parametrize(
    ("kind", "name", "data", "message"),
    [
        ("valgrind", "missing.log", None, "{p}: no such file"),
        ("valgrind", ".", None, "{p}: is a directory, not a log file"),  # said "not a trace file"
        ("ltrace", "t.trace", b"malloc 1 100\n", "{p}: no allocation calls found (is it a ltrace log?)"),
        ("valgrind", "empty.log", b"", "{p}: no allocation calls found (is it a valgrind log?)"),
    ],
    ids=["missing", "directory", "not-a-log", "empty"],
)
def test_the_importer_command_says_what_is_wrong_with_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, name: str, data: bytes | None, message: str
) -> None:
    from vmexp.workload.importers import main

    path = tmp_path if name == "." else tmp_path / name
    if data is not None:
        path.write_bytes(data)
    assert main([kind, str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"importers: error: {message.format(p=path)}\n"


@pytest.mark.parametrize(
    ("name", "data", "overrides", "message"),
    [
        ("missing.trace", None, [], "{p}: no such file"),
        (".", None, [], "{p}: is a directory, not a trace file"),
        ("bad.trace", b"malloc 1 100\nmallok 2 1\n", [],
         "{p}:2: unknown operation 'mallok' (expected one of malloc, calloc, realloc, free, touch, compute)"),
        ("ok.trace", b"malloc 1 100\n", ["threshold=banana"],
         "threshold: expected a size such as 4096, 64k, 128K, 2M or 1G, got 'banana'"),
    ],
    ids=["missing", "directory", "bad-line", "bad-override"],
)  # fmt: skip
def test_the_validate_command_says_what_is_wrong_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes | None, overrides: list[str],
    message: str,
) -> None:  # fmt: skip
    path = tmp_path if name == "." else tmp_path / name
    if data is not None:
        path.write_bytes(data)
    assert main_validate([str(path), *overrides]) == 2
    assert capsys.readouterr().err == f"vmexp.validate: error: {message.format(p=path)}\n"


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("vmexp.compare", ["only-a"], "vmexp.compare: error: the following arguments are required: b "
         "(see python -m vmexp.compare --help)"),
        ("vmexp.report.__main__", [], "vmexp.report: error: the following arguments are required: dir "
         "(see python -m vmexp.report --help)"),
        ("vmexp.validate.__main__", ["kernel", "x.trace", "--runs", "abc"],
         "vmexp.validate kernel: error: argument --runs: invalid int value: 'abc' "
         "(see python -m vmexp.validate kernel --help)"),
        ("vmexp.validate.__main__", ["kernel", "x.trace", "--runs", "0"],
         "vmexp.validate kernel: error: --runs must be at least 1 (see python -m vmexp.validate kernel --help)"),
        ("vmexp.validate.__main__", ["x.trace", "--bogus"],
         "vmexp.validate: error: unrecognized arguments: --bogus (see python -m vmexp.validate --help)"),
        ("vmexp.workload.importers", ["strace", "x.log"],
         "importers: error: argument kind: invalid choice: 'strace' (choose from 'ltrace', 'valgrind') "
         "(see python -m vmexp.workload.importers --help)"),
    ],
    ids=["compare", "report", "kernel-type", "kernel-range", "validate-flag", "importers"],
)  # fmt: skip
def test_a_misused_command_line_is_one_line_pointing_to_help(
    capsys: pytest.CaptureFixture[str], module: str, argv: list[str], message: str
) -> None:
    """argparse printed its usage block above the error: every other bad input is one line (exit 2)."""
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err == message + "\n"


BAD_FLAGS = [case("--bogus"), case("--cfg", "bogus")]
FLAG_BETWEEN = case("threshold=64k", "--cfg", "job", "nprocs=3")


def test_a_flag_between_overrides_is_taken_as_hydra_takes_it_first(batch: Batch) -> None:
    """argparse refused overrides on both sides of a flag ("unrecognized arguments: nprocs=3")."""
    r = batch.run(*FLAG_BETWEEN)
    assert r.code == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert (cfg["threshold"], cfg["nprocs"]) == ("64k", 3)


@pytest.mark.parametrize(
    ("argv", "ordered"),
    [
        (["a=1", "-m", "b=2"], ["-m", "a=1", "b=2"]),
        (["a=1", "--cfg", "job", "b=2"], ["--cfg", "job", "a=1", "b=2"]),
        (["a=1", "--package=x", "-c", "job"], ["--package=x", "-c", "job", "a=1"]),
        (["-m", "a=1"], ["-m", "a=1"]),
        (["a=1", "--bogus"], None),  # argparse names it
    ],
)
def test_flags_move_before_the_overrides_in_their_order(argv: list[str], ordered: list[str] | None) -> None:
    from hydra._internal.utils import get_args_parser

    from vmexp.cli import _flags_first

    assert _flags_first(get_args_parser(), argv) == ordered


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (BAD_FLAGS[0], "vmexp: error: unrecognized arguments: --bogus (see --help)"),
        (BAD_FLAGS[1], "vmexp: error: argument --cfg/-c: invalid choice: 'bogus' (choose from 'job', 'hydra', "
         "'all') (see --help)"),
    ],
)  # fmt: skip
def test_a_misused_flag_of_run_py_is_one_line(batch: Batch, args: tuple[str, ...], message: str) -> None:
    """Hydra's flags are parsed by argparse, whose usage block (a dozen lines) came before the error."""
    assert one_error_line(batch.run(*args)) == message


@pytest.mark.skipif(
    bool(_NO_TOOLS), reason=f"needs {' and '.join(_NO_TOOLS)} to replay against the real glibc"
)
def test_validate_reports_a_double_free_with_the_trace_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """glibc would abort on the double free; the simulated process ends there, and validate says where."""
    path = tmp_path / "df.trace"
    path.write_bytes(FILES["double-free.trace"])
    assert main_validate([str(path)]) == 2
    assert capsys.readouterr().err == (
        "vmexp.validate: error: the simulator's process 1 ended double-free: operation 2 (trace line 3): "
        "free of id 1, which is not allocated (glibc would abort: free(): double free detected)\n"
    )


# ---------------------------------------------------------------------------------------------- ENOMEM and OOM


def simulate_text(tmp_path: Path, text: str, *overrides: str, check: bool = True) -> Result:
    s = composed("workload=trace", f"workload.path={trace_file(tmp_path, text)}", *overrides)
    return simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=check)


def test_address_space_exhaustion_is_enomem_recorded_not_fatal(tmp_path: Path) -> None:
    """i386 has 3 GiB of user space: of 1 GiB blocks two fit beside the program and stack, the rest is NULL.

    RAM is 4 GiB, so that Linux's overcommit check (one request at most RAM + swap) grants each block.
    """
    text = "".join(f"malloc {i} 1G\n" for i in range(5)) + "touch 4\nfree 4\nmalloc 9 100\ntouch 9\n"
    r = simulate_text(tmp_path, text, "address_space=i386", "ram=4G", "swap=0")
    (p,) = r.processes
    assert p.exit == "ok" and p.error == ""
    assert p.enomem == 3  # blocks 2, 3 and 4
    assert p.skipped_ops == 1  # the touch of the NULL block 4; its free is free(NULL)
    assert p.vsz_peak_bytes < 3 << 30
    failed = [c for c in r.syscalls if c[3] == "mmap" and c[6] == -1]
    assert failed, "the failed mmap calls are in the syscall log"


def test_a_request_larger_than_the_address_space_is_enomem(tmp_path: Path) -> None:
    r = simulate_text(tmp_path, "malloc 0 4611686018427387904\ntouch 0\nfree 0\nmalloc 1 64\n")
    (p,) = r.processes
    assert (p.exit, p.enomem, p.skipped_ops) == ("ok", 1, 1)


def test_an_oom_kill_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    """RAM 1 MiB and swap 1 MiB; p1 touches 3 MiB (two blocks, each within the overcommit limit of
    RAM + swap), so when memory and swap are full the OOM killer picks p1 (the most RSS + swap, as
    oom_badness does) and p2 finishes."""
    p1 = "p1: malloc 0 1536k\np1: malloc 1 1536k\np1: touch 0\np1: touch 1\np1: compute 100ms\n"
    text = p1 + "p2: malloc 0 64k\np2: touch 0\np2: free 0\n"
    s = composed("workload=trace", f"workload.path={trace_file(tmp_path, text)}", "ram=1M", "swap=1M",
                 "explain=true", "machine.min_free=0")  # fmt: skip
    r = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=True)
    procs = {p.pid: p for p in r.processes}
    assert procs[1].exit == "oom-killed" and procs[2].exit == "ok"
    assert r.system["oom_kills"] == 1
    (kill,) = r.system["oom_kill_log"]
    assert kill["pid"] == 1 and kill["name"] == "trace.p1"
    assert kill["rss_bytes"] + kill["swap_bytes"] > 1 << 20  # more than half of RAM + swap: the biggest
    assert r.explain is not None and any(
        line.strip().startswith("OOM: kill p1 (trace.p1)") for line in r.explain
    )


# ---------------------------------------------------------------------------------------------- README


def readme_error_table() -> list[tuple[str, str]]:
    """The rows of README.md's error table: (what the user wrote, what vmexp says)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].startswith("`vmexp: error:"):
            rows.append((cells[0], cells[1].strip("`")))
    return rows


README_ROWS = readme_error_table()
# Rows where README.md and the program disagree (issue 8 asks the README to match).
# README rows that do not match what the program prints (strict xfail until fixed); none today.
README_WRONG: dict[str, str] = {}


def test_the_readme_error_table_is_found() -> None:
    assert len(README_ROWS) >= 11
    assert {w for w in README_WRONG} <= {w for w, _ in README_ROWS}


def readme_case(wrote: str) -> tuple[str, ...]:
    """The command line of a README row (the cells read `threshold=banana` or `workload=trace` (no path))."""
    if wrote == "a bad trace line":
        return case("workload=trace", "workload.path={dir}/my.trace")
    return case(*wrote.split("`")[1].split())


README_KEYS = [readme_case(w) for w, _ in README_ROWS]


@pytest.mark.parametrize(
    ("i", "wrote", "says"),
    [
        pytest.param(
            i,
            w,
            s,
            marks=[pytest.mark.xfail(reason=README_WRONG[w], strict=True)] if w in README_WRONG else [],
        )
        for i, (w, s) in enumerate(README_ROWS)
    ],
    ids=[w.strip("`") for w, _ in README_ROWS],
)
def test_the_readme_error_table_says_what_the_program_prints(
    batch: Batch, i: int, wrote: str, says: str
) -> None:
    line = one_error_line(batch.run(*README_KEYS[i]))
    says = says.replace("my.trace", batch.fill("{dir}/my.trace"))
    if says.endswith(" ..."):
        assert line.startswith(says.removesuffix(" ...")), line
    else:
        assert line == says


# ---------------------------------------------------------------------------------------------- resources


def peak_memory(tmp_path: Path, text: str, *overrides: str) -> int:
    """Peak bytes Python allocated while simulating (tracemalloc), the settings composed beforehand."""
    s = composed("workload=trace", f"workload.path={trace_file(tmp_path, text)}", "nprocs=1", *overrides)
    specs = build(s.workload, s.nprocs, s.seed, s.page_size)
    gc.collect()
    tracemalloc.start()
    try:
        r = simulate(s, specs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.processes[0].exit == "ok"
    return peak


def test_memory_follows_the_pages_touched_not_ram_or_swap(tmp_path: Path) -> None:
    text = "malloc 0 4M\ntouch 0\nmalloc 1 100\ntouch 1\nfree 0\nfree 1\n"
    peak_memory(tmp_path, text)  # warm-up: imports and caches
    base = peak_memory(tmp_path, text, "ram=64M", "swap=256M")
    for ram, swap in (("1T", "256M"), ("64M", "1T"), ("1T", "1T")):
        peak = peak_memory(tmp_path, text, f"ram={ram}", f"swap={swap}")
        assert peak < base * 1.2 + 64 * 1024, (ram, swap, peak, base)
    # And it does follow the pages touched: 16 MiB touched (4096 pages) costs more than 4 MiB.
    assert peak_memory(tmp_path, text.replace("4M", "16M")) > base + 4096 * 50


def test_memory_does_not_follow_the_address_space(tmp_path: Path) -> None:
    """Two pages at the ends of the 47-bit user space cost what two neighbouring pages cost."""

    def peak(refs: str) -> int:
        s = composed("workload=pageref", f"workload.refs={refs}", "machine.min_free=0")
        specs = build(s.workload, s.nprocs, s.seed, s.page_size)
        gc.collect()
        tracemalloc.start()
        try:
            simulate(s, specs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak("[1,2]")
    near = peak("[1,2]")
    far = peak("[1,34359738366]")
    assert far < near * 1.2 + 64 * 1024, (near, far)


def test_a_workload_that_would_run_forever_stops_at_duration(tmp_path: Path) -> None:
    path = trace_file(tmp_path, "malloc 1 64\ncompute 1000s\nfree 1\n")
    s = composed("workload=trace", f"workload.path={path}", "duration=250ms")
    r = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size))
    (p,) = r.processes
    assert p.exit == "duration" and r.system["sim_time_s"] == 0.25
    assert p.ops == 2  # the free never ran


TIMEOUT = case(
    "workload=trace", "workload.path={dir}/long.trace", "ram=16M", "duration=60min", "job_timeout=300ms"
)


def test_job_timeout_stops_a_long_job_with_a_message(batch: Batch) -> None:
    r = batch.run(*TIMEOUT)
    line = one_error_line(r)
    assert re.fullmatch(
        r"vmexp: error: job_timeout: the job ran longer than 300 ms of wall time \(simulated time reached "
        r"[0-9.]+ s\); raise job_timeout or shorten duration",
        line,
    ), line
    info = json.loads((r.run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error"] == line.removeprefix("vmexp: error: ")


MEMORY = case("workload=trace", "workload.path={dir}/big.trace", "ram=2G", "job_memory=16M")


def test_job_memory_stops_a_job_that_tracks_too_many_pages(batch: Batch) -> None:
    """16 MiB of host memory at ~400 bytes per tracked page: the 1 GiB touch stops after ~42,000 pages."""
    line = one_error_line(batch.run(*MEMORY))
    m = re.fullmatch(
        r"vmexp: error: job_memory: the simulation tracks ([0-9,]+) pages, about [0-9.]+ MiB of host memory, "
        r"over job_memory=16 MiB; raise job_memory or shrink the workload",
        line,
    )
    assert m is not None, line
    assert 16 << 20 < int(m.group(1).replace(",", "")) * 400 < 1 << 30


RAY = case("-m", "threshold=64k", "hydra/launcher=ray_local")


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
    reason="the Ray extra is installed",
)
def test_the_ray_launcher_without_its_extra_says_how_to_install_it(batch: Batch) -> None:
    assert one_error_line(batch.run(*RAY)) == (
        "vmexp: error: In 'hydra/launcher/ray_local': Could not load 'hydra/launcher/ray'. "
        "(the Ray launcher is an extra: pip install -e '.[ray]')"
    )


OPTUNA = case("-m", "hydra/sweeper=optuna", "threshold=choice(64k,128k)", "hydra.sweep.dir={dir}/optuna")


def test_an_optuna_sweep_without_an_objective_is_refused_before_its_trials(batch: Batch) -> None:
    """Every trial returned None, which Hydra reported twice per trial, then 'No trials are completed yet'."""
    assert one_error_line(batch.run(*OPTUNA)) == (
        "vmexp: error: objective: hydra/sweeper=optuna minimises objective, which is empty: "
        "give it summary metrics and weights, e.g. ++objective={majflt: 1}"
    )
    assert not (batch.dir / "optuna").exists()


EXPLAIN = case("explain=true", "job_memory=16M")


def test_explain_stops_when_its_narration_would_fill_job_memory(batch: Batch) -> None:
    """~170 host bytes a line, ~700,000 lines a simulated second in a default run: 16 MiB lasts ~0.14 s."""
    r = batch.run(*EXPLAIN)
    line = one_error_line(r)
    m = re.fullmatch(
        r"vmexp: error: explain: the narration reached ([0-9,]+) lines at [0-9.]+ ms of simulated time, about "
        r"[0-9.]+ MiB of host memory, over job_memory=16 MiB; shorten duration or leave explain off",
        line,
    )
    assert m is not None, line
    assert int(m.group(1).replace(",", "")) * 170 > 16 << 20
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"


SAMPLES_NO_END = case(
    "workload=trace", "workload.path={dir}/long.trace", "sample_interval=1ns", "job_memory=16M"
)


def test_a_sample_interval_that_would_fill_the_hosts_memory_stops_the_run(batch: Batch) -> None:
    """Every sample is a row per process and one for the system, held until the run ends (~400 bytes each).

    The run stops when the rows reach job_memory, not before it from duration: duration only bounds a run
    (the held-out command's duration=1000000s runs a trace to its end, as the recorded-kernel tests do).
    """
    r = batch.run(*SAMPLES_NO_END)
    line = one_error_line(r)
    assert re.fullmatch(
        r"vmexp: error: sample_interval: timeseries.csv reached 41,944 rows \(a sample every 1 ns\) at [0-9.]+ us "
        r"of simulated time, about 16.00 MiB of host memory, over job_memory=16 MiB; raise sample_interval or job_memory",
        line,
    ), line
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"
    assert not (r.run_dir / "metrics.json").exists()


@pytest.mark.parametrize(
    ("override", "subdir"),
    [
        ("name=../../escaped", "7_name=escaped"),
        ("workload.path=/etc/passwd", "7_workload.path=passwd"),
        ("name=..", "7_name=.."),  # one path component named "7_name=..", not the parent
        ("name=a b;rm -rf ~", "7_name=a_b_rm_-rf__"),
        ("hydra.job.chdir=true", "7"),  # Hydra's own keys do not name jobs
    ],
)
def test_sweep_job_directories_cannot_leave_the_sweep_directory(
    monkeypatch: pytest.MonkeyPatch, override: str, subdir: str
) -> None:
    """A job's directory is named after its overrides (vmexp.app._job_subdir): one safe path component."""
    import vmexp.app

    fake = SimpleNamespace(overrides=SimpleNamespace(task=[override]))
    monkeypatch.setattr("vmexp.app.HydraConfig.get", staticmethod(lambda: fake))
    name = vmexp.app._job_subdir(7)
    assert name == subdir
    assert "/" not in name and "\0" not in name and name not in (".", "..")


ESCAPE = case(
    "name=" + "../" * 40 + "{dir}/escaped",
    "workload=trace",
    "workload.path={dir}/one.trace",
    "figures=false",
    default_dir=True,
)


def test_the_name_of_a_run_cannot_move_its_files_out_of_outputs(batch: Batch) -> None:
    r = batch.run(*ESCAPE)
    assert not (batch.dir / "escaped").exists(), "the run wrote its files outside outputs/"
    assert r.code == 2 or any((batch.dir / "outputs" / "runs").rglob("metrics.json")), r.stderr


def test_without_a_name_override_a_run_lands_in_outputs(batch: Batch) -> None:
    """The place the run above should have gone: outputs/runs/DATE/TIME_NAME under the working directory."""
    r = batch.run(*DEFAULT_RUN)
    assert r.code == 0, r.stderr
    (found,) = [
        p for p in (batch.dir / "outputs" / "runs").rglob("metrics.json") if p.parent.name.endswith("_plain")
    ]
    assert found.parent.parent.parent == batch.dir / "outputs" / "runs"


DEFAULT_RUN = case(
    "name=plain", "workload=trace", "workload.path={dir}/one.trace", "figures=false", default_dir=True
)


def test_settings_of_a_huge_machine_cost_nothing_until_used() -> None:
    """ram=1T composes into 2^28 frames of which none exists until a page is touched."""
    s = composed("ram=1T", "swap=1T")
    sysm = System(s, env=None, rng=np.random.default_rng(0))
    assert sysm.mem.nframes == 1 << 28 and sysm.mem.nfree == 1 << 28
    assert sysm.mem.frame_mm == [] and sysm.space.nslots == 1 << 28 and sysm.space.used == 0
