"""Importing real valgrind and ltrace logs (tests/data, see its README for how they were recorded)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmexp.workload.importers import import_file, import_ltrace, import_valgrind, main
from vmexp.workload.ops import CALLOC, FREE, MALLOC, REALLOC, Op
from vmexp.workload.traces import parse_trace, parse_trace_text

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[1]


def replayable(ops: list[Op]) -> None:
    """Every free and realloc names a live block and no live id is allocated again."""
    live: set[int] = set()
    for op in ops:
        if op[0] in (MALLOC, CALLOC):
            assert op[1] not in live
            live.add(op[1])
        elif op[0] == REALLOC:
            assert op[1] in live
        elif op[0] == FREE:
            live.remove(op[1])


def test_sort_log_has_the_calls_grep_counts() -> None:
    # README: 221 malloc( (5 nested in realloc(0x0,N)), 6 realloc( (1 of a real block),
    # 285 free( of which 79 free(0x0); every freed address was allocated in the log.
    res = import_file("valgrind", DATA / "sort_n.valgrind.log")
    ops = parse_trace_text(res.text).ops[1]
    kinds = [op[0] for op in ops]
    assert kinds.count(MALLOC) == 221
    assert kinds.count(REALLOC) == 1
    assert kinds.count(FREE) == 285 - 79
    assert res.skipped == {"free(NULL) calls": 79}
    assert ops[:2] == [(MALLOC, 0, 5), (FREE, 0)]  # the log's first two calls
    assert max(op[2] for op in ops if op[0] == MALLOC) == 7078208  # sort's buffer
    replayable(ops)


def test_valgrind_nested_calls_and_edge_cases() -> None:
    # c_edge_cases.c: posix_memalign, memalign, aligned_alloc, valloc (valgrind prints all
    # four as memalign), realloc(p, 0) (prints a nested free, then " = 0" on its own line),
    # calloc, a moving realloc, and a free of an address never allocated.
    res = import_file("valgrind", DATA / "c_edge_cases.valgrind.log")
    assert parse_trace_text(res.text).ops[1] == [
        (MALLOC, 0, 100),
        (FREE, 0),
        (MALLOC, 1, 50),
        (FREE, 1),
        (MALLOC, 2, 128),
        (FREE, 2),
        (MALLOC, 3, 10),
        (FREE, 3),
        (MALLOC, 4, 10),
        (FREE, 4),  # realloc(p, 0) frees p
        (CALLOC, 5, 3, 5),
        (REALLOC, 5, 100),
        (FREE, 5),
    ]
    assert res.skipped["aligned allocations imported as malloc (alignment dropped)"] == 4
    assert res.skipped["frees of addresses not allocated in the log"] == 1


def test_valgrind_cxx_operators() -> None:
    # cxx_new_delete.cc: new/delete, new[]/delete[], a growing vector, aligned new, nothrow new[].
    res = import_file("valgrind", DATA / "cxx_new_delete.valgrind.log")
    ops = parse_trace_text(res.text).ops[1]
    assert ops[:5] == [(MALLOC, 0, 72704), (MALLOC, 1, 4), (FREE, 1), (MALLOC, 2, 40), (FREE, 2)]
    sizes = [op[2] for op in ops if op[0] == MALLOC]
    assert sizes == [72704, 4, 40, 4, 8, 16, 32, 64, 128, 128, 20]  # the vector doubles; A is 128 bytes
    assert len([op for op in ops if op[0] == FREE]) == 11
    assert res.skipped["aligned allocations imported as malloc (alignment dropped)"] == 1
    replayable(ops)


def test_ltrace_logs() -> None:
    res = import_file("ltrace", DATA / "cxx_new_delete.ltrace.log")
    ops = parse_trace_text(res.text).ops[1]
    # ltrace sees libstdc++'s calls to malloc, not the startup pool allocated before it attached.
    assert [op[2] for op in ops if op[0] == MALLOC] == [4, 40, 4, 8, 16, 32, 64, 128, 20]
    replayable(ops)

    res = import_file("ltrace", DATA / "c_edge_cases.ltrace.log")
    assert parse_trace_text(res.text).ops[1] == [
        (MALLOC, 0, 50),
        (FREE, 0),
        (MALLOC, 1, 128),
        (FREE, 1),
        (MALLOC, 2, 10),
        (FREE, 2),  # realloc(p, 0) = 0
        (CALLOC, 3, 3, 5),
        (REALLOC, 3, 100),
        (FREE, 3),
    ]
    assert res.skipped["posix_memalign calls (ltrace does not show the block)"] == 1
    assert (
        res.skipped["frees of addresses not allocated in the log"] == 2
    )  # posix_memalign's and valloc's blocks


def test_several_processes_become_prefixed_traces() -> None:
    log = [
        "--100-- malloc(10) = 0x1000",
        "--101-- malloc(20) = 0x1000",
        "--100-- free(0x1000)",
        "==101== some message",
        "--101-- realloc(0x1000,40) = 0x2000",
    ]
    t = parse_trace_text(import_valgrind(log).text)
    assert t.ops == {1: [(MALLOC, 0, 10), (FREE, 0)], 2: [(MALLOC, 0, 20), (REALLOC, 0, 40)]}
    assert t.op_index == {1: [0, 2], 2: [1, 3]}


def test_ltrace_unfinished_and_resumed() -> None:
    log = [
        "[pid 7] prog->malloc(64 <unfinished ...>",
        "[pid 8] prog->free(0x10)                 = <void>",
        "[pid 7] <... malloc resumed> )            = 0x5000",
        "[pid 7] prog->realloc(0, 32)             = 0x6000",
        "[pid 7] prog->free(0x5000)               = <void>",
    ]
    res = import_ltrace(log)
    assert parse_trace_text(res.text).ops == {1: [(MALLOC, 0, 64), (MALLOC, 1, 32), (FREE, 0)]}
    assert res.skipped == {"frees of addresses not allocated in the log": 1}


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "sort.trace"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmexp.workload.importers",
            "valgrind",
            str(DATA / "sort_n.valgrind.log"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == "importers: 428 operations, 79 free(NULL) calls\n"
    assert len(parse_trace(out).ops[1]) == 428

    missing = tmp_path / "none.log"
    assert main(["valgrind", str(missing)]) == 2
    empty = tmp_path / "empty.log"
    empty.write_text("==1== Memcheck, a memory error detector\n")
    assert main(["valgrind", str(empty), "-o", str(tmp_path / "x.trace")]) == 2


def test_command_line_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["valgrind", str(tmp_path / "none.log")]) == 2
    assert capsys.readouterr().err == f"importers: error: {tmp_path / 'none.log'}: no such file\n"
    empty = tmp_path / "empty.log"
    empty.write_text("hello\n")
    assert main(["ltrace", str(empty)]) == 2
    assert (
        capsys.readouterr().err
        == f"importers: error: {empty}: no allocation calls found (is it a ltrace log?)\n"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "--1-- malloc(16) = 0x10",
                    "--1-- free(0x10)",
                    "--1-- realloc(0x10,32) = 0x20",
                    "--1-- realloc(0x0,8)malloc(8) = 0x30",
                    "--1-- realloc(0x20,0)free(0x20)",
                    "--1--  = 0",
                    "--2-- calloc(2,8) = 0x10",
                    "--1-- _Znwm(8) = 0x40",
                    "--1-- _ZdlPv(0x40)",
                    "--1-- memalign(al 64, size 10) = 0x50",
                ]
            ),
            st.text(max_size=30).map(lambda s: "--1-- " + s),
        ),
        max_size=30,
    )
)
def test_any_log_imports_to_a_valid_trace(lines: list[str]) -> None:
    res = import_valgrind(lines)
    t = parse_trace_text(res.text)
    for ops in t.ops.values():
        replayable(ops)


def test_non_ascii_digits_are_unreadable_calls_not_crashes() -> None:
    # Found by fuzzing: '²'.isdigit() is True but int('²') fails.
    assert import_ltrace(["memalign()=²"]).skipped == {"unreadable calls": 1}
    assert import_valgrind(["--²-- malloc(1) = 0x1", "--1-- malloc(²) = 0x1"]).skipped == {
        "unreadable calls": 1
    }


def test_a_failed_write_keeps_the_trace_that_was_there(tmp_path: Path) -> None:
    """-o over an earlier trace, and the write fails part way (here a 1 KiB file-size limit, as
    a full disk would): the earlier trace is still there, whole, and no temporary is left."""
    import resource

    log = tmp_path / "vg.log"
    log.write_text("".join(f"--7-- malloc({n}) = 0x{0x4A40000 + 64 * n:X}\n" for n in range(1, 300)))
    out = tmp_path / "my.trace"
    out.write_text("malloc 1 100\nfree 1\n")
    out.chmod(0o640)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    cmd = [sys.executable, "-m", "vmexp.workload.importers", "valgrind", str(log), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, preexec_fn=small_files)
    assert (r.returncode, r.stderr) == (2, f"importers: error: {out}: cannot write (File too large)\n")
    assert out.read_text() == "malloc 1 100\nfree 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.trace", "vg.log"]

    assert main(["valgrind", str(log), "-o", str(out)]) == 0  # and without the limit: replaced whole
    assert len(parse_trace(out).ops[1]) == 299 and out.stat().st_mode & 0o777 == 0o640
