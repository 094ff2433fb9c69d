"""Comparison figures of a sweep: the chosen metrics against the swept parameter(s).

One PNG per entry of the preset's ``report.metrics`` (or a standard set):
the first swept parameter is the x axis, a second the hue, a third the
columns; when ``seed`` is swept the points are means with a band or bars of
one standard deviation (a sweep of 200 seeds draws one line, not 200).
A metric that is constant or absent in every job is skipped: a flat line
says nothing the report's table does not. An entry ``a|b|c`` draws those
metrics together, as hue, on one axis (same unit), e.g. arena against
in-use bytes against RSS.

Two figures are drawn when the sweep has their shape, because their
known results need marks a generic plot cannot place:

- ``thrashing.png`` when ``nprocs`` is swept: CPU and swap-device
  utilisation against the degree of multiprogramming with the peak, the
  50 % rule and Denning's L = S point marked, and L against S below.
- ``tuning.png`` when the jobs computed an ``objective`` (the Optuna
  preset): the cost of every trial in order with the best so far, and
  against each searched parameter.
"""

from __future__ import annotations

import itertools
import math
import sys
import textwrap
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from vmexp.report.style import PALETTE, STYLE, bytes_axis, percent_axis, seconds_axis, spans_orders
from vmexp.report.sweep import metric
from vmexp.report.table import SweepTable
from vmexp.units import format_duration, format_size

__all__ = ["draw_sweep_figures", "thrashing_marks", "crossing", "powers_of_two", "NOTES"]


def _axis_for(ax: Axes, unit: str, values: list[float], which: str = "y") -> bool:
    """Units, and a log scale where the values span orders of magnitude; returns True when log."""
    log = unit != "ratio" and spans_orders(values)
    if unit == "bytes":
        bytes_axis(ax, which, log=log)
        return log
    if log:
        (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    if unit == "ratio":
        percent_axis(ax, which)
    elif unit == "s":
        seconds_axis(ax, which)
    else:
        # Plain numbers, also on a log axis (1,000 rather than 10³: counts are read, not computed with).
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v == int(v) else f"{v:,.3g}"))
        if log:
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    return log


def _unit_text(unit: str) -> str:
    return {"count": "", "bytes": "", "ratio": " (%)", "s": "", "": ""}[unit]


# What a reader must know to read a metric's figure right, beyond its label (vmexp.report.sweep.METRICS,
# which says what it is): (the words its label must contain for the note to hold, the note). Kept here,
# in one place, until the metric declarations carry such notes.
NOTES: dict[str, tuple[str, str]] = {
    "rss_peak_sum_bytes": (
        "own peaks",
        "Each process's own peak RSS, added up: the peaks need not coincide, so the sum can exceed "
        "the RAM that the processes share.",
    ),
    "vsz_peak_bytes": (
        "sum",
        "Each process's own peak VSZ, added up (virtual memory: it can exceed the RAM).",
    ),
    "fragmentation": (
        "",
        "Free bytes (fordblks) over the arena at exit. Free bytes include the top chunk, the free end "
        "of the heap that a trim can return; a heap that is mostly top reads as nearly 100 %.",
    ),
}


def _note(name: str) -> str | None:
    """The note under a metric's figure, while its label still describes what the note explains."""
    need, text = NOTES.get(name, ("", ""))
    return text if text and need in metric(name).label else None


# Units whose axis starts at zero: a count, a size, a share or a duration read against nothing
# exaggerates a difference of a few percent into the whole height of the plot.
_FROM_ZERO = ("bytes", "count", "ratio", "s")


def powers_of_two(values: list[float]) -> bool:
    """True for three or more positive integers, each a power of two, spanning at least 4×."""
    if len(values) < 3 or any(v <= 0 or v != int(v) for v in values):
        return False
    ints = [int(v) for v in values]
    return all(i & (i - 1) == 0 for i in ints) and max(ints) >= 4 * min(ints)


def _headroom(ax: Axes, values: list[float], room: float = 0.08) -> None:
    """A linear y axis from zero to a little above the highest point, so its marker is drawn whole."""
    finite = [v for v in values if math.isfinite(v)]
    hi = max([*finite, ax.dataLim.y1 if math.isfinite(ax.dataLim.y1) else 0.0, 0.0])
    ax.set_ylim(0, hi * (1 + room) if hi > 0 else 1.0)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


class _X:
    """How the x axis shows the first swept parameter: numeric (to scale) or categories."""

    def __init__(self, table: SweepTable, key: str) -> None:
        self.key = key
        values = table.order[key]
        nums = [table.numeric(key, v) for v in values]
        page = int(table.setting_raw("page_size") or 0)
        self.frames = key == "ram" and page > 0 and all(n is not None and n / page <= 64 for n in nums)
        pos = [float(n) for n in nums if n is not None]
        # To scale when there are enough numbers to show a trend; not when a zero sits beside values
        # orders of magnitude apart (linear crowds them, log cannot hold the zero).
        positive = [p for p in pos if p > 0]
        crowded = 0.0 in pos and len(positive) >= 2 and max(positive) / min(positive) > 4
        self.numeric = len(values) >= 3 and len(pos) == len(values) and not crowded
        self.sizes = self.numeric and not self.frames and table.is_size(key)
        # Doublings (64k, 128k, 256k; 1, 2, 4, 8 processes) are evenly spaced on a log2 axis, crowded
        # into one end of a linear one.
        self.pow2 = self.numeric and not self.frames and powers_of_two(pos)
        self.log = self.numeric and not self.frames and (self.pow2 or spans_orders(pos, 16))
        self.values = values
        self.pos = {
            v: (float(n or 0) / page if self.frames else float(n or 0)) if self.numeric else float(i)
            for i, (v, n) in enumerate(zip(values, nums, strict=True))
        }
        self.page = page

    def column(self, df: pd.DataFrame) -> pd.Series:
        return df[self.key].map(self.pos)

    def title(self) -> str:
        if self.frames:
            return f"frames (ram ÷ {format_size(self.page)} pages)"
        return self.key

    def decorate(self, ax: Axes, table: SweepTable) -> None:
        ax.set_xlabel(self.title())
        if self.numeric and self.log:
            ax.set_xscale("log", base=2 if self.sizes or self.pow2 else 10)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if self.frames:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif not self.numeric or len(self.values) <= 12:
            # Ticks at the swept values themselves, labelled as the sweep wrote them (64 KiB, 2 MiB, default).
            labels = [table.label(self.key, v) for v in self.values]
            ax.set_xticks([self.pos[v] for v in self.values], labels)
            fig = ax.get_figure(root=True)
            inches = ax.get_position().width * (fig.get_figwidth() if isinstance(fig, Figure) else 6.0)
            if sum(len(t) + 2 for t in labels) > 10 * inches:  # about 10 characters of tick label per inch
                ax.tick_params(axis="x", labelrotation=25)
                for t in ax.get_xticklabels():
                    t.set_horizontalalignment("right")
        elif self.sizes:
            bytes_axis(ax, "x", log=self.log)


# Inches left of the axes: a y label in two lines beside ticks as wide as "128 MiB" (the threshold
# sweep's arena_bytes.png); with 1.0 inch its first line was cut at the figure's left edge.
_LEFT = 1.15


def _figure(ncols: int, height: float = 4.3, width: float = 6.2, legend: bool = True) -> Figure:
    fig = Figure(figsize=(width * ncols + (1.9 if legend else 0.3) + _LEFT, height))
    FigureCanvasAgg(fig)
    w = fig.get_figwidth()
    fig.subplots_adjust(left=_LEFT / w, right=1 - (1.9 if legend else 0.3) / w, top=1 - 0.6 / height,
                        bottom=0.85 / height, wspace=0.18)  # fmt: skip
    return fig


def _hue_labels(table: SweepTable, hue: str | None, df: pd.DataFrame) -> tuple[pd.Series | None, list[str]]:
    if hue is None:
        return None, []
    labels = [table.label(hue, v) for v in table.order[hue]]
    return df[hue].map(lambda v: table.label(hue, str(v))), labels


def _plot_metric(
    fig: Figure, table: SweepTable, names: list[str], x: _X, hue: str | None, col: str | None
) -> bool:
    """Draw one figure entry; False when there is nothing worth drawing."""
    df = table.df
    names = [n for n in names if table.present(n) and not table.constant(n)]
    if not names:
        return False
    units = {metric(n).unit for n in names}
    unit = units.pop() if len(units) == 1 else ""
    group = len(names) > 1
    cols = table.order[col] if col else [None]
    axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    seeds = table.seeds > 1
    data = df.copy()
    data["_x"] = x.column(data)
    if group:
        # Metrics as hue: a long table with one row per (job, metric).
        data = data.melt(id_vars=[c for c in data.columns if c not in names], value_vars=names,
                         var_name="_metric", value_name="_y")  # fmt: skip
        data["_hue"] = data["_metric"].map(lambda n: metric(n).short)
        hue_order = [metric(n).short for n in names]
        hue_title = None
    else:
        data["_y"] = data[names[0]]
        hs, hue_order = _hue_labels(table, hue, data)
        if hs is not None:
            data["_hue"] = hs
        hue_title = hue
    has_hue = group or hue is not None
    palette = PALETTE[: len(hue_order)] if has_hue and len(hue_order) <= len(PALETTE) else "viridis"
    values = data["_y"].dropna().tolist()
    marked: Any = None
    for ax, cv in zip(axes, cols, strict=True):
        d = data if cv is None or col is None else data[data[col] == cv]
        common: dict[str, Any] = {
            "data": d,
            "x": "_x",
            "y": "_y",
            "ax": ax,
            "errorbar": "sd" if seeds else None,
        }
        if has_hue:
            common.update(hue="_hue", hue_order=hue_order, palette=palette)
        else:
            common.update(color=PALETTE[0])
        # Labels set before seaborn plots: with none, seaborn asks the axes for its tick labels to decide
        # whether to show its own, which builds ticks for locators replaced right after (a fifth of the time).
        ax.set_xlabel(x.title())
        ax.set_ylabel(" ")
        if x.numeric:
            if has_hue and len(hue_order) <= len(HUE_MARKERS):
                # Each hue its own marker and dash pattern as well as its colour: where hues coincide
                # (Belady's policies at 5 frames and more, i386 and x86_64 below 2.8 GiB) the line
                # drawn last hid the others, and a reader saw one policy where there were three.
                n = len(hue_order)
                common.update(
                    style="_hue", style_order=hue_order, markers=HUE_MARKERS[:n], dashes=HUE_DASHES[:n]
                )
            else:
                common.update(marker="o")
            sns.lineplot(**common, markersize=6, linewidth=1.8, err_style="band")
        else:
            log = unit != "ratio" and spans_orders(values)
            if log:
                sns.pointplot(
                    **common, native_scale=True, linestyle="none", marker="o", dodge=0.3 if has_hue else False
                )
            else:
                sns.barplot(
                    **common, native_scale=True, width=0.7, capsize=0.1 if seeds else 0, saturation=1.0
                )
                if not has_hue and len(x.values) <= 10 and not seeds:
                    # The value on each bar: what a reader of a slide wants to quote.
                    for bars in ax.containers:
                        ax.bar_label(bars, labels=[_value_text(names[0], b.get_height()) for b in bars],
                                     fontsize=8, padding=2)  # fmt: skip
            ax.grid(False, axis="x")
        x.decorate(ax, table)
        cut = d[d["status"] == "stopped"] if "status" in d.columns else d.iloc[0:0]
        if len(cut):
            # A job that duration stopped counted only part of its work: a hollow ring says so.
            marked = ax.scatter(cut["_x"], cut["_y"], s=110, facecolors="none", edgecolors="#222222",
                                linewidths=1.6, zorder=6, label=STOPPED_LABEL)  # fmt: skip
        if x.frames and not group and names[0] in BELADY_METRICS:
            _mark_rises(ax, d, has_hue)
        if cv is not None and col is not None:
            ax.set_title(f"{col} = {table.label(col, cv)}", fontsize=10)
        leg = ax.get_legend()
        if leg is not None:
            leg.remove()
    label = metric(names[0]).label if not group else "bytes" if unit == "bytes" else "value"
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[0].set_ylabel(label + _unit_text(unit))
    ram = (
        _int_or_none(table.setting_raw("ram"))
        if "ram" not in table.swept and any("rss" in n for n in names)
        else None
    )
    if ram is not None and unit == "bytes" and values and max(values) < ram * _RAM_SHARE:
        # Far below the RAM (the address_space sweep's few hundred KiB against 64 MiB), an axis up to
        # the RAM line drew the values as a flat line at zero: the axis is the values', the RAM a note.
        # Above the axes' top right corner, clear of the points (inside, it sat on the highest one).
        axes[-1].text(1.0, 1.01, f"RAM ({format_size(ram)}) far above", transform=axes[-1].transAxes,
                      ha="right", va="bottom", fontsize=8.5)  # fmt: skip
        ram = None
    for ax in axes:
        if _axis_for(ax, unit, values) and ax is axes[0]:
            ax.set_ylabel(f"{ax.get_ylabel()} (log scale)")
        if ram is not None and unit == "bytes":
            ax.axhline(ram, color="black", linestyle="--", linewidth=1.2)
            ax.annotate(f"RAM ({format_size(ram)})", (1.0, ram), xycoords=("axes fraction", "data"),
                        xytext=(-4, 3), textcoords="offset points", ha="right", va="bottom", fontsize=8.5)  # fmt: skip
        if unit in _FROM_ZERO and ax.get_yscale() == "linear":
            # Bars carry their value above them; a RAM line its label.
            _headroom(ax, [*values, *([ram * 1.04] if ram else [])], 0.14 if ax.containers else 0.08)
    if has_hue:
        handles, labels = axes[0].get_legend_handles_labels()
        if marked is not None and STOPPED_LABEL not in labels:
            handles, labels = [*handles, marked], [*labels, STOPPED_LABEL]
        # Labels wrapped to the 1.9 inches right of the axes: in one line, the stopped-at-duration label
        # made the legend wider than the margin, and its right part and its (centred) title fell off
        # the figure ("machine." of machine.load_control in the thrashing sweep).
        labels = [textwrap.fill(label, _LEGEND_CHARS) for label in labels]
        axes[-1].legend(handles, labels, title=_wrap_key(hue_title), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        borderaxespad=0)  # fmt: skip
    elif marked is not None:
        axes[0].legend(handles=[marked], loc="best", fontsize=8.5)
    what = ", ".join(metric(n).short for n in names) if group else metric(names[0]).label
    by = f" by {x.key}" + (f" and {hue}" if hue and not group else "") + (f", per {col}" if col else "")
    note = f"mean ± 1 sd over {table.seeds} seeds" if seeds else f"{table.ok} jobs"
    width_chars = int((fig.get_figwidth() - _LEFT - 0.3) * 9.5)  # bold 11.5 pt: about 10 characters per inch
    title = textwrap.fill(f"{what[0].upper() + what[1:]}{by} ({note})", width_chars)
    notes = [t for t in (_note(n) for n in names) if t]
    caption = textwrap.fill(" ".join(notes), int((fig.get_figwidth() - _LEFT - 0.3) * 15)) if notes else ""
    h = fig.get_figheight()
    lines = title.count("\n") + 1
    extra = 0.19 * (caption.count("\n") + 1) + 0.05 if caption else 0.0
    if extra:
        # Taller by the caption's lines, so that the axes keep their height.
        fig.set_figheight(h + extra)
        top_in, bottom_in = (1 - fig.subplotpars.top) * h, fig.subplotpars.bottom * h
        h += extra
        fig.subplots_adjust(bottom=bottom_in / h, top=1 - top_in / h)
    fig.suptitle(title, x=_LEFT / fig.get_figwidth(), ha="left", y=1 - 0.12 / h, va="top", fontsize=11.5,
                 fontweight="bold")  # fmt: skip
    if caption:
        fig.text(_LEFT / fig.get_figwidth(), 1 - (0.2 + 0.24 * lines) / h, caption, ha="left", va="top",
                 fontsize=8.5, color="#333333")  # fmt: skip
    # Room for the title's lines, the caption (and the column titles) above the axes.
    fig.subplots_adjust(top=1 - (0.3 + 0.24 * lines + extra + (0.25 if col else 0)) / h)
    if not group:
        first = metric(names[0])
        axes[0].set_ylabel(fit_axis_label(axes[0].get_ylabel(), first.label, first.short, axes[0]))
    return True


def fit_axis_label(text: str, label: str, short: str, ax: Axes) -> str:
    """A y-axis label that fits the axes' height: as it is, else in two lines, else with the short name.

    A metric's label (``heap fragmentation at exit (free / arena, the free top chunk included)``)
    is written out in the title above; on the axis, in one line, it ran off the figure at both ends.
    """
    height_pt = ax.get_position().height * ax.get_figure().get_figheight() * 72  # type: ignore[union-attr]
    width = max(
        12, int(height_pt / (0.62 * float(ax.yaxis.label.get_fontsize())))
    )  # characters, 0.62 em each
    if len(text) <= width:
        return text
    wrapped = textwrap.wrap(text, width)
    return "\n".join(wrapped) if len(wrapped) <= 2 else text.replace(label, short, 1)


# Markers and dash patterns of the hues of a line plot, in hue order (see _plot_metric).
HUE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
HUE_DASHES: list[tuple[float, ...] | str] = [
    "",
    (4, 2),
    (1, 1.5),
    (6, 2, 1, 2),
    (2, 2),
    (8, 3),
    (3, 1, 1, 1),
    (1, 3),
]

# An RSS axis reaches up to the RAM line only when the highest value is at least this share of it.
_RAM_SHARE = 1 / 8

# The characters of a legend label's line that fit the figure's right margin (8.5 pt text).
_LEGEND_CHARS = 22


def _wrap_key(key: str | None, width: int = 20) -> str | None:
    """A dotted setting name broken after its dots into lines of at most ``width`` characters.

    A legend title is 10 pt, wider than the labels: workload.lifetime.long_lived in one line is wider
    than the figure's right margin, and a title has no spaces for textwrap to break at.
    """
    if key is None or len(key) <= width:
        return key
    lines = [""]
    for part in key.split("."):
        piece = part if not lines[-1] else "." + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines[-1] += "."
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


STOPPED_LABEL = "stopped at duration (counts cover only part of the run)"


# Belady's anomaly is about page faults: the metrics whose rise with more frames is marked as one
# (a peak RSS or a run time that grows with the RAM is no anomaly).
BELADY_METRICS = ("faults", "majflt", "pswpin")


def _mark_rises(ax: Axes, d: pd.DataFrame, has_hue: bool) -> None:
    """Arrows at every step where more frames gave more faults: Belady's anomaly, where it happens.

    The text stands above the point it marks, on the side with room: to the left of a point in the
    right part of the axes (the last point sits at the right edge, where text to its right fell
    off the figure), to the right otherwise.
    """
    groups = d.groupby("_hue") if has_hue else [("", d)]
    left, right = ax.get_xlim()
    for name, g in groups:
        m = g.groupby("_x")["_y"].mean().sort_index()
        pts = list(zip(m.index.to_numpy(dtype=float).tolist(), m.to_numpy(dtype=float).tolist(), strict=True))
        for (_, y0), (x1, y1) in itertools.pairwise(pts):
            if y1 > y0:
                leftward = right > left and (x1 - left) / (right - left) > 0.6
                ax.annotate(
                    f"{name}: {y0:g} → {y1:g} with more frames\n(Belady's anomaly)".strip(": "),
                    xy=(x1, y1), xytext=(-18 if leftward else 18, 22), textcoords="offset points",
                    ha="right" if leftward else "left", va="bottom",
                    arrowprops={"arrowstyle": "->", "color": "#333333"}, fontsize=8.5,
                )  # fmt: skip


# ---------------------------------------------------------------------------
# Special figures
# ---------------------------------------------------------------------------


def crossing(xs: list[float], ys: list[float], level: float) -> float | None:
    """The first x where the piecewise-linear curve (xs, ys) reaches ``level`` from below (or above), or None."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if (y0 - level) * (y1 - level) <= 0 and y0 != y1:
            return x0 + (level - y0) * (x1 - x0) / (y1 - y0)
        if y0 == level:
            return x0
    return None


def thrashing_marks(
    n: list[float], cpu: list[float], swap: list[float], life: list[float], service: float
) -> dict[str, Any]:
    """The three classic marks of a multiprogramming curve, from the means per degree n.

    - peak: the n of the highest CPU utilisation;
    - fifty: where the swap device becomes busy half of the time (the 50 %
      rule: keep the paging device's utilisation near 50 %);
    - ls: where the mean CPU time between faults L falls to the page-fault
      service time S (Denning et al., 1976: throughput is near its maximum
      when L = S). Points without faults (L undefined) are left out.
    """
    i = int(np.argmax(cpu))
    lifes = [(a, b) for a, b in zip(n, life, strict=True) if b > 0]
    ls = None
    if lifes and service > 0:
        ls = crossing([a for a, _ in lifes], [math.log(b) for _, b in lifes], math.log(service))
    return {"peak": n[i], "peak_cpu": cpu[i], "fifty": crossing(n, swap, 0.5), "ls": ls}


def _curve_name(key: str, value: str) -> str:
    """A legend's name for one curve of a thrashing sweep: "no load control", "load control: ws"."""
    if key == "machine.load_control":
        return "no load control" if value == "none" else f"load control: {value}"
    return f"{key.rsplit('.', 1)[-1]} = {value}"


def _thrashing_figure(table: SweepTable, out: Path) -> Path | None:
    """CPU and swap-device utilisation against nprocs, with the classic marks; a second swept key
    (``machine.load_control``) draws a curve per value, so the collapse and its cure share one plot."""
    need = ("cpu_utilization", "swap_utilization", "mean_time_between_faults_s", "swap_service_time_s")
    if table.swept[:1] != ["nprocs"] or len(table.swept) > 2 or not all(table.present(m) for m in need):
        return None
    hue = table.swept[1] if len(table.swept) == 2 else None
    df = table.df.copy()
    df["_n"] = df["nprocs"].astype(float)
    groups = table.order[hue] if hue else [None]
    # The marks belong to the first curve (for load control: the machine without it).
    first = df if hue is None else df[df[hue] == groups[0]]
    means = first.groupby("_n")[list(need)].mean().sort_index()
    if len(means) < 3:
        return None
    n = means.index.tolist()
    life = means["mean_time_between_faults_s"].tolist()
    service = float(means["swap_service_time_s"].max())
    marks = thrashing_marks(
        n, means["cpu_utilization"].tolist(), means["swap_utilization"].tolist(), life, service
    )
    fig = Figure(figsize=(10.5, 8))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.1, right=0.72, top=0.92, bottom=0.08, hspace=0.12)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    seeds = table.seeds > 1
    eb = "sd" if seeds else None
    for i, g in enumerate(groups):
        d = df if hue is None or g is None else df[df[hue] == g]
        tag = "" if hue is None or g is None else f"\n({_curve_name(hue, table.label(hue, g))})"
        sns.lineplot(data=d, x="_n", y="cpu_utilization", ax=top, marker="o", errorbar=eb,
                     color=PALETTE[2 * i % len(PALETTE)], linewidth=2.2, label=f"CPU utilisation{tag}")  # fmt: skip
        sns.lineplot(data=d, x="_n", y="swap_utilization", ax=top, marker="s", errorbar=eb, linestyle="--",
                     color=PALETTE[(2 * i + 1) % len(PALETTE)], linewidth=1.4,
                     label=f"swap device busy{tag}")  # fmt: skip
        ok = d[d["mean_time_between_faults_s"] > 0]
        if len(ok):
            sns.lineplot(data=ok, x="_n", y="mean_time_between_faults_s", ax=bottom, marker="o", errorbar=eb,
                         color=PALETTE[(5 + 2 * i) % len(PALETTE)],
                         label=f"L: mean CPU time between\nmajor faults{tag}")  # fmt: skip
    cut = df[df["status"] == "stopped"] if "status" in df.columns else df.iloc[0:0]
    if len(cut):
        top.scatter(cut["_n"], cut["cpu_utilization"], s=120, facecolors="none", edgecolors="#222222",
                    linewidths=1.6, zorder=6, label="stopped at duration")  # fmt: skip
    top.set_ylim(0, 1.05)
    percent_axis(top)
    top.set_ylabel("share of time")
    of_first = " without load control" if hue == "machine.load_control" else f" ({groups[0]})" if hue else ""
    marks_style = [
        ("peak", f"peak CPU{of_first}: {marks['peak_cpu']:.0%}\nat n = {marks['peak']:g}", "-", "#333333"),
        ("fifty", f"swap busy 50 %{of_first}\n(the 50 % rule)", "--", PALETTE[1]),
        ("ls", f"L = S{of_first}\n(Denning et al., 1976)", ":", PALETTE[5]),
    ]
    for key, text, style, color in marks_style:
        v = marks[key]
        if v is None:
            continue
        for ax in (top, bottom):
            ax.axvline(v, color=color, linestyle=style, linewidth=1.4)
        top.plot(
            [],
            [],
            color=color,
            linestyle=style,
            label=f"{text}" + (f"\nat n ≈ {v:.1f}" if key != "peak" else ""),
        )
    top.axhline(0.5, color=PALETTE[1], linewidth=0.6, alpha=0.5)
    top.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8.5)
    bottom.axhline(service, color="#333333", linestyle="--", linewidth=1.2,
                   label=f"S: swap service time\nof a page ({_duration(service)})")  # fmt: skip
    bottom.set_yscale("log")
    seconds_axis(bottom)
    bottom.set_ylabel("time (log scale)")
    bottom.set_xlabel("processes (degree of multiprogramming, nprocs)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8.5)
    if len(n) <= 16:
        bottom.set_xticks(n, [f"{v:g}" for v in n])
    else:
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    note = f", mean ± 1 sd over {table.seeds} seeds" if seeds else ""
    what = " with and without load control" if hue == "machine.load_control" else f" by {hue}" if hue else ""
    fig.suptitle(f"Thrashing: CPU utilisation against the number of processes{what}{note}", fontsize=12,
                 fontweight="bold", x=0.1, ha="left")  # fmt: skip
    path = out / "thrashing.png"
    fig.savefig(path)
    return path


def _objective_figure(table: SweepTable, out: Path) -> Path | None:
    if not table.present("objective"):
        return None
    df = table.df.reset_index(drop=True)
    params = [k for k in table.swept]
    fig = Figure(figsize=(4.6 * (1 + len(params)) + 0.8, 4.4))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.8 / fig.get_figwidth(), right=0.98, top=0.83, bottom=0.2, wspace=0.25)
    axes = fig.subplots(1, 1 + len(params), sharey=True, squeeze=False)[0]
    y = df["objective"].to_numpy(dtype=float)
    trial = np.arange(len(y))
    best = int(np.nanargmin(y))
    axes[0].plot(trial, y, "o", color=PALETTE[0], label="trial")
    axes[0].step(trial, np.fmin.accumulate(y), where="post", color=PALETTE[5], label="best so far")
    axes[0].plot([best], [y[best]], "*", color="#cc0000", markersize=16, label="best")
    axes[0].set_xlabel("trial (job number)")
    axes[0].set_ylabel("objective (lower is better)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, key in zip(axes[1:], params, strict=True):
        x = _X(table, key)
        xs = x.column(df)
        ax.plot(xs, y, "o", color=PALETTE[0], alpha=0.8)
        ax.plot([xs.iloc[best]], [y[best]], "*", color="#cc0000", markersize=16)
        x.decorate(ax, table)
    setting = table.setting(df.iloc[best])
    fig.suptitle(f"Tuning: the objective of every trial — best {y[best]:,.4g} with {setting}", x=0.8 / fig.get_figwidth(),
                 ha="left", fontsize=11.5, fontweight="bold")  # fmt: skip
    path = out / "tuning.png"
    fig.savefig(path)
    return path


def _distribution(fig: Figure, table: SweepTable, names: list[str]) -> bool:
    """A box and the individual values of each metric over the seeds (one row per metric)."""
    names = [n for n in names if table.present(n) and not table.constant(n)]
    if not names:
        return False
    ax = fig.subplots()
    samples = [table.df[n].dropna().to_numpy(dtype=float) for n in names]
    # matplotlib's own boxplot: seaborn 0.13's passes an argument matplotlib 3.11 deprecates.
    ax.boxplot(samples, orientation="horizontal", widths=0.5, showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#dddddd"}, medianprops={"color": "#333333"})  # fmt: skip
    for i, v in enumerate(samples, start=1):
        # A fixed spread instead of random jitter: the figure is the same every time it is drawn.
        ax.scatter(v, i + np.linspace(-0.12, 0.12, len(v)), s=14, color=PALETTE[0], alpha=0.7, zorder=3)
    ax.set_yticks(range(1, len(names) + 1), [metric(n).short for n in names])
    ax.grid(False, axis="y")
    ax.set_ylabel("")
    units = {metric(n).unit for n in names}
    unit = units.pop() if len(units) == 1 else ""
    ax.set_xlabel(metric(names[0]).label if len(names) == 1 else "value")
    if _axis_for(ax, unit, [float(x) for v in samples for x in v], which="x"):
        ax.set_xlabel(f"{ax.get_xlabel()} (log scale)")
    what = ", ".join(metric(n).short for n in names)
    fig.suptitle(f"{what[0].upper() + what[1:]} over {table.seeds} seeds (box: quartiles)", x=1.0 / fig.get_figwidth(),
                 ha="left", y=1 - 0.12 / fig.get_figheight(), va="top", fontsize=11.5, fontweight="bold")  # fmt: skip
    fig.subplots_adjust(left=1.6 / fig.get_figwidth())
    return True


def _overview(table: SweepTable, wanted: list[str], out: Path) -> Path:
    """When no metric varies: the values every job shares, so that the sweep still has its figure."""
    names = [n for entry in wanted for n in entry.split("|") if table.present(n)][:6]
    fig = Figure(figsize=(8, 0.4 + 0.24 * (len(names) + 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.axis("off")
    # "All 1 finished jobs gave the same results" said nothing true of a sweep in which one job finished.
    head = (
        f"All {table.ok} finished jobs gave the same results:"
        if table.ok > 1
        else "The only job that finished:"
    )
    lines = [head] + [
        f"  {metric(n).label}: {_value_text(n, float(table.df[n].dropna().iloc[0]))}" for n in names
    ]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=11, family="DejaVu Sans")
    path = out / "overview.png"
    fig.savefig(path)
    return path


def _duration(seconds: float) -> str:
    return format_duration(seconds * 1e9).replace("us", "µs")


def _value_text(name: str, v: float) -> str:
    unit = metric(name).unit
    if unit == "bytes":
        return format_size(int(v))
    if unit == "ratio":
        return f"{v:.1%}"
    if unit == "s":
        return _duration(v)
    return f"{v:,.0f}" if v == int(v) else f"{v:,.4g}"


def _save(fig: Figure, entry: str, draw: Callable[[], bool], out: Path, paths: list[Path]) -> None:
    """Draw one metric's figure and save it if it showed anything; a failure is a warning, not the end of the report."""
    try:
        drawn = draw()
    except Exception as e:
        print(f"vmexp: warning: figure {entry} not drawn: {type(e).__name__}: {e}", file=sys.stderr)
        return
    if drawn:
        path = out / f"{entry.replace('|', '+')}.png"
        fig.savefig(path)
        paths.append(path)


def draw_sweep_figures(
    sweep_dir: Path, keys: list[str], rows: list[dict[str, Any]], wanted: list[str], cfg: dict[str, Any]
) -> list[Path]:
    """Write figures/<metric>.png for each wanted entry that varies (and the special figures); returns the paths."""
    out = sweep_dir / "figures"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()  # a redraw must not leave figures of metrics no longer asked for
    table = SweepTable(keys, rows, cfg)
    if not table.ok:
        return []
    paths: list[Path] = []
    with matplotlib.rc_context(STYLE):
        for special in (_thrashing_figure, _objective_figure):
            try:
                p = special(table, out)
            except Exception as e:  # one broken figure must not cost the report
                print(
                    f"vmexp: warning: {special.__name__.strip('_')} not drawn: {type(e).__name__}: {e}",
                    file=sys.stderr,
                )
                continue
            if p is not None:
                paths.append(p)
        dims = table.swept
        if not dims and table.seeds > 1:
            # Only the seed varies: each metric's spread over the seeds, not a line through them.
            for entry in wanted:
                fig = _figure(1, height=1.6 + 0.5 * len(entry.split("|")), legend=False)
                _save(fig, entry, partial(_distribution, fig, table, entry.split("|")), out, paths)
        if dims:
            x = _X(table, dims[0])
            for entry in wanted:
                names = entry.split("|")
                # Parameters beyond those a figure has room for are joined into its last dimension.
                room = 2 if len(names) > 1 else 3
                rest = (
                    dims[1:room]
                    if len(dims) <= room
                    else [*dims[1 : room - 1], table.combine(dims[room - 1 :])]
                )
                if len(names) > 1:
                    # The metrics are the hue; the second swept parameter becomes the columns.
                    hue, col = None, rest[0] if rest else None
                else:
                    hue, col = (rest[0] if rest else None), (rest[1] if len(rest) > 1 else None)
                ncols = len(table.order[col]) if col else 1
                fig = _figure(ncols, legend=hue is not None or len(names) > 1)
                _save(fig, entry, partial(_plot_metric, fig, table, names, x, hue, col), out, paths)
        if not paths:
            paths.append(_overview(table, wanted, out))
    return paths
