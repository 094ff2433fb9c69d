"""``validate kernel --figure``: each real run's page faults and the simulator's, over the run.

The table says whether the totals agree; it cannot say where a run parted
from the other side. Drawn over time, the faults show it: a sweep whose
major faults start later on one side (a limit met later), a phase whose
faults climb faster (readahead that hits on one side), a simulated run that
ends early (its time model). The real runs' curves are read from
``/proc/PID/stat`` as they run (``kernel._Timeline``), the simulator's from
its ``timeseries.csv``; both count each process's faults from the start of
its replay loop.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmexp.validate.kernel import KernelRun

# (seconds since the replay began, each process's (minflt, majflt) since its start), in time order
Timeline = list[tuple[float, tuple[tuple[int, int], ...]]]

# How often the real runs are read: about as often as the simulator samples (sample_interval,
# 10 ms), and each read is one small file of /proc: a few microseconds of a CPU the replayers share.
SAMPLE_EVERY = 0.01


def simulated_timeline(run_dir: str | os.PathLike[str]) -> Timeline:
    """The simulated run's faults over time, each process's in the order of its pid
    (``timeseries.csv``: a row per process at every sample, its counts since it began; rows of pid 0
    are the machine's). Empty when the run left no time series."""
    path = Path(run_dir, "timeseries.csv")
    if not path.exists():
        return []
    rows: dict[float, dict[int, tuple[int, int]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["pid"] != "0" and row["minflt"]:
                at = rows.setdefault(float(row["time_s"]), {})
                at[int(row["pid"])] = (int(row["minflt"]), int(row["majflt"]))
    pids = sorted({pid for at in rows.values() for pid in at})
    last = dict.fromkeys(pids, (0, 0))  # a process that ended keeps its counts
    out: Timeline = []
    for t in sorted(rows):
        last.update(rows[t])
        out.append((t, tuple(last[pid] for pid in pids)))
    return out


def draw(
    path: str | os.PathLike[str],
    real: Sequence[KernelRun],
    simulated: Timeline,
    names: Sequence[str],
    title: str,
    subtitle: str,
    nearby: Sequence[Timeline] = (),
) -> Path:
    """Major faults (left) and minor faults (right) over each side's time, to ``path``: one colour
    per process (``names``, in the order of the runs' counts) when there are several; ``nearby``:
    the simulator's runs at the nearby limits (``--nearby``), thin beside its run at the limit.
    Written whole or not at all (a temporary file beside it, renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vmexp.report.style import PALETTE, STYLE, seconds_axis

    out = Path(path)
    runs = [r.timeline for r in real if r.timeline]
    several = len(names) > 1
    with matplotlib.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
        for ax, col, what in zip(axes, (1, 0), ("major faults", "minor faults"), strict=True):
            for p, name in enumerate(names):
                who = f"{name}: " if several else ""
                real_color = PALETTE[p % len(PALETTE)] if several else PALETTE[1]
                for i, timeline in enumerate(runs):
                    _line(
                        ax,
                        timeline,
                        p,
                        col,
                        color=real_color,
                        lw=1.0,
                        alpha=0.7,
                        label=f"{who}real kernel ({len(runs)} run{'s' if len(runs) != 1 else ''})"
                        if i == 0
                        else None,
                    )
                sim_color = real_color if several else PALETTE[0]
                dash = _DASHES[p % len(_DASHES)] if several else "-"
                for i, timeline in enumerate(nearby):
                    _line(
                        ax,
                        timeline,
                        p,
                        col,
                        color=sim_color,
                        lw=1.0,
                        ls=dash,
                        alpha=0.6,
                        label=f"{who}simulator, {len(nearby)} nearby limit{'s' if len(nearby) != 1 else ''}"
                        if i == 0
                        else None,
                    )
                if simulated:
                    _line(
                        ax,
                        simulated,
                        p,
                        col,
                        color=sim_color,
                        lw=2.4,
                        ls=dash,
                        label=f"{who}simulator" + (" at the limit" if nearby else ""),
                    )
            ax.set_title(what.capitalize())
            ax.set_xlabel("time since the replay began")
            ax.set_ylabel(f"{what}, cumulative")
            seconds_axis(ax, "x")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        # Below both panels: over them it hides the curves that climb fastest, which are the point.
        # A row for each process: the legend fills its columns first, so its entries go column by column.
        handles, labels = axes[0].get_legend_handles_labels()
        per = max(len(labels) // len(names), 1)
        order = [p * per + j for j in range(per) for p in range(len(names))]
        fig.legend(
            [handles[i] for i in order],
            [labels[i] for i in order],
            loc="outside lower center",
            ncol=per,
            fontsize="small",
        )
        fig.suptitle(
            f"{title}\n{subtitle}\nthe real runs in wall-clock time, the simulator in simulated time",
            fontsize="medium",
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        # Beside it under a name of this process's (created as any file, with the umask's permissions,
        # where mkstemp's would be 0600), its suffix last: matplotlib takes the format from it.
        tmp = out.with_name(f".{out.stem}-{os.getpid()}{out.suffix}")
        try:
            fig.savefig(tmp)
            os.replace(tmp, out)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


# The simulator's processes each dashed their own way: two that fault alike draw one curve, and
# the dashes show both.
_DASHES = [(0, (6, 3)), (0, (1.5, 2.5)), (0, (6, 2, 1.5, 2)), (0, (3, 3))]


def _line(ax: Any, timeline: Timeline, proc: int, col: int, **kw: Any) -> None:
    """Process ``proc``'s minor (``col`` 0) or major (1) faults, from (0, 0): both sides start with
    the replay loop."""
    ax.plot([0.0, *(t for t, _ in timeline)], [0, *(c[proc][col] for _, c in timeline)], **kw)
