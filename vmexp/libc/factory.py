"""Pick the allocator named by ``allocator.name`` and apply the mallopt settings."""

from __future__ import annotations

from vmexp.config import AllocatorSettings
from vmexp.libc.base import Allocator, Kernel

__all__ = ["make_allocator"]


def make_allocator(settings: AllocatorSettings, kernel: Kernel) -> Allocator:
    """An allocator over one process's kernel; glibc gets the mallopt values that were set."""
    if settings.name == "glibc":
        from vmexp.libc.malloc import GlibcMalloc

        return GlibcMalloc(
            kernel,
            mmap_threshold=settings.mmap_threshold,
            trim_threshold=settings.trim_threshold,
            top_pad=settings.top_pad,
            mmap_max=settings.mmap_max,
        )
    from vmexp.libc import simple

    return simple.make(settings.name, kernel, trim_threshold=settings.trim_threshold)
