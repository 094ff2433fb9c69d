"""The command lines' process: output that outlives its reader, and an end without the teardown.

Console output that outlives its reader: ``python run.py -m ... | head -1``
must not fail the sweep. Python ignores SIGPIPE, so once the reader of
stdout has gone (``head`` has its line, ``grep -m1`` its match) every later
print raises BrokenPipeError. In a run that was the job's error: the run
failed and its results were not written, in every job of a sweep. What was
printed is only a report of the work; the work goes on, and what it would
print goes to /dev/null.

The end (``run_program``): a command that imported pandas, matplotlib and
seaborn spent a quarter of a second after its work taking them apart.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

__all__ = ["drop_the_rest", "keep_going_without_a_reader", "one_write_a_line", "run_program"]


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


def one_write_a_line() -> None:
    """Make each print of this process (and of every process it forks) reach the console in one write.

    A sweep's jobs print to the console they share with each other and the launcher. Under
    ``PYTHONUNBUFFERED=1`` (``python -u``, set by many container images and CI runners) a
    ``print`` is a write for each of its pieces, its text and then its newline, so two jobs
    printing at once gave ``...figures=Fal[job 1] ...\\n\\n``: a line run into another's. Here
    such a stream buffers as Python's own do without ``-u``: stderr and a terminal by the line,
    else until a flush (every print of a job flushes), so a line leaves whole. A stream that
    buffers already is left as it is.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and getattr(stream, "write_through", False):
            by_line = stream is sys.stderr or stream.isatty()
            stream.reconfigure(line_buffering=by_line, write_through=False)  # type: ignore[union-attr]


def keep_going_without_a_reader() -> None:
    """Make this process's stdout outlive its reader (see the module docstring); idempotent."""
    if not isinstance(sys.stdout, _Stdout) and sys.stdout is not None:
        sys.stdout = _Stdout(sys.stdout)


def run_program(main: Callable[[], int | None], caller: FrameType | None = None) -> NoReturn:
    """Run a command's ``main`` as the whole process, and end it without the interpreter's teardown.

    ``main`` returns or exits with the command's status. A command that imported the plotting
    code (about 1,100 modules with matplotlib, pandas and seaborn) then spent 0.25-0.3 s in the
    interpreter's teardown of them, after its last output: a quarter of ``python -m
    vmexp.compare``'s second, 4-5 % of the README sweep. Here the exit handlers run as at any exit
    (logging's flush, a sweep's figure processes joined), stdout and stderr are flushed, and the
    process ends with the status; the operating system frees the rest. Where that could lose
    work, the interpreter ends as usual: another thread still running, an exit with a message
    instead of a status, an exception, or a caller (``caller``, by default the one of this
    function) that is not a program's top level: a profiler (``python -m cProfile run.py``),
    ``runpy.run_path`` or a test, which have work of their own left after the command.
    """
    fast = _called_by_the_program(caller or sys._getframe(1))
    try:
        status = main()
    except SystemExit as stop:
        if not fast or not (stop.code is None or isinstance(stop.code, int)):
            raise
        status = stop.code
    if not fast or threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader gone, a stream closed: nothing left to lose
            pass
    os._exit(status or 0)


def _called_by_the_program(caller: FrameType) -> bool:
    """Whether ``caller`` is a program's top level with nothing above it but ``python -m``'s runpy."""
    if caller.f_code.co_name != "<module>":
        return False
    frame = caller.f_back
    while frame is not None:
        if frame.f_code.co_filename not in ("<frozen runpy>", _RUNPY):
            return False
        frame = frame.f_back
    return True


_RUNPY = str(Path(os.__file__).with_name("runpy.py"))
