"""Workloads: what each simulated process does, as a stream of operation tuples.

A workload kind is a component (``vmexp.registry.WORKLOAD_KINDS``): a
function ``(params, nprocs, seed, page_size) -> [ProcSpec]`` registered
with the dataclass of its declared parameters. The built-in kinds are:

- ``trace``: replay an allocation trace (the README's format; several processes
  when its lines carry ``pPID:`` prefixes) — ``vmexp.workload.replay``;
- ``pageref``: one process referencing virtual pages in order, from a file
  or the ``refs`` list (textbook reference strings through the full system);
- ``generator`` and ``mix``: synthetic workloads (``vmexp.workload.generators``),
  whose size distributions, lifetime models and access patterns are
  components too (``sizes``, ``lifetimes``, ``access``).

``parse_workload`` checks a ``workload`` config section once, at
validation; ``build`` turns the parsed parameters into processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmexp.fields import ConfigError
from vmexp.registry import ACCESS_PATTERNS, LIFETIMES, SIZE_DISTS, WORKLOAD_KINDS
from vmexp.workload.ops import Op

__all__ = ["ProcSpec", "WorkloadError", "build", "parse_workload"]


class WorkloadError(ConfigError):
    """A workload that cannot run; the message names the key or the trace line."""


for _registry in (WORKLOAD_KINDS, SIZE_DISTS, LIFETIMES, ACCESS_PATTERNS):
    _registry.error = WorkloadError


@dataclass
class ProcSpec:
    """One simulated process before it starts."""

    name: str
    ops: Iterable[Op] = ()
    start_ns: int = 0
    # Global operation numbers (syscalls.csv's op column) when they differ
    # from the process's own count, as in a multi-process trace.
    op_index: Sequence[int] | None = None
    # Page-reference workload: the reference string and its write flags.
    refs: tuple[Sequence[int], Sequence[int]] | None = None
    # Trace line of each global operation, for run-time messages.
    lines: Sequence[int] | None = None


def parse_workload(spec: Mapping[str, Any], where: str = "workload") -> Any:
    """The typed parameters of the workload kind ``spec`` names; WorkloadError names a bad key."""
    return WORKLOAD_KINDS.parse(spec, where)


def build(spec: Any, nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """One ProcSpec per process, from parsed parameters (``Settings.workload``) or a raw mapping."""
    params = parse_workload(spec) if isinstance(spec, Mapping) else spec
    comp = WORKLOAD_KINDS.component_of(params)
    procs: list[ProcSpec] = comp.obj(params, nprocs, seed, page_size)
    return procs
