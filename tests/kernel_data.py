"""The recorded real-kernel measurements and the traces they were made with, for the test files that
check them (test_real_kernel.py) and hold the simulator to them (test_kernel_agreement.py)."""

from __future__ import annotations

import functools
import json
import textwrap
from pathlib import Path
from typing import Any

from vmexp.validate.workloads import generate, sha256

DATA = Path(__file__).parent / "data" / "real_kernel"
MIB = 1 << 20


def write_trace(tmp_path: Path, text: str, name: str = "t.trace") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def recorded(config: str, wset: str = "main") -> dict[str, Any]:
    """The recorded runs of a configuration, of the main workloads or another set (``later_*.json``,
    ``heap_*.json``, ``unseen_*.json``); ``fresh``, ``fresh_later``, ...: those sets on a device
    swapped on again before every run (``measure --fresh-device``)."""
    return dict(
        json.loads((DATA / (f"{config}.json" if wset == "main" else f"{wset}_{config}.json")).read_text())
    )


@functools.cache
def trace_text(name: str) -> str:
    """A recorded workload's trace, generated once a session (some take a second)."""
    return generate(name)


@functools.cache
def trace_sha(name: str) -> str:
    return sha256(trace_text(name))
