"""``allocator=glibc``: the glibc 2.36 ptmalloc model (``vmexp.libc.malloc``) and its mallopt parameters.

The parameters are glibc's ``mallopt`` ones (malloc/malloc.c: ``__libc_mallopt``),
declared here with the values glibc takes: ``mallopt(int param, int value)``
carries an ``int``, so no value above INT_MAX reaches glibc, and
``do_set_mmap_threshold`` refuses a threshold above HEAP_MAX_SIZE / 2
(32 MiB on 64-bit; that one is the top-level ``threshold``). A value glibc
would refuse is refused at validation, naming the key; the allocator
receives ints. Setting any of them, as calling mallopt does, switches the
dynamic mmap threshold off.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmexp.config import INT_MAX, AllocatorSettings
from vmexp.fields import integer, size
from vmexp.libc.base import Allocator, Kernel
from vmexp.registry import ALLOCATORS

__all__ = ["GlibcParams"]

_INT_MSG = "{text} is more than mallopt takes (an int: at most 2147483647)"


@dataclass(frozen=True)
class GlibcParams:
    """glibc's mallopt parameters besides the mmap threshold (the top-level ``threshold``)."""

    trim_threshold: int | None = size(
        None,
        "M_TRIM_THRESHOLD: a free top of at least this many bytes is returned with brk",
        null="glibc's default (128 KiB, dynamic)",
        hi=INT_MAX,
        hi_msg=_INT_MSG,
    )
    top_pad: int | None = size(
        None,
        "M_TOP_PAD: extra bytes asked for with each brk, and kept after a trim",
        null="glibc's default (128 KiB)",
        hi=INT_MAX,
        hi_msg=_INT_MSG,
    )
    mmap_max: int | None = integer(
        None,
        "M_MMAP_MAX: at most this many mmapped chunks (0 = never mmap)",
        null="glibc's default (65536)",
        lo=0,
        hi=INT_MAX,
        lo_msg="must be a non-negative integer or null, got {v!r}",
        hi_msg=_INT_MSG,
    )


@ALLOCATORS.register("glibc", params=GlibcParams, traits=("mmap_threshold",))
def glibc(kernel: Kernel, settings: AllocatorSettings) -> Allocator:
    """glibc 2.36 ptmalloc (main arena, x86_64)."""
    from vmexp.libc.malloc import GlibcMalloc

    return GlibcMalloc(
        kernel,
        mmap_threshold=settings.mmap_threshold,
        trim_threshold=settings.trim_threshold,
        top_pad=settings.top_pad,
        mmap_max=settings.mmap_max,
    )
