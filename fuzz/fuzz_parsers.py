"""Fuzz the parsers of everything users feed vmexp: traces, page-reference traces, tool logs, units.

Usage::

    python fuzz/fuzz_parsers.py --minutes 10 trace      # one target for ten minutes
    python fuzz/fuzz_parsers.py --minutes 10 all        # every target, ten minutes each
    python fuzz/fuzz_parsers.py --engine hypothesis --minutes 1 units

Targets: ``units`` (parse_size, parse_duration), ``trace`` (allocation
traces, read from a file as bytes), ``pageref`` (page-reference traces),
``valgrind`` and ``ltrace`` (the importers, from a file as bytes).

The contract each target checks (issue 8): any byte sequence ends in a
result or in the parser's own error — ``UnitError``, ``TraceError``,
``LogImportError`` — whose message is one line and, for the trace formats,
names the line (``FILE:LINE: ...``). Results are checked too, not only the
absence of a crash: parsed operations are well formed and read back the same
when printed (``describe``), importer output is itself a valid trace in which
every free and realloc names a live block, sizes that format exactly parse
back to themselves.

Engines: atheris (libFuzzer, coverage-guided; ``pip install atheris``), the
default when it is importable, seeded with the project's own traces and
logs; otherwise hypothesis generating bytes and grammar-shaped text. Both
print the number of inputs run. An input that breaks the contract is saved
(atheris: ``TARGET-crash-*`` under --artifacts, by default
``$TMPDIR/vmexp-fuzz/artifacts``; hypothesis: printed) and the
process exits non-zero.

The check functions are imported by tests/test_fuzz.py, which runs each for
a few seconds in the regular test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import vmexp.workload.ops as ops  # noqa: E402
from vmexp.units import UnitError, format_size, parse_duration, parse_size  # noqa: E402
from vmexp.workload.importers import LogImportError, import_file  # noqa: E402
from vmexp.workload.ops import describe  # noqa: E402
from vmexp.workload.traces import (  # noqa: E402
    MAX_VALUE,
    Trace,
    TraceError,
    parse_pageref,
    parse_trace,
    parse_trace_text,
)


class ContractBroken(AssertionError):
    """A parser gave a wrong result or an error outside its contract."""


def _one_line(msg: str, what: str) -> None:
    if not msg or "\n" in msg or "\r" in msg:
        raise ContractBroken(f"{what}: the message is not one non-empty line: {msg!r}")


# A scratch file per process: parsers that read paths get the fuzzer's bytes through it.
# Everything the fuzzers write lives under one directory: atheris ends its process from C, so no
# Python clean-up runs after it; the corpus there is reused by the next run of the same target.
BASE = Path(tempfile.gettempdir()) / "vmexp-fuzz"
_SCRATCH = BASE / f"input-{os.getpid()}"


def _to_file(data: bytes) -> str:
    BASE.mkdir(parents=True, exist_ok=True)
    _SCRATCH.write_bytes(data)
    return str(_SCRATCH)


def _n_lines(data: bytes | str) -> int:
    return (data.count(b"\n") if isinstance(data, bytes) else data.count("\n")) + 1


def _line_error(e: Exception, name: str, data: bytes | str) -> None:
    """A trace-format error: one line, ``NAME:LINE: reason``, LINE within the input."""
    msg = str(e)
    _one_line(msg, type(e).__name__)
    m = re.match(rf"{re.escape(name)}:(\d+): \S", msg)
    if m is None:
        raise ContractBroken(f"error without a line number: {msg!r}")
    if not 1 <= int(m.group(1)) <= _n_lines(data):
        raise ContractBroken(f"line {m.group(1)} is outside the input ({_n_lines(data)} lines): {msg!r}")


# ---------------------------------------------------------------------------------------------- units


def check_units(data: bytes) -> None:
    """parse_size / parse_duration: a non-negative int or a UnitError; exact sizes format and parse back."""
    texts: list[object] = [data.decode("utf-8", errors="replace")]
    if len(data) == 8:  # the bytes as a double too: YAML and the command line give floats (inf, nan, -0.0)
        texts.append(struct.unpack("<d", data)[0])
    if len(data) <= 16:
        texts.append(int.from_bytes(data, "little", signed=True))
    for value in texts:
        for parse in (parse_size, parse_duration):
            try:
                v = parse(value)
            except UnitError as e:
                _one_line(str(e), "UnitError")
                continue
            if type(v) is not int or v < 0:
                raise ContractBroken(f"{parse.__name__}({value!r}) = {v!r}, not a non-negative int")
            if parse is parse_size and v < 1 << 62:
                shown = format_size(v)
                if "." not in shown and parse_size(shown) != v:
                    raise ContractBroken(f"format_size({v}) = {shown!r} parses back to {parse_size(shown)}")


# ---------------------------------------------------------------------------------------------- traces


def _check_ops(trace: Trace, text: str) -> None:
    """Well-formed operations that read back the same from their description."""
    t_ops, t_index, t_lines = trace
    total = sum(len(v) for v in t_ops.values())
    if len(t_lines) != total or sorted(g for v in t_index.values() for g in v) != list(range(total)):
        raise ContractBroken("op_index / lines do not number the operations 0..n-1")
    if t_lines != sorted(set(t_lines)) or (t_lines and not 1 <= t_lines[-1] <= _n_lines(text)):
        raise ContractBroken(f"line numbers are not increasing lines of the input: {t_lines[:10]}")
    for pid, plist in t_ops.items():
        if not (type(pid) is int and 1 <= pid <= MAX_VALUE):
            raise ContractBroken(f"bad pid {pid!r}")
        for op in plist:
            code = op[0]
            if code not in (ops.MALLOC, ops.CALLOC, ops.REALLOC, ops.FREE, ops.TOUCH, ops.COMPUTE):
                raise ContractBroken(f"unknown opcode in {op!r}")
            for i, x in enumerate(op[1:], 1):
                if type(x) is not int:
                    raise ContractBroken(f"non-int field in {op!r}")
                if code == ops.TOUCH and i == 3 and x == -1:
                    continue
                if code == ops.TOUCH and i == 4 and x not in (0, 1):
                    raise ContractBroken(f"touch mode {x} in {op!r}")
                if code != ops.COMPUTE and not 0 <= x <= MAX_VALUE:
                    raise ContractBroken(f"field out of range in {op!r}")
                if code == ops.COMPUTE and x < 0:
                    raise ContractBroken(f"negative duration in {op!r}")
        again = parse_trace_text("\n".join(describe(op) for op in plist) + "\n")
        if list(again.ops.get(1, [])) != list(plist):
            raise ContractBroken(f"operations do not read back from their description: {plist[:5]}")


def check_trace(data: bytes) -> None:
    """An allocation trace from a file: a Trace or a TraceError naming the line."""
    path = _to_file(data)
    try:
        trace = parse_trace(path)
    except TraceError as e:
        _line_error(e, path, data)
        return
    text = data.decode("utf-8")  # it parsed, so it is UTF-8
    if parse_trace_text(text, path) != trace:
        raise ContractBroken("the same trace parses differently from a file and from its text")
    _check_ops(trace, text)


def check_pageref(data: bytes) -> None:
    """A page-reference trace from a file: parallel lists of page numbers and 0/1, or a TraceError."""
    path = _to_file(data)
    try:
        vpns, writes = parse_pageref(path)
    except TraceError as e:
        _line_error(e, path, data)
        return
    if len(vpns) != len(writes):
        raise ContractBroken("page numbers and write flags differ in length")
    if any(type(v) is not int or not 0 <= v <= MAX_VALUE for v in vpns) or set(writes) - {0, 1}:
        raise ContractBroken(f"bad references {vpns[:5]} {writes[:5]}")


# ---------------------------------------------------------------------------------------------- importers


def _check_imported(text: str) -> None:
    """The importer's output is a valid trace whose frees and reallocs name live blocks, ids never reused."""
    try:
        trace = parse_trace_text(text, "<imported>")
    except TraceError as e:
        raise ContractBroken(f"the importer wrote a trace that does not parse: {e}") from None
    for pid, plist in trace.ops.items():
        live: set[int] = set()
        used: set[int] = set()
        for op in plist:
            code, ident = op[0], op[1]
            if code in (ops.MALLOC, ops.CALLOC):
                if ident in used:
                    raise ContractBroken(f"p{pid}: id {ident} allocated twice")
                used.add(ident)
                live.add(ident)
            elif code == ops.FREE:
                if ident not in live:
                    raise ContractBroken(f"p{pid}: free of id {ident}, which is not live")
                live.discard(ident)
            elif code == ops.REALLOC and ident not in live:
                raise ContractBroken(f"p{pid}: realloc of id {ident}, which is not live")


def _check_importer(kind: str, data: bytes) -> None:
    path = _to_file(data)
    try:
        res = import_file(kind, path)
    except LogImportError as e:
        _one_line(str(e), "LogImportError")
        return
    body = [ln for ln in res.text.splitlines() if ln and not ln.startswith("#")]
    if res.ops != len(body):
        raise ContractBroken(f"ImportResult.ops is {res.ops} but the trace has {len(body)} operation lines")
    if any(n < 0 for n in res.skipped.values()):
        raise ContractBroken(f"negative skip counts {res.skipped}")
    _one_line(res.summary(), "summary")
    _check_imported(res.text)


def check_valgrind(data: bytes) -> None:
    _check_importer("valgrind", data)


def check_ltrace(data: bytes) -> None:
    _check_importer("ltrace", data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "units": check_units,
    "trace": check_trace,
    "pageref": check_pageref,
    "valgrind": check_valgrind,
    "ltrace": check_ltrace,
}


def seeds(target: str) -> list[bytes]:
    """Inputs to start from: the project's own files of that kind, and a few hand-picked edges."""
    found: list[Path] = []
    if target == "trace":
        found = sorted((ROOT / "tests" / "traces").glob("*.trace"))
    elif target == "valgrind":
        found = sorted((ROOT / "tests" / "data").glob("*.valgrind.log"))
    elif target == "ltrace":
        found = sorted((ROOT / "tests" / "data").glob("*.ltrace.log"))
    out = [p.read_bytes()[:20000] for p in found]
    out += {
        "units": [b"64k", b"1.5M", b"0x1000", b"10us", b"2.5e3ms", b"1min", b"  7 KiB ", b"1e400"],
        "trace": [b"p1: malloc 1 64k\np2: touch 1 0 4096 r\n", b"compute 20us\nfree 3 # c\n"],
        "pageref": [b"1\n2 w\n0x10 r\n# c\n", b"7\n0\n1\n"],
        "valgrind": [b"--1-- malloc(8) = 0x10\n--1-- realloc(0x10,0)free(0x10)\n--1--  = 0\n"],
        "ltrace": [
            b"[pid 2] malloc(8) = 0x10\n2 free(0x10 <unfinished ...>\n2 <... free resumed> ) = <void>\n"
        ],
    }[target]
    return out


# ---------------------------------------------------------------------------------------------- engines


def run_atheris(target: str, seconds: float, artifacts: Path) -> int:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    atheris.instrument_all()  # coverage feedback from every loaded Python function, vmexp's included
    check = TARGETS[target]
    corpus = BASE / f"{target}-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds(target)):
        (corpus / f"seed{i}").write_bytes(s)
    artifacts.mkdir(parents=True, exist_ok=True)
    # libFuzzer prints "Done N runs in S second(s)" when max_total_time is reached.
    args = [
        sys.argv[0],
        f"-max_total_time={int(seconds)}",
        "-max_len=4096",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{target}-",
        str(corpus),
    ]
    atheris.Setup(args, check)
    atheris.Fuzz()  # exits the process
    return 0


def run_hypothesis(target: str, seconds: float) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    check = TARGETS[target]
    count = 0
    shaped = texts_for(target).map(lambda t: t.encode("utf-8", errors="surrogatepass"))

    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    @given(st.one_of(st.binary(max_size=512), shaped, st.sampled_from(seeds(target))))
    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        check(data)

    end = time.monotonic() + seconds
    t0 = time.monotonic()
    while time.monotonic() < end:
        one()
    print(f"{target}: {count} inputs in {time.monotonic() - t0:.0f} s (hypothesis), no contract broken")
    return 0


def texts_for(target: str):  # type: ignore[no-untyped-def]
    """Grammar-shaped text for a target: the tokens of its format, shuffled, with edge values."""
    from hypothesis import strategies as st

    numbers = st.one_of(
        st.integers(0, 1 << 70).map(str),
        st.sampled_from(["0", "-1", "0x", "0x1F", "1.5", ".5", "1e3", "1e400", "9" * 30, "٣", "1_000", "+1"]),
    )
    units = st.sampled_from(
        ["", "k", "K", "KiB", "M", "g", "T", "b", "ns", "us", "µs", "ms", "s", "min", "x"]
    )
    value = st.builds(lambda n, u, sp: n + sp + u, numbers, units, st.sampled_from(["", " "]))
    if target == "units":
        return value
    space = st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000"])
    if target == "pageref":
        word = st.one_of(numbers, st.sampled_from(["r", "w", "R", "x", "#", "0x10", "0X"]))
    elif target == "trace":
        word = st.one_of(
            value,
            st.sampled_from(
                ["malloc", "calloc", "realloc", "free", "touch", "compute", "MALLOC", "r", "w", "#", "p1:", "p2:",
                 "P3:", "p0:", "p:", "p1:malloc"]
            ),
        )  # fmt: skip
    else:
        word = st.one_of(
            numbers,
            st.sampled_from(
                ["--12--", "==12==", "[pid 3]", "7", "malloc(", "calloc(", "realloc(", "free(", "memalign(",
                 "_Znwm(", "_ZdlPv(", "posix_memalign(", ")", "(", ",", "=", " = ", "0x10", "0x0", "(nil)",
                 "<unfinished ...>", "<... malloc resumed>", "<... free resumed>", "<void>", "size", "al",
                 "t->", "+++ exited +++"]
            ),
        )  # fmt: skip
    line = st.lists(st.one_of(word, space), max_size=12).map("".join)
    return st.lists(line, max_size=20).map("\n".join)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python fuzz/fuzz_parsers.py", description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--minutes", type=float, default=1.0, help="time per target (default 1)")
    parser.add_argument("--engine", choices=["atheris", "hypothesis", "auto"], default="auto")
    parser.add_argument(
        "--artifacts", type=Path, default=BASE / "artifacts",
        help="where atheris saves inputs that broke the contract",
    )  # fmt: skip
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    targets = list(TARGETS) if args.target == "all" else [args.target]
    if engine == "atheris" and len(targets) > 1:
        # atheris.Fuzz() ends its process: one child process per target.
        import subprocess

        status = 0
        for t in targets:
            cmd = [sys.executable, __file__, "--engine", "atheris", "--minutes", str(args.minutes), t]
            cmd += ["--artifacts", str(args.artifacts)]
            status |= subprocess.run(cmd).returncode
        return status
    try:
        for t in targets:
            if engine == "atheris":
                return run_atheris(t, args.minutes * 60, args.artifacts)
            run_hypothesis(t, args.minutes * 60)
    finally:
        _SCRATCH.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
