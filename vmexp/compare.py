"""python -m vmexp.compare A B: what differs between two runs, or two sweeps, and by how much.

It prints the settings that differ (from each job's resolved config), then
every summary metric side by side with the difference B − A and the ratio
B / A, and draws one figure of the two. Two sweeps are joined on the keys
both of them swept (sizes compared by value: ``64k`` is ``65536``); jobs
that differ only in keys one of them swept alone (seeds, say) are averaged.

    python -m vmexp.compare outputs/runs/.../A outputs/runs/.../B
    python -m vmexp.compare outputs/sweeps/.../lru outputs/sweeps/.../fifo -o lru_vs_fifo.png

From Python: ``vmexp.compare.compare(a, b)`` returns the same as DataFrames.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vmexp.api import Run, Sweep, VmexpError, load
from vmexp.cliargs import Parser
from vmexp.console import drop_the_rest
from vmexp.status import FINISHED

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison", "compare", "draw", "figure_path", "main", "render", "SETTINGS_FILES"]

# A file beside metrics.json with the run's settings as resolved (units parsed, defaults filled):
# read when present, before Hydra's record of the composed config.
SETTINGS_FILES = ("settings.json", "settings.yaml")

_NULL = "null"

# summary_of writes 0 for Denning's L when a run had no major fault; L is then undefined (there is
# no time between faults), and a 0 would read as "faults all the time". Shown as "—".
_UNDEFINED_AT_ZERO = ("mean_time_between_faults_s",)


@dataclass
class Comparison:
    """What ``compare`` found.

    ``settings``: (key, A's value, B's value) for each setting that differs.
    ``metrics`` (two runs): one row per summary metric, columns A, B, diff, ratio.
    ``metrics`` (two sweeps): one row per joined setting and metric: the
    ``keys`` columns, then metric, A, B, diff, ratio (A and B are means over
    the jobs that share the keys' values; n_a and n_b count them).
    """

    kind: str  # "runs" or "sweeps"
    a: Path
    b: Path
    settings: list[tuple[str, str, str]]
    metrics: pd.DataFrame
    keys: list[str] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)  # joined settings that only A has
    only_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """What a notebook shows: the text ``python -m vmexp.compare`` prints, and its figure."""
        import html
        import tempfile

        from vmexp.report.embed import png_figure

        with tempfile.TemporaryDirectory() as d:
            return f"<pre>{html.escape(render(self))}</pre>\n{png_figure(draw(self, Path(d)))}"


# ---------------------------------------------------------------------------
# Reading the two sides
# ---------------------------------------------------------------------------


def _flat(doc: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys -> a value as the command line writes it (null, true, 64k, [1, 2])."""
    if isinstance(doc, dict):
        out: dict[str, str] = {}
        for k, v in doc.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    key = prefix[:-1]
    if doc is None:
        return {key: _NULL}
    if isinstance(doc, bool):
        return {key: "true" if doc else "false"}
    if isinstance(doc, list):
        return {key: json.dumps(doc)}
    return {key: str(doc)}


def _settings(job: Path) -> dict[str, str]:
    """A job's settings, flattened: the resolved-settings file if there is one, else .hydra/config.yaml,
    plus the config-group options it ran with (``policy``, ``workload``, ...) under the group's name."""
    from vmexp.config import read_settings_json
    from vmexp.report.sweep import job_choices, job_config
    from vmexp.report.table import format_typed

    resolved = read_settings_json(job)
    if resolved is not None and isinstance(resolved.get("settings"), dict):
        # settings.json (vmexp.config.settings_json): each key's typed value and unit, shown with units.
        flat = {}
        for key, entry in resolved["settings"].items():
            value = entry.get("value")
            if value is None:
                flat[key] = _NULL
            elif isinstance(value, list | dict):
                flat[key] = json.dumps(value)
            else:
                flat[key] = format_typed(value, str(entry.get("unit", "")))
        for group, option in (resolved.get("choices") or {}).items():
            flat.setdefault(group, option)
        return flat
    doc: Any = None
    for name in SETTINGS_FILES:
        path = job / name
        if path.is_file() and not name.endswith(".json"):
            doc = yaml.safe_load(path.read_text())
            break
    if not isinstance(doc, dict):
        doc = job_config(job)
    flat = _flat(doc)
    # A group's option is the name a user typed (workload=batch); the keys under it follow from it.
    for group, option in job_choices(job).items():
        flat.setdefault(group, option)
    return flat


def _side(path: str | Path, which: str) -> Run | Sweep:
    try:
        side = load(path)
    except VmexpError as e:
        raise VmexpError(f"{which}: {e}") from None
    if isinstance(side, Run) and side.status == "failed":
        raise VmexpError(f"{which}: {side.dir}: the run failed: {side.error}")
    return side


def _short(value: str, width: int = 48) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


# ---------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------


def compare(a: str | Path, b: str | Path) -> Comparison:
    """Compare two run directories or two sweep directories (raises VmexpError otherwise)."""
    sa, sb = _side(a, "A"), _side(b, "B")
    if isinstance(sa, Run) and isinstance(sb, Run):
        return _compare_runs(sa, sb)
    if isinstance(sa, Sweep) and isinstance(sb, Sweep):
        return _compare_sweeps(sa, sb)
    kinds = ("a run" if isinstance(sa, Run) else "a sweep", "a run" if isinstance(sb, Run) else "a sweep")
    raise VmexpError(
        f"A is {kinds[0]} and B is {kinds[1]}: compare two runs or two sweeps "
        "(a job folder of a sweep is a run)"
    )


def _differences(sa: dict[str, str], sb: dict[str, str]) -> list[tuple[str, str, str]]:
    """(key, A's value, B's value) for each setting that differs.

    Every side names its group options (``workload``: pageref); a group's row is left out when its
    ``name`` row says the same (policy=fifo is policy.name: fifo). Whether it is left out is decided
    on the pair, not on each side: one option with a ``name`` and the other without read as
    "workload (none) mixed", as if A had no workload.
    """
    keys = sorted(set(sa) | set(sb))
    diffs = [(k, sa.get(k, "(none)"), sb.get(k, "(none)")) for k in keys if sa.get(k) != sb.get(k)]
    named = {(k.removesuffix(".name"), x, y) for k, x, y in diffs if k.endswith(".name")}
    return [d for d in diffs if d not in named]


def _value(name: str, v: float) -> float:
    return math.nan if name in _UNDEFINED_AT_ZERO and v == 0 else v


def _row(a: float, b: float) -> dict[str, float]:
    if math.isnan(a) or math.isnan(b):
        return {"A": a, "B": b, "diff": math.nan, "ratio": math.nan}
    diff = b - a
    ratio = b / a if a else (1.0 if b == a else math.inf if b > 0 else -math.inf)
    return {"A": a, "B": b, "diff": diff, "ratio": ratio}


def _compare_runs(ra: Run, rb: Run) -> Comparison:
    import pandas as pd

    rows = []
    for name, va in ra.summary.items():
        vb = rb.summary.get(name)
        if vb is not None:
            rows.append({"metric": name, **_row(_value(name, float(va)), _value(name, float(vb)))})
    table = pd.DataFrame(rows).set_index("metric")
    return Comparison("runs", ra.dir, rb.dir, _differences(_settings(ra.dir), _settings(rb.dir)), table)


def _constants(sweep: Sweep) -> tuple[dict[str, str], set[str]]:
    """(settings every job of the sweep shares, keys whose value varies between its jobs).

    Only the jobs that finished count, those whose metrics are compared: a job that failed before it
    wrote settings.json has only Hydra's record of its config, whose values are written otherwise
    (``0.1s`` for ``100 ms``), and every key would seem to vary, hiding every difference.
    """
    s = sweep.summary
    done = set(s.loc[s["status"].isin(FINISHED), "job"].astype(str)) if "job" in s.columns else set()
    jobs = [_settings(r.dir) for r in sweep.runs if r.dir.name in done]
    if not jobs:
        return {}, set()
    keys = set().union(*jobs)
    varying = {k for k in keys if len({j.get(k) for j in jobs}) > 1}
    first = jobs[0]
    return {k: first[k] for k in keys - varying if k in first}, varying


def _swept(sweep: Sweep) -> list[str]:
    """The override keys that take more than one value among the sweep's jobs."""
    s = sweep.summary
    return [k for k in sweep.keys if s[k].astype(str).nunique() > 1]


def _canonical(key: str, value: str) -> str:
    """A joinable form of a swept value: sizes and durations by value, so 64k joins 65536."""
    from vmexp.report.table import NULLS, numeric_value

    if value in NULLS:
        return _NULL
    n = numeric_value(key, value)
    return repr(n) if n is not None else value


def _compare_sweeps(wa: Sweep, wb: Sweep) -> Comparison:
    import pandas as pd

    from vmexp.report.sweep import COLUMNS

    ca, vary_a = _constants(wa)
    cb, vary_b = _constants(wb)
    swept_a, swept_b = _swept(wa), _swept(wb)
    keys = [k for k in swept_a if k in swept_b]
    notes = []
    if (swept_a or swept_b) and not keys:
        raise VmexpError(
            f"the sweeps share no swept key (A: {', '.join(swept_a) or 'none'}; "
            f"B: {', '.join(swept_b) or 'none'}): there is nothing to join them on"
        )
    for which, own in (("A", swept_a), ("B", swept_b)):
        alone = [k for k in own if k not in keys]
        if alone:
            notes.append(f"{which} also sweeps {', '.join(alone)}: its jobs are averaged over them")
    # Settings: what each sweep holds constant, where the two differ (swept keys are the join).
    settings = [
        d for d in _differences(ca, cb) if d[0] not in vary_a and d[0] not in vary_b and d[0] not in keys
    ]

    def means(sw: Sweep) -> pd.DataFrame:
        s = sw.summary[sw.summary["status"].isin(FINISHED)].copy()
        metric_cols = [c for c in COLUMNS if c in s.columns]
        for k in keys:
            s[f"_j_{k}"] = [_canonical(k, str(v)) for v in s[k]]
        s[metric_cols] = s[metric_cols].apply(pd.to_numeric, errors="coerce")
        j = [f"_j_{k}" for k in keys]
        if not j:
            s["_j_"] = ""
            j = ["_j_"]
        grouped = s.groupby(j, sort=False)
        out = grouped[metric_cols].mean()
        out["_n"] = grouped.size()
        for k in keys:  # the value as the sweep wrote it (64k), for the table and the figure
            out[f"_v_{k}"] = grouped[k].first().astype(str)
        out["_label"] = [", ".join(f"{k}={r[f'_v_{k}']}" for k in keys) for _, r in out.iterrows()]
        return out

    ma, mb = means(wa), means(wb)
    if ma.empty or mb.empty:
        raise VmexpError(f"{'A' if ma.empty else 'B'}: the sweep has no job that finished ok")
    joined = ma.merge(mb, how="inner", left_index=True, right_index=True, suffixes=("_a", "_b"))
    only_a = [str(v) for i, v in ma["_label"].items() if i not in joined.index]
    only_b = [str(v) for i, v in mb["_label"].items() if i not in joined.index]
    if joined.empty:
        raise VmexpError("the sweeps have no swept values in common: nothing to put side by side")
    rows = []
    metric_cols = [c for c in COLUMNS if f"{c}_a" in joined.columns and f"{c}_b" in joined.columns]
    for _, r in joined.iterrows():
        values = {k: str(r[f"_v_{k}_a"]) for k in keys}
        for m in metric_cols:
            va, vb = _value(m, float(r[f"{m}_a"])), _value(m, float(r[f"{m}_b"]))
            if math.isnan(va) and math.isnan(vb):
                continue
            rows.append({**values, "metric": m, **_row(va, vb), "n_a": int(r["_n_a"]), "n_b": int(r["_n_b"])})
    table = pd.DataFrame(rows)
    return Comparison("sweeps", wa.dir, wb.dir, settings, table, keys, only_a, only_b, notes)


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _fmt(unit: str, v: float, *, signed: bool = False) -> str:
    from vmexp.units import format_duration, format_size

    if math.isnan(v):
        return "—"
    sign = "+" if signed and v > 0 else ""
    if unit == "bytes":
        return sign + format_size(round(v))
    if unit == "ratio":
        return f"{v * 100:+.2f} pp" if signed else f"{v * 100:.2f} %"
    if unit == "s":
        return sign + format_duration(v * 1e9).replace("us", "µs")
    if (unit == "count" and v == int(v)) or abs(v) >= 1e4:
        # Whole numbers; also a mean over seeds past four digits, which .4g writes as -2.703e+04.
        return f"{v:+,.0f}" if signed else f"{v:,.0f}"
    return f"{v:+,.4g}" if signed else f"{v:,.4g}"


def _ratio(r: float) -> str:
    if math.isnan(r):
        return "—"
    if math.isinf(r):
        return "A = 0"
    return f"{r:.3g}"


def _table(header: list[str], rows: list[list[str]], right: int = 1) -> list[str]:
    """Aligned columns: the first ``right`` are left-aligned names, the rest right-aligned numbers."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [
            c.ljust(w) if i < right else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _equal(m: pd.DataFrame) -> pd.Series[bool]:
    """A equals B, or both are undefined."""
    return (m["A"] == m["B"]) | (m["A"].isna() & m["B"].isna())


def render(c: Comparison, *, every: bool = False) -> str:
    """The comparison as text; metrics equal on both sides are named in one line unless ``every``."""
    from vmexp.report.sweep import metric

    out = [f"A: {c.a}", f"B: {c.b}", ""]
    if c.settings:
        out.append(f"Settings that differ ({len(c.settings)}):")
        out += _table(["setting", "A", "B"], [[k, _short(x), _short(y)] for k, x, y in c.settings], right=3)
    else:
        out.append("Settings: the same on both sides" + (" (apart from the swept keys)" if c.keys else ""))
    out.append("")
    if c.kind == "sweeps":
        out.append(f"Joined on: {', '.join(c.keys) or '(nothing swept: one job each)'}")
        out += [f"  note: {n}" for n in c.notes]
        if c.only_a:
            out.append(f"  only in A (left out): {'; '.join(c.only_a)}")
        if c.only_b:
            out.append(f"  only in B (left out): {'; '.join(c.only_b)}")
        out.append("")
    m = c.metrics
    if c.kind == "runs":
        equal = _equal(m)
        same = [str(n) for n, e in equal.items() if e]
        shown = m if every else m[~equal]
        out.append("Summary metrics (B − A, B / A):")
        rows = []
        for name, r in shown.iterrows():
            unit = metric(str(name)).unit
            rows.append(
                [
                    str(name),
                    _fmt(unit, r["A"]),
                    _fmt(unit, r["B"]),
                    _fmt(unit, r["diff"], signed=True),
                    _ratio(r["ratio"]),
                ]
            )
        out += _table(["metric", "A", "B", "B − A", "B / A"], rows) if rows else ["  (none differs)"]
    else:
        names = list(dict.fromkeys(m["metric"]))
        same = [n for n in names if _equal(m[m["metric"] == n]).all()]
        out.append("Summary metrics per joined setting (B − A, B / A; means over the jobs that share it):")
        for name in names:
            if name in same and not every:
                continue
            unit = metric(name).unit
            part = m[m["metric"] == name]
            out.append("")
            out.append(f"{name} — {metric(name).label}")
            rows = [
                [
                    *(str(r[k]) for k in c.keys),
                    _fmt(unit, r["A"]),
                    _fmt(unit, r["B"]),
                    _fmt(unit, r["diff"], signed=True),
                    _ratio(r["ratio"]),
                ]
                for _, r in part.iterrows()
            ]
            out += _table([*c.keys, "A", "B", "B − A", "B / A"], rows, right=max(1, len(c.keys)))
    if same and not every:
        out += ["", f"Equal on both sides: {', '.join(same)}"]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------

_COLOR = {"A": "#0072B2", "B": "#E69F00"}


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def figure_path(path: str | Path, default_name: str = "compare.png") -> Path:
    """The file a figure for ``path`` is written to: DIR/``default_name`` for a directory, NAME.png
    for a name without a suffix (matplotlib adds it when saving; the path said must be the file
    written). ``draw``'s, and ``validate kernel --figure``'s.

    Raises VmexpError for a suffix matplotlib cannot write, before anything is drawn.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    out = Path(path)
    if out.is_dir():
        out = out / default_name
    elif not out.suffix:
        out = out.with_name(f"{out.name}.png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise VmexpError(
            f"{out}: not a figure format matplotlib writes (use .png, or one of: {', '.join(formats)})"
        )
    return out


def draw(c: Comparison, path: str | Path) -> Path:
    """Draw the comparison to ``path`` (PNG unless its suffix says otherwise; a directory gets
    compare.png) and return the file: for runs, B/A per metric and both over time; for sweeps, the
    main metrics over the first joined key, A and B side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vmexp.report.style import STYLE

    out = figure_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig = _draw_runs(c) if c.kind == "runs" else _draw_sweeps(c)
        fig.savefig(out)
        plt.close(fig)
    return out


def _draw_runs(c: Comparison) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import ScaledTranslation

    from vmexp.report.run_figures import MIN_SAMPLES
    from vmexp.report.style import bytes_axis, seconds_axis
    from vmexp.report.sweep import metric

    m = c.metrics
    fig = plt.figure(figsize=(13, 7.2))
    grid = fig.add_gridspec(
        2, 2, width_ratios=[1.1, 1], hspace=0.42, wspace=0.28, left=0.12, right=0.97, bottom=0.16
    )
    ax = fig.add_subplot(grid[:, 0])
    finite = m[~_equal(m) & (m["A"] > 0) & (m["B"] > 0)]
    labels = [metric(str(n)).short or str(n) for n in finite.index]
    ratios = finite["ratio"].to_numpy(dtype=float)
    colors = []
    for n, r in zip(finite.index, ratios, strict=True):
        better = metric(str(n)).better
        colors.append("#999999" if better == 0 else "#009E73" if (r - 1) * better > 0 else "#D55E00")
    y = np.arange(len(ratios))
    if len(ratios):
        ax.barh(y, ratios - 1, left=1, color=colors, height=0.7)
        ax.set_xscale("log", base=2)
        lim = max(2.0, float(np.max(np.maximum(ratios, 1 / ratios))) * 1.3)
        ax.set_xlim(1 / lim, lim)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}" if v >= 1 else f"×1/{1 / v:g}"))
    else:
        ax.text(
            0.5,
            0.5,
            "no metric differs\n(or one side is 0)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_yticks([])
    ax.grid(False, axis="y")
    ax.set_axisbelow(True)
    ax.axvline(1, color="#444444", linewidth=1)
    ax.set_xlabel("B / A (log scale; 1 = equal)")
    ax.set_title("Summary metrics of B relative to A", loc="left")
    # The colour key and the note go below the axis label, in a row each: inside the axes a legend
    # hides the last bars whatever corner it takes (there is a bar in every row).
    below = ax.transAxes + ScaledTranslation(0, -38 / 72, fig.dpi_scale_trans)
    ax.legend(
        handles=[Patch(color=col, label=lab) for col, lab in
                 (("#009E73", "better in B"), ("#D55E00", "worse in B"), ("#999999", "neither better nor worse"))],
        loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=below, ncol=3, fontsize=8, frameon=False,
        borderaxespad=0, borderpad=0,
    )  # fmt: skip
    zero = [str(n) for n in m.index if (m.loc[n, "A"] == 0) != (m.loc[n, "B"] == 0)]
    notes = [f"0 on one side only (not drawn): {', '.join(zero)}"] if zero else []
    # A one-letter name (Denning's L and S) says nothing to a reader who does not know the rule:
    # its metric's full label goes below, with the other notes.
    letters = [
        f"{lab}: {metric(str(n)).label}" for n, lab in zip(finite.index, labels, strict=True) if len(lab) <= 2
    ]
    notes += ["; ".join(letters)] if letters else []
    for i, note in enumerate(notes):
        ax.annotate(note, (0, 0), xycoords="axes fraction", xytext=(0, -64 - 12 * i), textcoords="offset points",
                    fontsize=8)  # fmt: skip

    runs = {"A": Run(c.a), "B": Run(c.b)}
    sparse: list[str] = []  # sides with too few sample times for their steps to mean anything
    mem = fig.add_subplot(grid[0, 1])
    flt = fig.add_subplot(grid[1, 1], sharex=mem)
    for side, run in runs.items():
        label = f"{side}: {_name(run.dir)}"
        try:
            ts = run.timeseries
        except VmexpError:  # a run copied without timeseries.csv: its summary bars still stand
            mem.plot([], [], color=_COLOR[side], label=f"{label} (no timeseries.csv)")
            continue
        ram = float(run.metrics["system"].get("ram_bytes", 0))
        sysrows = ts[ts["pid"] == 0]
        if ram and "free_bytes" in ts.columns and len(sysrows):
            mem.step(
                sysrows["time_s"], ram - sysrows["free_bytes"], where="post", color=_COLOR[side], label=label
            )
        procs = ts[ts["pid"] > 0]
        times = np.sort(ts["time_s"].unique())
        if len(times) < MIN_SAMPLES:
            sparse.append(f"{side} ({len(times)})")
        total = np.zeros(len(times))
        for _, g in procs.groupby("pid"):
            counts = (g["minflt"] + g["majflt"]).to_numpy(dtype=float)
            # A counter keeps its last value once the process has exited.
            total += np.interp(times, g["time_s"].to_numpy(dtype=float), counts, left=0.0, right=counts[-1])
        flt.step(times, total, where="post", color=_COLOR[side], label=label)
    mem.set_title("Memory in use (RAM − free)", loc="left")
    mem.set_ylabel("bytes")
    bytes_axis(mem)
    mem.set_ylim(bottom=0)
    mem.legend(fontsize=8, loc="best")
    flt.set_title("Page faults so far (minor + major)", loc="left")
    flt.set_ylabel("faults")
    flt.set_ylim(bottom=0)
    flt.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    flt.set_xlabel("simulated time")
    seconds_axis(flt, "x")
    flt.set_xlim(left=0)
    if sparse:
        # As the run's own figures say (run_figures.too_short): a run shorter than a few sampling periods
        # is sampled at its start and its end only, and the steps show the sampling, not the run.
        flt.annotate(
            textwrap.fill(
                f"Too few samples for a time series: {' and '.join(sparse)} sample times (the run is shorter "
                "than a few sample_interval); the steps show when samples were taken, not when faults happened.",
                80,
            ),
            (0, 0), xycoords="axes fraction", xytext=(0, -44), textcoords="offset points", va="top", fontsize=8,
        )  # fmt: skip
    fig.suptitle(f"Run B against run A — A: {_name(c.a)}   B: {_name(c.b)}", x=0.02, ha="left", fontsize=11,
                 fontweight="bold")  # fmt: skip
    return fig


def _draw_sweeps(c: Comparison) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    from vmexp.report.style import bytes_axis, percent_axis, seconds_axis
    from vmexp.report.sweep import DEFAULT_FIGURE_METRICS, metric
    from vmexp.report.table import label_value, order_values

    m = c.metrics
    present = list(dict.fromkeys(m["metric"]))
    differing = [n for n in present if not _equal(m[m["metric"] == n]).all()]
    chosen = [n for n in DEFAULT_FIGURE_METRICS if n in differing] or differing[:6] or present[:1]
    chosen = chosen[:6]
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 0.9), squeeze=False)
    key = c.keys[0] if c.keys else None
    for ax, name in zip(axes.flat, chosen, strict=False):
        part = m[m["metric"] == name]
        if key is not None:
            order = order_values(key, [str(v) for v in part[key]])
            xs = [order.index(str(v)) for v in part[key]]
            ax.set_xticks(range(len(order)), [label_value(key, v) for v in order])
            ax.set_xlabel(key)
        else:
            xs = [0] * len(part)
            ax.set_xticks([0], ["(one job)"])
        for side in ("A", "B"):
            pts = sorted(zip(xs, part[side].to_numpy(dtype=float), strict=True))
            # Other joined keys (a second swept key) give several points per x: their mean is drawn.
            bucket: dict[int, list[float]] = {}
            for x, v in pts:
                bucket.setdefault(x, []).append(v)
            px = list(bucket)
            py = [float(np.mean(bucket[x])) for x in px]
            ax.plot(
                px,
                py,
                marker="o",
                color=_COLOR[side],
                clip_on=False,
                label=f"{side}: {_name(c.a if side == 'A' else c.b)}",
            )
        info = metric(name)
        ax.set_title(info.label if len(info.label) <= 32 else info.short or name, loc="left")
        if info.unit == "bytes":
            bytes_axis(ax)
        elif info.unit == "ratio":
            percent_axis(ax)
        elif info.unit == "s":
            seconds_axis(ax)
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
        ax.set_ylabel(
            {"bytes": "bytes", "ratio": "percent", "s": "seconds (simulated)"}.get(info.unit, "count")
        )
        # Counts and sizes from zero, with room above the highest marker so that it is drawn whole.
        top = float(np.nanmax(part[["A", "B"]].to_numpy(dtype=float))) if len(part) else 0.0
        ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)
        ax.set_xlim(-0.4, max(0, len(ax.get_xticks()) - 1) + 0.4)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    # The key below the panels: at the top right it shared the title's line, and a figure of one
    # or two panels is too narrow for both (the key covered "against sweep A").
    height = fig.get_figheight()
    fig.legend(handles, labels, loc="lower center", fontsize=8.5, ncol=2, bbox_to_anchor=(0.5, 0.05 / height))
    joined = f" over {', '.join(c.keys)}" if c.keys else ""
    fig.suptitle(f"Sweep B against sweep A{joined}", x=0.02, ha="left", fontsize=11, fontweight="bold")
    fig.tight_layout(rect=(0, 0.4 / height, 1, 0.94))
    return fig


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = Parser(
        prog="python -m vmexp.compare",
        description="Compare two runs or two sweeps: the settings that differ, each summary metric "
        "side by side (B − A and B / A), and a figure.",
    )
    ap.add_argument("a", type=Path, help="a run directory (metrics.json) or a sweep directory (summary.csv)")
    ap.add_argument("b", type=Path, help="the same kind as A")
    ap.add_argument("-o", "--figure", type=Path, default=Path("compare.png"), help="where to draw the figure "
                    "(default: compare.png in the current directory)")  # fmt: skip
    ap.add_argument("--no-figure", action="store_true", help="print the comparison only")
    ap.add_argument("--all", action="store_true", help="also list the metrics that are equal on both sides")
    ap.add_argument("--csv", type=Path, help="also write the metrics table to this CSV file")
    args = ap.parse_args(argv)
    option = ""
    try:
        c = compare(args.a, args.b)
        option = "-o: "
        figure = None if args.no_figure else figure_path(args.figure)
    except VmexpError as e:
        print(f"vmexp.compare: error: {option}{e}", file=sys.stderr)
        return 2
    _say(render(c, every=args.all))
    option = "--csv"
    try:  # a path that cannot be written is the user's error: one line naming the option, as for A and B
        if args.csv:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            c.metrics.to_csv(args.csv, index=c.kind == "runs", quoting=csv.QUOTE_MINIMAL)
            _say(f"\ntable: {args.csv}")
        option = "-o"
        if figure is not None:
            _say(f"\nfigure: {draw(c, figure)}")
    except OSError as e:
        print(f"vmexp.compare: error: {option}: {_os_error(e)}", file=sys.stderr)
        return 2
    return 0


def _say(text: str) -> None:
    """Print to stdout; a reader that stopped reading (``| head``) is no error, and the files are still written.

    Without this the first print into a closed pipe was a BrokenPipeError traceback, and the table
    and the figure were never written. Later lines go to /dev/null.
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        drop_the_rest()


def _os_error(e: OSError) -> str:
    """``PATH: reason`` in one line; mkdir's "File exists" for a file in the way of a directory says so."""
    if e.filename is None:
        return str(e)
    if isinstance(e, FileExistsError):
        return f"{e.filename}: is a file, not a directory"
    return f"{e.filename}: {e.strerror}"


if __name__ == "__main__":
    from vmexp.console import run_program

    run_program(main)
