"""Sizes and durations with units: the one place that parses and prints them.

Sizes use binary multiples, as the kernel and glibc do (``64k`` = 65536 bytes),
so that a figure label, a log line and a config value all mean the same thing.
Simulated time is kept in integer nanoseconds: SimPy then orders events
exactly and a run is reproducible byte for byte, which float seconds would not
guarantee after millions of additions.
"""

from __future__ import annotations

import re

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


def _number(m: re.Match[str]) -> float:
    value = float(m.group("num"))
    if m.group("exp"):
        value *= 10.0 ** int(m.group("exp"))
    return value


def parse_size(value: object) -> int:
    """Bytes from ``4096``, ``64k``, ``128K``, ``2M``, ``1G``, ``1.5M`` or ``0x1000``.

    Fractions are allowed as long as the result is a whole number of bytes
    (``1.5k`` is 1536; ``0.3k`` is an error), because a size that silently
    rounds is a size the user did not ask for.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a size such as 4096, 64k or 2M, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, float):
        if value < 0 or value != int(value):
            raise UnitError(f"expected a whole, non-negative number of bytes, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a size such as 4096, 64k or 2M, got {value!r}")
    text = value.strip()
    negative = text.startswith("-")
    m = _SIZE_RE.match(text[1:] if negative else text)
    if m is None or m.group("unit").lower() not in _SIZE_SUFFIX:
        raise UnitError(f"expected a size such as 4096, 64k, 128K, 2M or 1G, got {value!r}")
    if negative:
        raise UnitError(f"a size cannot be negative, got {value!r}")
    if m.group("hex"):
        if m.group("unit"):
            raise UnitError(f"a hexadecimal size takes no unit, got {value!r}")
        return int(m.group("hex"), 16)
    mult = _SIZE_SUFFIX[m.group("unit").lower()]
    if m.group("exp") is None and "." not in m.group("num"):
        return int(m.group("num")) * mult
    exact = _number(m) * mult
    if exact != int(exact):
        raise UnitError(f"{value!r} is not a whole number of bytes")
    return int(exact)


def parse_duration(value: object) -> int:
    """Nanoseconds from ``10us``, ``5ms``, ``2s``, ``1.5s`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise UnitError(f"a duration cannot be negative, got {value!r}")
        return round(value * NS_PER_S)
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise UnitError(f"a duration cannot be negative, got {value!r}")
    m = _TIME_RE.match(text)
    if m is None:
        raise UnitError(f"expected a duration such as 10us, 5ms or 2s, got {value!r}")
    unit = m.group("unit").lower()
    if unit == "":
        unit = "s"
    if unit not in _TIME_SUFFIX:
        raise UnitError(f"unknown time unit {m.group('unit')!r} in {value!r} (use ns, us, ms, s or min)")
    return round(_number(m) * _TIME_SUFFIX[unit])


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
