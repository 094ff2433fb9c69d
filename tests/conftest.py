"""Shared helpers: compose the real config tree with overrides, as a user's command line would."""

from __future__ import annotations

import copy
import functools
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import vmexp.app  # noqa: F401  (registers the schema and resolvers)
from vmexp.config import Settings, validate
from vmexp.sim import Result, simulate
from vmexp.validate.real import MalloptSettings, mallopt_from_overrides
from vmexp.workload import build

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal gives it, to the commands the tests start and interrupt.

    A shell without job control starts a background command with SIGINT ignored
    (``(pytest &)``, CI runners, nohup), and a Python started with SIGINT
    ignored never raises KeyboardInterrupt: the tests that send SIGINT then
    waited for commands that could not hear it.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


# The files with the most test time, most first (``--durations=0``, 2026-12-03: 85 s down to 10 s).
# pytest-xdist hands each worker whole files (``--dist loadfile``), by default those with the most
# tests first: test_launchers.py (the most time, 9 tests) came last, and one worker ran it while the
# other had finished (302 s of tests on one worker, 292 s on the other). ``--no-loadscope-reorder``
# (pyproject.toml) keeps the collection order, which this hook makes largest first, so that the
# small files fill the end. Only the order of the files changes, not the order of tests in a file.
# test_kernel_agreement.py (2026-12-07: 210 s of the suite's 580 s here) runs the simulator only;
# the live-kernel tests stay in test_real_kernel.py (26 s), later, so that a CPU-bound run beside
# them is not what they measure against.
HEAVY_FIRST = [
    "test_kernel_agreement.py",
    "test_launchers.py",
    "test_experiments.py",
    "test_app.py",
    "test_report.py",
    "test_errors.py",
    "test_api.py",
    "test_compare.py",
    "test_real_kernel.py",
    "test_timemodel.py",
    "test_generators.py",
    "test_fuzz.py",
    "test_kernel.py",
    "test_linux.py",
    "test_real_glibc.py",
    "test_settings.py",
    "test_malloc.py",
    "test_policies.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the heaviest files first (see HEAVY_FIRST); the others after them, in their own order."""
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order


@functools.cache
def _composed(overrides: tuple[str, ...]):  # type: ignore[no-untyped-def]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


def compose_cfg(*overrides: str):  # type: ignore[no-untyped-def]
    """The config run.py composes for these overrides; a copy, as a caller may change it.

    Composing is 0.2 s of CPU and a deep copy 6 ms; the suite composes some 440 configs, a quarter of
    them again (the report tests build a sweep's jobs from the same few overrides).
    """
    return copy.deepcopy(_composed(overrides))


def settings(*overrides: str) -> Settings:
    return validate(compose_cfg(*overrides))


@functools.cache
def _mallopt(overrides: tuple[str, ...]) -> MalloptSettings:
    return mallopt_from_overrides(overrides)


def mallopt_of(overrides: list[str] | tuple[str, ...]) -> MalloptSettings:
    """``mallopt_from_overrides``, composed once per distinct list: a composition is 0.2 s, and the
    corpus and differential tests ask for the same few settings hundreds of times."""
    return MalloptSettings(**_mallopt(tuple(overrides)))


def simulate_with(*overrides: str, check: bool = True) -> Result:
    """Run the simulator in-process on the composed config; the invariant checker on by default."""
    s = settings(*overrides)
    return simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=check)


@pytest.fixture
def root() -> Path:
    return ROOT
