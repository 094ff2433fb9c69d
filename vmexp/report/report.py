"""The sweep report: what was asked, what was run, what the numbers say, the table, the figures.

Written twice from one list of blocks: ``report.md`` for reading in a
repository and ``report.html``, self-contained (figures embedded as data
URIs, no external style or script), for a browser or an e-mail. The
written comparison is generated from the numbers only: for each metric the
best and the worst setting and by how much, plus the marks the known
results of some sweeps are about (the thrashing peak, Belady's anomaly, the
best point of a tuning run).
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from vmexp.config import GENERATED_HORIZON
from vmexp.metrics import atomic_write
from vmexp.report.embed import png_figure
from vmexp.report.sweep import job_choices, load_yaml, metric
from vmexp.report.sweep_figures import thrashing_marks
from vmexp.report.table import SweepTable
from vmexp.units import format_duration, format_size

__all__ = ["write_report", "comparison", "findings", "fmt_value", "render_markdown", "render_html"]

Block = tuple[str, Any]

# The settings a reader needs to reproduce the base of a sweep, in this order.
_SETUP_KEYS = [
    "experiment",
    "workload",
    "nprocs",
    "ram",
    "swap",
    "page_size",
    "policy",
    "allocator",
    "threshold",
    "address_space",
    "machine.swap_device",
    "machine.ncpus",
    "machine.min_free",
    "duration",
    "seed",
]


def fmt_value(name: str, v: float) -> str:
    """A metric value with its unit: 1.5 MiB, 12.3 %, 250 µs, 1,234."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    unit = metric(name).unit
    if unit == "bytes":
        return format_size(round(v))
    if unit == "ratio":
        return f"{v * 100:.1f} %"
    if unit == "s":
        return format_duration(v * 1e9).replace("us", "µs")
    if unit == "count":
        # Means and deviations over seeds are not whole: a decimal only where it is not noise.
        return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 10 else f"{v:,.1f}"
    return f"{v:,.4g}"


def _spread(name: str, lo: float, hi: float) -> str:
    unit = metric(name).unit
    if unit == "ratio":
        return f"{(hi - lo) * 100:.1f} percentage points apart"
    if lo <= 0:
        return "the lowest is zero"
    r = hi / lo
    return f"the highest is {r:.2f}× the lowest" if r < 10 else f"the highest is {r:,.0f}× the lowest"


def comparison(table: SweepTable, names: list[str]) -> list[str]:
    """Sentences: for each metric, the best and worst setting (means over seeds) and by how much."""
    if table.ok < 2:
        return ["Fewer than two jobs finished, so there is nothing to compare."]
    if not table.swept:
        return ["Every finished job ran the same setting, so there is nothing to compare."]
    lines: list[str] = []
    stats = table.by_setting(names)
    for name in names:
        if not table.present(name):
            continue
        m = metric(name)
        means = stats[(name, "mean")].dropna()
        if means.empty:
            continue
        lo, hi = float(means.min()), float(means.max())
        if lo == hi:
            lines.append(f"- **{m.label}**: the same for every setting ({fmt_value(name, lo)}).")
            continue

        if m.better == 0:
            lines.append(
                f"- **{m.label}**: lowest with {_where(table, means, name, lo)}, "
                f"highest with {_where(table, means, name, hi)}; {_spread(name, lo, hi)}."
            )
            continue
        best, worst = (lo, hi) if m.better < 0 else (hi, lo)
        lines.append(
            f"- **{m.label}** ({'lower' if m.better < 0 else 'higher'} is better): best with "
            f"{_where(table, means, name, best)}, worst with {_where(table, means, name, worst)}; "
            f"{_spread(name, lo, hi)}."
        )
    return lines


def _where(table: SweepTable, means: pd.Series, name: str, v: float) -> str:
    """The setting with value ``v``: ties are common (several settings without a major fault),
    so the first is named and the others counted."""
    at = [i for i, x in means.items() if x == v]
    more = f" and {len(at) - 1} other setting{'s' if len(at) > 2 else ''}" if len(at) > 1 else ""
    return f"{_setting(table, at[0])}{more} ({fmt_value(name, v)})"


def _setting(table: SweepTable, idx: Any) -> str:
    values = idx if isinstance(idx, tuple) else (idx,)
    return ", ".join(f"{k}={table.label(k, str(v))}" for k, v in zip(table.swept, values, strict=True))


def findings(table: SweepTable, sweep_dir: Path) -> list[str]:
    """What the known results of a few sweep shapes are about, measured."""
    out: list[str] = []
    df = table.df
    # Thrashing: CPU utilisation over the degree of multiprogramming.
    hue = table.swept[1] if table.swept[:1] == ["nprocs"] and len(table.swept) == 2 else None
    if (
        (table.swept == ["nprocs"] or hue is not None)
        and table.present("cpu_utilization")
        and table.present("swap_utilization")
    ):
        # With a second key (load control), the classic marks are the first curve's: the machine without it.
        base = df if hue is None else df[df[hue] == table.order[hue][0]]
        means = (
            base.assign(_n=base["nprocs"].astype(float))
            .groupby("_n")[
                ["cpu_utilization", "swap_utilization", "mean_time_between_faults_s", "swap_service_time_s"]
            ]
            .mean()
        )
        if len(means) >= 3:
            n = means.index.tolist()
            cpu = means["cpu_utilization"].tolist()
            marks = thrashing_marks(
                n, cpu, means["swap_utilization"].tolist(), means["mean_time_between_faults_s"].tolist(),
                float(means["swap_service_time_s"].max()),
            )  # fmt: skip
            i = cpu.index(max(cpu))
            after = min(cpu[i:])
            interior = 0 < i < len(n) - 1
            out.append(
                f"- **Thrashing curve**: CPU utilisation peaks at {max(cpu):.0%} with {n[i]:g} processes"
                + (
                    f" and falls to {after:.0%} past it ({(1 - after / max(cpu)):.0%} lower)."
                    if interior
                    else " — at the edge of the sweep, so the sweep does not show an interior maximum."
                )
            )
            if marks["fifty"] is not None:
                out.append(
                    f"- **50 % rule**: the swap device is busy half of the time at about {marks['fifty']:.1f} processes."
                )
            if marks["ls"] is not None:
                out.append(
                    f"- **L = S**: the mean CPU time between faults falls to the swap service time "
                    f"({fmt_value('swap_service_time_s', float(means['swap_service_time_s'].max()))}) at about "
                    f"{marks['ls']:.1f} processes."
                )
            if hue is not None:
                out.extend(_other_curves(table, df, hue, n, cpu, i))
    # Belady: faults against frames, per policy.
    if table.swept and table.swept[0] == "ram" and table.present("faults"):
        page = int(table.setting_raw("page_size") or 0)
        groups = table.swept[1:2]
        for gv, g in df.groupby(groups) if groups else [((), df)]:
            by_ram = g.groupby("ram")["faults"].mean()
            pts = sorted((table.numeric("ram", str(r)) or 0.0, float(f)) for r, f in by_ram.items())
            name = (
                f"{groups[0]}={table.label(groups[0], str(gv[0] if isinstance(gv, tuple) else gv))}"
                if groups
                else "all jobs"
            )
            rises = [(a, b) for a, b in itertools.pairwise(pts) if b[1] > a[1]]

            def size(b: float) -> str:
                return (f"{b / page:g} frame{'s' if b != page else ''}") if page else format_size(int(b))

            if rises:
                (r0, f0), (r1, f1) = rises[0]
                out.append(
                    f"- **{name}**: {f0:g} faults with {size(r0)} but {f1:g} with {size(r1)} — more memory, "
                    "more faults (Belady's anomaly)."
                )
            else:
                seq = ", ".join(f"{f:g}" for _, f in pts)
                out.append(
                    f"- **{name}**: never more faults with more memory ({seq} from {size(pts[0][0])} to {size(pts[-1][0])})."
                )
    # Jobs cut short: their counts cover only `duration`, which a comparison must know.
    if table.present("unfinished"):
        cut = df[df["unfinished"] > 0]
        if len(cut):
            dur = _duration(table)
            names = "; ".join(table.setting(r) for _, r in cut.head(6).iterrows()) + (
                "; ..." if len(cut) > 6 else ""
            )
            out.append(
                f"- **Stopped at `duration` ({dur})**: {len(cut)} of {table.ok} jobs were stopped with processes "
                f"still running ({names}); their counts cover only that much simulated time (hollow markers in "
                "the figures)."
            )
    # Tuning: the best point the sweeper found.
    res = sweep_dir / "optimization_results.yaml"
    if table.present("objective"):
        best = df.iloc[int(df["objective"].to_numpy().argmin())]
        line = f"- **Best point**: objective {best['objective']:,.4g} with {table.setting(best)}"
        if res.is_file():
            doc = load_yaml(res.read_text()) or {}
            params = ", ".join(f"{k}={v}" for k, v in (doc.get("best_params") or {}).items())
            line += f" (the sweeper reports best_params {params}, best_value {float(doc.get('best_value', math.nan)):,.4g})"
        out.append(line + ".")
    return out


def _setup(table: SweepTable, sweep_dir: Path) -> list[tuple[str, str]]:
    """The base settings of the sweep, as the first job's settings.json records them."""
    out: list[tuple[str, str]] = []
    for key in _SETUP_KEYS:
        if key in table.swept:
            out.append((key, "swept (below)"))
            continue
        shown = table.setting_value(key)
        if shown is None and table.settings is None:
            # A sweep from before settings.json: Hydra's record of the group options, if any.
            for r in table.rows:
                choices = job_choices(sweep_dir / r["job"])
                if key in choices:
                    shown = choices[key]
                    break
        if key == "nprocs" and table.setting_raw("workload.kind") in ("pageref", "trace"):
            shown = _processes_run(table, sweep_dir) or shown
        if shown is not None:
            out.append((key, shown))
    return out


def _processes_run(table: SweepTable, sweep_dir: Path) -> str | None:
    """How many processes the jobs ran: a trace says how many, a reference string is one (nprocs unused)."""
    counts: list[int] = []
    for r in table.rows:
        try:
            n = json.loads((sweep_dir / r["job"] / "run.json").read_text()).get("nprocs")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(n, int) and n > 0 and n not in counts:
            counts.append(n)
    if not counts:
        return None
    kind = table.setting_raw("workload.kind")
    return f"{', '.join(map(str, sorted(counts)))} (from the {'reference string' if kind == 'pageref' else 'trace'})"


def _command(sweep_dir: Path) -> str:
    mr = sweep_dir / "multirun.yaml"
    if not mr.is_file():
        return ""
    doc = load_yaml(mr.read_text()) or {}
    task = ((doc.get("hydra") or {}).get("overrides") or {}).get("task") or []
    params = (((doc.get("hydra") or {}).get("sweeper") or {}).get("params")) or {}
    parts = ["python run.py -m", *(str(t) for t in task)]
    given = {str(t).split("=", 1)[0].lstrip("+~") for t in task}
    extra = [f"{k}={v}" for k, v in params.items() if k not in given]
    return " ".join(parts) + (f"   # and from the preset: {' '.join(extra)}" if extra else "")


def _table_block(table: SweepTable, names: list[str]) -> Block:
    stats = table.by_setting(names)
    seeds = table.seeds > 1
    header = [*(table.swept or ["jobs"]), *(metric(n).label for n in names)]
    if seeds:
        header.append("seeds")
    rows = []
    for idx, r in stats.iterrows():
        values = idx if isinstance(idx, tuple) else (idx,)
        # Nothing swept: one row for all the jobs, under the "jobs" heading.
        cells = (
            [table.label(k, str(v)) for k, v in zip(table.swept, values, strict=True)]
            if table.swept
            else [str(idx)]
        )
        for n in names:
            mean, sd = r[(n, "mean")], r[(n, "std")]
            text = fmt_value(n, float(mean))
            if seeds and isinstance(sd, float) and not math.isnan(sd) and sd > 0:
                text += f" ± {fmt_value(n, float(sd))}"
            cells.append(text)
        if seeds:
            cells.append(f"{int(r[(names[0], 'count')])}")
        rows.append(cells)
    return ("table", (header, rows))


def _blocks(sweep_dir: Path, table: SweepTable, wanted: list[str], figures: list[Path]) -> list[Block]:
    cfg = table.cfg
    name = str(cfg.get("name") or sweep_dir.name)
    names = list(dict.fromkeys(n for entry in wanted for n in entry.split("|")))
    shown = [n for n in names if table.present(n)]
    b: list[Block] = [("h1", f"vmexp sweep: {name}")]
    if cfg.get("question"):
        b.append(("p", f"**Question.** {cfg['question']}"))
    elif table.swept:
        # No preset (or one without a question): the sweep itself is the question. The default
        # experiment has none of its own, since whatever it said of its workload and machine is
        # untrue as soon as a sweep or an override changes them.
        keys = [f"`{k}`" for k in table.swept]
        named = keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
        b.append(("p", f"**Question.** What changes with {named}?"))
    if cfg.get("expected"):
        b.append(("p", f"**Known result.** {cfg['expected']}"))
    n_failed = len(table.failed)
    n_stopped = sum(1 for r in table.rows if r.get("status") == "stopped")
    stopped = (
        f" {n_stopped} of {len(table.rows)} jobs were stopped at `duration` "
        f"({_duration(table)}) with processes unfinished: "
        "their counts cover only that much simulated time."
        if n_stopped
        else ""
    )
    b.append(("h2", "What was run"))
    b.append(
        (
            "p",
            f"{len(table.rows)} jobs, "
            + (
                f"{n_failed} failed (listed below)."
                if n_failed
                else "all finished."
                if not n_stopped
                else "none failed."
            )
            + stopped,
        )
    )
    cmd = _command(sweep_dir)
    if cmd:
        b.append(("pre", cmd))
    b.append(("table", (["setting", "value"], [[k, v] for k, v in _setup(table, sweep_dir)])))
    b.append(("h2", "What was swept"))
    items = [f"`{k}`: {', '.join(table.label(k, v) for v in table.order[k])}" for k in table.swept]
    if table.seeds > 1:
        items.append(f"`seed`: {table.seeds} seeds per setting, pooled (mean ± standard deviation)")
    # What was swept is read from the jobs that finished: when some failed, their values are not
    # counted (threshold=foo,banana, both refused, swept nothing that ran), and the line says so.
    b.append(("ul", items or [f"nothing varies between the {'finished ' if table.failed else ''}jobs"]))
    b.append(("h2", "What the numbers say"))
    b.append(
        ("ul", [line.removeprefix("- ") for line in findings(table, sweep_dir) + comparison(table, shown)])
    )
    if shown and table.ok:
        b.append(("h2", "Results"))
        block = _table_block(table, shown)
        b.append(block)
        note = "Totals over the processes of each job."
        if any(cell == "–" for row in block[1][1] for cell in row):
            note = (
                "Totals over the processes of each job; – where a value is undefined "
                "(the mean time between major faults of a run without any)."
            )
        b.append(("p", f"{note} `summary.csv` has every metric of every job."))
    if figures:
        b.append(("h2", "Figures"))
        for p in figures:
            b.append(("img", p))
    if table.failed:
        b.append(("h2", "Failed jobs"))
        b.append(("ul", [f"`{r['job']}`: {r.get('error') or r.get('status')}" for r in table.failed]))
    b.append(("p", f"Rebuild this report with `python -m vmexp.report {sweep_dir}`."))
    return b


def _other_curves(
    table: SweepTable, df: pd.DataFrame, hue: str, n: list[float], cpu: list[float], i: int
) -> list[str]:
    """Each further curve of a thrashing sweep against the first at the sweep's largest n."""
    last, peak = n[-1], max(cpu)
    out = []
    for g in table.order[hue][1:]:
        d = df[df[hue] == g]
        at = d[d["nprocs"].astype(float) == last]["cpu_utilization"].mean()
        if not math.isfinite(at) or peak <= 0:
            continue
        out.append(
            f"- **{hue} = {table.label(hue, g)}**: CPU utilisation with {last:g} processes is {at:.0%}, "
            f"{at / peak:.0%} of the peak ({peak:.0%} at {n[i]:g}), against {cpu[-1]:.0%} with "
            f"{hue} = {table.label(hue, table.order[hue][0])}"
            + (" — past the knee it stays near the peak." if at >= 0.8 * peak else ".")
        )
    return out


def _duration(table: SweepTable) -> str:
    """The run length that stopped the jobs: ``duration``, or a generated workload's horizon when it is null."""
    value = table.setting_raw("duration")
    if isinstance(value, int):
        return format_duration(value)
    return f"{format_duration(GENERATED_HORIZON)}, a generated workload's horizon"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for kind, v in blocks:
        if kind == "h1":
            out += [f"# {v}", ""]
        elif kind == "h2":
            out += [f"## {v}", ""]
        elif kind == "p":
            out += [str(v), ""]
        elif kind == "pre":
            out += ["```", str(v), "```", ""]
        elif kind == "ul":
            out += [f"- {item}" for item in v] + [""]
        elif kind == "table":
            header, rows = v
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
            out += ["| " + " | ".join(_md_cell(str(c)) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{v.stem}](figures/{v.name})", ""]
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Markdown's **bold** and `code` as HTML, on escaped text."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72em;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.25em .6em;"
    "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "pre{background:#f6f6f6;padding:.6em;overflow-x:auto}code{background:#f3f3f3;padding:0 .2em}"
    "figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}"
)


def render_html(blocks: list[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for kind, v in blocks:
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{_inline_html(str(v))}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(str(v))}</p>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(str(v))}</pre>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in v) + "</ul>")
        elif kind == "table":
            header, rows = v
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            out += [
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
            ]
            out.append("</table>")
        elif kind == "img":
            out.append(png_figure(v))
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(
    sweep_dir: Path,
    keys: list[str],
    rows: list[dict[str, Any]],
    figures: list[Path],
    wanted: list[str],
    cfg: dict[str, Any],
) -> None:
    table = SweepTable(keys, rows, cfg)
    blocks = _blocks(sweep_dir, table, wanted, figures)
    atomic_write(sweep_dir / "report.md", render_markdown(blocks))
    atomic_write(sweep_dir / "report.html", render_html(blocks, str(blocks[0][1])))
