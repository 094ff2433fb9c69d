"""The trace formats of the README: what each line means, and a one-line error for each wrong line."""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, TOUCH, describe
from vmexp.workload.traces import (
    Trace,
    TraceError,
    parse_pageref,
    parse_pageref_text,
    parse_trace,
    parse_trace_text,
)

TRACES = Path(__file__).parent / "traces"


def test_every_operation_form_of_the_contract() -> None:
    t = parse_trace_text(
        "# a comment line\n"
        "\n"
        "malloc 1 100\n"
        "calloc 2 10 4k      # a comment after an operation\n"
        "realloc 1 2M\n"
        "touch 1\n"
        "touch 1 r\n"
        "touch 2 16 64 w\n"
        "touch 2 1k 0x100\n"
        "compute 20us\n"
        "free 1\n"
    )
    assert t.ops == {
        1: [
            (MALLOC, 1, 100),
            (CALLOC, 2, 10, 4096),
            (REALLOC, 1, 2 * 1024 * 1024),
            (TOUCH, 1, 0, -1, 1),  # whole block, write (the default)
            (TOUCH, 1, 0, -1, 0),
            (TOUCH, 2, 16, 64, 1),
            (TOUCH, 2, 1024, 256, 1),
            (COMPUTE, 20_000),
            (FREE, 1),
        ]
    }
    # The op column of syscalls.csv counts operation lines only.
    assert t.op_index == {1: list(range(9))}
    assert t.lines == [3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_multi_process_trace_keeps_global_operation_numbers() -> None:
    t = parse_trace_text("p1: malloc 0 10\n# comment\np2: malloc 0 20\np1:free 0\np2: free 0\n")
    assert t.ops == {1: [(MALLOC, 0, 10), (FREE, 0)], 2: [(MALLOC, 0, 20), (FREE, 0)]}
    assert t.op_index == {1: [0, 2], 2: [1, 3]}
    assert t.lines == [1, 3, 4, 5]


def test_a_trace_without_operations_has_no_process() -> None:
    assert parse_trace_text("# nothing\n\n") == Trace({}, {}, [])


def test_reads_a_file_and_crlf_line_ends(tmp_path: Path) -> None:
    p = tmp_path / "t.trace"
    p.write_bytes(b"malloc 0 64k\r\nfree 0\r\n")
    assert parse_trace(p).ops == {1: [(MALLOC, 0, 65536), (FREE, 0)]}
    assert parse_trace(str(p)) == parse_trace(p)


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path: Path) -> None:
    """Windows editors start a UTF-8 file with U+FEFF, which no editor shows: it is dropped, so
    the first line is not an unknown operation '\\ufeffmalloc' (nor a bad page number), and the
    offset of a bad byte further on is still counted in the file's own bytes."""
    bom = b"\xef\xbb\xbf"
    p = tmp_path / "t.trace"
    p.write_bytes(bom + b"# from Notepad\r\nmalloc 0 64k\r\nfree 0\r\n")
    assert parse_trace(p).ops == {1: [(MALLOC, 0, 65536), (FREE, 0)]}
    p.write_bytes(bom + b"malloc 0 64k\n")
    assert parse_trace(p).ops == {1: [(MALLOC, 0, 65536)]}
    refs = tmp_path / "refs"
    refs.write_bytes(bom + b"7\n8 w\n")
    assert parse_pageref(refs) == ([7, 8], [0, 1])
    p.write_bytes(bom + b"malloc 0 64k\n\xff\n")
    with pytest.raises(TraceError, match=r":2: not UTF-8 text \(byte 0xff at offset 16\)"):
        parse_trace(p)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mallok 1 10\n", "t.trace:1: unknown operation 'mallok'"),
        ("malloc 1\n", "t.trace:1: wrong number of fields for 'malloc': expected 'malloc ID SIZE', got 1"),
        ("free 1 2\n", "t.trace:1: wrong number of fields for 'free'"),
        ("calloc 1 10\n", "t.trace:1: wrong number of fields for 'calloc'"),
        ("touch 1 16\n", "t.trace:1: touch mode must be r or w, got '16'"),
        ("touch 1 0 16 x\n", "t.trace:1: touch mode must be r or w, got 'x'"),
        ("malloc 1 10q\n", "t.trace:1: bad size '10q'"),
        ("malloc 1 0.3k\n", "t.trace:1: bad size '0.3k'"),
        ("malloc 1 -5\n", "t.trace:1: bad size '-5'"),
        ("malloc -1 10\n", "t.trace:1: id must be a non-negative integer, got '-1'"),
        ("malloc x 10\n", "t.trace:1: id must be a non-negative integer, got 'x'"),
        ("malloc 1.5 10\n", "t.trace:1: id must be a non-negative integer, got '1.5'"),
        ("malloc 1 99999999999999999999\n", "t.trace:1: size 99999999999999999999 is larger than 2^63-1"),
        ("compute fast\n", "t.trace:1: bad duration 'fast'"),
        ("# ok\npx: malloc 1 10\n", "t.trace:2: bad process prefix 'px:'"),
        ("p0: malloc 1 10\n", "t.trace:1: bad process prefix 'p0:': PID must be between 1 and"),
        ("p-1: malloc 1 10\n", "t.trace:1: bad process prefix 'p-1:'"),
        ("p2\n", "t.trace:1: unknown operation 'p2' (a process prefix reads p2: malloc 1 64)"),
        ("p2:\n", "t.trace:1: process prefix 'p2:' without an operation"),
        ("p1: malloc 1 10\nfree 1\n", "t.trace:2: this line has no pPID: prefix but earlier lines have one"),
        ("malloc 1 10\np1: free 1\n", "t.trace:2: this line has a pPID: prefix but earlier lines have none"),
    ],
)
def test_each_malformed_line_is_named_with_its_reason(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.trace"
    p.write_text(text)
    with pytest.raises(TraceError) as e:
        parse_trace(p)
    assert str(e.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":" + message.split(":", 1)[1])
    assert "\n" not in str(e.value)


def test_use_after_free_is_not_a_syntax_error() -> None:
    # Whether an id is live is decided when the trace runs (the simulator and
    # the real replayer report it with the line), not by the parser.
    ops = parse_trace_text("free 7\nfree 7\ntouch 7\n").ops[1]
    assert ops == [(FREE, 7), (FREE, 7), (TOUCH, 7, 0, -1, 1)]


def test_file_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TraceError, match=r"nope\.trace: no such file$"):
        parse_trace(tmp_path / "nope.trace")
    with pytest.raises(TraceError, match="is a directory, not a trace file"):
        parse_trace(tmp_path)
    bad = tmp_path / "latin1.trace"
    bad.write_bytes(b"malloc 0 1\n# caf\xe9\n")
    with pytest.raises(TraceError, match=r"latin1\.trace:2: not UTF-8 text \(byte 0xe9 at offset 16\)"):
        parse_trace(bad)
    binary = tmp_path / "a.out"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00")
    with pytest.raises(TraceError, match=r"a\.out:1: not a text file \(NUL byte at offset 7\)"):
        parse_trace(binary)

    # Root reads any file, so "permission denied" is provoked through open().
    secret = tmp_path / "secret.trace"
    secret.write_text("malloc 0 1\n")
    real_open = builtins.open

    def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(secret):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(TraceError, match=r"secret\.trace: cannot read the file \(permission denied\)$"):
        parse_trace(secret)


def test_pageref_trace() -> None:
    vpns, writes = parse_pageref_text("# Belady\n1\n2 w\n0x10 r  # hex\n\n3 W\n")
    assert vpns == [1, 2, 16, 3]
    assert writes == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\nx\n", "<text>:2: bad page number 'x'"),
        ("-1\n", "<text>:1: bad page number '-1'"),
        ("0xzz\n", "<text>:1: bad page number '0xzz'"),
        ("1 q\n", "<text>:1: access mode must be r or w, got 'q'"),
        ("1 r r\n", "<text>:1: expected 'VPN [r|w]', got 3 fields"),
    ],
)
def test_pageref_errors(text: str, message: str) -> None:
    with pytest.raises(TraceError) as e:
        parse_pageref_text(text)
    assert str(e.value).startswith(message)


def test_pageref_from_file(tmp_path: Path) -> None:
    p = tmp_path / "refs.txt"
    silberschatz = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]
    p.write_text("".join(f"{v}\n" for v in silberschatz))
    vpns, writes = parse_pageref(p)
    assert vpns == silberschatz and writes == [0] * 20


def test_the_test_traces_each_state_their_rule() -> None:
    traces = sorted(TRACES.glob("*.trace"))
    assert len(traces) >= 12
    for path in traces:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# "), f"{path.name} must open with a comment stating its rule"
        t = parse_trace(path)
        assert list(t.ops) == [1], f"{path.name} is a single-process trace"


# An operation printed by vmexp.workload.ops.describe reads back as itself.
_ids = st.integers(0, 10**6)
_sizes = st.integers(0, 2**40)
_ops = st.one_of(
    st.tuples(st.just(MALLOC), _ids, _sizes),
    st.tuples(st.just(CALLOC), _ids, _sizes, _sizes),
    st.tuples(st.just(REALLOC), _ids, _sizes),
    st.tuples(st.just(FREE), _ids),
    st.tuples(st.just(TOUCH), _ids, st.just(0), st.just(-1), st.integers(0, 1)),
    st.tuples(st.just(TOUCH), _ids, _sizes, _sizes, st.integers(0, 1)),
    st.tuples(st.just(COMPUTE), st.integers(0, 10**12)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ops, max_size=20))
def test_described_operations_parse_back(ops: list[tuple[int, ...]]) -> None:
    text = "".join(describe(op) + "\n" for op in ops)
    assert parse_trace_text(text).ops.get(1, []) == ops


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("mallocfretuhpw 0123456789:#\n-.kx")), max_size=80))
def test_any_text_gives_a_trace_or_a_trace_error(text: str) -> None:
    try:
        parse_trace_text(text)
    except TraceError as e:
        assert str(e).startswith("<text>:")


def assert_read_the_same_both_ways(parser: str, fast_way: str, text: str) -> None:
    """``parser`` gives the same answer, or the same error, with its fast way and without it."""
    import vmexp.workload.traces as traces

    def read() -> tuple[str, Any]:
        try:
            return "ok", getattr(traces, parser)(text)
        except TraceError as e:
            return "error", str(e)

    fast = read()
    plain = getattr(traces, fast_way)
    try:
        setattr(traces, fast_way, lambda _text: None)
        assert read() == fast
    finally:
        setattr(traces, fast_way, plain)


_LINE = st.one_of(
    st.integers(0, 2**64).map(str),
    st.tuples(st.integers(0, 2**63), st.sampled_from(["r", "w", "W", "x"])).map(lambda t: f"{t[0]} {t[1]}"),
    st.sampled_from(["", "  ", "# note", "0x1f", "7 w 1", "-3", "1_000", "٣", "w", "r 5 w", "5 r 6"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_the_fast_page_reader_reads_what_the_careful_one_reads(
    lines: list[str], eol: str, last: bool
) -> None:
    """A large plain trace skips the line-by-line parser; every text reads the same both ways, errors included."""
    text = eol.join(lines) + (eol if last else "")
    assert_read_the_same_both_ways("parse_pageref_text", "_pageref_plain", text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 r 2\nw\n", "<text>:1: expected 'VPN [r|w]', got 3 fields"),
        ("1\nr 2 w\n", "<text>:2: bad page number 'r'"),
        ("1 r\n2 w 3\nr\n", "<text>:2: expected 'VPN [r|w]', got 3 fields"),
    ],
)
def test_a_mode_on_the_wrong_line_is_refused_both_ways(text: str, message: str) -> None:
    """As many ``r``/``w`` as page numbers is not enough: each pair must be a line of its own."""
    with pytest.raises(TraceError, match=re.escape(message)):
        parse_pageref_text(text)
    assert_read_the_same_both_ways("parse_pageref_text", "_pageref_plain", text)


_OP_LINE = st.one_of(
    st.tuples(
        st.integers(0, 2**64), st.integers(0, 2**64), st.integers(0, 2**64), st.sampled_from("rwWx")
    ).map(lambda t: f"touch {t[0]} {t[1]} {t[2]} {t[3]}"),
    st.tuples(st.integers(0, 2**63 + 5), st.integers(0, 2**63 + 5)).map(lambda t: f"malloc {t[0]} {t[1]}"),
    st.integers(0, 2**63 + 5).map(lambda v: f"free {v}"),
    st.sampled_from(
        [
            "",
            "  ",
            "# a comment",
            "  # indented comment",
            "free 1 # after",
            "touch 1",
            "touch 1 w",
            "touch 1 0 64",
            "TOUCH 1 0 64 w",
            "malloc 1 64k",
            "malloc 1 -5",
            "malloc 1 1_000",
            "malloc 1 ٣",
            "calloc 2 3 16",
            "realloc 1 128",
            "compute 20us",
            "compute 1.5",
            "p2: free 1",
            "free",
            "frob 1",
            "malloc 1 2 3",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OP_LINE, max_size=12), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_the_fast_trace_reader_reads_what_the_careful_one_reads(
    lines: list[str], eol: str, last: bool
) -> None:
    """A large plain allocation trace skips the careful checks per token; every text reads the same both ways."""
    text = eol.join(lines) + (eol if last else "")
    assert_read_the_same_both_ways("parse_trace_text", "_trace_plain", text)


def test_the_fast_trace_reader_takes_the_common_shape() -> None:
    """The shape of imported traces (comment lines, touch/malloc/free) does take the fast way."""
    import vmexp.workload.traces as traces

    text = "# imported\nmalloc 1 4096\ntouch 1 0 4096 w\n\ntouch 1 8 8 r\ncompute 2us\nfree 1\n"
    got = traces._trace_plain(text)
    assert got is not None
    assert got.ops == {
        1: [(MALLOC, 1, 4096), (TOUCH, 1, 0, 4096, 1), (TOUCH, 1, 8, 8, 0), (COMPUTE, 2000), (FREE, 1)]
    }
    assert got.lines == [2, 3, 5, 6, 7]
