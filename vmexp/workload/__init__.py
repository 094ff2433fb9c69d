"""Workloads: what each simulated process does, as a stream of operation tuples.

``build`` turns the validated ``workload`` config into one ``ProcSpec`` per
process. The kinds are:

- ``trace``: replay an allocation trace (DESIGN.md format; several processes
  when its lines carry ``pPID:`` prefixes);
- ``pageref``: one process referencing virtual pages in order, from a file
  or the ``refs`` list (textbook reference strings through the full system);
- ``generator`` and ``mix``: synthetic workloads (vmexp.workload.generators).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmexp.workload.ops import Op

__all__ = ["ProcSpec", "WorkloadError", "build"]


class WorkloadError(ValueError):
    """A workload that cannot run; the message names the key or the trace line."""


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
    meta: dict[str, Any] = field(default_factory=dict)


def _keys(spec: dict[str, Any], allowed: set[str], kind: str) -> None:
    unknown = sorted(set(spec) - allowed - {"kind"})
    if unknown:
        raise WorkloadError(
            f"workload.{unknown[0]}: not a key of workload kind {kind} (valid: {', '.join(sorted(allowed))})"
        )


def build(spec: dict[str, Any], nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """One ProcSpec per process; WorkloadError names the bad key or trace line."""
    kind = spec.get("kind")
    if kind == "trace":
        return _trace(spec)
    if kind == "pageref":
        return _pageref(spec, nprocs)
    if kind in ("generator", "mix"):
        from vmexp.workload.generators import build_generated

        return build_generated(spec, nprocs, seed, page_size)
    raise WorkloadError(f"workload.kind: {kind!r} is not one of trace, pageref, generator, mix")


def _trace(spec: dict[str, Any]) -> list[ProcSpec]:
    from vmexp.workload.traces import TraceError, parse_trace

    _keys(spec, {"path", "name"}, "trace")
    path = spec.get("path")
    if not path:
        raise WorkloadError("workload.path: workload=trace needs a trace file (workload.path=FILE)")
    try:
        trace = parse_trace(Path(str(path)))
    except TraceError as e:
        raise WorkloadError(str(e)) from None
    if not trace.ops:
        raise WorkloadError(f"workload.path: {path} holds no operations")
    base = str(spec.get("name") or "trace")
    return [
        ProcSpec(
            name=f"{base}.p{pid}" if len(trace.ops) > 1 else base,
            ops=ops,
            op_index=trace.op_index[pid],
            lines=trace.lines,
            meta={"trace_pid": pid},
        )
        for pid, ops in trace.ops.items()
    ]


def _pageref(spec: dict[str, Any], nprocs: int) -> list[ProcSpec]:
    """One process, whatever nprocs says: a reference string belongs to one address space."""
    from vmexp.workload.traces import TraceError, parse_pageref, parse_pageref_text

    _keys(spec, {"path", "refs", "name"}, "pageref")
    path, refs = spec.get("path"), spec.get("refs")
    if path and refs:
        raise WorkloadError("workload.refs: give workload.path or workload.refs, not both")
    try:
        if path:
            vpns, writes = parse_pageref(str(path))
        elif refs:
            if not isinstance(refs, list):
                raise WorkloadError("workload.refs: a list of page numbers, e.g. [1,2,3,4,1,2,5]")
            vpns, writes = parse_pageref_text("\n".join(str(r) for r in refs) + "\n", "workload.refs")
        else:
            raise WorkloadError(
                "workload.path: workload=pageref needs workload.path=FILE or workload.refs=[...]"
            )
    except TraceError as e:
        raise WorkloadError(str(e)) from None
    if not vpns:
        raise WorkloadError("workload.refs: the reference string is empty")
    return [ProcSpec(name=str(spec.get("name") or "pageref"), refs=(vpns, bytes(writes)))]
