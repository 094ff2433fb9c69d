"""Console output that outlives its reader: ``python run.py -m ... | head -1`` must not fail the sweep.

Python ignores SIGPIPE, so once the reader of stdout has gone (``head``
has its line, ``grep -m1`` its match) every later print raises
BrokenPipeError. In a run that was the job's error: the run failed and
its results were not written, in every job of a sweep. What was printed
is only a report of the work; the work goes on, and what it would print
goes to /dev/null.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["drop_the_rest", "keep_going_without_a_reader"]


def drop_the_rest() -> None:
    """Send whatever this process prints from now on to /dev/null (its reader has gone)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)


class _Stdout:
    """``sys.stdout`` whose write and flush turn a broken pipe into ``drop_the_rest``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            drop_the_rest()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            drop_the_rest()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, ...
        return getattr(self._stream, name)


def keep_going_without_a_reader() -> None:
    """Make this process's stdout outlive its reader (see the module docstring); idempotent."""
    if not isinstance(sys.stdout, _Stdout) and sys.stdout is not None:
        sys.stdout = _Stdout(sys.stdout)
