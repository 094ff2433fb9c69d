"""Components plug in: a module outside the package adds one of every kind, and runs use them.

The module below is written to a temporary directory and imported through
the ``plugins`` setting, as a user's own module would be: a replacement
policy, an allocator, a workload kind, a size distribution, a lifetime
model and an access pattern, each registered by the module itself with its
typed parameters. Nothing in the package is edited; a YAML file in a
temporary config directory makes the policy a group option. The runs then
show each toy doing what it says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, settings
from vmexp.config import ConfigError, settings_json
from vmexp.registry import REGISTRIES
from vmexp.sim import simulate
from vmexp.workload import build
from vmexp.workload.ops import FREE, MALLOC, TOUCH

TOY = '''
"""Toy components, one of each kind, registered by this module alone."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from vmexp.fields import integer, size
from vmexp.kernel.policies.base import Policy, register
from vmexp.libc.simple import FreeListAllocator
from vmexp.registry import ACCESS_PATTERNS, ALLOCATORS, LIFETIMES, SIZE_DISTS, WORKLOAD_KINDS
from vmexp.workload import ProcSpec
from vmexp.workload.access import Runner
from vmexp.workload.ops import MALLOC, TOUCH


@register
class Lifo(Policy):
    """LIFO: evict the page that arrived last."""

    name = "toy_lifo"

    @dataclasses.dataclass
    class Params(Policy.Params):
        spare: int = integer(0, "pages never evicted (the oldest ones)", lo=0)

    def __init__(self, view, params, rng):
        super().__init__(view, params, rng)
        self.stack = []

    def inserted(self, frame):
        self.stack.append(frame)

    def removed(self, frame):
        self.stack.remove(frame)

    def victim(self):
        return self.stack[max(self.params.spare, len(self.stack) - 1)]

    def __len__(self):
        return len(self.stack)


def last_fit(addrs, sizes, need):
    """The highest-addressed free block that fits."""
    for a in reversed(addrs):
        if sizes[a] >= need:
            return a
    return -1


@dataclass(frozen=True)
class LastFitParams:
    trim_threshold: int | None = size(None, "trim when the last free block exceeds this", null="128 KiB")


ALLOCATORS.add(
    "toy_last_fit",
    lambda kernel, s: FreeListAllocator(kernel, last_fit, trim_threshold=s.trim_threshold),
    LastFitParams,
    doc="a free list that takes the highest block that fits",
)


@SIZE_DISTS.register("toy_pow2")
@dataclass(frozen=True)
class PowersOfTwo:
    """Sizes 2^k, k uniform in [lo_bits, hi_bits]."""

    lo_bits: int = integer(4, "smallest exponent", lo=0)
    hi_bits: int = integer(12, "largest exponent", lo=0)

    def sampler(self):
        lo, hi = self.lo_bits, self.hi_bits
        return lambda rng, n: np.left_shift(1, rng.integers(lo, hi + 1, size=n)).astype(np.int64)

    @property
    def top(self):
        return 1 << self.hi_bits


@LIFETIMES.register("toy_doubling")
@dataclass(frozen=True)
class Doubling:
    """A block allocated at step t dies at step 2t + 1."""

    long_lived: float = 0.0

    def death(self, rng):
        return lambda t: 2 * t + 1


class _Newest(Runner):
    def run(self, n, out):
        if not self.live.dense:
            return 0
        out.append((TOUCH, self.live.dense[-1], 0, 1, 1))
        return 1


@ACCESS_PATTERNS.register("toy_newest")
@dataclass(frozen=True)
class Newest:
    """One write a step, to the first byte of the newest block."""

    references = True
    rate: float = 1.0
    compute: int = 0

    def runner(self, rng, live, page_size):
        return _Newest(rng, live, page_size, 1.0)


@dataclass(frozen=True)
class StairsParams:
    steps: int = integer(3, "blocks per process", lo=1)
    size: int = size("4k", "the first block; each next one is twice as large", lo=1)


@WORKLOAD_KINDS.register("toy_stairs", params=StairsParams)
def stairs(p, nprocs, seed, page_size):
    """Each process mallocs size, 2*size, 4*size, ... and writes each block whole."""
    ops = []
    for i in range(p.steps):
        ops += [(MALLOC, i, p.size << i), (TOUCH, i, 0, -1, 1)]
    return [ProcSpec(name=f"stairs.{k}", ops=ops) for k in range(nprocs)]
'''

# Group options for the toys that are chosen by group (policy, allocator, workload): one YAML each.
YAML = {
    "policy/toy_lifo.yaml": "# LIFO, from a plugin module\nname: toy_lifo\nparams:\n  spare: 0   # pages never evicted\n",
    "allocator/toy_last_fit.yaml": "name: toy_last_fit\ntrim_threshold: null\n",
    "workload/toy_stairs.yaml": "kind: toy_stairs\nsteps: 3\nsize: 4k\n",
}
TOYS = {
    "policy": "toy_lifo",
    "allocator": "toy_last_fit",
    "workload": "toy_stairs",
    "sizes": "toy_pow2",
    "lifetime": "toy_doubling",
    "access": "toy_newest",
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin module and a config directory with its group option; the registries restored afterwards."""
    d = tmp_path_factory.mktemp("plugin")
    (d / "vmexp_toys.py").write_text(TOY)
    for name, text in YAML.items():
        (d / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (d / "conf" / name).write_text(text)
    sys.path.insert(0, str(d))
    try:
        yield d
    finally:
        sys.path.remove(str(d))
        for kind, name in TOYS.items():
            if name in REGISTRIES[kind]:
                REGISTRIES[kind].remove(name)


def with_toys(toy: Path, *overrides: str) -> Any:
    return settings("plugins=[vmexp_toys]", f"hydra.searchpath=[file://{toy / 'conf'}]", *overrides)


def test_a_module_outside_the_package_adds_one_component_of_each_kind(toy: Path) -> None:
    s = with_toys(toy, "workload=pageref", "workload.refs=[1]")
    for kind, name in TOYS.items():
        assert name in REGISTRIES[kind].names(), kind
    assert s.plugins == ("vmexp_toys",)


def test_the_toy_policy_is_a_group_option_and_runs_in_the_kernel(toy: Path) -> None:
    """LIFO with 2 frames on 1,2,3,1,2,3: 3 evicts 2, 1 hits, 2 evicts 3, 3 evicts 2: 5 faults.

    With spare=1 the frame at the bottom of the stack is never taken: the same here, 5.
    """
    for spare in ("0", "1"):
        s = with_toys(
            toy, "policy=toy_lifo", f"policy.params.spare={spare}", "workload=pageref",
            "workload.refs=[1,2,3,1,2,3]", "ram=8k", "machine.min_free=0",
        )  # fmt: skip
        assert (s.policy.name, s.policy.params) == ("toy_lifo", {"spare": int(spare)})
        (p,) = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=True).processes
        assert p.minflt + p.majflt == 5


def test_a_toy_parameter_is_declared_typed_and_an_unknown_one_lists_the_valid_ones(toy: Path) -> None:
    with pytest.raises(ConfigError, match=r"^policy\.params\.spare: must be an integer >= 0, got -1$"):
        with_toys(toy, "policy=toy_lifo", "policy.params.spare=-1", "workload=pageref", "workload.refs=[1]")
    unknown = r"^workload\.stepz: not a parameter of workload kind toy_stairs \(valid: size, steps\)$"
    with pytest.raises(ConfigError, match=unknown):
        with_toys(toy, "workload=toy_stairs", "+workload.stepz=3")


def test_the_toy_allocator_and_workload_kind_run_and_are_recorded(toy: Path) -> None:
    s = with_toys(
        toy, "allocator=toy_last_fit", "allocator.trim_threshold=1M",
        "workload=toy_stairs", "workload.steps=4", "workload.size=8k", "nprocs=2",
    )  # fmt: skip
    r = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=True)
    assert [p.name for p in r.processes] == ["stairs.0", "stairs.1"]
    # 8k + 16k + 32k + 64k written whole: 30 pages each, from the brk heap (a free list has no mmap).
    assert all(p.minflt == 30 + 1 and p.syscalls["mmap"] == 0 for p in r.processes), r.processes
    doc = json.loads(settings_json(s))["settings"]
    assert doc["allocator.name"]["value"] == "toy_last_fit"
    assert doc["allocator.trim_threshold"] == {"value": 1 << 20, "unit": "bytes"}
    assert doc["workload.kind"]["value"] == "toy_stairs"
    assert doc["workload.size"] == {"value": 8192, "unit": "bytes"}


def test_toy_sizes_lifetimes_and_access_drive_a_generator(toy: Path) -> None:
    s = with_toys(
        toy, "workload=working_set", "nprocs=1", "~workload.refs", "workload.allocs=40",
        "~workload.sizes", "+workload.sizes={dist: toy_pow2, lo_bits: 5, hi_bits: 9}",
        "~workload.lifetime", "+workload.lifetime={dist: toy_doubling}",
        "~workload.access", "+workload.access={pattern: toy_newest}",
    )  # fmt: skip
    (proc,) = build(s.workload, s.nprocs, s.seed, s.page_size)
    ops = list(proc.ops)
    sizes = [op[2] for op in ops if op[0] == MALLOC]
    assert len(sizes) == 40 and {sz.bit_count() for sz in sizes} == {1}  # powers of two ...
    assert 32 <= min(sizes) <= max(sizes) <= 512  # ... from 2^5 to 2^9
    # Block b is allocated at step b - 1 and dies at step 2(b - 1) + 1: the first frees are of blocks 1, 2, 3 ...
    freed = [op[1] for op in ops if op[0] == FREE]
    assert freed[:5] == [1, 2, 3, 4, 5]
    # One write a step to the newest block's first byte (after the init write of the whole block).
    touches = [op for op in ops if op[0] == TOUCH and op[3] == 1]
    assert len(touches) >= 40 and all(op[2] == 0 for op in touches)


def test_run_py_loads_the_plugin_by_name(toy: Path, tmp_path: Path) -> None:
    """From the command line: plugins=[module] with the module on PYTHONPATH, nothing else."""
    env = {**os.environ, "PYTHONPATH": f"{toy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(
        [sys.executable, "run.py", "plugins=[vmexp_toys]", f"hydra.searchpath=[file://{toy / 'conf'}]",
         "workload=toy_stairs", "nprocs=1", "figures=false", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["processes"][0]["name"] == "stairs.0"
    written = json.loads((tmp_path / "settings.json").read_text())["settings"]
    assert written["plugins"]["value"] == ["vmexp_toys"]
