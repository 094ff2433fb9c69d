"""``validate kernel --figure``: each real run's page faults and the simulator's, over the run.

The table says whether the totals agree; it cannot say where a run parted
from the other side. Drawn over time, the faults show it: a sweep whose
major faults start later on one side (a limit met later), a phase whose
faults climb faster (readahead that hits on one side), a simulated run that
ends early (its time model). The real runs' curves are read from
``/proc/PID/stat`` as they run (``kernel._Timeline``), the simulator's from
its ``timeseries.csv``; both count the replay loop's faults from its start,
of all the trace's processes together.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmexp.validate.kernel import KernelRun

Timeline = list[tuple[float, int, int]]  # (seconds, minflt, majflt), counts since the start

# How often the real runs are read: about as often as the simulator samples (sample_interval,
# 10 ms), and each read is one small file of /proc: a few microseconds of a CPU the replayers share.
SAMPLE_EVERY = 0.01


def simulated_timeline(run_dir: str | os.PathLike[str]) -> Timeline:
    """The simulated run's faults over time, all its processes together (``timeseries.csv``: a row
    per process at every sample, their counts since they began; rows of pid 0 are the machine's).
    Empty when the run left no time series."""
    path = Path(run_dir, "timeseries.csv")
    if not path.exists():
        return []
    counts: dict[str, tuple[int, int]] = {}  # each process's last counts: one that ended keeps them
    out: Timeline = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["pid"] == "0" or not row["minflt"]:
                continue
            t = float(row["time_s"])
            counts[row["pid"]] = (int(row["minflt"]), int(row["majflt"]))
            point = (t, sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
            if out and out[-1][0] == t:
                out[-1] = point  # the same sample's next process
            else:
                out.append(point)
    return out


def draw(
    path: str | os.PathLike[str],
    real: Sequence[KernelRun],
    simulated: Timeline,
    title: str,
    subtitle: str,
) -> Path:
    """Major faults (left) and minor faults (right) over each side's time, to ``path``; written
    whole or not at all (a temporary file beside it, renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vmexp.report.style import PALETTE, STYLE, seconds_axis

    out = Path(path)
    with matplotlib.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
        runs = [r for r in real if r.timeline]
        for ax, col, what in zip(axes, (2, 1), ("major faults", "minor faults"), strict=True):
            for i, run in enumerate(runs):
                _line(
                    ax,
                    run.timeline,
                    col,
                    color=PALETTE[1],
                    lw=1.1,
                    alpha=0.8,
                    label=f"real kernel ({len(runs)} run{'s' if len(runs) != 1 else ''})" if i == 0 else None,
                )
            if simulated:
                _line(ax, simulated, col, color=PALETTE[0], lw=2.2, label="simulator")
            ax.set_title(what.capitalize())
            ax.set_xlabel("time since the replay began")
            ax.set_ylabel(f"{what}, cumulative")
            seconds_axis(ax, "x")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper left")
        fig.suptitle(
            f"{title}\n{subtitle}\nthe real runs in wall-clock time, the simulator in simulated time",
            fontsize="medium",
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=out.suffix, dir=out.parent)
        os.close(fd)
        try:
            fig.savefig(tmp)
            os.replace(tmp, out)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def _line(ax: Any, timeline: Timeline, col: int, **kw: Any) -> None:
    """A timeline from (0, 0): both sides start with the replay loop."""
    ax.plot([0.0, *(p[0] for p in timeline)], [0, *(p[col] for p in timeline)], **kw)
