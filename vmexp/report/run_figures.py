"""Figures of one run, drawn from the files the run wrote (so they can be redrawn later)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from vmexp.config import Settings
from vmexp.units import format_size

__all__ = ["draw_run_figures", "memory_figure"]


def _bytes_axis(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: format_size(v) if v >= 0 else "")
    )


def memory_figure(run_dir: Path, ram_bytes: int, title: str) -> Path:
    """RSS per process stacked against the RAM line; swap used and free memory below."""
    ts = pd.read_csv(run_dir / "timeseries.csv")
    procs = ts[ts["pid"] > 0]
    system = ts[ts["pid"] == 0]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[3, 2])
    wide = procs.pivot_table(index="time_s", columns="pid", values="rss_bytes", aggfunc="last").fillna(0)
    if not wide.empty:
        colors = sns.color_palette("colorblind", len(wide.columns))
        top.stackplot(
            wide.index, wide.T.values, labels=[f"pid {c}" for c in wide.columns], colors=colors, alpha=0.85
        )
    top.axhline(
        ram_bytes, color="black", linestyle="--", linewidth=1.2, label=f"RAM ({format_size(ram_bytes)})"
    )
    top.set_ylabel("resident memory (RSS)")
    top.set_title(title)
    _bytes_axis(top)
    top.legend(loc="upper left", fontsize="small", ncol=2)
    bottom.plot(system["time_s"], system["swap_used_bytes"], label="swap used", color="tab:red")
    bottom.plot(system["time_s"], system["free_bytes"], label="free RAM", color="tab:green")
    bottom.set_xlabel("simulated time (s)")
    bottom.set_ylabel("bytes")
    _bytes_axis(bottom)
    bottom.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    out = run_dir / "figures" / "memory.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_run_figures(run_dir: Path, settings: Settings) -> list[Path]:
    """Every per-run figure; returns their paths."""
    title = (
        f"Memory over time — {settings.name}: {settings.nprocs} process(es), {format_size(settings.ram)} RAM"
    )
    return [memory_figure(run_dir, settings.ram, title)]
