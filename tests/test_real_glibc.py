"""The real glibc of this machine, through the replayer, and the ``python -m vmexp.validate`` command.

Tests marked ``real_glibc`` compile ``vmexp/validate/replayer.c`` and run it
under strace; they are skipped, with the reason, where gcc or strace is
missing. The replay of the trace corpus against its recorded answers
(tests/traces/expected.json) is tests/test_malloc.py's corpus test. The
comparison and printing of ``python -m vmexp.validate`` are tested without
either tool.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vmexp.config import ConfigError, compose_settings, settings_json
from vmexp.sim import simulate
from vmexp.validate.__main__ import compare, format_side_by_side, main, read_run
from vmexp.validate.real import (
    MALLINFO_FIELDS,
    ReplayError,
    ReplayResult,
    ToolMissing,
    build_replayer,
    mallopt_from_overrides,
    mallopt_from_settings,
    parse_strace,
    replay_real,
)
from vmexp.workload import build

TRACES = Path(__file__).parent / "traces"
EXPECTED: dict[str, Any] = json.loads((TRACES / "expected.json").read_text())

_missing = [
    tool
    for tool in ("cc", "strace")
    if shutil.which(tool) is None and not (tool == "cc" and shutil.which("gcc"))
]


def write_trace(tmp_path: Path, text: str, name: str = "t.trace") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------------------------
# Facts of glibc 2.36 stated in its source, checked on the live system.


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_the_replayer_allocates_nothing_of_its_own(tmp_path: Path) -> None:
    # R3: the first malloc creates the heap (brk(NULL), then +135168) and allocates the
    # 656-byte tcache structure first. Any allocation by the replayer itself would show up
    # as more uordblks or an earlier brk.
    res = replay_real(write_trace(tmp_path, "malloc 0 16\n"))
    assert res.calls() == [(0, "brk", 0), (0, "brk", 135168)]
    assert res.mallinfo == {
        "arena": 135168,
        "ordblks": 1,
        "smblks": 0,
        "hblks": 0,
        "hblkhd": 0,
        "usmblks": 0,
        "fsmblks": 0,
        "uordblks": 656 + 32,
        "fordblks": 135168 - 688,
        "keepcost": 135168 - 688,
    }
    brk_null, brk_grow = res.syscalls or []
    assert brk_null[2:] == (0, 0, brk_null[4])  # brk(NULL): addr 0, length 0, result = the break
    assert brk_grow[2] == brk_grow[4] == brk_null[4] + 135168


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_threshold_boundary_of_design_md(tmp_path: Path) -> None:
    trace = write_trace(tmp_path, "malloc 0 16\nmalloc 1 130000\nmalloc 2 131049\nmalloc 3 131048\nfree 2\n")
    want = [(0, "brk", 0), (0, "brk", 135168), (2, "mmap", 135168), (3, "brk", 258048), (4, "munmap", 135168)]
    assert replay_real(trace).calls() == want


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_mmapped_chunk_lengths(tmp_path: Path) -> None:
    # R8: length = ALIGN_UP(request2size(n) + 8, 4096); the first malloc takes (nearly) all of
    # the first heap's top so that no later request fits there.
    sizes = [131049, 135144, 135145, 200000, 1 << 20, 8 << 20, 40 << 20]
    text = "malloc 0 134400\n" + "".join(f"malloc {i} {n}\n" for i, n in enumerate(sizes, 1))
    res = replay_real(write_trace(tmp_path, text))
    assert [c[2] for c in res.calls() if c[1] == "mmap"] == [
        135168,
        135168,
        139264,
        200704,
        1052672,
        8392704,
        41947136,
    ]


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
@pytest.mark.parametrize("pages", [1, 10, 100])
def test_touching_n_fresh_pages_costs_n_minor_faults(tmp_path: Path, pages: int) -> None:
    # Measured here: malloc(1 MiB) alone costs 2 faults (the heap page of the tcache structure
    # and the mmapped chunk's header page); each further page written costs exactly one more.
    base = replay_real(write_trace(tmp_path, "malloc 0 1M\n", "base.trace"))
    assert (base.minflt, base.majflt) == (2, 0)
    touched = replay_real(write_trace(tmp_path, f"malloc 0 1M\ntouch 0 4080 {pages * 4096} w\n"))
    assert touched.minflt - base.minflt == pages


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_each_process_of_a_multi_process_trace_replays_alone(tmp_path: Path) -> None:
    trace = write_trace(tmp_path, "p1: malloc 0 100\np2: malloc 0 200000\np1: free 0\np2: free 0\n")
    # Process 2's ops are global ops 1 and 3; its first malloc also creates its own heap.
    assert replay_real(trace, pid=2).calls() == [
        (1, "brk", 0),
        (1, "brk", 135168),
        (1, "mmap", 200704),
        (3, "munmap", 200704),
    ]
    assert replay_real(trace, pid=1).calls() == [(0, "brk", 0), (0, "brk", 135168)]
    with pytest.raises(ReplayError, match=r"no process 3 in the trace \(it has 1, 2\)"):
        replay_real(trace, pid=3)


# A trace's program error, as the replayer and the simulator name it: an id freed before is
# told from one the trace never allocated, on both sides (the simulator's exit beside it).
RUN_TIME_ERRORS = [
    ("malloc 0 100\nfree 0\n# again:\nfree 0\n", "double-free",
     "t.trace:4: free of a block that is not allocated (it was freed: a double free)"),
    ("malloc 0 100\nfree 0\nmalloc 0 50\nfree 0\nfree 0\n", "double-free",
     "t.trace:5: free of a block that is not allocated (it was freed: a double free)"),
    ("malloc 0 100\nrealloc 0 0\nfree 0\n", "double-free",
     "t.trace:3: free of a block that is not allocated (it was freed: a double free)"),
    ("malloc 0 100\nfree 7\n", "invalid-pointer",
     "t.trace:2: free of a block the trace never allocated (an invalid pointer)"),
    ("malloc 0 100\nfree 0\ntouch 0 0 8 r\n", "use-after-free",
     "t.trace:3: touch of a block that is not allocated (it was freed: a use after free)"),
    ("malloc 0 100\ntouch 7 0 8 r\n", "segfault",
     "t.trace:2: touch of a block the trace never allocated (a wild pointer)"),
    ("malloc 0 100\ntouch 0 50 51\n", "segfault", "t.trace:2: touch outside the block"),
]  # fmt: skip


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
@pytest.mark.parametrize(("text", "exit", "message"), RUN_TIME_ERRORS, ids=[e for _, e, _ in RUN_TIME_ERRORS])
def test_run_time_errors_name_the_trace_line(tmp_path: Path, text: str, exit: str, message: str) -> None:
    trace = write_trace(tmp_path, text)
    with pytest.raises(ReplayError) as e:
        replay_real(trace, strace=False)
    assert str(e.value).startswith(f"{tmp_path}/{message} (real glibc replay, op ")
    s = compose_settings(["workload=trace", f"workload.path={trace}", "figures=false"])
    (p,) = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size)).processes
    assert p.exit == exit


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_a_failed_allocation_stays_null_through_every_free_and_touch(tmp_path: Path) -> None:
    # p = malloc(2^62) is NULL; free(p) twice is free(NULL) twice, harmless in C, and a program that
    # checks for NULL skips the touch. The id is then allocated again and freed as usual.
    trace = write_trace(
        tmp_path, "malloc 0 4611686018427387904\nfree 0\nfree 0\ntouch 0\nmalloc 0 100\nfree 0\n"
    )
    replay_real(trace, strace=False)  # no program error on the real glibc
    s = compose_settings(["workload=trace", f"workload.path={trace}", "figures=false"])
    (p,) = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size)).processes
    assert (p.exit, p.enomem, p.skipped_ops) == ("ok", 1, 1)  # the touch; a free(NULL) is no skip


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_without_strace_mallinfo_and_faults_still_come(tmp_path: Path) -> None:
    trace = TRACES / "threshold_boundary.trace"
    want = EXPECTED["traces"]["threshold_boundary"]["runs"]["default"]
    res = replay_real(trace, strace=False)
    assert res.syscalls is None
    assert res.mallinfo == want["mallinfo"] and res.minflt == want["minflt"]


def test_missing_tools_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = write_trace(tmp_path, "malloc 0 1\n")
    which = shutil.which
    monkeypatch.setattr("shutil.which", lambda name: None if name == "strace" else which(name))
    with pytest.raises(ToolMissing, match="strace not found: install strace"):
        replay_real(trace)
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ToolMissing, match=r"no C compiler found \(looked for \$CC, cc, gcc\)"):
        build_replayer()


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc")
def test_replayer_is_built_once_per_source_and_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exe = build_replayer()
    assert exe.parent == tmp_path / "vmexp" and os.access(exe, os.X_OK)
    mtime = exe.stat().st_mtime_ns
    assert build_replayer() == exe and exe.stat().st_mtime_ns == mtime
    exe.unlink()
    assert build_replayer() == exe  # rebuilt when missing


# ----------------------------------------------------------------------------------------------
# Overrides, strace parsing, comparison and printing: no tools needed.


def test_mallopt_settings_from_overrides() -> None:
    none = {"mmap_threshold": None, "trim_threshold": None, "top_pad": None, "mmap_max": None}
    assert mallopt_from_overrides([]) == none
    assert mallopt_from_overrides(["threshold=64k", "ram=1G", "allocator=glibc"]) == {
        **none,
        "mmap_threshold": 65536,
    }
    assert mallopt_from_overrides(["threshold=null"]) == none
    assert mallopt_from_overrides(["threshold=64k", "~threshold"]) == none
    got = mallopt_from_overrides(
        ["allocator.trim_threshold=1M", "allocator.top_pad=0", "allocator.mmap_max=0"]
    )
    assert got == {**none, "trim_threshold": 1 << 20, "top_pad": 0, "mmap_max": 0}
    # The overrides are composed and validated as run.py does: the same one-line errors.
    with pytest.raises(ConfigError, match=r"^threshold: expected a size"):
        mallopt_from_overrides(["threshold=banana"])
    with pytest.raises(ConfigError, match=r"^threshold: 4G is above glibc's maximum of 32M"):
        mallopt_from_overrides(["threshold=4G"])
    with pytest.raises(ConfigError, match=r"^allocator.trim_threshold: 4G is more than mallopt takes"):
        mallopt_from_overrides(["allocator.trim_threshold=4G"])
    with pytest.raises(ConfigError, match=r"^allocator.mmap_max: must be an integer"):
        mallopt_from_overrides(["allocator.mmap_max=1k"])


def test_mallopt_settings_from_a_runs_settings_json(tmp_path: Path) -> None:
    """What a run resolved, wherever it was set (a preset's YAML included), is what the real glibc gets."""
    s = compose_settings(["experiment=trim", "allocator.trim_threshold=1M", "allocator.top_pad=0"])
    doc = json.loads(settings_json(s))
    want = {"mmap_threshold": None, "trim_threshold": 1 << 20, "top_pad": 0, "mmap_max": None}
    assert mallopt_from_settings(doc) == mallopt_from_settings(s) == want


STRACE_SAMPLE = """\
9001  brk(NULL)                         = 0x5555a000
9001  mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
9001  lseek(-2, 0, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  lseek(-1, 0, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  brk(NULL)                         = 0x5555a000
9001  brk(0x5557b000)                   = 0x5557b000
9001  lseek(-1, 1, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  mmap(NULL, 200704, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
9001  lseek(-1, 2, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  mremap(0x7f0000100000, 200704, 303104, MREMAP_MAYMOVE) = 0x7f0000200000
9001  lseek(-1, 3, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  munmap(0x7f0000200000, 303104)    = 0
9001  lseek(-1, 4, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  brk(0x5556a000)                   = 0x5556a000
9001  lseek(-3, 5, SEEK_SET)            = -1 EBADF (Bad file descriptor)
9001  munmap(0x7f0000010000, 8192)      = 0
"""


def test_parse_strace_keeps_the_replay_only() -> None:
    assert parse_strace(STRACE_SAMPLE) == [
        (0, "brk", 0, 0, 0x5555A000),
        (0, "brk", 0x5557B000, 0x21000, 0x5557B000),
        (1, "mmap", 0x7F0000100000, 200704, 0x7F0000100000),
        (2, "mremap", 0x7F0000100000, 303104, 0x7F0000200000),
        (3, "munmap", 0x7F0000200000, 303104, 0),
        (4, "brk", 0x5556A000, -0x11000, 0x5556A000),
    ]


def _result(calls: list[tuple[int, str, int]], **mallinfo: int) -> ReplayResult:
    mi = dict.fromkeys(MALLINFO_FIELDS, 0) | mallinfo
    return ReplayResult([(op, name, 0, length, 0) for op, name, length in calls], mi, 4, 0)


BOUNDARY = [(0, "brk", 0), (0, "brk", 135168), (2, "mmap", 135168), (3, "brk", 258048), (4, "munmap", 135168)]


def test_compare_and_print_side_by_side() -> None:
    real_res = _result(BOUNDARY, arena=393216, ordblks=1, uordblks=261760, fordblks=131456, keepcost=131456)
    same = _result(BOUNDARY, arena=393216, ordblks=1, uordblks=261760, fordblks=131456, keepcost=131456)
    assert compare(real_res, same).ok
    text = format_side_by_side(real_res, same)
    assert "syscalls: 5 real, 5 simulated: agree" in text and "mallinfo2: agree" in text
    assert " ! " not in text

    # The simulator forgot the munmap and got keepcost wrong: both are flagged.
    wrong = _result(BOUNDARY[:-1], arena=393216, ordblks=1, uordblks=261760, fordblks=131456, keepcost=131440)
    v = compare(real_res, wrong)
    assert (v.syscalls, v.mallinfo, v.ok) == (False, False, False)
    text = format_side_by_side(real_res, wrong)
    flagged = [line for line in text.splitlines() if line.startswith(" !")]
    assert len(flagged) == 2
    assert "munmap" in flagged[0] and flagged[0].rstrip().endswith("-")
    assert "keepcost" in flagged[1]
    assert "syscalls: 5 real, 4 simulated: DIFFER" in text
    assert format_side_by_side(real_res, wrong, only_diff=True).count("munmap") == 1

    untraced = ReplayResult(None, real_res.mallinfo, 4, 0)
    assert compare(untraced, same).syscalls is None and not compare(untraced, same).ok
    assert "syscalls: ? real, 5 simulated: not compared" in format_side_by_side(untraced, same)


def write_run(run_dir: Path, want: dict[str, Any], pid: int = 1, exit: str = "ok", error: str = "") -> None:
    """A simulator run directory as the output contract describes it, holding ``want``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "syscalls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pid", "op", "time_s", "syscall", "addr", "length", "result"])
        for op, name, length in want["syscalls"]:
            w.writerow([pid, op, 0.0, name, 0, length, 0])
    proc = {
        "pid": pid,
        "name": "trace",
        "exit": exit,
        "error": error,
        "minflt": want["minflt"],
        "majflt": want["majflt"],
        "syscalls": {"brk": 0, "mmap": 0, "munmap": 0, "mremap": 0},
        "mallinfo": want["mallinfo"],
    }
    (run_dir / "metrics.json").write_text(json.dumps({"schema": 1, "system": {}, "processes": [proc]}))


def test_read_run_follows_the_output_contract(tmp_path: Path) -> None:
    want = EXPECTED["traces"]["realloc_mmap"]["runs"]["default"]
    write_run(tmp_path / "run", want, pid=3)
    got = read_run(tmp_path / "run")
    assert list(got) == [3]
    assert [list(c) for c in got[3].calls()] == want["syscalls"]
    assert got[3].mallinfo == want["mallinfo"] and got[3].minflt == want["minflt"]


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(TRACES / "dynamic_threshold.trace")
    want = EXPECTED["traces"]["dynamic_threshold"]["runs"]["threshold=64k"]
    base = ["workload=trace", f"workload.path={trace}", "nprocs=1"]
    # The run's settings.json says how it ran: the real glibc gets the same mallopt values.
    write_run(tmp_path / "good", want)
    (tmp_path / "good" / "settings.json").write_text(
        settings_json(compose_settings([*base, "threshold=64k"]))
    )
    assert main([trace, "--run-dir", str(tmp_path / "good")]) == 0
    out = capsys.readouterr().out
    assert "(mmap_threshold=65536)" in out and out.rstrip().endswith("RESULT: agree")

    # The same simulated calls, recorded as a run with glibc's default settings (dynamic threshold): they differ.
    write_run(tmp_path / "default", want)
    (tmp_path / "default" / "settings.json").write_text(settings_json(compose_settings(base)))
    assert main([trace, "--run-dir", str(tmp_path / "default")]) == 1
    assert capsys.readouterr().out.rstrip().endswith("RESULT: DIFFER")

    assert main([trace, "threshold=64k", "--run-dir", str(tmp_path / "good")]) == 2
    assert capsys.readouterr().err == (
        "vmexp.validate: error: --run-dir: the run's settings.json says how it ran; give no settings with it\n"
    )
    assert main([trace, "--run-dir", str(tmp_path / "nothing")]) == 2
    assert "the run wrote no metrics.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "workload.path={other}",
            "workload.path={other}: the trace to replay is the first argument ({trace})",
        ),
        ("workload=pageref", "workload=pageref: the comparison replays the trace on both sides"),
        (
            "hydra.run.dir={tmp}/run",
            "hydra.run.dir={tmp}/run: the simulator's run goes to a temporary directory",
        ),
        # A sweep's values: it said "a sweep needs -m (python run.py -m ...)", which validate has not.
        (
            "threshold=64k,128k",
            "threshold=64k,128k: the comparison replays one configuration; give one value",
        ),
        ("threshold=range(1,3)", "threshold=range(1,3): the comparison replays one configuration"),
        # A preset: it said "add -m (python run.py -m ... hydra.run.dir='/tmp/vmexp-validate-...')".
        (
            "experiment=trim",
            "experiment=trim: a preset is a sweep, and the comparison replays one configuration; "
            "give its settings one value each (python run.py --cfg job experiment=trim shows them)",
        ),
    ],
)
def test_validate_refuses_overrides_that_replace_its_trace_or_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    """An override after the command's own workload.path or hydra.run.dir would win in Hydra:
    the simulator would run another trace (and the verdict compare two different things), or
    write where nothing is read back. Refused in one line, before anything runs."""
    trace = write_trace(tmp_path, "malloc 1 100\nfree 1\n")
    other = write_trace(tmp_path, "malloc 1 200000\nfree 1\n", "other.trace")
    fill = {"other": other, "trace": trace, "tmp": tmp_path}
    assert main([str(trace), override.format(**fill)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vmexp.validate: error: " + message.format(**fill)) and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_validate_takes_options_between_the_trace_and_the_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``TRACE --only-diff KEY=VALUE`` is read as meant: the override reaches the checks (here the
    refusal of another workload), not argparse's "unrecognized arguments"."""
    trace = write_trace(tmp_path, "malloc 1 100\nfree 1\n")
    assert main([str(trace), "--only-diff", "workload=pageref"]) == 2
    assert capsys.readouterr().err.startswith("vmexp.validate: error: workload=pageref: ")


@pytest.mark.parametrize(
    ("exit", "error", "message"),
    [
        (
            "duration",
            "",
            "was stopped by duration before the end of the trace: "
            "the comparison needs the whole trace (give no duration)",
        ),
        (
            "oom-killed",
            "killed by the OOM killer",
            "was OOM-killed before the end of the trace (killed by the OOM killer): the comparison "
            "needs the whole trace (give it more ram or swap, or a larger cgroup.memory_max)",
        ),
        (
            "double-free",
            "operation 2 (trace line 3): free of id 1, which is not allocated",
            "ended double-free: operation 2 (trace line 3): free of id 1, which is not allocated",
        ),
    ],
)
def test_validate_refuses_a_simulator_run_that_did_not_finish_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exit: str, error: str, message: str
) -> None:
    """A run stopped by duration=, or a process the OOM killer took (ram=400k swap=0), did part
    of the trace: compared with the whole real replay it would DIFFER for a reason not shown.
    A fault of the trace itself is the simulator's message, without advice that does not apply."""
    want = EXPECTED["traces"]["realloc_mmap"]["runs"]["default"]
    trace = TRACES / "realloc_mmap.trace"
    write_run(tmp_path / "run", want, exit=exit, error=error)
    (tmp_path / "run" / "settings.json").write_text(
        settings_json(compose_settings(["workload=trace", f"workload.path={trace}", "nprocs=1"]))
    )
    assert main([str(trace), "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"vmexp.validate: error: the simulator's process 1 {message}\n"


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_pairs_each_trace_process_with_the_simulators_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulator numbers a trace's processes 1, 2, ... as they first appear; p2 and p5 are
    its pids 1 and 2, and each is compared with its own replay (not p2 with p5, nor p5 missing)."""
    trace = write_trace(tmp_path, "p2: malloc 1 100\np5: malloc 1 200k\np2: free 1\np5: free 1\n")
    assert main([str(trace), "figures=false"]) == 0
    out = capsys.readouterr().out
    assert "process 2 (the simulator's pid 1)" in out and "process 5 (the simulator's pid 2)" in out
    assert out.count("syscalls: 2 real, 2 simulated: agree") == 1
    assert out.count("syscalls: 4 real, 4 simulated: agree") == 1


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_replays_failed_allocations_as_the_simulator_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulator takes the program to check for NULL: a failed malloc's touches are skipped
    and its id may be allocated again; a failed realloc leaves the block at its old size, and
    touches past it are cut to it. The real replay does the same, so the two agree call for call."""
    huge = (1 << 63) - 1
    trace = write_trace(
        tmp_path,
        f"malloc 1 {huge}\ntouch 1 0 100 w\nmalloc 1 5000\ntouch 1\n"
        f"realloc 3 {huge}\ntouch 3 0 50 w\nfree 3\n"
        f"malloc 5 20000\nrealloc 5 {huge}\ntouch 5 0 30000 w\nrealloc 5 40000\ntouch 5\nfree 5\nfree 1\n",
    )
    assert main([str(trace), "figures=false"]) == 0
    out = capsys.readouterr().out
    assert "mallinfo2: agree" in out and out.rstrip().endswith("RESULT: agree")


def test_validate_refuses_a_run_dir_of_another_trace_or_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--run-dir names a run whose settings.json says what it replayed: another trace, or no
    trace at all, would be compared with this trace's real replay, and DIFFER for nothing."""
    want = EXPECTED["traces"]["realloc_mmap"]["runs"]["default"]
    trace, other = TRACES / "realloc_mmap.trace", TRACES / "trim.trace"
    write_run(tmp_path / "other", want)
    (tmp_path / "other" / "settings.json").write_text(
        settings_json(compose_settings(["workload=trace", f"workload.path={other}", "nprocs=1"]))
    )
    assert main([str(trace), "--run-dir", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err == (
        f"vmexp.validate: error: --run-dir: {tmp_path / 'other'} replayed {other}, not {trace} (its workload.path)\n"
    )
    write_run(tmp_path / "mixed", want)
    (tmp_path / "mixed" / "settings.json").write_text(
        settings_json(compose_settings(["nprocs=1"]), choices={"workload": "mixed"})
    )
    assert main([str(trace), "--run-dir", str(tmp_path / "mixed")]) == 2
    assert capsys.readouterr().err == (
        f"vmexp.validate: error: --run-dir: {tmp_path / 'mixed'} is a run of workload=mixed, not of a trace\n"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["allocator=best_fit"],
            "allocator=best_fit: the real side is glibc, so the comparison needs allocator=glibc "
            "(python -m vmexp.compare puts two simulator runs side by side)",
        ),
        (
            ["page_size=64k"],
            "page_size=65536: the real glibc runs with this machine's pages of 4096 bytes, "
            "so the comparison needs page_size=4096",
        ),
    ],
)
def test_validate_refuses_a_run_the_real_glibc_cannot_be_compared_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], message: str
) -> None:
    """validate allocator=best_fit compared best fit with glibc and printed DIFFER (exit 1) under
    the header "real glibc 2.36 vs the simulator (glibc defaults)"; page_size=64k the same with
    glibc's steps in 64 KiB pages against the real 4 KiB ones. Neither DIFFER says anything."""
    want = EXPECTED["traces"]["realloc_mmap"]["runs"]["default"]
    trace = TRACES / "realloc_mmap.trace"
    write_run(tmp_path / "run", want)
    run = ["workload=trace", f"workload.path={trace}", "nprocs=1", *overrides]
    (tmp_path / "run" / "settings.json").write_text(settings_json(compose_settings(run)))
    assert main([str(trace), "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"vmexp.validate: error: {message}\n"


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_takes_a_trace_whose_name_hydra_would_read_as_syntax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A comma (a sweep), '=', a quote, brackets, '${' in the trace's path are the file's name,
    not override syntax: the simulator is given it quoted, and runs it."""
    folder = tmp_path / "my traces, v2"
    folder.mkdir()
    trace = write_trace(folder, "malloc 1 100\nmalloc 2 200k\nfree 2\n", "it's a=b [1] ${x}.trace")
    assert main([str(trace), "figures=false"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("RESULT: agree")


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_runs_where_vmexp_is_installed_without_run_py(tmp_path: Path) -> None:
    """An installed vmexp has no run.py beside it (the wheel holds the package, its configs
    copied in): the simulator runs as ``python -m vmexp``, the same command, from any directory."""
    site = tmp_path / "site"
    shutil.copytree(Path(__file__).resolve().parents[1] / "vmexp", site / "vmexp", symlinks=False)
    assert not (site / "run.py").exists() and not (site / "vmexp" / "conf").is_symlink()
    trace = write_trace(tmp_path, "malloc 1 100\nmalloc 2 200k\nfree 2\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-m", "vmexp.validate", str(trace), "figures=false"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("RESULT: agree")


@pytest.mark.real_glibc
@pytest.mark.skipif(bool(_missing), reason="needs gcc and strace")
def test_validate_into_a_reader_that_leaves_early_ends_quietly(tmp_path: Path) -> None:
    """``python -m vmexp.validate T | head -1``: its second line was a BrokenPipeError traceback."""
    trace = write_trace(tmp_path, "malloc 1 100\nmalloc 2 200k\nfree 2\n")
    cmd = [sys.executable, "-m", "vmexp.validate", str(trace), "figures=false"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(f"{trace}: real glibc")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0 and "Error" not in err, err
