"""Readers of the two trace formats of the README: allocation traces and page-reference traces.

An allocation trace is plain text, one operation per line::

    malloc ID SIZE
    calloc ID COUNT SIZE
    realloc ID SIZE
    free ID
    touch ID [OFFSET LENGTH] [r|w]      # default: the whole block, write
    compute DURATION                    # e.g. 20us

``#`` starts a comment, blank lines are ignored, sizes take units (``64k``,
``2M``, via :func:`vmexp.units.parse_size`), durations too (``20us``, via
:func:`vmexp.units.parse_duration`; a bare number is seconds). A trace of
several processes prefixes *every* operation line with ``pPID:``
(``p2: malloc 1 100``); a trace without prefixes is process 1.

Only the syntax is checked here. Whether an ``ID`` is live when it is freed
or touched is a property of the run (a double free is detected by whoever
replays the trace), because the same trace must be readable even when it is
wrong at run time, so that the error can point at the operation.

Imported traces of real programs run to millions of lines, so each reader
has a fast way for the common shape of a large file (``_trace_plain``,
``_pageref_plain``: the text checked as a whole, then little work per line)
and a careful one, which reads everything else and names the line at fault;
property tests hold the two to the same answers and errors.

Both readers take a path (``str`` without a newline, or ``os.PathLike``) or
the text itself (a ``str`` that contains a newline); ``parse_trace_text`` and
``parse_pageref_text`` take text explicitly, with a name for the messages.
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

import numpy as np

from vmexp.units import UnitError, parse_duration, parse_size
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, TOUCH, Op

__all__ = [
    "MAX_VALUE",
    "Trace",
    "TraceError",
    "parse_pageref",
    "parse_pageref_text",
    "parse_trace",
    "parse_trace_text",
    "read_text",
]

# Sizes, counts and ids must fit a signed 64-bit integer: the real-glibc
# replayer stores them as int64 and a C size_t cannot hold more anyway.
MAX_VALUE = (1 << 63) - 1

_OPS = {
    "malloc": MALLOC,
    "calloc": CALLOC,
    "realloc": REALLOC,
    "free": FREE,
    "touch": TOUCH,
    "compute": COMPUTE,
}
_FIELDS = {
    MALLOC: "malloc ID SIZE",
    CALLOC: "calloc ID COUNT SIZE",
    REALLOC: "realloc ID SIZE",
    FREE: "free ID",
    TOUCH: "touch ID [OFFSET LENGTH] [r|w]",
    COMPUTE: "compute DURATION",
}
_RW = {"r": 0, "w": 1}
_HEX_DIGITS = "0123456789abcdefABCDEF"


class TraceError(ValueError):
    """A trace that cannot be read; the message starts with ``path:LINE:`` where a line is to blame."""


class Trace(NamedTuple):
    """A parsed allocation trace.

    ``ops[pid]`` holds the operation tuples of one process in file order;
    ``op_index[pid][k]`` is the global index of ``ops[pid][k]`` among all
    operation lines of the file (comments and blank lines not counted), which
    is the ``op`` column of ``syscalls.csv``; ``lines[g]`` is the 1-based line
    number of global operation ``g``, for messages about it at run time.
    A trace without any operation has no process: ``ops == {}``.
    """

    ops: dict[int, list[Op]]
    op_index: dict[int, list[int]]
    lines: list[int]


def read_text(
    source: str | os.PathLike[str], *, strict: bool = True, what: str = "trace file"
) -> tuple[str, str]:
    """(name, text) of a trace given as a path or as its text (a ``str`` holding a newline).

    Errors a user can cause (no such file, a directory, no permission, bytes
    that are not UTF-8 text) become one-line ``TraceError`` messages.
    ``strict=False`` is for other tools' logs, which may quote a program's
    non-UTF-8 output: bad bytes become U+FFFD instead of an error.

    A UTF-8 byte-order mark at the start (Windows editors write one, and no
    editor shows it) is dropped, as CRLF line ends are accepted: it would make
    the first line an unknown operation ``'\ufeffmalloc'``.
    """
    if isinstance(source, str) and "\n" in source:
        return "<text>", source
    name = os.fspath(source)
    try:
        with open(name, "rb") as fh:
            # A device has no end (/dev/zero, /dev/urandom): reading it took the host's memory until its
            # OOM killer stopped the run without a word. A pipe (<(generate)) ends when its writer does.
            if stat.S_ISCHR(mode := os.fstat(fh.fileno()).st_mode) or stat.S_ISBLK(mode):
                raise TraceError(f"{name}: is a device, not a {what}")
            data = fh.read()
    except FileNotFoundError:
        raise TraceError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{name}: is a directory, not a {what}") from None
    except PermissionError:
        raise TraceError(f"{name}: cannot read the file (permission denied)") from None
    except OSError as e:
        raise TraceError(f"{name}: cannot read the file ({e.strerror or e})") from None
    if not strict:
        return name, data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise TraceError(f"{name}:{line}: not a text file (NUL byte at offset {nul})")
    try:
        return name, data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TraceError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def _short(tok: str) -> str:
    """A token as a message shows it: cut short, so that an error stays one readable line."""
    return tok if len(tok) <= 40 else f"{tok[:20]}...({len(tok)} characters)"


def _decimal(tok: str, what: str) -> int:
    """An ASCII decimal token as an int; ValueError when it is above MAX_VALUE.

    The length is checked before ``int()``, which refuses more than 4300
    digits with a message about Python, not about the trace.
    """
    if len(tok.lstrip("0")) > 19:
        raise ValueError(f"{what} {_short(tok)} is larger than 2^63-1")
    v = int(tok)
    if v > MAX_VALUE:
        raise ValueError(f"{what} {tok} is larger than 2^63-1")
    return v


def _int(tok: str, what: str) -> int:
    """A non-negative decimal integer (an id or a count); raises ValueError with a short reason."""
    if tok.isdigit() and tok.isascii():
        return _decimal(tok, what)
    raise ValueError(f"{what} must be a non-negative integer, got {_short(tok)!r}")


def _size(tok: str, what: str) -> int:
    if tok.isdigit() and tok.isascii():
        return _decimal(tok, what)
    try:
        v = parse_size(tok)
    except UnitError as e:
        raise ValueError(f"bad {what} {_short(tok)!r}: {e}") from None
    if v > MAX_VALUE:
        raise ValueError(f"{what} {_short(tok)} is larger than 2^63-1")
    return v


def _op(toks: list[str]) -> Op:
    """One operation from the tokens of a line, prefix removed; ValueError says what is wrong."""
    name = toks[0]
    code = _OPS.get(name)
    if code is None:
        code = _OPS.get(name.lower())
        if code is None:
            raise ValueError(f"unknown operation {name!r} (expected one of {', '.join(_OPS)})")
    n = len(toks)
    if code == MALLOC:
        if n == 3:
            return (MALLOC, _int(toks[1], "id"), _size(toks[2], "size"))
    elif code == FREE:
        if n == 2:
            return (FREE, _int(toks[1], "id"))
    elif code == TOUCH:
        if 2 <= n <= 5:
            bid = _int(toks[1], "id")
            write = 1
            if n in (3, 5):
                rw = _RW.get(toks[-1].lower())
                if rw is None:
                    raise ValueError(f"touch mode must be r or w, got {toks[-1]!r}")
                write = rw
            if n >= 4:
                return (TOUCH, bid, _size(toks[2], "offset"), _size(toks[3], "length"), write)
            return (TOUCH, bid, 0, -1, write)
    elif code == REALLOC:
        if n == 3:
            return (REALLOC, _int(toks[1], "id"), _size(toks[2], "size"))
    elif code == CALLOC:
        if n == 4:
            return (CALLOC, _int(toks[1], "id"), _size(toks[2], "count"), _size(toks[3], "size"))
    elif n == 2:  # compute
        try:
            return (COMPUTE, parse_duration(toks[1]))
        except UnitError as e:
            raise ValueError(f"bad duration {toks[1]!r}: {e}") from None
    raise ValueError(
        f"wrong number of fields for {name!r}: expected '{_FIELDS[code]}', got {n - 1} argument(s)"
    )


def _pid(prefix: str) -> int:
    """The pid of a ``pPID:`` prefix (``prefix`` is the text before the colon)."""
    digits = prefix[1:]
    if prefix[:1] not in ("p", "P") or not digits.isdigit() or not digits.isascii():
        raise ValueError(
            f"bad process prefix {_short(prefix + ':')!r} (expected pPID: with PID a positive integer)"
        )
    # The length first: int() of thousands of digits raises an error about Python, not the trace.
    if len(digits.lstrip("0")) > 19 or not 1 <= int(digits) <= MAX_VALUE:
        raise ValueError(f"bad process prefix {_short(prefix + ':')!r}: PID must be between 1 and 2^63-1")
    pid = int(digits)
    return pid


_COMMENT_LINE = re.compile(r"^[ \t]*#.*$", re.MULTILINE)


def _trace_plain(text: str) -> Trace | None:
    """A trace of one process in the common shape, read without the careful checks per token, or None.

    Imported traces of real programs run to millions of lines of ``touch``,
    ``malloc`` and ``free`` with decimal numbers, comments on lines of their
    own, no ``pPID:`` prefix. The text is checked as a whole first: ASCII,
    and none of the characters ``int()`` takes that the trace format does
    not (a sign, ``_``), no prefix (``:``), no comment after an operation.
    Then each line is one ``split`` and an ``int()`` per number. Anything
    else, or any line the careful parser would refuse, returns None, and the
    careful parser reads the text and names the line at fault.
    """
    body = _COMMENT_LINE.sub("", text) if "#" in text else text
    if not body.isascii() or any(c in body for c in "#:+-_"):
        return None
    ops: list[Op] = []
    lines: list[int] = []
    add, at = ops.append, lines.append
    rw = _RW
    top = MAX_VALUE
    try:
        for lineno, line in enumerate(body.split("\n"), 1):
            toks = line.split()
            if not toks:
                continue
            name = toks[0]
            n = len(toks)
            if name == "touch" and n == 5:
                bid, off, length = int(toks[1]), int(toks[2]), int(toks[3])
                if bid | off | length > top:
                    return None
                add((TOUCH, bid, off, length, rw[toks[4]]))  # KeyError: not r or w
            elif name == "malloc" and n == 3:
                bid, size = int(toks[1]), int(toks[2])
                if bid | size > top:
                    return None
                add((MALLOC, bid, size))
            elif name == "free" and n == 2:
                bid = int(toks[1])
                if bid > top:
                    return None
                add((FREE, bid))
            else:
                add(_op(toks))
            at(lineno)
    except (ValueError, KeyError):  # a unit ("64k" is not an int()) or a bad line: the careful way
        return None
    if not ops:
        return Trace({}, {}, [])
    return Trace({1: ops}, {1: list(range(len(ops)))}, lines)


def parse_trace_text(text: str, name: str = "<text>") -> Trace:
    """Parse the text of an allocation trace; ``name`` prefixes error messages."""
    fast = _trace_plain(text)
    if fast is not None:
        return fast
    ops: dict[int, list[Op]] = {}
    index: dict[int, list[int]] = {}
    lines: list[int] = []
    prefixed: bool | None = None  # decided by the first operation line, then enforced
    cur_pid = -1
    cur_ops: list[Op] = []
    cur_index: list[int] = []
    g = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        hash_at = raw.find("#")
        line = raw if hash_at < 0 else raw[:hash_at]
        toks = line.split()
        if not toks:
            continue
        try:
            first = toks[0]
            colon = first.find(":")
            if colon >= 0 or first[:1] in ("p", "P"):
                if colon < 0:
                    raise ValueError(f"unknown operation {first!r} (a process prefix reads p2: malloc 1 64)")
                pid = _pid(first[:colon])
                rest = first[colon + 1 :]
                if rest:
                    toks[0] = rest
                else:
                    del toks[0]
                    if not toks:
                        raise ValueError(f"process prefix {first!r} without an operation")
                if prefixed is False:
                    raise ValueError(
                        "this line has a pPID: prefix but earlier lines have none (prefix all or none)"
                    )
                prefixed = True
            else:
                pid = 1
                if prefixed:
                    raise ValueError(
                        "this line has no pPID: prefix but earlier lines have one (prefix all or none)"
                    )
                prefixed = False
            op = _op(toks)
        except ValueError as e:
            raise TraceError(f"{name}:{lineno}: {e}") from None
        if pid != cur_pid:
            cur_pid = pid
            cur_ops = ops.setdefault(pid, [])
            cur_index = index.setdefault(pid, [])
        cur_ops.append(op)
        cur_index.append(g)
        lines.append(lineno)
        g += 1
    return Trace(ops, index, lines)


def parse_trace(path_or_text: str | os.PathLike[str]) -> Trace:
    """Parse an allocation trace from a file (or from its text, see the module docstring)."""
    name, text = read_text(path_or_text)
    return parse_trace_text(text, name)


def parse_pageref_text(text: str, name: str = "<text>") -> tuple[list[int], list[int]]:
    """(page numbers, write flags) of a page-reference trace: ``VPN [r|w]`` per line, default ``r``.

    A page number is decimal or ``0x`` hexadecimal; the two lists are
    parallel, as the engine wants them (no tuple per reference).
    """
    fast = _pageref_plain(text)
    if fast is not None:
        return fast
    vpns: list[int] = []
    writes: list[int] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        hash_at = raw.find("#")
        toks = (raw if hash_at < 0 else raw[:hash_at]).split()
        if not toks:
            continue
        tok = toks[0]
        if tok.isdigit() and tok.isascii():
            if len(tok.lstrip("0")) > 19:  # before int(), which refuses more than 4300 digits
                raise TraceError(f"{name}:{lineno}: page number {_short(tok)} is larger than 2^63-1")
            vpn = int(tok)
        elif tok[:2] in ("0x", "0X") and len(tok) > 2:
            # Hex digits only: int(..., 16) also takes a sign and underscores ("0x-1" was page -1).
            if tok[2:].strip(_HEX_DIGITS):
                raise TraceError(f"{name}:{lineno}: bad page number {_short(tok)!r}")
            vpn = int(tok[2:], 16)
        else:
            raise TraceError(
                f"{name}:{lineno}: bad page number {_short(tok)!r} (expected a non-negative integer)"
            )
        if vpn > MAX_VALUE:
            raise TraceError(f"{name}:{lineno}: page number {_short(tok)} is larger than 2^63-1")
        if len(toks) == 1:
            write = 0
        elif len(toks) == 2:
            rw = _RW.get(toks[1].lower())
            if rw is None:
                raise TraceError(f"{name}:{lineno}: access mode must be r or w, got {toks[1]!r}")
            write = rw
        else:
            raise TraceError(f"{name}:{lineno}: expected 'VPN [r|w]', got {len(toks)} fields")
        vpns.append(vpn)
        writes.append(write)
    return vpns, writes


def _pageref_plain(text: str) -> tuple[list[int], list[int]] | None:
    """The common shapes of a large trace, read without a Python step per line, or None.

    ``VPN`` on every line, or ``VPN r|w`` on every line, decimal, no
    comments: one ``split`` and one ``map(int, ...)`` read a million lines
    in a fraction of the line-by-line parser's time. Anything else (hex,
    comments, a bad line) returns None, and the careful parser reads it and
    names the line at fault.
    """
    body = text.replace("\n", "")
    if body.isdigit() and body.isascii():
        # Decimal page numbers only, one per line: numpy's C reader. A number past 2^63-1 saturates
        # to it, so that value sends the text to the careful parser, which names the line.
        vpns = np.fromstring(text, dtype=np.int64, sep=" ")
        if len(vpns) and int(vpns.max()) >= MAX_VALUE:
            return None
        return vpns.tolist(), [0] * len(vpns)
    toks = text.split()
    if not toks:
        return [], []
    if toks[1:2] not in (["r"], ["w"]):
        return None
    # "VPN r|w" on every line: the modes at the odd positions, and as many lines as pairs.
    vpn_toks, modes = toks[::2], toks[1::2]
    digits = "".join(vpn_toks)
    if not (digits.isdigit() and digits.isascii()):
        return None
    if len(vpn_toks) != len(modes) or set(modes) - {"r", "w"} or max(map(len, vpn_toks)) > 18:
        return None
    # One pair per line: as many non-blank lines as pairs, each starting with a page number. The
    # count alone lets "1 r 2" + "w" or "1" + "r 2 w" through, which the careful parser refuses.
    starts = [line.lstrip()[:1] for line in text.split("\n")]
    if len(starts) - starts.count("") != len(modes) or "r" in starts or "w" in starts:
        return None
    return list(map(int, vpn_toks)), [1 if m == "w" else 0 for m in modes]


def parse_pageref(path_or_text: str | os.PathLike[str]) -> tuple[list[int], list[int]]:
    """Parse a page-reference trace from a file (or from its text, see the module docstring)."""
    name, text = read_text(path_or_text)
    return parse_pageref_text(text, name)
