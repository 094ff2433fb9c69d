"""Sizes and durations: the units every config value, trace line and label uses."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("4096", 4096),
        ("64k", 65536),
        ("128K", 131072),
        ("2M", 2 << 20),
        ("1G", 1 << 30),
        ("1.5k", 1536),
        ("32MiB", 32 << 20),
        ("0x1000", 4096),
        (4096, 4096),
        ("0", 0),
    ],
)
def test_sizes_use_binary_multiples(text: object, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("bad", ["banana", "-4k", "1.3", "0.3k", "64q", "", "k", True, None, -1, 1.5])
def test_bad_sizes_say_what_is_allowed(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("10us", 10_000),
        ("5ms", 5_000_000),
        ("2s", 2_000_000_000),
        ("1.5s", 1_500_000_000),
        ("250ns", 250),
        (2, 2_000_000_000),
    ],
)
def test_durations_are_nanoseconds(text: object, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["-1s", "fast", "10 parsecs", "", None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(bad)


def test_sizes_print_the_way_they_are_written() -> None:
    assert format_size(65536) == "64 KiB"
    assert format_size(135168) == "132 KiB"
    assert format_size(2 << 20) == "2 MiB"
    assert format_size(100) == "100 B"
    assert format_duration(5_000_000) == "5 ms"


@given(st.integers(min_value=0, max_value=1 << 50))
def test_formatted_exact_sizes_parse_back(n: int) -> None:
    text = format_size(n).replace(" ", "").replace("iB", "")
    if "." not in text:
        assert parse_size(text) == n
