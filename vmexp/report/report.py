"""The sweep report: what was asked, what was swept, the table, the figures, what the numbers say.

Written twice from the same content: ``report.md`` for reading in a
repository and ``report.html``, self-contained (figures embedded as data
URIs), for a browser or an e-mail.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import yaml

from vmexp.metrics import atomic_write
from vmexp.report.sweep import METRICS
from vmexp.report.sweep_figures import label_value, order_values
from vmexp.units import format_size

__all__ = ["write_report", "comparison"]

_TABLE_METRICS = [
    "minflt",
    "majflt",
    "brk",
    "mmap",
    "munmap",
    "rss_peak_bytes",
    "fragmentation",
    "cpu_utilization",
    "pswpout",
]
# For each metric, is less better?
_LOWER_IS_BETTER = {m: True for m in METRICS} | {"cpu_utilization": False}


def _fmt(metric: str, v: Any) -> str:
    if v == "" or v is None:
        return ""
    unit = METRICS[metric][1]
    if unit == "bytes":
        return format_size(int(v))
    if unit == "ratio":
        return f"{float(v) * 100:.1f} %"
    if unit == "s":
        return f"{float(v):.3f} s"
    return f"{int(v):,}"


def _setting(keys: list[str], row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={label_value(k, str(row.get(k, '')))}" for k in keys) or row["job"]


def comparison(keys: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """Sentences: for each main metric, the best and worst setting and by how much."""
    ok = [r for r in rows if r.get("status") == "ok"]
    lines: list[str] = []
    if len(ok) < 2:
        return ["Only one job finished, so there is nothing to compare."]
    for metric in _TABLE_METRICS:
        vals = [(float(r[metric]), _setting(keys, r)) for r in ok]
        lo, hi = min(vals), max(vals)
        label = METRICS[metric][0]
        if lo[0] == hi[0]:
            lines.append(f"- **{label}**: the same in every job ({_fmt(metric, lo[0])}).")
            continue
        best, worst = (lo, hi) if _LOWER_IS_BETTER[metric] else (hi, lo)
        ratio = f"{hi[0] / lo[0]:.2f}×" if lo[0] > 0 else "from zero"
        lines.append(
            f"- **{label}**: best with {best[1]} ({_fmt(metric, best[0])}), worst with {worst[1]} "
            f"({_fmt(metric, worst[0])}); the largest is {ratio} the smallest."
        )
    return lines


def _question(sweep_dir: Path, rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    for r in rows:
        cfg = sweep_dir / r["job"] / ".hydra" / "config.yaml"
        if cfg.is_file():
            c = yaml.safe_load(cfg.read_text()) or {}
            return str(c.get("name", "")), str(c.get("question", "")), str(c.get("expected", ""))
    return "", "", ""


def write_report(sweep_dir: Path, keys: list[str], rows: list[dict[str, Any]], figures: list[Path]) -> None:
    name, question, expected = _question(sweep_dir, rows)
    failed = [r for r in rows if r.get("status") != "ok"]
    swept = {k: order_values([str(r.get(k, "")) for r in rows]) for k in keys}
    header = ["setting", "status", *(METRICS[m][0] for m in _TABLE_METRICS)]
    table = [[_setting(keys, r), r["status"], *(_fmt(m, r.get(m, "")) for m in _TABLE_METRICS)] for r in rows]
    md = [f"# vmexp sweep: {name or sweep_dir.name}", ""]
    if question:
        md += [f"**Question.** {question}", ""]
    if expected:
        md += [f"**Known result.** {expected}", ""]
    md += ["## What was swept", ""]
    md += [f"- `{k}`: {', '.join(label_value(k, v) for v in vals)}" for k, vals in swept.items()]
    md += [
        "",
        f"{len(rows)} jobs, {len(failed)} failed." if failed else f"{len(rows)} jobs, all finished.",
        "",
    ]
    md += ["## Results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    md += ["", "Totals over the processes of each job; the full table is `summary.csv`.", ""]
    md += ["## What the numbers say", "", *comparison(keys, rows), ""]
    if failed:
        md += (
            ["## Failed jobs", ""]
            + [f"- `{r['job']}`: {r.get('error') or r['status']}" for r in failed]
            + [""]
        )
    md += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figures] + [""]
    atomic_write(sweep_dir / "report.md", "\n".join(md))

    def cell(c: Any) -> str:
        return html.escape(str(c))

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>vmexp sweep: {cell(name or sweep_dir.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>vmexp sweep: {cell(name or sweep_dir.name)}</h1>",
    ]
    if question:
        parts.append(f"<p><b>Question.</b> {cell(question)}</p>")
    if expected:
        parts.append(f"<p><b>Known result.</b> {cell(expected)}</p>")
    parts.append("<h2>What was swept</h2><ul>")
    parts += [
        f"<li><code>{cell(k)}</code>: {cell(', '.join(label_value(k, v) for v in vals))}</li>"
        for k, vals in swept.items()
    ]
    parts.append(
        "</ul><h2>Results</h2><table><tr>" + "".join(f"<th>{cell(h)}</th>" for h in header) + "</tr>"
    )
    parts += ["<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in table]
    parts.append("</table><h2>What the numbers say</h2><ul>")
    for line in comparison(keys, rows):
        text = cell(line.removeprefix("- "))
        while "**" in text:
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
        parts.append(f"<li>{text}</li>")
    parts.append("</ul>")
    if failed:
        parts.append("<h2>Failed jobs</h2><ul>")
        parts += [
            f"<li><code>{cell(r['job'])}</code>: {cell(r.get('error') or r['status'])}</li>" for r in failed
        ]
        parts.append("</ul>")
    parts.append("<h2>Figures</h2>")
    for p in figures:
        data = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<p><img alt='{cell(p.stem)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>\n")
    atomic_write(sweep_dir / "report.html", "\n".join(parts))
