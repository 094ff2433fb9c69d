"""Comparison figures of a sweep: the main metrics against the swept parameter(s).

The first swept parameter is the x axis, a second one the hue, a third the
columns; seeds are averaged with error bars. Size-valued parameters are
ordered by size and printed with units (64 KiB, not 65536).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from vmexp.report.sweep import METRICS
from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = ["draw_sweep_figures", "MAIN_METRICS", "order_values", "label_value"]

MAIN_METRICS = ["minflt", "majflt", "syscalls", "rss_peak_bytes", "fragmentation", "cpu_utilization"]
_EXTRA = {"syscalls": ("brk + mmap + munmap + mremap calls", "count")}
_NULL = ("null", "None", "none", "~", "")


def label_value(key: str, value: str) -> str:
    """How a swept value reads on an axis: sizes with units, null explained."""
    if value in _NULL:
        return "glibc default" if key == "threshold" else "default"
    if key in ("seed", "nprocs") or key.endswith(("ncpus", "mmap_max")):
        return value
    try:
        return format_size(parse_size(value))
    except UnitError:
        pass
    try:
        if any(value.endswith(u) for u in ("ns", "us", "ms", "s")):
            return format_duration(parse_duration(value))
    except UnitError:
        pass
    return value


def _sort_key(value: str) -> tuple[int, float, str]:
    if value in _NULL:
        return (1, 0.0, value)  # "default" after the explicit settings
    try:
        return (0, float(value), value)
    except ValueError:
        pass
    try:
        return (0, float(parse_size(value)), value)
    except UnitError:
        pass
    try:
        return (0, float(parse_duration(value)), value)
    except UnitError:
        return (0, float("inf"), value)


def order_values(values: list[str]) -> list[str]:
    return sorted(set(values), key=_sort_key)


def _fmt_axis(ax: Any, unit: str) -> None:
    if unit == "bytes":
        ax.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: format_size(v) if v >= 0 else "")
        )
    elif unit == "ratio":
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def draw_sweep_figures(sweep_dir: Path, keys: list[str], rows: list[dict[str, Any]]) -> list[Path]:
    """Write figures/metrics.png (and one PNG per main metric); returns the paths."""
    ok = [r for r in rows if r.get("status") == "ok"]
    out = sweep_dir / "figures"
    out.mkdir(exist_ok=True)
    if not ok:
        return []
    df = pd.DataFrame(ok)
    df["syscalls"] = df["brk"] + df["mmap"] + df["munmap"] + df["mremap"]
    swept = [k for k in keys if k != "seed" and df[k].nunique() > 1] if keys else []
    x = swept[0] if swept else (keys[0] if keys else "job")
    hue = swept[1] if len(swept) > 1 else None
    col = swept[2] if len(swept) > 2 else None
    for k in (x, hue, col):
        if k is not None and k != "job":
            df[k] = df[k].astype(str)
    order = order_values(list(df[x].astype(str))) if x != "job" else list(df["job"])
    labels = [label_value(x, v) for v in order]
    hue_order = order_values(list(df[hue])) if hue else None
    if hue:
        df["_hue"] = [label_value(hue, v) for v in df[hue]]
    paths: list[Path] = []
    sns.set_theme(style="whitegrid", context="notebook")
    cols: list[Any] = sorted((str(v) for v in df[col].unique()), key=_sort_key) if col else [None]
    fig, axes = plt.subplots(
        len(MAIN_METRICS), len(cols), figsize=(5.2 * len(cols) + 1.5, 3.0 * len(MAIN_METRICS)), squeeze=False
    )
    for i, metric in enumerate(MAIN_METRICS):
        label, unit = _EXTRA.get(metric) or METRICS[metric]
        for j, cv in enumerate(cols):
            ax = axes[i][j]
            data = df if cv is None else df[df[col] == cv]
            sns.barplot(
                data=data,
                x=x,
                y=metric,
                hue="_hue" if hue else None,
                hue_order=[label_value(hue, v) for v in hue_order] if hue and hue_order else None,
                order=order,
                errorbar=("sd" if "seed" in keys and df["seed"].nunique() > 1 else None),
                ax=ax,
                palette="colorblind" if hue else None,
                color=None if hue else sns.color_palette("colorblind")[0],
            )
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(labels)
            ax.set_xlabel(x)
            ax.set_ylabel(f"{label} ({'%' if unit == 'ratio' else unit})")
            vals = data[metric]
            if unit != "ratio" and len(vals) and vals.min() > 0 and vals.max() / vals.min() > 1000:
                ax.set_yscale("log")
            else:
                _fmt_axis(ax, unit)
            if cv is not None:
                ax.set_title(f"{col} = {label_value(col or '', cv)}")
            if hue and ax.get_legend() is not None:
                ax.legend(title=hue, fontsize="small")
    fig.suptitle(f"Sweep over {x}" + (f" and {hue}" if hue else "") + f" — {len(ok)} jobs", fontsize=14)
    fig.tight_layout()
    path = out / "metrics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths
