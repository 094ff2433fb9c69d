"""Page-table entries as ints, and the radix tree's memory counted, not built.

The simulator's hot path looks a page up on every reference, so a process's
page table is one flat dict ``vpn -> entry`` where the entry is an int:

    entry >= 0          present: the number of the frame that holds the page
    ZERO_PAGE (-2)      maps the shared zero page (read-only, no frame)
    entry <= SWAPPED    swapped out: the swap entry of slot ``SWAPPED - entry``
    (no key)            never touched, or unmapped; ``PTE_NONE`` (-1) is what
                        a lookup answers for it

The accessed and dirty bits the MMU sets in a present entry are kept beside
its frame, one byte per frame (``PhysMem.pte_bits``): here a frame is
mapped by one entry at most, so the bits of "the PTE that maps frame f" are
well defined, and a present entry is then the frame's number itself, the
same int object the replacement policy holds for the frame, rather than a
new int for frame and bits together (32 bytes per resident page of a
Python heap that holds little else per page).

A missing key means the page was never touched (or was unmapped). The real
multi-level table (x86_64: 4 levels of 512 entries, i386: 2 levels of 1024)
matters for the memory it costs, so ``PageTable`` keeps, per level, how many
entries each table holds and creates/frees tables as Linux would, without
ever materialising them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmexp.kernel.memcg import MemCgroup

__all__ = ["ACCESSED", "DIRTY", "PTE_NONE", "SWAPPED", "ZERO_PAGE", "PageTable", "table_geometry"]

# The entries that are not a frame number.
PTE_NONE = -1
ZERO_PAGE = -2
SWAPPED = -3  # this entry and below: SWAPPED - slot (the mapping is its own inverse)

# The bits of a present entry, in PhysMem.pte_bits[frame].
ACCESSED = 1
DIRTY = 2


def table_geometry(va_bits: int, page_size: int, pte_bytes: int) -> tuple[int, int, int]:
    """(levels, index bits per level, bytes per table) of a radix page table.

    Tables are one base page; 2 MiB pages are mapped one level up in the
    4 KiB hierarchy (x86's PMD), so their tables stay 4 KiB.
    """
    page_shift = page_size.bit_length() - 1
    table_bytes = page_size if page_size <= 64 << 10 else 4096
    bits = (table_bytes // pte_bytes).bit_length() - 1
    levels = max(1, -(-(va_bits - page_shift) // bits))
    return levels, bits, table_bytes


class PageTable:
    """One process's page table: entries in a dict, table pages counted per level.

    A process in a memory cgroup has its table pages charged to the group
    (``memcg``) as they are created and freed, as ``__pte_alloc`` does.
    """

    __slots__ = ("_counts", "bits", "levels", "memcg", "pages_peak", "pte", "table_bytes")

    def __init__(self, va_bits: int, page_size: int, pte_bytes: int) -> None:
        self.levels, self.bits, self.table_bytes = table_geometry(va_bits, page_size, pte_bytes)
        self.pte: dict[int, int] = {}
        # _counts[l][index] = live entries of the level-l table `index`
        # (l = 0 are the leaf tables); the single top-level table always exists.
        self._counts: list[dict[int, int]] = [{} for _ in range(self.levels - 1)]
        self.pages_peak = 1
        self.memcg: MemCgroup | None = None

    @property
    def pages(self) -> int:
        """Page-table pages in use, the top-level table included."""
        return 1 + sum(len(c) for c in self._counts)

    @property
    def bytes(self) -> int:
        return self.pages * self.table_bytes

    def add(self, vpn: int, entry: int) -> None:
        """Install an entry for a page that had none (counts the tables it needs)."""
        self.pte[vpn] = entry
        idx = vpn
        created = 0
        for counts in self._counts:
            idx >>= self.bits
            n = counts.get(idx, 0)
            counts[idx] = n + 1
            if n:
                break
            created += 1
        if created:  # only a new table can raise the peak
            if self.memcg is not None:
                self.memcg.pt_pages += created
            pages = self.pages
            if pages > self.pages_peak:
                self.pages_peak = pages

    def clear(self) -> None:
        """Drop every entry and every table but the top one (exit_mmap), as ``remove`` of each would."""
        self.pte.clear()
        if self.memcg is not None:
            self.memcg.pt_pages -= self.pages - 1
        for counts in self._counts:
            counts.clear()

    def remove_many(self, vpns: list[int]) -> list[int]:
        """Drop the entries of ``vpns`` (which must exist); their entries in that order, empty tables freed.

        ``zap_pte_range`` works a leaf table at a time, and so does this: the
        entries gone from each table are counted once per table, not once
        per page, which is what a munmap of many pages costs here. The
        tables left, and the memcg's charge for them, are those ``remove``
        of each page would leave.
        """
        pop = self.pte.pop
        entries = [pop(v) for v in vpns]
        gone: Iterable[int] = vpns
        shift = self.bits
        for counts in self._counts:
            emptied = []
            for idx, k in Counter(map(shift.__rrshift__, gone)).items():
                n = counts[idx] - k
                if n:
                    counts[idx] = n
                else:
                    del counts[idx]
                    emptied.append(idx)
            if not emptied:
                break
            if self.memcg is not None:
                self.memcg.pt_pages -= len(emptied)
            gone = emptied
        return entries

    def remove(self, vpn: int) -> int:
        """Drop the entry of ``vpn`` (which must exist); frees tables left empty."""
        entry = self.pte.pop(vpn)
        idx = vpn
        for counts in self._counts:
            idx >>= self.bits
            n = counts[idx] - 1
            if n:
                counts[idx] = n
                break
            del counts[idx]
            if self.memcg is not None:
                self.memcg.pt_pages -= 1
        return entry
