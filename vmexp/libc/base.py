"""The two interfaces of the user-space allocator: what it calls, what calls it.

An allocator never sees a page table or a frame. It asks the kernel for
address space (``brk``, ``mmap``, ``munmap``, ``mremap``) and reports the
bytes it stores or loads itself (chunk headers, free-list links, calloc's
memset, realloc's memcpy) through ``write``/``read``, because those stores
fault pages in exactly as they do in a real process (rule R22).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CHUNK_STATES", "MALLINFO_FIELDS", "Allocator", "Kernel"]

MALLINFO_FIELDS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)

# States of a chunk in a heap walk (the heap map figure colours them).
CHUNK_STATES = ("in_use", "free", "tcache", "fastbin", "top", "mmapped")


class Kernel(Protocol):
    """The system calls of one process, as the allocator sees them.

    Failures return -1, as the raw syscalls do (ENOMEM); ``brk`` returns the
    unchanged break when it cannot move it, as Linux's brk does.
    """

    page_size: int

    def brk(self, addr: int) -> int:
        """Set the program break to ``addr`` (0 queries it); returns the new break."""
        ...

    def mmap(self, length: int) -> int:
        """Map ``length`` bytes of private anonymous read/write memory; address or -1."""
        ...

    def munmap(self, addr: int, length: int) -> int:
        """Unmap; 0 or -1."""
        ...

    def mremap(self, addr: int, old_length: int, new_length: int) -> int:
        """Resize a mapping with MREMAP_MAYMOVE; the (possibly new) address or -1."""
        ...

    def write(self, addr: int, length: int) -> None:
        """The allocator stored ``length`` bytes at ``addr`` (a header, a memset)."""
        ...

    def read(self, addr: int, length: int) -> None:
        """The allocator loaded ``length`` bytes at ``addr``."""
        ...


class Allocator(Protocol):
    """The C library's allocation calls. Pointers are ints; 0 is NULL."""

    def malloc(self, n: int) -> int: ...

    def calloc(self, count: int, size: int) -> int: ...

    def realloc(self, p: int, n: int) -> int: ...

    def free(self, p: int) -> None: ...

    def usable_size(self, p: int) -> int:
        """``malloc_usable_size``: how many bytes at ``p`` the program may use."""
        ...

    def malloc_trim(self, pad: int = 0) -> int:
        """Return free memory to the kernel; 1 if any was released."""
        ...

    def mallinfo2(self) -> dict[str, int]:
        """The ten fields of MALLINFO_FIELDS, computed as the allocator computes them."""
        ...

    def heap_walk(self) -> list[tuple[int, int, str]]:
        """Every chunk, low to high: (address, size, state in CHUNK_STATES)."""
        ...
