"""User-space allocators: the glibc 2.36 ptmalloc model and textbook free lists.

All of them implement ``vmexp.libc.base.Allocator`` over a ``Kernel``.
"""

from vmexp.libc.base import CHUNK_STATES, MALLINFO_FIELDS, Allocator, Kernel
from vmexp.libc.malloc import GlibcMalloc, HeapCorrupt, InvalidPointer, MallocConfigError, MallocError

__all__ = [
    "CHUNK_STATES",
    "MALLINFO_FIELDS",
    "Allocator",
    "GlibcMalloc",
    "HeapCorrupt",
    "InvalidPointer",
    "Kernel",
    "MallocConfigError",
    "MallocError",
]
