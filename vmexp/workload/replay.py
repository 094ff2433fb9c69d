"""Workload kinds that replay a file: an allocation trace (``trace``) and a page-reference string (``pageref``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmexp.fields import custom, path, text
from vmexp.registry import WORKLOAD_KINDS
from vmexp.workload import ProcSpec, WorkloadError

__all__ = ["PagerefParams", "TraceParams"]


@dataclass(frozen=True)
class TraceParams:
    """Replay an allocation trace (README, Trace format); ``pPID:`` prefixes make several processes."""

    path: str = path(None, "the trace file", missing="workload=trace needs a trace file (workload.path=FILE)")
    name: str = text(
        "trace", "process name in metrics and figures (.pN appended when the trace has several processes)"
    )


@WORKLOAD_KINDS.register("trace", params=TraceParams, traits=("finite",))
def build_trace(p: TraceParams, nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """The processes of an allocation trace; nprocs is ignored (the trace says how many)."""
    from vmexp.workload.traces import TraceError, parse_trace

    try:
        trace = parse_trace(Path(p.path))
    except TraceError as e:
        raise WorkloadError(str(e)) from None
    if not trace.ops:
        raise WorkloadError(f"workload.path: {p.path} holds no operations")
    base = p.name or "trace"
    return [
        ProcSpec(
            name=f"{base}.p{pid}" if len(trace.ops) > 1 else base,
            ops=ops,
            op_index=trace.op_index[pid],
            lines=trace.lines,
        )
        for pid, ops in trace.ops.items()
    ]


def _refs(value: Any, key: str, error: type[Exception]) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise error(f"{key}: a list of page numbers, e.g. [1,2,3,4,1,2,5]")
    return tuple(value)


@dataclass(frozen=True)
class PagerefParams:
    """One process referencing virtual pages in order (a textbook reference string)."""

    path: str | None = path(
        None, "file of page numbers, one a line, optionally followed by r or w", null="use refs"
    )
    refs: tuple[Any, ...] | None = custom(
        None, "the page numbers as a list, e.g. [1,2,3,4,1,2,5]", _refs, null="use path"
    )
    name: str = text("pageref", "process name")

    def check(self, where: str) -> None:
        if self.path and self.refs:
            raise WorkloadError(f"{where}.refs: give {where}.path or {where}.refs, not both")
        if not self.path and not self.refs:
            raise WorkloadError(
                f"{where}.path: workload=pageref needs {where}.path=FILE or {where}.refs=[...]"
            )


@WORKLOAD_KINDS.register("pageref", params=PagerefParams, traits=("future", "finite"))
def build_pageref(p: PagerefParams, nprocs: int, seed: int, page_size: int) -> list[ProcSpec]:
    """One process, whatever nprocs says: a reference string belongs to one address space.

    The whole string is known before the run, so a policy that needs the
    future (OPT) can run on it (trait ``future``).
    """
    from vmexp.workload.traces import TraceError, parse_pageref, parse_pageref_text

    try:
        if p.path:
            vpns, writes = parse_pageref(p.path)
        else:
            text_ = "\n".join(str(r) for r in p.refs or ()) + "\n"
            vpns, writes = parse_pageref_text(text_, "workload.refs")
    except TraceError as e:
        raise WorkloadError(str(e)) from None
    if not vpns:  # named by the key that gave it, as an empty trace is
        if p.path:
            raise WorkloadError(f"workload.path: {p.path} holds no page numbers")
        raise WorkloadError("workload.refs: the reference string is empty")
    return [ProcSpec(name=p.name or "pageref", refs=(vpns, bytes(writes)))]
