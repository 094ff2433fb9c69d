"""Figures of one run, drawn from the files the run wrote (so they can be redrawn later).

Five figures, each answering a question a reader of the run asks:

- ``memory.png``: who holds the RAM, and when did the machine start to swap?
  (RSS per process stacked against the RAM line; swap; free memory against
  the kswapd watermarks, on a log axis because the watermarks are a few
  hundred KiB of a RAM of many MiB.)
- ``faults.png``: when did each process fault, minor or major?
- ``heap.png``: what does the heap look like at exit (every chunk coloured
  by its state: fragmentation made visible), and how did the break move?
- ``layout.png``: where in the address space do the regions sit?
- ``syscalls.png``: when were brk, mmap, munmap and mremap called?

Everything is read from ``metrics.json``, ``timeseries.csv``,
``syscalls.csv``, ``heap.csv``, ``maps/`` and ``.hydra/config.yaml``;
nothing comes from the simulator's memory, so ``python -m vmexp.report
RUN_DIR`` redraws them, and a sweep can draw its jobs' figures in parallel
processes when it ends (``draw_runs_figures``).

A run too short for its sampling period (a page-reference string of a few
hundred microseconds sampled every 10 ms) has a time series of two or
three samples, which a line through them would misrepresent: its memory and
fault figures show the end state from ``metrics.json`` instead, and say why.

Drawing time matters because a sweep of 200 jobs draws 200 sets. What it
costs, measured (bench/bench_figures.py): matplotlib's per-artist work —
every tick, text and patch is a Python object laid out and rendered on its
own — so the figures keep artists few (the heap map is one raster image;
the layout's boxes and leader lines are one collection each), fix their
margins in inches instead of running a layout engine, and place axes
titles without measuring the tick labels under them (``STYLE``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

from vmexp.config import Settings, read_settings_json
from vmexp.libc.base import CHUNK_STATES
from vmexp.metrics import RUN_FIGURES
from vmexp.report.deferred import can_fork, usable_cores
from vmexp.report.style import (
    PALETTE,
    STATE_COLORS,
    STYLE,
    InViewMaxNLocator,
    binary_step,
    bytes_axis,
    fmt_bytes,
    seconds_axis,
)
from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "draw_run_figures",
    "draw_runs_figures",
    "memory_figure",
    "faults_figure",
    "heap_figure",
    "layout_figure",
    "syscalls_figure",
    "RunData",
    "Table",
    "load_run",
    "parse_maps",
    "heap_raster",
    "too_short",
    "layout_ticks",
    "MAX_HEAP_PROCS",
    "MIN_SAMPLES",
]

# Processes shown in the heap map: each gets a row, and more than four rows
# stop being readable on a page; the ones with the most heap are shown.
MAX_HEAP_PROCS = 4
# Processes named one by one in a legend; beyond this the colours are a ramp.
_MAX_LEGEND = 10
# A time series needs at least this many sample times to be drawn as one:
# with fewer, the steps between them are the sampling period, not the run.
MIN_SAMPLES = 5


class Table:
    """A CSV file's columns as numpy arrays: the little of a pandas DataFrame that the figures use.

    ``t["col"]`` is a column, ``t[mask]`` the rows where a boolean array is
    true, ``len(t)`` the number of rows. pandas would serve, but importing it
    costs about half a second in each process that draws a run's figures
    (a sixth of their cost; a run imports it for nothing else), and these
    files are a few thousand rows of numbers.
    """

    __slots__ = ("_cols", "_n")

    def __init__(self, columns: dict[str, Any] | None = None) -> None:
        self._cols = {k: np.asarray(v) for k, v in (columns or {}).items()}
        lengths = {len(v) for v in self._cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self._n = lengths.pop() if lengths else 0

    @classmethod
    def read_csv(cls, path: Path) -> Table:
        """The file's columns: integers where every cell is one, floats (empty = NaN), else text."""
        if not path.is_file():
            return cls()
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return cls()
        header, body = rows[0], rows[1:]
        columns = list(zip(*body, strict=True)) if body else [() for _ in header]
        return cls({name: _column(values) for name, values in zip(header, columns, strict=True)})

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    @property
    def empty(self) -> bool:
        return self._n == 0

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    @overload
    def __getitem__(self, key: str) -> np.ndarray: ...
    @overload
    def __getitem__(self, key: np.ndarray) -> Table: ...
    def __getitem__(self, key: str | np.ndarray) -> np.ndarray | Table:
        if isinstance(key, str):
            return self._cols[key]
        return Table({k: v[key] for k, v in self._cols.items()})


def _column(values: Sequence[str]) -> np.ndarray:
    for dtype in (np.int64, np.float64):  # numpy parses the strings itself, and stops at the first misfit
        try:
            return np.array(values, dtype=dtype)
        except (ValueError, OverflowError):  # OverflowError: past int64 (a failed mmap of 2^63 bytes)
            pass
    if "" in values:  # a numeric column with empty cells (timeseries.csv: the system's row has no RSS)
        try:
            return np.array([v or "nan" for v in values], dtype=np.float64)
        except ValueError:
            pass
    return np.array(values, dtype=str)


@dataclass
class RunData:
    """The files of one run directory, loaded once for all figures."""

    run_dir: Path
    metrics: dict[str, Any]
    ts: Table
    syscalls: Table
    heap: Table
    maps: dict[int, list[tuple[int, int, str, str]]]
    snapshots: Table = field(default_factory=Table)  # heap_snapshots.csv (heap_snapshots=[...])
    cfg: dict[str, Any] = field(default_factory=dict)  # .hydra/config.yaml, when the run has one

    @property
    def names(self) -> dict[int, str]:
        return {int(p["pid"]): str(p["name"]) for p in self.metrics["processes"]}

    @property
    def pids(self) -> list[int]:
        return sorted(self.names)

    @property
    def end_s(self) -> float:
        return float(self.metrics["system"]["sim_time_s"])

    @property
    def sample_times(self) -> np.ndarray:
        """The distinct times at which the processes were sampled (timeseries.csv)."""
        if self.ts.empty:
            return np.array([])
        return np.unique(self.ts["time_s"][self.ts["pid"] > 0].astype(float))


def parse_maps(text: str) -> list[tuple[int, int, str, str]]:
    """``/proc/PID/maps`` lines as (start, end, perms, name); name is '' for anonymous memory."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "-" not in parts[0]:
            continue
        lo, _, hi = parts[0].partition("-")
        out.append((int(lo, 16), int(hi, 16), parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return out


def _saved_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return doc if isinstance(doc, dict) else {}


class RunFileError(ValueError):
    """A run's file that cannot be read (cut off by a full disk or a partial copy, or edited); one line."""


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(path)
    except ValueError as e:  # JSON cut off, a CSV row shorter than its header, bytes that are not UTF-8
        raise RunFileError(f"{path}: cannot be read ({e})") from None


def load_run(run_dir: Path) -> RunData:
    """A run's files; a damaged one raises RunFileError naming it (python -m vmexp.report RUN_DIR)."""
    run_dir = Path(run_dir)
    maps: dict[int, list[tuple[int, int, str, str]]] = {}
    for f in sorted((run_dir / "maps").glob("*.txt")):
        if f.stem.isdigit():
            maps[int(f.stem)] = _read(f, lambda path: parse_maps(path.read_text()))
    return RunData(
        run_dir=run_dir,
        metrics=_read(run_dir / "metrics.json", lambda path: json.loads(path.read_text())),
        ts=_read(run_dir / "timeseries.csv", Table.read_csv),
        syscalls=_read(run_dir / "syscalls.csv", Table.read_csv),
        heap=_read(run_dir / "heap.csv", Table.read_csv),
        snapshots=_read(run_dir / "heap_snapshots.csv", Table.read_csv),
        maps=maps,
        cfg=_saved_config(run_dir),
    )


def _proc_colors(pids: list[int]) -> dict[int, Any]:
    if len(pids) <= len(PALETTE):
        return {p: PALETTE[i] for i, p in enumerate(pids)}
    ramp = matplotlib.colormaps["viridis"]
    return {p: ramp(i / max(1, len(pids) - 1)) for i, p in enumerate(pids)}


def _label(data: RunData, pid: int) -> str:
    """pid and name, and with several memory cgroups the process's group (``cgroup.groups``)."""
    groups = (data.metrics["system"].get("memcg") or {}).get("groups") or []
    group = next((g["name"] for g in groups if pid in g.get("pids", ())), None) if len(groups) > 1 else None
    return f"{pid} {data.names.get(pid, '')}".strip() + (f" [{group}]" if group else "")


def _duration(seconds: float) -> str:
    return format_duration(seconds * 1e9).replace("us", "µs")


def _figure(width: float, height: float, *, left: float, right: float, top: float, bottom: float) -> Figure:
    """A figure with margins fixed in inches.

    Fixed margins instead of matplotlib's constrained layout: the layout
    solver measures every text twice and costs about a third of a figure's
    drawing time, and these figures' furniture (tick labels of known width,
    legends outside on the right) is known in advance.
    """
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )
    return fig


def _save(fig: Figure, data: RunData, name: str) -> Path:
    out = data.run_dir / "figures" / name
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out)
    return out


def _run_name(data: RunData, settings: Settings | None) -> str:
    if settings is not None:
        return settings.name
    return str(data.cfg.get("name") or "default")


def _title(data: RunData, settings: Settings | None) -> str:
    s = data.metrics["system"]
    n = len(data.metrics["processes"])
    run_name = _run_name(data, settings)
    name = f"{run_name}: " if run_name != "default" else ""
    limits = _memcg_limits(data)
    parent = _parent_limit(data)
    if not limits:
        group = ""
    elif len(limits) == 1:
        group = f", a {format_size(limits[0])} memory cgroup"
    else:
        group = f", {len(limits)} memory cgroups of {_sizes(limits)}"
    if parent is not None:
        n_groups = len((data.metrics["system"].get("memcg") or {}).get("groups") or [])
        inside = " in" if limits else f", {n_groups} memory cgroup{'s' if n_groups != 1 else ''} in"
        group += f"{inside} a {format_size(parent)} parent"
    return (
        f"{name}{n} process{'es' if n != 1 else ''}, {format_size(int(s['ram_bytes']))} RAM{group}, "
        f"{format_size(int(s['page_size']))} pages"
    )


def _memcg_limits(data: RunData) -> list[int]:
    """Each memory cgroup's limit in bytes, in the groups' order; [] without groups or without limits."""
    memcg = data.metrics["system"].get("memcg") or {}
    groups = memcg.get("groups") or [memcg]  # a run before cgroup.groups: its one group
    limits = [g.get("limit_bytes", memcg.get("limit_bytes")) for g in groups]
    return [int(x) for x in limits] if memcg and None not in limits else []


def _parent_limit(data: RunData) -> int | None:
    """The parent group's limit in bytes (cgroup.parent_max), None without one."""
    parent = (data.metrics["system"].get("memcg") or {}).get("parent")
    return int(parent["limit_bytes"]) if parent else None


def _sizes(sizes: list[int]) -> str:
    """32 MiB, or 32 MiB and 96 MiB, or 16 MiB, 16 MiB and 32 MiB: each group's limit, in order."""
    if len(set(sizes)) == 1:
        return format_size(sizes[0])
    shown = [format_size(x) for x in sizes]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _sample_interval(data: RunData) -> str:
    """The configured sampling period as the user wrote it (``10ms``), or '' when unknown."""
    value = data.cfg.get("sample_interval")
    if value is None:
        return ""
    try:
        return _duration(parse_duration(value) / 1e9)
    except (UnitError, TypeError, ValueError):
        return str(value)


def too_short(data: RunData) -> str | None:
    """Why the run's time series is not drawn (fewer than MIN_SAMPLES sample times), or None.

    A run shorter than a few sampling periods has a sample at t = 0 and one
    at its end, perhaps one between: steps through them would show the
    sampling period, and a t = 0 sample taken after the first time slice
    already holds that slice's faults.
    """
    times = data.sample_times
    if len(times) >= MIN_SAMPLES:
        return None
    at = ", ".join(_duration(t) if t else "0 s" for t in times[:4])
    every = _sample_interval(data)
    period = f", one every sample_interval = {every}" if every else ""
    return (
        f"Too short for a time series: timeseries.csv holds {len(times)} sample time{'s' if len(times) != 1 else ''}"
        f"{' (' + at + ')' if at else ''} over the run's {_duration(data.end_s)}{period}. "
        "The bars show the end state, from metrics.json."
    )


def _outside_legend(ax: Axes, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


# ---------------------------------------------------------------------------
# The end state, for a run too short for a time series
# ---------------------------------------------------------------------------


def _end_state(
    data: RunData,
    heading: str,
    why: str,
    series: list[tuple[str, str, dict[int, float]]],
    unit: str,
    notes: list[str],
    ram: int | None = None,
) -> Figure:
    """Horizontal bars: one group per process, one bar per series (label, colour, value by pid).

    ``unit`` is "bytes" (binary ticks, sizes after the bars) or what the counts count ("faults").
    """
    pids = data.pids
    k = len(series)
    lines = textwrap.wrap(why, 130) + [w for note in notes for w in textwrap.wrap(note, 130)]
    bar = 0.22  # inches per bar
    top = 0.55 + 0.19 * len(lines)
    height = top + 0.7 + len(pids) * (k * bar + 0.18)
    fig = _figure(10, height, left=1.45, right=2.35, top=top, bottom=0.6)
    ax = fig.subplots()
    width = 0.8 / k
    values = [v for _, _, by in series for v in by.values()]
    for i, (label, color, by) in enumerate(series):
        ys = [row + (i - (k - 1) / 2) * width for row in range(len(pids))]
        xs = [float(by.get(p, 0)) for p in pids]
        bars = ax.barh(ys, xs, height=width * 0.92, color=color, label=label)
        texts = [format_size(int(x)) if unit == "bytes" else f"{x:,.0f}" for x in xs]
        ax.bar_label(bars, labels=texts, padding=3, fontsize=8)
    ax.set_yticks(range(len(pids)), [_label(data, p) for p in pids], fontsize=9)
    ax.set_ylim(len(pids) - 0.5, -0.5)
    ax.grid(False, axis="y")
    biggest = max([*values, 1.0])
    right = biggest * 1.22  # room for the value written after the longest bar
    if ram is not None and ram <= right * 1.5:
        ax.axvline(ram, color="black", linestyle="--", linewidth=1.3, label=f"RAM ({format_size(ram)})")
        right = max(right, ram * 1.08)
    ax.set_xlim(0, right)
    ax.set_xlabel(unit)
    if unit == "bytes":
        bytes_axis(ax, "x", max_ticks=6)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    _outside_legend(ax)
    h = fig.get_figheight()
    fig.text(1.45 / 10, 1 - 0.12 / h, heading, ha="left", va="top", fontsize=11, fontweight="bold")
    fig.text(1.45 / 10, 1 - 0.4 / h, "\n".join(lines), ha="left", va="top", fontsize=8.5, color="#333333",
             linespacing=1.35)  # fmt: skip
    return fig


def _by_pid(data: RunData, key: str) -> dict[int, float]:
    return {int(p["pid"]): float(p.get(key, 0) or 0) for p in data.metrics["processes"]}


# ---------------------------------------------------------------------------
# Memory over time
# ---------------------------------------------------------------------------


def _wide(procs: Table, column: str, pids: list[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(sample times, one column's values at those times for each pid that has samples).

    A process counts 0 at the times it has no sample (before it started, after it exited).
    """
    t = procs["time_s"].astype(float)
    times = np.unique(t)
    pid = procs["pid"]
    values = procs[column].astype(float)
    out: dict[int, np.ndarray] = {}
    for p in pids:
        rows = pid == p
        if rows.any():
            col = np.zeros(len(times))
            col[np.searchsorted(times, t[rows])] = np.nan_to_num(values[rows])  # in file order: the last wins
            out[p] = col
    return times, out


def _stack(
    ax: Axes, times: np.ndarray, series: dict[int, np.ndarray], data: RunData, colors: dict[int, Any]
) -> None:
    """Areas stacked in pid order, each held flat until the next sample (a counter's value between samples)."""
    if not series or not len(times):
        return
    cols = list(series)
    named = len(cols) <= _MAX_LEGEND
    ax.stackplot(
        times,
        np.vstack([series[p] for p in cols]),
        labels=[_label(data, p) for p in cols] if named else [],
        colors=[colors[p] for p in cols],
        alpha=0.85,
        step="post",
        linewidth=0,
    )


def _many_processes_note(ax: Axes, pids: list[int], y: float) -> None:
    """What the colours mean when there are too many processes to name in a legend (_stack)."""
    if len(pids) > _MAX_LEGEND:
        ax.text(1.01, y, f"{len(pids)} processes\nstacked by pid\n(dark = low pid)", transform=ax.transAxes,
                va="top", fontsize=8.5)  # fmt: skip


def _memory_end_state(data: RunData, title: str, why: str) -> Figure:
    s = data.metrics["system"]
    notes = [
        f"System: RAM {format_size(int(s['ram_bytes']))}; free memory at its lowest "
        f"{format_size(int(s.get('free_bytes_min', 0)))}; swap in use at its peak "
        f"{format_size(int(s.get('swap_used_peak_bytes', 0)))}; {int(s.get('pswpout', 0)):,} pages swapped out, "
        f"{int(s.get('pswpin', 0)):,} swapped in."
    ]
    series = [
        ("peak RSS\n(the process's own)", PALETTE[0], _by_pid(data, "rss_peak_bytes")),
        ("RSS at exit", PALETTE[4], _by_pid(data, "rss_bytes")),
        ("peak swap", PALETTE[1], _by_pid(data, "swap_peak_bytes")),
    ]
    return _end_state(data, f"Memory at the end of the run — {title}", why, series, "bytes", notes,
                      ram=int(s["ram_bytes"]))  # fmt: skip


# Up to this many OOM kills get their victim's pid written beside their mark.
_MAX_KILL_LABELS = 12


def _mark_oom_kills(ax: Axes, kills: list[dict[str, Any]], y: float, end_s: float) -> None:
    """A mark at each OOM kill, above the RSS it ended, with the victim's pid.

    Without them a killed process's RSS just stopped, as if it had finished: a run whose four
    processes were all OOM-killed looked like four processes that ran to completion.
    """
    if not kills:
        return
    times = [float(k["time_s"]) for k in kills]
    # Not clipped: the last process is often killed at the very end of the run, on the axes' edge.
    ax.scatter(times, [y] * len(times), marker="v", s=42, color="#aa0000", zorder=5, clip_on=False,
               label=f"OOM kill ({len(kills)}),\nvictim's pid beside it")  # fmt: skip
    if len(kills) <= _MAX_KILL_LABELS:
        end = max(max(times), end_s)
        for t, k in zip(times, kills, strict=True):
            left = t > 0.9 * end  # near the right edge the pid goes to the left, clear of the legend
            ax.annotate(str(k["pid"]), (t, y), xytext=(-5 if left else 5, 0), textcoords="offset points",
                        ha="right" if left else "left", va="center", fontsize=8, color="#aa0000")  # fmt: skip


def _memory_fig(data: RunData, title: str) -> Figure:
    why = too_short(data)
    if why is not None:
        return _memory_end_state(data, title, why)
    s = data.metrics["system"]
    ts = data.ts
    procs = ts[ts["pid"] > 0]
    system = ts[ts["pid"] == 0]
    pids = data.pids
    colors = _proc_colors(pids)
    fig = _figure(10, 8.2, left=1.05, right=2.35, top=0.4, bottom=0.55)
    top, mid, bottom = fig.subplots(
        3, 1, sharex=True, height_ratios=[3, 1.4, 1.8], gridspec_kw={"hspace": 0.12}
    )
    ram = int(s["ram_bytes"])

    _stack(top, *_wide(procs, "rss_bytes", pids), data, colors)
    limits = _memcg_limits(data)
    parent = _parent_limit(data)
    # The groups' limits together bound the stacked RSS of their processes, and a parent's limit all of it.
    limit = sum(limits) if limits else None
    if parent is not None and (limit is None or parent < limit):
        limit, limits = parent, []
    # A group far smaller than the machine (a container on a big host) is what bounds RSS:
    # scaled to RAM it would be a sliver at the bottom, so the panel is scaled to the group.
    scale = ram if limit is None or 2 * limit >= ram else limit
    if scale == ram:
        top.axhline(ram, color="black", linestyle="--", linewidth=1.3, label=f"RAM ({format_size(ram)})")
    if limit is not None and limit < ram:
        # The group also pays for page tables and kernel memory, so RSS levels off below it.
        if not limits:
            what = "parent memory cgroup's limit"
        elif len(limits) == 1:
            what = "memory cgroup limit"
        else:
            what = f"memory cgroup limits,\nadded ({_sizes(limits)})"
        top.axhline(limit, color="#aa0000", linestyle="-.", linewidth=1.3,
                    label=f"{what}\n({format_size(limit)}: RSS, page\ntables, kernel memory)")  # fmt: skip
    top.set_ylim(0, scale * 1.12)
    _mark_oom_kills(top, s.get("oom_kill_log") or [], scale * 1.06, data.end_s)
    top.set_ylabel("resident memory (RSS)")
    bytes_axis(top)
    top.set_title(f"Memory over time — {title}", loc="left")
    _outside_legend(top, title="RSS, stacked\n(pid name)", ncol=1 if len(pids) <= 5 else 2)
    _many_processes_note(top, pids, 0.6)

    _stack(mid, *_wide(procs, "swap_bytes", pids), data, colors)
    if not system.empty:
        mid.plot(system["time_s"], system["swap_used_bytes"], color="black", linewidth=1.2,
                 drawstyle="steps-post", label="swap slots in use\n(system, incl.\nswap cache)")  # fmt: skip
    # zram swaps into compressed RAM, not a device: the panel says so (the title, the same for any
    # device, did not, and a zram run's figure read as one on a disk).
    mid.set_ylabel("swap on zram\n(stacked by pid)" if "zram" in s else "swap\n(stacked by pid)")
    mid.set_ylim(bottom=0)
    if int(s.get("swap_bytes", 1)) == 0:  # an empty panel would read as "nothing was swapped"
        mid.text(0.5, 0.5, "no swap space (swap=0): anonymous pages cannot leave RAM",
                 transform=mid.transAxes, ha="center", va="center", fontsize=9.5, color="0.3")  # fmt: skip
    bytes_axis(mid, max_ticks=4)
    _outside_legend(mid)

    wm = {k: int(v) for k, v in (s.get("watermarks_bytes") or {}).items()}
    free = system["free_bytes"].astype(float) if not system.empty else np.array([])
    if wm and max(wm.values()) > 0:
        # A log axis, so that watermarks of a few hundred KiB show beside a RAM of many MiB;
        # an empty free list (0 bytes) is drawn at half a page, the axis floor.
        floor = int(s["page_size"]) / 2
        bottom.plot(system["time_s"], np.maximum(free, floor), color=PALETTE[2], drawstyle="steps-post",
                    linewidth=1.3, label="free RAM")  # fmt: skip
        for k, style in (("high", ":"), ("low", "--"), ("min", "-")):
            if k in wm:
                bottom.axhline(wm[k], color="#aa0000", linestyle=style, linewidth=1,
                               label=f"{k} watermark\n({format_size(wm[k])})")  # fmt: skip
        bytes_axis(bottom, log=True, max_ticks=8)
        bottom.set_ylim(floor, ram * 2)
        bottom.set_ylabel("free memory\n(log scale)")
    else:
        bottom.plot(
            system["time_s"],
            free,
            color=PALETTE[2],
            drawstyle="steps-post",
            label="free RAM\n(no watermarks)",
        )
        bottom.set_ylim(0, ram * 1.05)
        bytes_axis(bottom, max_ticks=4)
        bottom.set_ylabel("free memory")
    _outside_legend(bottom)
    bottom.set_xlabel("simulated time")
    seconds_axis(bottom, "x")
    bottom.set_xlim(0, max(data.end_s, 1e-9))
    return fig


def memory_figure(data: RunData, title: str) -> Path:
    """RSS per process stacked against the RAM line; swap; free memory against the watermarks."""
    return _save(_memory_fig(data, title), data, "memory.png")


# ---------------------------------------------------------------------------
# Faults over time
# ---------------------------------------------------------------------------

# Fault rates are averaged over about this many windows per run: a process
# faults only during its own time slices, so per-sample rates flicker
# between zero and a peak; a window of several slices shows the trend.
_RATE_WINDOWS = 80


def _rates(g: Table, column: str, grid: np.ndarray) -> np.ndarray:
    """Faults per second over each interval of ``grid``, from a cumulative counter sampled at g.time_s."""
    if g.empty:
        return np.zeros(len(grid) - 1)
    t = g["time_s"].astype(float)
    c = g[column].astype(float)
    # The counter stays at its last value after the process has exited.
    at = np.interp(grid, t, c, left=0.0, right=c[-1])
    rates: np.ndarray = np.diff(at) / np.diff(grid)
    return rates


def _faults_end_state(data: RunData, title: str, why: str) -> Figure:
    series = [
        ("minor faults", PALETTE[0], _by_pid(data, "minflt")),
        ("major faults\n(from swap)", PALETTE[5], _by_pid(data, "majflt")),
    ]
    s = data.metrics["system"]
    notes = [f"System: {int(s.get('pswpin', 0)):,} pages swapped in, {int(s.get('pswpout', 0)):,} out."]
    return _end_state(data, f"Page faults in the whole run — {title}", why, series, "faults", notes)


def _rate_tick(v: float) -> str:
    """A rate tick short enough for the margin: 1,000,000 faults / s pushed the axis label off the figure."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:,.0f}"


def _faults_fig(data: RunData, title: str) -> Figure:
    why = too_short(data)
    if why is not None:
        return _faults_end_state(data, title, why)
    procs = data.ts[data.ts["pid"] > 0]
    pids = data.pids
    colors = _proc_colors(pids)
    fig = _figure(10, 6.6, left=1.05, right=2.35, top=0.7, bottom=0.55)
    axes = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.25})
    end = max(data.end_s, 1e-9)
    times = data.sample_times
    interval = float(np.median(np.diff(times))) if len(times) > 1 else end
    window = max(interval, end / _RATE_WINDOWS)
    # Windows from 0 to the end of the run, the last one cut short by the end. Each rate is drawn
    # from its window's start to the next start (step "post"), so the last rate is repeated at the
    # end: drawn at the windows' starts only, the last window had no width, and a run of a few
    # samples (the last one at its exit) lost the faults of its last window (39 of 133 major faults).
    starts = np.arange(0.0, end, window)
    grid = np.append(starts[starts < end - window / 1000], end)  # (no sliver of a window by rounding)
    total = {k: sum(int(p[k]) for p in data.metrics["processes"]) for k in ("minflt", "majflt")}
    by_pid = {pid: procs[procs["pid"] == pid] for pid in pids}
    for ax, col, what in zip(axes, ("minflt", "majflt"), ("minor", "major"), strict=True):
        rates = {pid: _rates(by_pid[pid], col, grid) for pid in pids}
        _stack(ax, grid, {pid: np.append(r, r[-1:]) for pid, r in rates.items()}, data, colors)
        ax.set_ylabel(f"{what} faults / s\n(stacked by pid)")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _rate_tick(v)))
        ax.set_title(f"{what.capitalize()} faults: {total[col]:,} in all", loc="left", fontsize=10)
    fig.suptitle(f"Page faults over time — {title}", x=1.05 / 10, y=1 - 0.1 / 6.6, ha="left", va="top",
                 fontsize=11, fontweight="bold")  # fmt: skip
    _outside_legend(axes[0], title="pid name")
    # Without it, 40 processes' shades of viridis had no key at all (the memory figure had one).
    _many_processes_note(axes[0], pids, 1.0)
    axes[1].set_xlabel(f"simulated time (rates averaged over {_duration(window)} windows)")
    seconds_axis(axes[1], "x")
    axes[1].set_xlim(0, end)
    return fig


def faults_figure(data: RunData, title: str) -> Path:
    """Minor and major fault rates per process (stacked), differenced from the cumulative counters."""
    return _save(_faults_fig(data, title), data, "faults.png")


# ---------------------------------------------------------------------------
# The heap map
# ---------------------------------------------------------------------------

_STATES = list(CHUNK_STATES)
_NOCHUNK = len(_STATES)  # address inside a segment but in no chunk (e.g. below the first chunk)
_SEPARATOR = _NOCHUNK + 1  # padding after a segment's last byte, and between mmapped chunks
_CMAP = ListedColormap([STATE_COLORS[s] for s in _STATES] + ["#d9d9d9", "#ffffff"])


def heap_raster(
    chunks: Table, heap: tuple[int, int] | None, width: int = 256, max_rows: int = 56
) -> tuple[np.ndarray, int, list[tuple[int, str]]]:
    """The heap map as an image: (codes[rows, width], bytes per pixel, [(row, label)]).

    The brk heap comes first, to scale, one row after another (row r starts
    at heap start + r·width·bpp); the chunks outside it (mmapped chunks,
    and main-arena memory that brk could not provide) follow on new rows,
    one after another in address order with a blank pixel between them.
    Bytes per pixel is a power of two (≥ 16, the chunk alignment) chosen so
    that everything fits in ``max_rows`` rows. A pixel takes the state of
    the chunk at its centre: small chunks are sampled in proportion to their
    area, which is what a fragmentation picture needs.
    """
    addr = np.asarray(chunks["addr"], dtype=np.int64)
    size = np.asarray(chunks["size"], dtype=np.int64)
    index = {s: i for i, s in enumerate(_STATES)}
    codes = np.array([index.get(str(s), _NOCHUNK) for s in chunks["state"]], dtype=np.int64)
    in_heap = (addr >= heap[0]) & (addr < heap[1]) if heap else np.zeros(len(addr), bool)
    outside = np.flatnonzero(~in_heap)
    heap_len = heap[1] - heap[0] if heap else 0
    total = heap_len + int(size[outside].sum())
    bpp = 16
    while (
        math.ceil(heap_len / (bpp * width))
        + math.ceil((total - heap_len) / (bpp * width))
        + len(outside) / width
        > max_rows
    ):
        bpp *= 2
    rows: list[np.ndarray] = []
    labels: list[tuple[int, str]] = []
    if heap_len:
        n = math.ceil(heap_len / bpp)
        centre = heap[0] + (np.arange(n, dtype=np.int64) * bpp + bpp // 2)  # type: ignore[index]
        idx = np.searchsorted(addr, centre, side="right") - 1
        ok = (idx >= 0) & (centre < addr[np.maximum(idx, 0)] + size[np.maximum(idx, 0)])
        px = np.where(ok, codes[np.maximum(idx, 0)], _NOCHUNK)
        px = np.concatenate([px, np.full(-n % width, _SEPARATOR)])
        nrows = len(px) // width
        step = max(1, math.ceil(nrows / 8))
        labels += [
            (r, f"heap +{fmt_bytes(r * width * bpp)}" if r else "heap start") for r in range(0, nrows, step)
        ]
        rows.append(px.reshape(nrows, width))
    if len(outside):
        # Each chunk to scale (at least one pixel), then one blank pixel.
        parts = []
        for i in outside:
            parts.append(np.full(max(1, math.ceil(int(size[i]) / bpp)), codes[i]))
            parts.append(np.array([_SEPARATOR]))
        px = np.concatenate(parts)
        px = np.concatenate([px, np.full(-len(px) % width, _SEPARATOR)])
        first = sum(len(r) for r in rows)
        if rows:
            rows.append(np.full((1, width), _SEPARATOR))
            first += 1
        n_mm = int((codes[outside] == _STATES.index("mmapped")).sum())
        other = len(outside) - n_mm
        what = f"{n_mm} mmapped" + (f" + {other} outside brk" if other else "")
        labels.append((first, what))
        rows.append(px.reshape(-1, width))
    image = np.concatenate(rows) if rows else np.full((1, width), _SEPARATOR)
    return image, bpp, labels


def _heap_bounds(maps: list[tuple[int, int, str, str]]) -> tuple[int, int] | None:
    for lo, hi, _, name in maps:
        if name == "[heap]":
            return lo, hi
    return None


def _heap_bounds_at(chunks: Table, at_exit: tuple[int, int]) -> tuple[int, int]:
    """The brk heap of a snapshot: from its start to the end of its last chunk (the top chunk ends at the break).

    maps/ is the address space at exit: the heap of a snapshot taken before it had grown to its
    final size was drawn to the exit's size, and the addresses beyond its break read as heap in
    no chunk (half of pid 1's map at t = 0.1 s of the default run).
    """
    lo, hi = at_exit
    addr = chunks["addr"].astype(np.int64)
    inside = (addr >= lo) & (addr < hi)
    if not inside.any():
        return at_exit
    return lo, int((addr[inside] + chunks["size"].astype(np.int64)[inside]).max())


def _mallinfo_of(chunks: Table) -> dict[str, int]:
    """The mallinfo2 figures a heap walk implies (for snapshots, which have no metrics.json entry)."""
    state, size = chunks["state"], chunks["size"]

    def get(which: str) -> int:
        return int(size[state == which].sum())

    arena = int(size[state != "mmapped"].sum())
    free = get("free") + get("fastbin") + get("top")
    nfree = int((state == "free").sum()) + 1
    return {"arena": arena, "uordblks": arena - free, "fordblks": free, "ordblks": nfree,
            "hblks": int((state == "mmapped").sum()), "hblkhd": get("mmapped")}  # fmt: skip


def _row_labels(
    labels: list[tuple[int, str]], nrows: int, height_pt: float, font_pt: float
) -> list[tuple[int, str, str]]:
    """The heap map's row labels that fit without overlapping: (row, text, vertical alignment).

    A heap of five 1 MiB rows above 160 rows of mmapped chunks leaves each
    row a couple of points: labelling every one of them stacks the texts.
    The first label and the section labels (where the mmapped chunks start)
    are kept; the "heap +N" labels between them only where there is room.
    When two kept labels are still too close (a one-row heap right above
    the mmapped section), the upper is set above its row and the lower
    below it.
    """
    if not labels:
        return []
    pitch = height_pt / max(nrows, 1)  # points per image row
    gap = font_pt * 1.25
    must = [lab for i, lab in enumerate(labels) if i == 0 or not lab[1].startswith("heap +")]
    kept = list(must)
    for lab in labels:
        if lab in must:
            continue
        if all(abs(lab[0] - k[0]) * pitch >= gap for k in kept):
            kept.append(lab)
    kept.sort()
    va = ["center"] * len(kept)
    for i in range(len(kept) - 1):
        if (kept[i + 1][0] - kept[i][0]) * pitch < gap:
            va[i], va[i + 1] = "bottom", "top"
    return [(r, t, v) for (r, t), v in zip(kept, va, strict=True)]


def _heap_fig(data: RunData, title: str, at: float | None = None) -> Figure | None:
    heap = data.heap if at is None else data.snapshots[data.snapshots["time_s"] == at]
    if heap.empty:
        return None  # no allocator in this run (workload=pageref): there is no heap to draw
    procs = {int(p["pid"]): p for p in data.metrics["processes"]}
    heap_pids = np.unique(heap["pid"]).tolist()
    by_pid = {int(p): heap[heap["pid"] == p] for p in heap_pids}
    # The largest heaps (ties: the lower pid), shown in pid order.
    sizes = sorted(by_pid, key=lambda p: (-int(by_pid[p]["size"].sum()), p))
    shown = sorted(sizes[:MAX_HEAP_PROCS])
    row_h = 2.7
    fig = _figure(12, row_h * len(shown) + 1.1, left=1.15, right=0.25, top=0.7, bottom=0.95)
    grid = fig.subplots(len(shown), 2, width_ratios=[3, 2], squeeze=False,
                        gridspec_kw={"hspace": 0.6, "wspace": 0.12})  # fmt: skip
    sc = data.syscalls
    ts = data.ts
    series = too_short(data) is None  # the mmapped bytes are sampled; the break is exact (syscalls.csv)
    lines: dict[str, dict[str, Any]] = {
        "break": {"color": STATE_COLORS["in_use"], "linewidth": 1.4, "label": "break − heap start"},
        "trims": {
            "color": "#D55E00",
            "marker": "v",
            "markersize": 5,
            "linestyle": "none",
            "label": "brk trim",
        },
        "mmapped": {"color": STATE_COLORS["mmapped"], "linewidth": 1.2, "label": "mmapped chunks (sampled)"},
        "at": {
            "color": "black",
            "linestyle": ":",
            "linewidth": 1.0,
            "label": f"the map's time (t = {at or 0:g} s)",
        },
    }
    used: set[str] = set()
    for row, pid in enumerate(shown):
        chunks = by_pid[pid][np.argsort(by_pid[pid]["addr"], kind="stable")]
        bounds = _heap_bounds(data.maps.get(pid, []))
        if at is not None and bounds is not None:
            bounds = _heap_bounds_at(chunks, bounds)
        image, bpp, labels = heap_raster(chunks, bounds)
        width = image.shape[1]
        ax = grid[row][0]
        ax.imshow(image, cmap=_CMAP, vmin=0, vmax=_SEPARATOR, aspect="auto", interpolation="nearest")
        height_pt = ax.get_position().height * fig.get_figheight() * 72
        placed = _row_labels(labels, image.shape[0], height_pt, 8)
        ax.set_yticks([r for r, _, _ in placed], [t for _, t, _ in placed], fontsize=8)
        for tick, (_, _, va) in zip(ax.get_yticklabels(), placed, strict=True):
            tick.set_verticalalignment(va)
        ax.set_xticks([-0.5, width / 2 - 0.5, width - 0.5],
                      ["+0", f"+{fmt_bytes(width // 2 * bpp)}", f"+{fmt_bytes(width * bpp)}"])  # fmt: skip
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(
            f"offset in the row (one pixel = {fmt_bytes(bpp)}, one row = {fmt_bytes(bpp * width)})",
            fontsize=8, labelpad=1,
        )  # fmt: skip
        ax.grid(False)
        mi = procs[pid]["mallinfo"] if at is None else _mallinfo_of(chunks)
        arena = int(mi["arena"])
        free = int(mi["fordblks"])
        top = int(chunks["size"][chunks["state"] == "top"].sum())
        frag = free / arena if arena else 0.0
        frag_in = (free - top) / (arena - top) if arena > top else 0.0
        nfree = int(mi["ordblks"])
        ax.set_title(
            f"pid {_label(data, pid)} — brk heap (arena) {format_size(arena)}: "
            f"in use {format_size(int(mi['uordblks']))}, free {format_size(free)} in {nfree} chunk{'s' if nfree != 1 else ''}\n"
            f"free: {frag:.0%} of the arena, {frag_in:.0%} without its top chunk ({format_size(top)})  ·  "
            f"mmapped chunks: {int(mi['hblks'])}, {format_size(int(mi['hblkhd']))}",
            loc="left", fontsize=9,
        )  # fmt: skip
        # The break and the mmapped bytes over time; one legend for all rows, below the figure.
        hx = grid[row][1]
        brk = sc[(sc["pid"] == pid) & (sc["syscall"] == "brk")] if not sc.empty else sc
        ymax = 0.0
        trimmed = ""
        if len(brk):
            result = brk["result"].astype(np.int64)
            base = int(result[0])
            # The break holds until the process exits (its end_s), not to the end of the run: a line
            # running on past the exit drew a heap that no longer existed.
            end = procs[pid].get("end_s")
            t = np.append(brk["time_s"].astype(float), data.end_s if end is None else float(end))
            y = np.append(result - base, int(result[-1]) - base)
            hx.step(t, y, where="post", **lines["break"])
            used.add("break")
            ymax = max(ymax, float(y.max()))
            trims = brk[brk["length"] < 0]
            if len(trims):
                # Unclipped: a trim at the run's last instant sits on the axis edge, and half a marker misleads.
                hx.plot(trims["time_s"], trims["result"] - base, clip_on=False, **lines["trims"])
                used.add("trims")
                n = len(trims)
                trimmed = (
                    f"\n{n} trim{'s' if n != 1 else ''} returned {format_size(int(-trims['length'].sum()))}"
                )
        g = ts[ts["pid"] == pid] if series else Table()
        if len(g) and g["hblkhd_bytes"].max() > 0:
            hx.step(g["time_s"], g["hblkhd_bytes"], where="post", **lines["mmapped"])
            used.add("mmapped")
            ymax = max(ymax, float(g["hblkhd_bytes"].max()))
        # Headroom above the highest point, so that a line at its maximum is not drawn on the frame.
        hx.set_ylim(0, ymax * 1.08 if ymax > 0 else 1.0)
        bytes_axis(hx, max_ticks=5)
        seconds_axis(hx, "x")
        hx.xaxis.set_major_locator(InViewMaxNLocator(5))
        hx.tick_params(labelsize=8)
        hx.set_xlim(0, max(data.end_s, 1e-9))
        if at is not None:
            hx.axvline(at, **lines["at"])
            used.add("at")
        hx.set_title(f"the heap over time{trimmed}", loc="right", fontsize=9, fontweight="normal")
    grid[-1][1].set_xlabel("simulated time", fontsize=9)
    handles = [Patch(color=STATE_COLORS[s], label=s.replace("_", " ")) for s in _STATES]
    handles.append(Patch(color="#d9d9d9", label="no chunk"))
    handles.append(Patch(facecolor="#ffffff", edgecolor="#999999", label="past the end"))
    left_col, right_col = grid[-1][0].get_position(), grid[-1][1].get_position()
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9,
               bbox_to_anchor=((left_col.x0 + left_col.x1) / 2, 0.0))  # fmt: skip
    if used:
        marks = [Line2D([], [], **lines[k]) for k in lines if k in used]
        fig.legend(handles=marks, loc="lower center", ncol=2, frameon=False, fontsize=9,
                   bbox_to_anchor=((right_col.x0 + right_col.x1) / 2, 0.0))  # fmt: skip
    more = len(sizes) - len(shown)
    when = "at exit" if at is None else f"at t = {at:g} s"
    fig.suptitle(
        f"The heap {when}, every chunk by state — {title}"
        + (f" (the {len(shown)} largest of {len(sizes)} heaps)" if more else ""),
        x=1.15 / 12, y=1 - 0.12 / fig.get_figheight(), ha="left", va="top", fontsize=11, fontweight="bold",
    )  # fmt: skip
    return fig


def heap_figure(data: RunData, title: str, at: float | None = None, name: str = "heap.png") -> Path | None:
    """Per process: every chunk on the heap map (at exit, or at snapshot time ``at``), and the break over time."""
    fig = _heap_fig(data, title, at)
    return None if fig is None else _save(fig, data, name)


# ---------------------------------------------------------------------------
# The address-space layout
# ---------------------------------------------------------------------------

_KIND_COLORS = {
    "program": "#0072B2",
    "bss": "#56B4E9",
    "heap": STATE_COLORS["in_use"],
    "mmap": "#E69F00",
    "stack": "#009E73",
    "other": "#CC79A7",
}


def _kind(name: str, prev_name: str) -> str:
    if name == "[heap]":
        return "heap"
    if name == "[stack]":
        return "stack"
    if name:
        return "program"
    return "bss" if prev_name and not prev_name.startswith("[") else "mmap"


def _height(nbytes: int) -> float:
    """Drawn height of a segment: log2 of its size, so 4 KiB and 128 TiB both show (4 KiB = 1)."""
    return max(1.0, math.log2(max(nbytes, 1)) - 11)


def _spread(wanted: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Label positions near ``wanted`` (sorted) but at least ``gap`` apart, within [lo, hi]."""
    out: list[float] = []
    for w in wanted:
        out.append(max(w, out[-1] + gap) if out else max(w, lo))
    # Pushed past the top: shift the tail back down, keeping the spacing.
    over = (out[-1] - hi) if out else 0.0
    if over > 0:
        for i in range(len(out) - 1, -1, -1):
            limit = hi if i == len(out) - 1 else out[i + 1] - gap
            out[i] = min(out[i], limit)
    return out


def _task_size(data: RunData, settings: Settings | None) -> tuple[int, str]:
    """TASK_SIZE and the layout's name: from the settings, or from the run's saved Hydra config."""
    if settings is not None:
        return settings.layout.task_size, settings.layout.name
    a = data.cfg.get("address_space") or {}
    if a:
        try:
            return parse_size(a.get("task_size")), str(a.get("name", ""))
        except (UnitError, TypeError):
            pass
    top = max((hi for regions in data.maps.values() for _, hi, _, _ in regions), default=1 << 32)
    return 1 << (top - 1).bit_length(), ""


def layout_ticks(top: int, max_ticks: int = 4) -> list[int]:
    """Addresses for the to-scale axis: multiples of a power of two (so page-aligned), and ``top``.

    Quarters of x86_64's TASK_SIZE (2^47 − 4 KiB) fall between pages
    (0x5ffffffff400); multiples of 32 TiB do not, and read as 32 TiB, 64 TiB.
    """
    step = binary_step(top, max_ticks)
    ticks = list(range(0, top + 1, step))
    if top - ticks[-1] > step / 3:
        ticks.append(top)
    elif ticks[-1] != top:
        ticks[-1] = top  # too close to draw both: the end of the space is the one worth naming
    return ticks


def _layout_choice(data: RunData) -> tuple[int, str]:
    """The process the layout shows, and a sentence saying which and why.

    Always the run's first process (the lowest pid with mappings at exit):
    the same process in every job of a sweep, so their layouts compare.
    """
    mapped = [p for p in sorted(data.maps) if data.maps[p]]
    pid = mapped[0]
    first = pid == min(data.pids, default=pid)
    counts = {p: len(data.maps[p]) for p in mapped}
    if len(counts) == 1:
        others = ""
    elif len(counts) <= 8:
        others = "; regions at exit: " + ", ".join(f"{n}\u00a0(pid\u00a0{p})" for p, n in counts.items())
    else:
        others = f"; {min(counts.values())} to {max(counts.values())} regions per process at exit"
    if len(data.pids) == 1:
        why = f"pid {_label(data, pid)}, the run's only process; its listing is maps/{pid}.txt"
    else:
        why = (
            f"pid {_label(data, pid)} is the run's first process{'' if first else ' with mappings at exit'}, "
            f"shown in every run so that runs compare{others}; every listing is in maps/"
        )
    return pid, why


def _layout_fig(data: RunData, title: str, settings: Settings | None = None) -> Figure | None:
    if not any(data.maps.values()):
        return None
    pid, why = _layout_choice(data)
    regions = data.maps[pid]
    top, space = _task_size(data, settings)
    top = max(top, max(hi for _, hi, _, _ in regions))
    # Segments bottom-up: (start, end, kind, label); the unmapped gaps between regions are kind "gap".
    segs: list[tuple[int, int, str, str]] = []
    at, prev = 0, ""
    run: list[tuple[int, int]] = []
    many = len(regions) > 18  # then runs of anonymous mmaps are merged into one box each

    def flush_run() -> None:
        if run:
            lo, hi = run[0][0], run[-1][1]
            mapped = sum(h - lo_ for lo_, h in run)
            segs.append(
                (
                    lo,
                    hi,
                    "mmap",
                    f"{len(run)} anonymous mmaps, {format_size(mapped)}, in a {format_size(hi - lo)} span",
                )
            )
            run.clear()

    for lo, hi, perms, name in regions:
        kind = _kind(name, prev)
        if many and kind == "mmap":
            if run and lo - run[-1][1] > 64 * (hi - lo):
                flush_run()
            if not run and lo > at:
                segs.append((at, lo, "gap", ""))
            run.append((lo, hi))
            at, prev = hi, name
            continue
        flush_run()
        if lo > at:
            segs.append((at, lo, "gap", ""))
        what = {"heap": "[heap] (brk)", "stack": "[stack]", "bss": "bss", "mmap": "anonymous mmap"}.get(
            kind, f"{name} {'text' if 'x' in perms else 'data'} ({perms[:3]})"
        )
        segs.append((lo, hi, kind, f"{what}, {format_size(hi - lo)}"))
        at, prev = hi, name
    flush_run()
    if top > at:
        segs.append((at, top, "gap", ""))
    height = max(6.0, 0.21 * len(segs) + 1.8)
    why_lines = textwrap.wrap(why, 135)
    top_in = 0.68 + 0.16 * len(why_lines)
    fig = _figure(11, height, left=1.25, right=0.2, top=top_in, bottom=0.6)
    left, mid, right = fig.subplots(1, 3, width_ratios=[0.8, 1.1, 4.4], gridspec_kw={"wspace": 0.0})
    # Left: the whole user address space to scale; a region gets at least a visible sliver.
    # One collection per panel: a patch per region would be an artist each, drawn one by one.
    mapped_segs = [s for s in segs if s[2] != "gap"]
    left.add_collection(
        PatchCollection(
            [Rectangle((0, lo), 1, max(hi - lo, top * 0.004)) for lo, hi, _, _ in mapped_segs],
            facecolors=[_KIND_COLORS[k] for _, _, k, _ in mapped_segs],
            edgecolors="none",
        )
    )
    left.set_xlim(0, 1)
    left.set_ylim(0, top)
    left.set_xticks([])
    ticks = layout_ticks(top)
    left.set_yticks(
        ticks,
        [f"{t:#x}\nTASK_SIZE" if t == top else f"{t:#x}\n{fmt_bytes(t)}" if t else "0" for t in ticks],
        fontsize=7.5,
    )
    left.set_title("to scale", fontsize=9)
    left.grid(False)
    # Right: each segment's height is log2 of its size, so a page and the whole space both show.
    y = 0.0
    boxes = []
    for lo, hi, kind, label in segs:
        h = _height(hi - lo)
        boxes.append((lo, hi, y, y + h, kind, label))
        y += h
    gaps = [b for b in boxes if b[4] == "gap"]
    solid = [b for b in boxes if b[4] != "gap"]
    right.add_collection(
        PatchCollection(
            [Rectangle((0, b[2]), 1, b[3] - b[2]) for b in gaps],
            facecolors="#f4f4f4",
            edgecolors="#c8c8c8",
            hatch="///",
            linewidths=0.5,
        )
    )
    right.add_collection(
        PatchCollection(
            [Rectangle((0, b[2]), 1, b[3] - b[2]) for b in solid],
            facecolors=[_KIND_COLORS[b[4]] for b in solid],
            edgecolors="white",
            linewidths=0.8,
        )
    )
    # Labels beside the boxes, spread so that neighbours never overlap (leader lines show which is which).
    line = y * 0.16 / (height - top_in - 0.6)  # one label line in data units
    spots = _spread([(b[2] + b[3]) / 2 for b in boxes], line * 1.05, line / 2, y - line / 2)
    leaders = []
    for (lo, hi, y0, y1, kind, label), ly in zip(boxes, spots, strict=True):
        if kind == "gap":
            text, style = f"unmapped, {format_size(hi - lo)}", {"color": "#808080", "style": "italic"}
        else:
            text, style = f"{label}   {lo:#x}–{hi:#x}", {}
        right.text(1.28, ly, text, va="center", fontsize=7.8, **style)
        leaders.append([(1.0, (y0 + y1) / 2), (1.1, (y0 + y1) / 2), (1.25, ly)])
    right.add_collection(LineCollection(leaders, colors="#999999", linewidths=0.6))
    right.set_xlim(0, 5.0)
    right.set_ylim(0, y)
    right.axis("off")
    right.set_title("log scale: each box's height is log₂ of its size (a 4 KiB page = 1 unit)", fontsize=9,
                    loc="left")  # fmt: skip
    # Middle: lines joining each region's place in the address space to its box.
    mid.set_xlim(0, 1)
    mid.set_ylim(0, 1)
    mid.axis("off")
    mid.add_collection(
        LineCollection(
            [[(0, (lo + hi) / 2 / top), (1, (y0 + y1) / 2 / y)] for lo, hi, y0, y1, _, _ in solid],
            colors=[_KIND_COLORS[b[4]] for b in solid],
            linewidths=0.7,
        )
    )
    ps = int(data.metrics["system"].get("page_size", 4096))
    fig.suptitle(
        f"Address space of pid {_label(data, pid)} at exit — {space + ' ' if space else ''}user space "
        f"of {fmt_bytes(top)} ({top:#x}), {format_size(ps)} pages",
        x=0.5, y=1 - 0.12 / height, va="top", fontsize=11, fontweight="bold",
    )  # fmt: skip
    fig.text(
        0.5, 1 - 0.4 / height, "\n".join(why_lines), ha="center", va="top", fontsize=8.5, color="#333333"
    )
    kinds = [k for k in _KIND_COLORS if any(s[2] == k for s in segs)]
    handles = [Patch(color=_KIND_COLORS[k], label=k) for k in kinds]
    handles.append(Patch(facecolor="#f4f4f4", edgecolor="#c8c8c8", hatch="///", label="unmapped"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    return fig


def layout_figure(data: RunData, title: str, settings: Settings | None = None) -> Path | None:
    """One process's regions: to scale on the left, on a log-size axis on the right."""
    fig = _layout_fig(data, title, settings)
    return None if fig is None else _save(fig, data, "layout.png")


# ---------------------------------------------------------------------------
# Syscalls over time
# ---------------------------------------------------------------------------

_CALLS = [
    # (label, selector, marker, colour)
    ("brk grows the heap", lambda d: (d["syscall"] == "brk") & (d["length"] > 0), "^", "#0072B2"),
    ("brk trims the heap", lambda d: (d["syscall"] == "brk") & (d["length"] < 0), "v", "#D55E00"),
    ("mmap", lambda d: (d["syscall"] == "mmap") & (d["result"] >= 0), "o", "#E69F00"),
    ("munmap", lambda d: (d["syscall"] == "munmap") & (d["result"] >= 0), "x", "#009E73"),
    ("mremap", lambda d: (d["syscall"] == "mremap") & (d["result"] >= 0), "D", "#CC79A7"),
    (
        "failed (ENOMEM)",
        lambda d: (d["result"] < 0) | ((d["syscall"] == "brk") & (d["addr"] > 0) & (d["result"] < d["addr"])),
        "X",
        "#cc0000",
    ),
]


def _syscalls_fig(data: RunData, title: str) -> Figure | None:
    sc = data.syscalls
    if sc.empty:
        return None
    sc = sc[~((sc["syscall"] == "brk") & (sc["addr"] == 0))]  # glibc's brk(NULL) query changes nothing
    pids = data.pids
    row_of = {p: i for i, p in enumerate(pids)}
    # Fixed margins (pid labels on the left, legends on the right): constrained layout measured every
    # text twice and cost half of this figure's time.
    events_h, counts_h, gap = 1.2 + 0.32 * len(pids), 2.6, 0.35
    fig = _figure(10, events_h + counts_h + gap + 1.0, left=1.2, right=2.35, top=0.4, bottom=0.6)
    events, counts = fig.subplots(2, 1, sharex=True, height_ratios=[events_h, counts_h],
                                  gridspec_kw={"hspace": gap / ((events_h + counts_h) / 2)})  # fmt: skip
    selectors: list[tuple[str, Callable[[Table], Any], str, str]] = _CALLS
    finals: list[int] = []
    for k, (label, pick, marker, color) in enumerate(selectors):
        d = sc[pick(sc)]
        if d.empty:
            continue
        # Small vertical jitter per kind keeps simultaneous calls of different kinds apart; unclipped,
        # so that a call at the run's last instant shows whole.
        off = (k - 2.5) * 0.1
        rows = np.array([row_of.get(int(p), -1) for p in d["pid"]], dtype=float)
        events.scatter(d["time_s"], rows + off, marker=marker, s=22, color=color,
                       linewidths=1.0, label=f"{label} ({len(d):,})", rasterized=len(d) > 2000,
                       clip_on=False)  # fmt: skip
        if label.startswith("failed"):
            continue
        finals.append(len(d))
        t = np.append(d["time_s"].astype(float), data.end_s)
        counts.step(t, np.append(np.arange(1, len(d) + 1), len(d)), where="post", color=color, label=label)
    events.set_yticks(range(len(pids)), [_label(data, p) for p in pids], fontsize=8)
    events.set_ylim(-0.7, len(pids) - 0.3)
    events.invert_yaxis()
    events.set_ylabel("pid")
    events.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, title="call (count)")
    events.set_title(f"System calls over time — {title}", loc="left")
    counts.set_ylabel("calls so far\n(all processes)")
    if finals and max(finals) / min(finals) > 100:
        counts.set_yscale("log")  # each line starts at 1 where it starts, so a log axis holds them all
        counts.set_ylim(0.8, max(finals) * 1.5)
        counts.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    else:
        counts.set_ylim(0, max(finals, default=1) * 1.06)
        counts.yaxis.set_major_locator(MaxNLocator("auto", integer=True, steps=[1, 2, 2.5, 5, 10]))
        counts.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    counts.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    counts.set_xlabel("simulated time")
    seconds_axis(counts, "x")
    counts.set_xlim(0, max(data.end_s, 1e-9))
    return fig


def syscalls_figure(data: RunData, title: str) -> Path | None:
    """Each call as a mark on its process's row; below, the cumulative count of each kind."""
    fig = _syscalls_fig(data, title)
    return None if fig is None else _save(fig, data, "syscalls.png")


# ---------------------------------------------------------------------------


# The kinds of per-run figure (``heap`` also draws the heap at each snapshot, heap_N.png).
FIGURES = RUN_FIGURES


def snapshot_figures(data: RunData, settings: Settings | None = None) -> list[tuple[int, float]]:
    """(N, time_s) of each heap_N.png: N is the time's place in ``heap_snapshots`` (from 0, in time order).

    Numbering only the times that have rows would shift every name after a
    time with no heap (0 s, before the first malloc; a time after the run
    ended): heap_0.png would then be the second time asked for. The times
    asked for come from ``settings``, or the run's settings.json when the
    figures are redrawn from its directory; a run from before settings.json
    numbers the times heap_snapshots.csv has, as it always did.
    """
    if data.snapshots.empty:
        return []
    taken = {round(t * 1e9): t for t in np.unique(data.snapshots["time_s"]).tolist()}
    asked: list[int] | None = None
    if settings is not None:
        asked = list(settings.heap_snapshots)
    else:
        entry: Any = ((read_settings_json(data.run_dir) or {}).get("settings") or {}).get("heap_snapshots")
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, list) and all(type(t) is int for t in value):
            asked = sorted(set(value))
    if asked is None:
        return list(enumerate(taken.values()))
    return [(i, taken[t]) for i, t in enumerate(asked) if t in taken]


def draw_run_figures(
    run_dir: Path, settings: Settings | None = None, *, only: Collection[str] | None = None
) -> list[Path]:
    """Every per-run figure, or those of the kinds in ``only``; returns their paths.

    A figure that fails is reported on stderr and skipped rather than
    failing the run: the run's data files are written already and are worth
    more than any one picture of them (the tests draw every figure of every
    preset, so a failure here is a bug they catch). ``only`` lets a sweep's
    launcher draw one run's figures in two processes at once.
    """
    data = load_run(Path(run_dir))
    if settings is not None:
        data.cfg.setdefault("sample_interval", settings.sample_interval / 1e9)  # before .hydra/ is written
    title = _title(data, settings)
    drawn: list[Path] = []
    jobs: list[tuple[str, Callable[[], Path | None]]] = [
        ("memory", lambda: memory_figure(data, title)),
        ("faults", lambda: faults_figure(data, title)),
        ("heap", lambda: heap_figure(data, title)),
        *(
            (f"heap_{i}", lambda t=t, i=i: heap_figure(data, title, at=t, name=f"heap_{i}.png"))
            for i, t in snapshot_figures(data, settings)
        ),
        ("layout", lambda: layout_figure(data, title, settings)),
        ("syscalls", lambda: syscalls_figure(data, title)),
    ]
    with matplotlib.rc_context(STYLE):
        for name, draw in jobs:
            if only is not None and name.split("_")[0] not in only:
                continue
            try:
                path = draw()
            except Exception as e:  # a figure bug must not lose the run's results
                print(
                    f"vmexp: warning: {data.run_dir}: figure {name}.png not drawn: {type(e).__name__}: {e}",
                    file=sys.stderr,
                )
                continue
            if path is not None:
                drawn.append(path)
    return drawn


def draw_runs_figures(run_dirs: Iterable[Path], n_jobs: int | None = None) -> dict[Path, list[Path]]:
    """The figures of several runs (a sweep's jobs), in parallel processes where there are cores.

    On Linux the workers are forked, so they start with matplotlib
    imported (most of a second of CPU in a fresh interpreter); elsewhere,
    or when this process runs threads, joblib's default (loky) workers
    import it once each. One core, or one run, draws in this process. Each run's figures are drawn
    from its files alone (``draw_run_figures``), so a worker needs nothing
    but the directory.
    """
    dirs = [Path(d) for d in run_dirs]
    n = min(len(dirs), n_jobs if n_jobs is not None else usable_cores())
    if n <= 1:
        return {d: draw_run_figures(d) for d in dirs}
    import multiprocessing

    from joblib import Parallel, delayed

    backend: Any = multiprocessing.get_context("fork") if can_fork() else "loky"
    results = Parallel(n_jobs=n, backend=backend)(delayed(draw_run_figures)(d) for d in dirs)
    return dict(zip(dirs, results, strict=True))
