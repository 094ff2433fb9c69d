"""The allocator ``allocator.name`` names, from the registry its module filled (``vmexp.registry.ALLOCATORS``)."""

from __future__ import annotations

from vmexp.config import AllocatorSettings
from vmexp.libc.base import Allocator, Kernel
from vmexp.registry import ALLOCATORS

__all__ = ["make_allocator"]


def make_allocator(settings: AllocatorSettings, kernel: Kernel) -> Allocator:
    """An allocator over one process's kernel, built from its validated (typed) settings."""
    allocator: Allocator = ALLOCATORS.get(settings.name, "allocator.name").obj(kernel, settings)
    return allocator
