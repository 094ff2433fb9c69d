"""A sweep's results as one tidy table, with the swept parameters ordered and labelled for people.

The figures and the report read the sweep through this one object so that
they agree on what was swept (a key with more than one value; ``seed`` is
never a dimension but a sample), in which order its values go (sizes by
size, ``null`` last) and how a value is printed (``64 KiB``, not ``65536``
or ``64k``; ``null`` as what it means).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vmexp.report.style import fmt_bytes
from vmexp.report.sweep import COLUMNS
from vmexp.units import UnitError, format_duration, parse_duration, parse_size

__all__ = ["SweepTable", "label_value", "order_values", "numeric_value", "is_size", "NULLS"]

NULLS = ("null", "None", "none", "~", "")

# What null means for the keys whose null is not just "the default".
_NULL_MEANS = {
    "threshold": "glibc default (dynamic)",
    "allocator.trim_threshold": "glibc default (dynamic)",
    "allocator.top_pad": "glibc default (128 KiB)",
    "allocator.mmap_max": "glibc default (65536)",
}
# Keys whose values are plain numbers even where they could parse as sizes.
_PLAIN = ("seed", "nprocs", "machine.ncpus")
# Keys that hold sizes, so that a bare number (threshold=65536) prints as one.
_SIZE_KEYS = ("ram", "swap", "page_size", "threshold", "machine.min_free", "job_memory")
_SIZE_SUFFIX = re.compile(r"^[0-9.]+\s*([kmgt]i?b?|b)$", re.IGNORECASE)
_TIME_SUFFIX = re.compile(r"^[0-9.]+\s*(ns|us|µs|ms|s|min)$")


def is_size(key: str, value: str) -> bool:
    if _SIZE_SUFFIX.match(value):
        return True
    last = key.rsplit(".", 1)[-1]
    return value.isdigit() and (
        key in _SIZE_KEYS or last in ("size", "set", "volume") or last.endswith(("_threshold", "_pad"))
    )


def label_value(key: str, value: str) -> str:
    """How a swept value reads on an axis or in a sentence: sizes with units, null explained."""
    if value in NULLS:
        return _NULL_MEANS.get(key, "default")
    if key in _PLAIN:
        return value
    if _TIME_SUFFIX.match(value):
        try:
            return format_duration(parse_duration(value)).replace("us", "µs")
        except UnitError:
            return value
    if is_size(key, value):
        try:
            return fmt_bytes(parse_size(value))
        except UnitError:
            return value
    return value


def numeric_value(key: str, value: str) -> float | None:
    """The value as a number for a numeric axis (bytes for sizes, seconds for durations), or None."""
    if value in NULLS:
        return None
    if _TIME_SUFFIX.match(value):
        try:
            return parse_duration(value) / 1e9
        except UnitError:
            return None
    if is_size(key, value):
        try:
            return float(parse_size(value))
        except UnitError:
            return None
    try:
        return float(value)
    except ValueError:
        return None


def _sort_key(key: str, value: str) -> tuple[int, float, str]:
    if value in NULLS:
        return (1, 0.0, value)  # "default" after the explicit settings
    n = numeric_value(key, value)
    return (0, n if n is not None else math.inf, value)


def order_values(key: str, values: list[str]) -> list[str]:
    """Distinct values in reading order: by size or number, text in order of appearance, null last."""
    seen = list(dict.fromkeys(values))
    if all(numeric_value(key, v) is None for v in seen if v not in NULLS):
        # Names (policies, devices): keep the order the sweep listed them in.
        return [v for v in seen if v not in NULLS] + [v for v in seen if v in NULLS]
    return sorted(seen, key=lambda v: _sort_key(key, v))


@dataclass
class SweepTable:
    """The finished jobs of a sweep as a DataFrame, and what the sweep varied."""

    keys: list[str]
    rows: list[dict[str, Any]]
    cfg: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ok = [r for r in self.rows if r.get("status") == "ok"]
        self.failed = [r for r in self.rows if r.get("status") != "ok"]
        df = pd.DataFrame(ok)
        for k in self.keys:
            df[k] = df[k].astype(str) if k in df.columns else ""
        for c in COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else math.nan
        # summary_of writes L = 0 for a job without major faults; its L is undefined (infinite), not zero,
        # and a zero would win or lose every comparison and sit at the bottom of a log axis.
        df.loc[df["mean_time_between_faults_s"] == 0, "mean_time_between_faults_s"] = math.nan
        self.df = df
        self.order = {k: order_values(k, [str(v) for v in df[k]]) if len(df) else [] for k in self.keys}
        self.swept = [k for k in self.keys if k != "seed" and len(self.order[k]) > 1]
        self.seeds = len(self.order.get("seed", [])) or 1

    @property
    def ok(self) -> int:
        return len(self.df)

    def label(self, key: str, value: str) -> str:
        return value if key not in self.keys else label_value(key, value)

    def setting(self, row: Any) -> str:
        """``threshold=64 KiB, policy=fifo``: the swept values of a row (the job name when nothing varies)."""
        parts = [f"{k}={self.label(k, str(row[k]))}" for k in self.swept]
        return ", ".join(parts) if parts else str(row.get("job", ""))

    def present(self, name: str) -> bool:
        """The metric has a value in some finished job."""
        return name in self.df.columns and bool(self.df[name].notna().any())

    def constant(self, name: str) -> bool:
        col = self.df[name].dropna()
        return len(col) == 0 or bool((col == col.iloc[0]).all())

    def by_setting(self, names: list[str]) -> pd.DataFrame:
        """Mean, standard deviation and count of each metric per setting (seeds pooled), in sweep order."""
        if not self.swept:
            return self.df.assign(_all="all jobs").groupby("_all")[names].agg(["mean", "std", "count"])
        grouped = self.df.groupby(self.swept, sort=False)[names].agg(["mean", "std", "count"])
        rank = {k: {v: i for i, v in enumerate(self.order[k])} for k in self.swept}
        idx = grouped.index.to_frame(index=False).astype(str)
        cols = [idx[k].tolist() for k in self.swept]
        order = sorted(
            range(len(idx)), key=lambda i: tuple(rank[k][c[i]] for k, c in zip(self.swept, cols, strict=True))
        )
        return grouped.iloc[order]

    def combine(self, keys: list[str]) -> str:
        """A column that joins several swept keys (``a=1, b=x``), for a figure with more dimensions than it has."""
        name = ", ".join(keys)
        if name not in self.order:
            ranks = {k: {v: i for i, v in enumerate(self.order[k])} for k in keys}

            def joined(row: Any) -> str:
                return ", ".join(f"{k}={self.label(k, str(row[k]))}" for k in keys)

            self.df[name] = self.df.apply(joined, axis=1) if len(self.df) else []
            firsts = self.df.drop_duplicates(name)
            self.order[name] = [
                str(r[name])
                for _, r in sorted(
                    firsts.iterrows(), key=lambda t: tuple(ranks[k][str(t[1][k])] for k in keys)
                )
            ]
        return name
