"""A sweep's results as one tidy table, with the swept parameters ordered and labelled for people.

The figures and the report read the sweep through this one object so that
they agree on what was swept (a key with more than one value; ``seed`` is
never a dimension but a sample), in which order its values go (sizes by
size, ``null`` last) and how a value is printed (``64 KiB``, not ``65536``
or ``64k``; ``null`` as what it means).

What a swept value *is* comes from each job's ``settings.json``: the value
the job ran with, typed, with its unit (bytes, ns) and, for null, what null
means, all from the settings' declarations. The override strings of
summary.csv name the settings; they are never parsed here, and no unit is
guessed from a key's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vmexp.metrics import COLUMNS
from vmexp.report.style import fmt_bytes
from vmexp.status import finished
from vmexp.units import format_duration

__all__ = ["NULLS", "SweepTable", "Typed", "format_typed", "label_value", "numeric_value", "order_values"]

NULLS = ("null", "None", "none", "~", "")

# (value, unit, what null means): a setting as settings.json records it.
Typed = tuple[Any, str, str]


def format_typed(value: Any, unit: str, null: str = "") -> str:
    """A typed setting as people read it: ``64 KiB``, ``10 ms``, ``0.05``, ``lru``, or what null means."""
    if value is None:
        return null.split(":", 1)[0] if null else "default"  # the null's name, before its explanation
    if isinstance(value, bool):
        return "true" if value else "false"
    if unit == "bytes" and isinstance(value, int):
        return fmt_bytes(value)
    if unit == "bytes" and isinstance(value, list | tuple):  # a size each (cgroup.limits)
        return "[" + ", ".join(fmt_bytes(x) if isinstance(x, int) else str(x) for x in value) + "]"
    if unit == "ns" and isinstance(value, int | float):
        return format_duration(value).replace("us", "µs")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _typed(settings: dict[str, Any] | None, key: str) -> Typed | None:
    """The value ``key`` had in a job, from its settings.json (a group option from its choices)."""
    if not settings:
        return None
    entry = (settings.get("settings") or {}).get(key)
    if isinstance(entry, dict) and "value" in entry:
        return entry["value"], str(entry.get("unit", "")), str(entry.get("null", ""))
    choice = (settings.get("choices") or {}).get(key)
    if choice is not None:
        return choice, "", ""
    return None


def _from_text(key: str, value: str) -> Typed | None:
    """A value written without its job's settings.json, typed by the key's declaration (not its name)."""
    import yaml

    from vmexp.config import spec_for_key
    from vmexp.fields import parse_value

    spec = spec_for_key(key)
    if spec is None or spec.kind in ("section", "open", "component"):
        return None
    try:
        raw = yaml.safe_load(value) if value not in NULLS else None
        return parse_value(spec, raw, key), spec.unit, spec.null or ""
    except Exception:  # not a value of this key: shown as written
        return None


def _numeric(t: Typed | None) -> float | None:
    if t is None or t[0] is None or isinstance(t[0], bool | str) or not isinstance(t[0], int | float):
        return None
    return t[0] / 1e9 if t[1] == "ns" else float(t[0])


def label_value(key: str, value: str) -> str:
    """A swept value's label when no settings.json is at hand (``vmexp.compare``): by the key's declaration."""
    t = _from_text(key, value)
    return format_typed(*t) if t is not None else ("default" if value in NULLS else value)


def numeric_value(key: str, value: str) -> float | None:
    """The value as a number (bytes, seconds) by the key's declaration; None for names and nulls."""
    t = _from_text(key, value)
    if t is not None:
        return _numeric(t)
    try:
        return None if value in NULLS else float(value)
    except ValueError:
        return None


def order_values(key: str, values: list[str]) -> list[str]:
    """Distinct values in reading order (as ``SweepTable.order_values``), typed by the key's declaration."""
    seen = list(dict.fromkeys(values))
    nulls = [v for v in seen if v in NULLS or (_from_text(key, v) or (0,))[0] is None]
    rest = [v for v in seen if v not in nulls]
    if any(numeric_value(key, v) is None for v in rest):
        return rest + nulls
    return sorted(rest, key=lambda v: numeric_value(key, v) or 0.0) + nulls


@dataclass
class SweepTable:
    """The finished jobs of a sweep as a DataFrame, and what the sweep varied."""

    keys: list[str]
    rows: list[dict[str, Any]]
    cfg: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # What each override string of each key meant, typed, from the jobs' settings.json.
        self.typed: dict[str, dict[str, Typed]] = {k: {} for k in self.keys}
        self.settings: dict[str, Any] | None = None
        for r in self.rows:
            settings = r.get("_settings")
            if settings and self.settings is None:
                self.settings = settings
            for k in self.keys:
                t = _typed(settings, k)
                if t is not None and k in r:
                    self.typed[k].setdefault(str(r[k]), t)
        ok = [
            {k: v for k, v in r.items() if k != "_settings"} for r in self.rows if finished(r.get("status"))
        ]
        self.failed = [r for r in self.rows if not finished(r.get("status"))]
        df = pd.DataFrame(ok)
        for k in self.keys:
            df[k] = df[k].astype(str) if k in df.columns else ""
        for c in COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else math.nan
        # summary_of writes L = 0 for a job without major faults; its L is undefined (infinite), not zero,
        # and a zero would win or lose every comparison and sit at the bottom of a log axis.
        df.loc[df["mean_time_between_faults_s"] == 0, "mean_time_between_faults_s"] = math.nan
        self.df = df
        self.order = {k: self.order_values(k, [str(v) for v in df[k]]) if len(df) else [] for k in self.keys}
        self.swept = [k for k in self.keys if k != "seed" and len(self.order[k]) > 1]
        self.seeds = len(self.order.get("seed", [])) or 1

    @property
    def ok(self) -> int:
        return len(self.df)

    def label(self, key: str, value: str) -> str:
        """How a swept value reads on an axis or in a sentence: sizes with units, null explained."""
        t = self.typed.get(key, {}).get(value)
        if t is None:
            return value if value not in NULLS else "default"
        return format_typed(*t)

    def unit(self, key: str) -> str:
        """The unit of a swept key's values (bytes, ns, ...; "" for plain numbers and names)."""
        units = {t[1] for t in self.typed.get(key, {}).values() if t[0] is not None}
        return units.pop() if len(units) == 1 else ""

    def is_size(self, key: str) -> bool:
        return self.unit(key) == "bytes"

    def numeric(self, key: str, value: str) -> float | None:
        """The value as a number for a numeric axis (bytes for sizes, seconds for durations), or None."""
        return _numeric(self.typed.get(key, {}).get(value))

    def order_values(self, key: str, values: list[str]) -> list[str]:
        """Distinct values in reading order: by size or number, names in order of appearance, null last."""
        seen = list(dict.fromkeys(values))
        nulls = [v for v in seen if self._is_null(key, v)]
        rest = [v for v in seen if not self._is_null(key, v)]
        if any(self.numeric(key, v) is None for v in rest):
            return rest + nulls  # names (policies, devices): the order the sweep listed them in
        return sorted(rest, key=lambda v: self.numeric(key, v) or 0.0) + nulls

    def _is_null(self, key: str, value: str) -> bool:
        t = self.typed.get(key, {}).get(value)
        return t[0] is None if t is not None else value in NULLS

    def setting_value(self, key: str) -> str | None:
        """A setting every job shares (the first job's, from its settings.json), as people read it."""
        t = _typed(self.settings, key)
        return None if t is None else format_typed(*t)

    def setting_raw(self, key: str) -> Any:
        """The typed value of a setting in the first job (None when unknown)."""
        t = _typed(self.settings, key)
        return None if t is None else t[0]

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
