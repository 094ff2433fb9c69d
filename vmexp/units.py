"""Sizes and durations with units: the one place that parses and prints them.

Sizes use binary multiples, as the kernel and glibc do (``64k`` = 65536 bytes),
so that a figure label, a log line and a config value all mean the same thing.
Simulated time is kept in integer nanoseconds: SimPy then orders events
exactly and a run is reproducible byte for byte, which float seconds would not
guarantee after millions of additions.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = [
    "UnitError",
    "parse_size",
    "parse_duration",
    "format_size",
    "format_duration",
    "NS_PER_S",
]

NS_PER_S = 1_000_000_000

_SIZE_SUFFIX = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}

_TIME_SUFFIX = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "min": 60 * NS_PER_S,
}

_NUMBER = r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exp>[+-]?[0-9]+))?"
_SIZE_RE = re.compile(rf"^\s*(?:0[xX](?P<hex>[0-9a-fA-F]+)|{_NUMBER})\s*(?P<unit>[a-zA-Z]*)\s*$")
_TIME_RE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>[a-zA-Zµ]*)\s*$")


class UnitError(ValueError):
    """A value that is not a size or a duration; the message says what is allowed."""


# The largest values: a size must fit a size_t, a duration an int64 of nanoseconds (292 years).
# Anything larger is a typo, and refusing it keeps huge integers away from numpy and SimPy.
SIZE_MAX = (1 << 64) - 1
DURATION_MAX = (1 << 63) - 1


def _shown(value: object) -> str:
    """The offending value for a message, cut short: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} characters)"


def _number(m: re.Match[str], value: object) -> Fraction:
    """The matched number exactly (a float would round ``1.1e20``).

    Its length is bounded before any arithmetic: ``int()`` of thousands of
    digits raises, and ``10 ** exponent`` of a huge exponent never returns.
    """
    num = m.group("num")
    exp = m.group("exp") or "0"
    if len(num) > 100 or len(exp.lstrip("+-")) > 4:
        raise UnitError(f"{_shown(value)} is not a number of a sensible length")
    return Fraction(num) * Fraction(10) ** int(exp)


def parse_size(value: object) -> int:
    """Bytes from ``4096``, ``64k``, ``128K``, ``2M``, ``1G``, ``1.5M`` or ``0x1000``.

    Fractions are allowed as long as the result is a whole number of bytes
    (``1.5k`` is 1536; ``0.3k`` is an error), because a size that silently
    rounds is a size the user did not ask for.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a size such as 4096, 64k or 2M, got {_shown(value)}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"a size cannot be negative, got {value}")
        return _size_checked(value, value)
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value != int(value):
            raise UnitError(f"expected a whole, non-negative number of bytes, got {_shown(value)}")
        return _size_checked(int(value), value)
    if not isinstance(value, str):
        raise UnitError(f"expected a size such as 4096, 64k or 2M, got {_shown(value)}")
    text = value.strip()
    negative = text.startswith("-")
    m = _SIZE_RE.match(text[1:] if negative else text)
    if m is None or m.group("unit").lower() not in _SIZE_SUFFIX:
        raise UnitError(f"expected a size such as 4096, 64k, 128K, 2M or 1G, got {_shown(value)}")
    if negative:
        raise UnitError(f"a size cannot be negative, got {_shown(value)}")
    if m.group("hex"):
        if m.group("unit"):
            raise UnitError(f"a hexadecimal size takes no unit, got {_shown(value)}")
        if len(m.group("hex").lstrip("0")) > 16:
            raise UnitError(f"{_shown(value)} is too large for a size (at most 2^64-1 bytes)")
        return int(m.group("hex"), 16)
    mult = _SIZE_SUFFIX[m.group("unit").lower()]
    exact = _number(m, value) * mult
    if exact.denominator != 1:
        raise UnitError(f"{_shown(value)} is not a whole number of bytes")
    return _size_checked(int(exact), value)


def _size_checked(n: int, value: object) -> int:
    if n > SIZE_MAX:
        raise UnitError(f"{_shown(value)} is too large for a size (at most 2^64-1 bytes)")
    return n


def parse_duration(value: object) -> int:
    """Nanoseconds from ``10us``, ``5ms``, ``2s``, ``1.5s`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {_shown(value)}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnitError(f"expected a finite duration, got {_shown(value)}")
        if value < 0:
            raise UnitError(f"a duration cannot be negative, got {_shown(value)}")
        ns = value * NS_PER_S
        if ns > DURATION_MAX:  # before round(): a float too large for an int has no integer value
            raise UnitError(f"{_shown(value)} is too long a duration (at most 2^63-1 ns, about 292 years)")
        return round(ns)
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {_shown(value)}")
    text = value.strip()
    if text.startswith("-"):
        raise UnitError(f"a duration cannot be negative, got {_shown(value)}")
    m = _TIME_RE.match(text)
    if m is None:
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {_shown(value)}")
    unit = m.group("unit").lower()
    if unit == "":
        unit = "s"
    if unit not in _TIME_SUFFIX:
        raise UnitError(
            f"unknown time unit {_shown(m.group('unit'))} in {_shown(value)} (use ns, us, ms, s or min)"
        )
    return _duration_checked(round(_number(m, value) * _TIME_SUFFIX[unit]), value)


def _duration_checked(ns: int, value: object) -> int:
    if ns > DURATION_MAX:
        raise UnitError(f"{_shown(value)} is too long a duration (at most 2^63-1 ns, about 292 years)")
    return ns


def format_size(n: int | float) -> str:
    """``65536`` -> ``'64 KiB'``; exact multiples print without decimals, others with."""
    n = int(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            if n % mult == 0:
                return f"{sign}{n // mult} {unit}"
            # Not a whole multiple: always show decimals, so "18 KiB" means exactly 18 KiB.
            return f"{sign}{n / mult:.2f} {unit}" if n / mult < 100 else f"{sign}{n / mult:.1f} {unit}"
    return f"{sign}{n} B"


def format_duration(ns: int | float) -> str:
    """``5_000_000`` -> ``'5 ms'``."""
    ns = float(ns)
    for unit, mult in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= mult:
            return f"{ns / mult:.4g} {unit}"
    return f"{ns:.4g} ns"
