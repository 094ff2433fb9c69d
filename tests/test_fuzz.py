"""The parsers of user input against hostile input: a result or their own one-line error, nothing else.

The inputs below are the ones fuzzing found (fuzz/fuzz_parsers.py), each
with the exception that used to escape. The last section runs each fuzz
target of fuzz/fuzz_parsers.py for a few seconds with hypothesis, so that
the contract is checked in every test run and not only in long fuzzing
sessions.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmexp.units import UnitError, parse_duration, parse_size

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------- units

# Each used to raise OverflowError or ValueError out of parse_size / parse_duration, which the config
# layer does not catch (it turns UnitError into "KEY: message"): a traceback instead of one line.
ESCAPED = [
    ("1e400", "is too large for a size"),  # OverflowError: 10.0 ** 400
    ("0e400", None),  # the same overflow, for a value that is 0
    ("1e20", "is too large for a size"),  # beyond size_t: accepted as 100000000000000000000 before
    ("9" * 5000, "is not a number of a sensible length"),  # ValueError: int() of more than 4300 digits
    ("1e99999", "is not a number of a sensible length"),  # 10 ** 99999: slow, then an overflow
    ("0x1" + "0" * 16, "is too large for a size"),  # 2^64
]


@pytest.mark.parametrize(("text", "message"), ESCAPED)
def test_sizes_that_used_to_escape_are_unit_errors_or_exact(text: str, message: str | None) -> None:
    if message is None:
        assert parse_size(text) == 0
        return
    with pytest.raises(UnitError, match=message) as info:
        parse_size(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 120


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_neither_sizes_nor_durations(value: float) -> None:
    """YAML's .inf and .nan arrive as floats; int(inf) raised OverflowError, int(nan) ValueError."""
    with pytest.raises(UnitError, match="expected a whole, non-negative number of bytes"):
        parse_size(value)
    with pytest.raises(UnitError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["1e400", "1e308min", 1e300, "1e12s", 10**19])
def test_durations_beyond_292_years_are_refused(value: object) -> None:
    with pytest.raises(UnitError, match="is too long a duration"):
        parse_duration(value)


def test_the_largest_size_and_duration_are_accepted() -> None:
    assert parse_size("0xffffffffffffffff") == (1 << 64) - 1
    assert parse_size("16777215T") == 16777215 << 40
    with pytest.raises(UnitError, match="too large"):
        parse_size("16777216T")  # 2^64
    assert parse_duration("9223372036854775807ns") == (1 << 63) - 1


def test_decimal_sizes_are_exact_not_rounded_through_a_float() -> None:
    """1.1e3 and 0.1s were computed as floats; exact arithmetic gives exactly what was written."""
    assert parse_size("1.1e3") == 1100
    assert parse_size("123456789.123456789e9") == 123456789123456789
    assert parse_duration("0.1s") == 100_000_000
    assert parse_duration("1.000000001s") == 1_000_000_001


# ---------------------------------------------------------------------------------------------- traces and logs

BIG = "9" * 5000  # int() refuses more than 4300 decimal digits with a ValueError about Python itself


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"malloc {BIG} 1\n", "t.trace:1: id 99999999999999999999...(5000 characters) is larger than 2^63-1"),
        (
            f"malloc 1 {BIG}\n",
            "t.trace:1: size 99999999999999999999...(5000 characters) is larger than 2^63-1",
        ),
        (f"p{BIG}: free 1\n", "t.trace:1: bad process prefix 'p9999999999999999999...(5002 characters)': "),
        ("malloc 1 00000000000000000000000064\n", None),  # leading zeros are not digits that count
    ],
    ids=["id", "size", "pid", "leading-zeros"],
)
def test_trace_numbers_with_thousands_of_digits_are_refused_by_line(
    tmp_path: Path, text: str, message: str | None
) -> None:
    from vmexp.workload.traces import TraceError, parse_trace

    path = tmp_path / "t.trace"
    path.write_text(text)
    if message is None:
        assert parse_trace(path).ops == {1: [(0, 1, 64)]}
        return
    with pytest.raises(TraceError) as info:
        parse_trace(path)
    assert str(info.value).startswith(f"{path}:1: ") and message.split(":", 1)[1] in str(info.value)


def test_a_page_number_with_thousands_of_digits_is_a_trace_error_not_a_value_error(tmp_path: Path) -> None:
    """parse_pageref let int()'s ValueError escape: workload=pageref then ended in a traceback."""
    from vmexp.workload.traces import TraceError, parse_pageref

    path = tmp_path / "p.ref"
    path.write_text(f"1\n{BIG} w\n")
    with pytest.raises(TraceError, match=r"p\.ref:2: page number 9{20}\.\.\.\(5000 characters\) is larger"):
        parse_pageref(path)


@pytest.mark.parametrize(
    ("kind", "log"),
    [
        ("valgrind", f"--{BIG}-- malloc(1) = 0x10\n--7-- malloc(2) = 0x20\n"),
        ("ltrace", f"[pid {BIG}] malloc(1) = 0x10\n7 malloc(2) = 0x20\n"),
        ("ltrace", f"{BIG} malloc(1) = 0x10\n7 malloc(2) = 0x20\n"),
    ],
)
def test_importers_read_past_a_pid_with_thousands_of_digits(tmp_path: Path, kind: str, log: str) -> None:
    """The importers let int()'s ValueError escape on such a pid; now the line is not a real process's."""
    from vmexp.workload.importers import import_file

    path = tmp_path / "x.log"
    path.write_text(log)
    res = import_file(kind, path)
    assert "malloc 0 2" in res.text.splitlines() or "p2: malloc 0 2" in res.text.splitlines()


@pytest.mark.parametrize(
    "call",
    [
        "malloc(100000000000000000000000000000000) = 0x10",  # found by atheris: a size above 2^63-1
        "malloc(-5) = 0x10",  # int() accepts a sign
        "calloc(-1,5) = 0x10",
        "memalign(al 64, size 99999999999999999999) = 0x10",
    ],
)
def test_importers_write_only_traces_that_parse(call: str) -> None:
    """The importer copied any number int() accepted, so its trace failed to parse on that line."""
    from vmexp.workload.importers import import_valgrind
    from vmexp.workload.traces import parse_trace_text

    res = import_valgrind([f"--1-- {call}", "--1-- malloc(7) = 0x20"])
    assert parse_trace_text(res.text).ops == {1: [(0, 0, 7)]}
    assert res.skipped == {"unreadable calls": 1}


@pytest.mark.parametrize("tok", ["0x-1", "0x+1", "0x1_0", "0x 1"])
def test_hex_page_numbers_are_hex_digits_only(tok: str) -> None:
    """int(tok, 16) takes a sign and underscores: atheris found page -1 ("0x-1") in a reference string."""
    from vmexp.workload.traces import TraceError, parse_pageref_text

    if " " in tok:  # "0x" then "1": a page number "0x" followed by a bad access mode
        with pytest.raises(TraceError, match=r"ref:1: bad page number '0x'"):
            parse_pageref_text(f"{tok}\n", "ref")
        return
    with pytest.raises(TraceError, match=rf"^ref:2: bad page number '{re.escape(tok)}'$"):
        parse_pageref_text(f"0x1F w\n{tok}\n", "ref")
    assert parse_pageref_text("0x1F w\n0X0a\n", "ref") == ([31, 10], [1, 0])


# ---------------------------------------------------------------------------------------------- short fuzzing


def _fuzz_module() -> ModuleType:
    """fuzz/fuzz_parsers.py, imported from its path (fuzz/ is a directory of scripts, not a package)."""
    name = "vmexp_fuzz_parsers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "fuzz" / "fuzz_parsers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()


@pytest.fixture(autouse=True, scope="module")
def _no_scratch_left() -> Iterator[None]:
    """The checks write each input to a scratch file (the parsers read paths); remove it afterwards."""
    yield
    FUZZ._SCRATCH.unlink(missing_ok=True)


@pytest.mark.parametrize("target", sorted(FUZZ.TARGETS))
def test_each_parser_keeps_its_contract_on_a_short_fuzz_run(target: str) -> None:
    """A few hundred inputs per target: raw bytes, text shaped like the format, the project's own files."""
    check = FUZZ.TARGETS[target]
    shaped = FUZZ.texts_for(target).map(lambda t: t.encode("utf-8", errors="surrogatepass"))

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=300), shaped, st.sampled_from(FUZZ.seeds(target))))
    def run(data: bytes) -> None:
        check(data)

    run()


@pytest.mark.parametrize("target", sorted(FUZZ.TARGETS))
def test_the_checks_catch_a_broken_contract(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz oracles can fail: a parser that raises a bare ValueError is reported."""

    def broken(*_args: object, **_kw: object) -> object:
        raise ValueError("not one of the parser's own errors")

    for name in ("parse_size", "parse_trace", "parse_pageref", "import_file"):
        monkeypatch.setattr(FUZZ, name, broken)
    with pytest.raises(ValueError, match="not one of the parser's own errors"):
        FUZZ.TARGETS[target](b"1\n")


def test_the_fuzz_script_runs_each_target_for_the_time_it_is_given() -> None:
    """The command the README documents, with hypothesis as the engine, for one second."""
    import subprocess

    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_parsers.py"),
            "--engine",
            "hypothesis",
            "--minutes",
            "0.02",
            "units",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"units: \d+ inputs in \d+ s \(hypothesis\), no contract broken\n", r.stdout), (
        r.stdout
    )
