"""Random numbers for the generators, drawn in numpy batches and handed out one at a time.

One numpy scalar call costs about a microsecond and a run draws millions,
so values are drawn ``BATCH`` at a time and consumed from Python lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["BATCH", "draws"]

BATCH = 4096


def draws(fill: Callable[[int], list[Any]]) -> Iterator[Any]:
    """An endless stream of values drawn ``BATCH`` at a time; next() costs ~50 ns, not a numpy call."""
    while True:
        yield from fill(BATCH)
