"""Turn other tools' allocation logs into the trace format, so real programs can be replayed.

Two sources are understood:

- valgrind ``--trace-malloc=yes`` (best: valgrind sees every allocation,
  including those glibc makes for the program, e.g. in ``fopen``)::

      --4263-- malloc(472) = 0x4A40090
      --4263-- realloc(0x0,1600)malloc(1600) = 0x4A412F0
      --4263-- realloc(0x4A40170,0)free(0x4A40170)
      --4263--  = 0
      --4424-- _ZnwmSt11align_val_t(size 128, al 64) = 0x4D6E040

  valgrind prints a call, then its result, and a call it makes on the way
  (``realloc(NULL, n)`` calls ``malloc``, ``realloc(p, 0)`` calls ``free``)
  appears between the two, sometimes across lines; the reader keeps the
  pending calls of each process on a small stack for that reason.
- ltrace (``ltrace -e malloc+free+calloc+realloc``), one call per line, with
  ``<unfinished ...>`` / ``<... resumed>`` pairs when calls nest.

Addresses become ids: each successful allocation gets the next id of its
process, and the id follows the block through realloc; ids are never reused,
so a trace reads unambiguously. What has no counterpart in the trace is
skipped and counted (frees of addresses the log never allocated, ``free(NULL)``,
failed allocations); aligned allocations (``memalign``, ``posix_memalign``,
aligned ``new``) become plain mallocs of the same size and are counted too,
because the trace format has no alignment.

Command line::

    python -m vmexp.workload.importers valgrind LOG -o OUT.trace
    python -m vmexp.workload.importers ltrace LOG -o OUT.trace
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from vmexp.cliargs import Parser
from vmexp.console import keep_going_without_a_reader
from vmexp.workload.traces import MAX_VALUE, TraceError, read_text

__all__ = ["ImportResult", "LogImportError", "import_ltrace", "import_valgrind", "main"]


class LogImportError(ValueError):
    """A log that cannot be imported; the message says which file and why."""


# How each function name of the logs maps onto the trace: "malloc" (size is
# the first number, or the "size N" of valgrind's aligned forms), "calloc",
# "realloc", "free". C++ operators are matched by their mangled prefixes
# (_Znwm, _Znam: new; _ZdlPv, _ZdaPv: delete) so that the nothrow, sized and
# aligned variants are covered without listing each.
_ALLOC_NAMES = {"malloc", "__builtin_new", "__builtin_vec_new", "builtin_new", "valloc", "pvalloc"}
_ALIGNED_NAMES = {"memalign", "posix_memalign", "aligned_alloc"}
_FREE_NAMES = {"free", "cfree", "__builtin_delete", "__builtin_vec_delete"}


def _kind(name: str) -> str | None:
    if name in _FREE_NAMES or name.startswith(("_ZdlPv", "_ZdaPv")):
        return "free"
    if name in _ALLOC_NAMES or name.startswith(("_Znwm", "_Znam", "_Znwj", "_Znaj")):
        return "aligned" if "align_val_t" in name else "malloc"
    if name in _ALIGNED_NAMES:
        return "aligned"
    if name in ("calloc", "realloc"):
        return name
    return None


_SIZE_KW = re.compile(r"size\s+(\d+)", re.ASCII)


def _addr(text: str) -> int:
    """An address as the tools print it (``0x4A40090``, ``0``, ``(nil)``, ``NULL``)."""
    text = text.strip()
    try:
        if text.startswith(("0x", "0X")):
            return int(text, 16)
        if text.isascii() and text.isdigit():
            return int(text)
    except ValueError:
        pass
    return 0  # (nil), NULL, <void>, or garbage: no block


def _count(text: str) -> int:
    """A size or count argument, decimal or hexadecimal; ValueError when it is neither.

    Also a ValueError: a negative number (``int()`` takes a sign) or one above
    2^63-1, which the trace format refuses: the importer's output must parse.
    """
    v = int(text, 16) if text.startswith(("0x", "0X")) else int(text)
    if not 0 <= v <= MAX_VALUE:
        raise ValueError(f"{text} is not a size a trace can hold")
    return v


@dataclass
class ImportResult:
    """The trace text and what had to be left out or approximated, by reason."""

    text: str
    ops: int
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the command line and the trace header."""
        parts = [f"{self.ops} operations"]
        parts += [f"{n} {reason}" for reason, n in sorted(self.skipped.items()) if n]
        return ", ".join(parts)


class _Builder:
    """Assigns ids to addresses per process and writes trace lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []  # (process key, operation text)
        self.live: dict[int, dict[int, int]] = {}  # process -> address -> id
        self.next_id: dict[int, int] = {}
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def alloc(self, proc: int, op: str, args: str, result: int) -> None:
        """A new block at ``result``; ``args`` is the rest of the trace line after the id."""
        if result == 0:
            self.skip("failed allocations (NULL result)")
            return
        live = self.live.setdefault(proc, {})
        bid = self.next_id.get(proc, 0)
        self.next_id[proc] = bid + 1
        live[result] = bid
        self.lines.append((proc, f"{op} {bid} {args}"))

    def free(self, proc: int, ptr: int) -> None:
        if ptr == 0:
            self.skip("free(NULL) calls")
            return
        bid = self.live.get(proc, {}).pop(ptr, None)
        if bid is None:
            self.skip("frees of addresses not allocated in the log")
            return
        self.lines.append((proc, f"free {bid}"))

    def realloc(self, proc: int, ptr: int, size: int, result: int) -> None:
        """A realloc that neither the log's nested malloc nor its nested free already covered."""
        live = self.live.setdefault(proc, {})
        if ptr == 0 or ptr not in live:
            if ptr != 0:
                self.skip("reallocs of addresses not allocated in the log (imported as malloc)")
            self.alloc(proc, "malloc", str(size), result)
            return
        if result == 0:
            if size == 0:  # glibc's realloc(p, 0) frees p
                self.free(proc, ptr)
            else:
                self.skip("failed reallocs (NULL result)")
            return
        bid = live.pop(ptr)
        live[result] = bid
        self.lines.append((proc, f"realloc {bid} {size}"))

    def call(self, proc: int, name: str, args: str, result: int) -> None:
        """One completed call of the log: ``name(args) = result``."""
        kind = _kind(name)
        fields = [f.strip() for f in args.split(",")]
        try:
            if kind == "free":
                self.free(proc, _addr(fields[0]))
            elif kind == "malloc":
                self.alloc(proc, "malloc", str(_count(fields[0])), result)
            elif kind == "aligned":
                # valgrind: "al 64, size 100"; ltrace: memalign(64, 100), aligned_alloc(64, 100),
                # sometimes followed by junk arguments ltrace prints without a prototype
                m = _SIZE_KW.search(args)
                size = _count(m.group(1) if m else fields[1])
                self.skip("aligned allocations imported as malloc (alignment dropped)")
                self.alloc(proc, "malloc", str(size), result)
            elif kind == "calloc":
                self.alloc(proc, "calloc", f"{_count(fields[0])} {_count(fields[1])}", result)
            elif kind == "realloc":
                self.realloc(proc, _addr(fields[0]), _count(fields[1]), result)
            else:
                self.skip("unreadable calls")
        except (IndexError, ValueError):
            self.skip("unreadable calls")

    def result(self, source: str) -> ImportResult:
        procs = list(dict.fromkeys(p for p, _ in self.lines))
        out = [f"# imported from {source}"]
        if len(procs) > 1:
            # Several processes (a traced program that forked): number them
            # 1..k in order of appearance, since the trace's pids are the
            # simulated processes, not the original ones.
            number = {p: i for i, p in enumerate(procs, 1)}
            out.append("# processes: " + ", ".join(f"p{number[p]} = pid {p}" for p in procs))
            body = [f"p{number[p]}: {text}" for p, text in self.lines]
        else:
            body = [text for _, text in self.lines]
        res = ImportResult("", len(body), dict(self.skipped))
        out.append(f"# {res.summary()}")
        res.text = "\n".join(out + body) + "\n"
        return res


def _is_null_arg(args: str) -> bool:
    return _addr(args.split(",")[0]) == 0


_VG_LINE = re.compile(r"^--(\d+)-- ?(.*)$", re.ASCII)
_VG_CALL = re.compile(r"\s*([A-Za-z_]\w*)\(([^()]*)\)", re.ASCII)
_VG_RESULT = re.compile(r"\s*=\s*(0[xX][0-9a-fA-F]+|[0-9]+|\(nil\))")


def import_valgrind(lines: Iterable[str], source: str = "valgrind --trace-malloc=yes") -> ImportResult:
    """Convert the lines of a valgrind ``--trace-malloc=yes`` log; other lines are ignored."""
    b = _Builder()
    # Per process: the calls printed but not yet completed, innermost last,
    # each as [name, args, covered]; "covered" marks a realloc whose effect a
    # nested malloc or free already recorded.
    pending: dict[int, list[list[str | bool]]] = {}
    for raw in lines:
        m = _VG_LINE.match(raw)
        if m is None or len(m.group(1)) > 19:  # no pid has that many digits: not valgrind's line
            continue
        proc = int(m.group(1))
        body = m.group(2)
        stack = pending.setdefault(proc, [])
        pos = 0
        while pos < len(body):
            c = _VG_CALL.match(body, pos)
            if c is not None:
                name, args = c.group(1), c.group(2)
                pos = c.end()
                kind = _kind(name)
                if kind is None:  # malloc_usable_size, mallinfo, ...: not an allocation
                    r = _VG_RESULT.match(body, pos)
                    pos = r.end() if r else pos
                    continue
                if stack and kind != "free":
                    top = stack[-1]
                    if top[0] == "realloc":
                        top[2] = True
                    else:  # a call left without its result: the log is cut or interleaved
                        stack.pop()
                        b.skip("calls without a result")
                if kind == "free":
                    if stack and stack[-1][0] == "realloc":
                        stack[-1][2] = True
                    b.call(proc, name, args, 0)
                else:
                    stack.append([name, args, False])
                continue
            r = _VG_RESULT.match(body, pos)
            if r is not None:
                pos = r.end()
                if stack:
                    name, args, covered = stack.pop()
                    if not covered:
                        b.call(proc, str(name), str(args), _addr(r.group(1)))
                    # valgrind prints no result of its own for realloc(NULL, n):
                    # the nested malloc's result was it.
                    if (
                        stack
                        and stack[-1][0] == "realloc"
                        and stack[-1][2]
                        and _is_null_arg(str(stack[-1][1]))
                    ):
                        stack.pop()
                continue
            break  # the rest of the line is not ours (a message valgrind printed)
    for stack in pending.values():
        for _name, _args, covered in stack:
            if not covered:
                b.skip("calls without a result")
    return b.result(source)


# ltrace prefixes "[pid N] " (-f) or "N " (-f -o FILE), then "lib->" (the library that called).
_LT_PID = r"^(?:\[pid (?P<pid1>\d+)\] |(?P<pid2>\d+) +)?"
_LT_LINE = re.compile(
    _LT_PID + r"(?:\S+->)?(?P<name>[A-Za-z_]\w*)\((?P<args>.*?)\)\s*=\s*(?P<res>\S+)", re.ASCII
)
_LT_UNFINISHED = re.compile(
    _LT_PID + r"(?:\S+->)?(?P<name>[A-Za-z_]\w*)\((?P<args>.*?)\s*<unfinished", re.ASCII
)
_LT_RESUMED = re.compile(
    _LT_PID + r"<\.\.\. (?P<name>\w+) resumed>(?P<args>.*?)\)\s*=\s*(?P<res>\S+)", re.ASCII
)


def _pid(m: re.Match[str]) -> int:
    """The pid of an ltrace line (0 without one); -1 for digits no pid has (int() would refuse 4300+)."""
    digits = m.group("pid1") or m.group("pid2") or "0"
    return int(digits) if len(digits) <= 19 else -1


def import_ltrace(lines: Iterable[str], source: str = "ltrace") -> ImportResult:
    """Convert an ltrace log (``ltrace [-f] -e malloc+free+calloc+realloc``); other lines are ignored.

    ltrace prints ``realloc(NULL, n)`` and ``realloc(p, 0)`` as themselves
    (it sees the program's calls, not glibc's internal ones), so unlike
    valgrind's log no nested calls need to be folded.
    """
    b = _Builder()
    unfinished: dict[tuple[int, str], list[str]] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        m = _LT_LINE.match(line)
        if m is None:
            m = _LT_UNFINISHED.match(line)
            if m is not None:
                proc = _pid(m)
                unfinished.setdefault((proc, m.group("name")), []).append(m.group("args"))
                continue
            m = _LT_RESUMED.match(line)
            if m is None:
                continue
            proc = _pid(m)
            waiting = unfinished.get((proc, m.group("name")))
            if not waiting:
                b.skip("calls without a start")
                continue
            args = waiting.pop() + m.group("args")
        else:
            proc = _pid(m)
            args = m.group("args")
        name = m.group("name")
        if _kind(name) is None:
            continue
        if name == "posix_memalign":  # ltrace shows its status code, not the block's address
            b.skip("posix_memalign calls (ltrace does not show the block)")
            continue
        b.call(proc, name, args, _addr(m.group("res")))
    for waiting in unfinished.values():
        for _ in waiting:
            b.skip("calls without a result")
    return b.result(source)


_IMPORTERS = {"valgrind": import_valgrind, "ltrace": import_ltrace}


def import_file(kind: str, path: str | os.PathLike[str]) -> ImportResult:
    """Import the log at ``path`` with the importer named ``kind`` (valgrind or ltrace)."""
    importer = _IMPORTERS.get(kind)
    if importer is None:
        raise LogImportError(f"unknown log kind {kind!r} (expected one of {', '.join(_IMPORTERS)})")
    try:
        name, text = read_text(path, strict=False, what="log file")
    except TraceError as e:
        raise LogImportError(str(e)) from None
    return importer(text.splitlines(), f"{kind} log {os.path.basename(name)}")


def _write_whole(path: str, text: str) -> None:
    """Write ``path`` so that it holds the whole new text or, if that fails, what it held before.

    The text goes to a temporary file beside it, renamed over it at the end:
    a write that fails part way (a full disk, a file-size limit, Ctrl-C)
    leaves the earlier trace as it was, not a half-written one. The file
    keeps its permissions (a new one gets the umask's). A device or a FIFO
    (``-o /dev/stdout``) cannot be replaced and is written directly; a
    symbolic link is written through.
    """
    target = os.path.realpath(path)  # a dangling link too: its file is created, as open() does
    try:
        st = os.stat(path)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    else:
        if not stat.S_ISREG(st.st_mode):  # /dev/stdout may be a pipe: no path to rename to
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            return
        mode = stat.S_IMODE(st.st_mode)
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    """The command line: import a log, write the trace, print what was skipped to stderr."""
    keep_going_without_a_reader()
    parser = Parser(
        name="importers",
        prog="python -m vmexp.workload.importers",
        description="Convert a valgrind --trace-malloc=yes or ltrace log into a vmexp trace.",
    )
    parser.add_argument("kind", choices=sorted(_IMPORTERS), help="which tool wrote the log")
    parser.add_argument("log", help="the log file")
    parser.add_argument("-o", "--output", default="-", help="the trace file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        res = import_file(args.kind, args.log)
        if res.ops == 0:
            raise LogImportError(f"{args.log}: no allocation calls found (is it a {args.kind} log?)")
        if args.output == "-":
            sys.stdout.write(res.text)
        else:
            try:
                _write_whole(args.output, res.text)
            except OSError as e:
                raise LogImportError(f"{args.output}: cannot write ({e.strerror or e})") from None
    except LogImportError as e:
        print(f"importers: error: {e}", file=sys.stderr)
        return 2
    print(f"importers: {res.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from vmexp.console import run_program

    run_program(main)
