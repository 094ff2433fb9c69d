"""Where a process's regions start: Linux's layout rules for x86_64 and i386.

With ASLR off (``setarch -R``, ``personality(ADDR_NO_RANDOMIZE)``) Linux puts
a PIE at ELF_ET_DYN_BASE (x86_64: 0x555555554000), starts the heap right
after the bss (mm->start_brk = end of bss, page aligned), puts the stack top
at TASK_SIZE and the mmap base below it by the stack rlimit plus the guard
gap, clamped to at least 128 MiB (arch/x86/mm/mmap.c: mmap_base()). With ASLR
on, each of these moves by a random number of pages (mmap_rnd_bits = 28 on
x86_64, 8 on i386: a PIE by arch_mmap_rnd() above ELF_ET_DYN_BASE, the mmap
base by as much; brk by up to 1 GiB on x86_64 and 32 MiB on i386,
arch/x86/kernel/process.c: arch_randomize_brk, 1 GiB since Linux 6.9); here the
offsets come from the run's seeded generator, so runs stay reproducible.
Only a PIE (ET_DYN) moves with ASLR: a non-PIE executable (ET_EXEC, i386's
0x08048000) is loaded at its link address (fs/binfmt_elf.c: load_elf_binary
gives it no load_bias), while its heap, mmap base and stack move as a PIE's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmexp.config import LayoutSettings

__all__ = ["Regions", "compute_regions", "STACK_GUARD_GAP"]

STACK_GUARD_GAP = 256 * 4096  # stack_guard_gap: 256 pages (mm/mmap.c)
MMAP_MIN_ADDR = 0x10000  # vm.mmap_min_addr default


@dataclass(frozen=True)
class Regions:
    """The fixed regions of one process, page aligned."""

    text: tuple[int, int]
    data: tuple[int, int]
    bss: tuple[int, int]
    start_brk: int
    mmap_base: int
    mmap_min: int
    stack: tuple[int, int]
    task_size: int


def _up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _down(x: int, a: int) -> int:
    return x // a * a


def compute_regions(layout: LayoutSettings, page_size: int, rng: np.random.Generator | None) -> Regions:
    """The regions of one process; ``rng`` is given when ASLR is on."""
    ps = page_size
    rnd_pages_bits = 28 if layout.va_bits > 32 else 8
    text_start = _down(layout.text_start, ps)
    brk_rnd = mmap_rnd = stack_rnd = 0
    if rng is not None:
        # PIE base moves by up to 2^rnd_bits pages, like mmap_base; the brk by
        # up to 1 GiB (32 MiB for a 32-bit task: arch_randomize_brk), the stack top
        # by up to 16 GiB on 64-bit (STACK_RND_MASK 0x3fffff pages) or 8 MiB on 32-bit.
        span = min(1 << rnd_pages_bits, (layout.task_size // 3) // ps)
        text_rnd = (
            int(rng.integers(0, span)) * ps
        )  # drawn also for a non-PIE: the other offsets stay the seed's
        if layout.pie:
            text_start = _down(text_start + text_rnd, ps)
        brk_rnd = int(rng.integers(0, ((1 << 30) if layout.va_bits > 32 else (32 << 20)) // ps)) * ps
        stack_rnd = int(rng.integers(0, ((16 << 30) if layout.va_bits > 32 else (8 << 20)) // ps)) * ps
        mmap_rnd = int(rng.integers(0, 1 << rnd_pages_bits)) * 4096
        mmap_rnd = min(mmap_rnd, layout.task_size // 8)
    text = (text_start, text_start + _up(layout.text_size, ps))
    data = (text[1], text[1] + _up(layout.data_size, ps))
    bss = (data[1], data[1] + _up(layout.bss_size, ps))
    start_brk = bss[1] + _up(brk_rnd, ps)
    stack_top = _down(layout.task_size - stack_rnd, ps)
    stack = (stack_top - _up(layout.stack_size, ps), stack_top)
    gap = layout.stack_limit + STACK_GUARD_GAP + stack_rnd
    gap = max(layout.mmap_min_gap, min(gap, layout.task_size // 6 * 5))
    mmap_base = _down(layout.task_size - gap - mmap_rnd, ps)
    return Regions(
        text=text,
        data=data,
        bss=bss,
        start_brk=start_brk,
        mmap_base=mmap_base,
        mmap_min=max(MMAP_MIN_ADDR, ps),
        stack=stack,
        task_size=layout.task_size,
    )
