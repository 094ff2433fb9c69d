"""The documentation that the declarations write: README's tables and ``python run.py --help``.

Every table here is generated from the one declaration of each setting
(``vmexp.config``), component (``vmexp.registry``) and metric
(``vmexp.metrics``), so the README cannot drift from the code:

    python -m vmexp.docs --check README.md    # exit 1 when a generated table is stale
    python -m vmexp.docs --write README.md    # rewrite them

A generated block in the README sits between ``<!-- generated: NAME -->``
and ``<!-- end: NAME -->``; ``tests/test_settings.py`` runs the check.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from vmexp.cliargs import Parser
from vmexp.config import CostSettings, Settings
from vmexp.fields import Spec, declared
from vmexp.metrics import FILE_METRICS, METRICS
from vmexp.registry import REGISTRIES, Registry

__all__ = ["BLOCKS", "help_text", "knob_table", "metric_table", "timeseries_table", "update_readme"]

# How a kind of value is written (the unit column: what a user types).
_UNIT = {"size": "bytes", "duration": "time", "durations": "times", "fraction": "0..1"}
_SIZES_NOTE = (
    "Sizes take binary units everywhere: `4096`, `64k`, `128K`, `2M`, `1G`, `0x1000`; "
    "`kB`, `KB` and `KiB` all mean 1024 bytes, as in /proc/meminfo (there are no decimal units). "
    "Durations: `250ns`, `10us`, `5ms`, `2s`, `1min`; a bare number is seconds."
)


def _unit(spec: Spec) -> str:
    return _UNIT.get(spec.kind, spec.unit_override or "")  # a list of sizes (custom) says bytes itself


def _meaning(spec: Spec) -> str:
    text = spec.doc
    valid = spec.valid_text()
    if valid:
        text += f" ({valid})"
    if spec.null:
        text += f"; null = {spec.null}"
    return text


def _default(spec: Spec) -> str:
    return spec.written_default()


def _rows(cls: type, prefix: str = "", *, skip: tuple[type, ...] = ()) -> Iterator[tuple[str, Spec]]:
    for name, _f, spec in declared(cls):
        key = f"{prefix}{name}"
        if spec.kind == "section" and spec.section is not None:
            yield key, spec
            if spec.section not in skip:
                yield from _rows(spec.section, f"{key}.", skip=skip)
        else:
            yield key, spec


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def knob_table() -> str:
    """Every key of the config: default, unit, meaning (groups' own keys after the group)."""
    out = ["| key | default | unit | meaning |", "|---|---|---|---|"]
    for key, spec in _rows(Settings, skip=(CostSettings,)):
        if spec.kind == "section":
            if spec.group:
                out.append(f"| `{key}` | `{_group_default(key)}` | group | {_md(spec.doc)} (keys below) |")
            else:
                below = " (table below)" if spec.section is CostSettings else ""
                out.append(f"| `{key}.*` | | | {_md(spec.doc)}{below} |")
        elif spec.kind == "open":
            reg: Registry[object] = spec.registry
            options = ", ".join(f"`{n}`" for n in reg.names())
            what = f"{_md(spec.doc)}: {options}" if key != "workload" else _md(spec.doc)
            if key == "policy.params":
                out.append(f"| `{key}.*` | | | {what} (Components, below) |")
            else:
                out.append(f"| `{key}` | `{_group_default(key)}` | group | {what} (Components, below) |")
        else:
            out.append(f"| `{key}` | `{_default(spec)}` | {_unit(spec)} | {_md(_meaning(spec))} |")
    return "\n".join(out)


def _group_default(key: str) -> str:
    """The group's option in conf/config.yaml's defaults list (what a run uses unless told otherwise)."""
    return _DEFAULTS().get(key, "")


def _read_defaults() -> dict[str, str]:
    import yaml

    path = Path(__file__).resolve().parent.parent / "conf" / "config.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        return {}
    out: dict[str, str] = {}
    for entry in doc.get("defaults") or []:
        if isinstance(entry, dict):
            for k, v in entry.items():
                if isinstance(k, str) and not k.startswith("override") and v is not None:
                    out[k] = str(v)
    return out


_DEFAULTS = functools.cache(_read_defaults)


def cost_table() -> str:
    out = ["| key | default | what it is |", "|---|---|---|"]
    for name, _f, spec in declared(CostSettings):
        out.append(f"| `machine.cost.{name}` | `{_default(spec)}` | {_md(spec.doc)} |")
    return "\n".join(out)


def _params(cls: type, prefix: str = "") -> Iterator[str]:
    for name, _f, spec in declared(cls):
        if spec.kind == "section" and spec.section is not None:
            yield from _params(spec.section, f"{prefix}{name}.")
            continue
        unit = _unit(spec)
        default = _default(spec)
        shown = "required" if default == "null" and spec.null is None else f"`{default}`"
        extra = f", {unit}" if unit else ""
        yield f"`{prefix}{name}` ({shown}{extra}): {spec.doc}"


_KINDS = {
    "policy": (
        "Replacement policies",
        "`policy=NAME` (`conf/policy/NAME.yaml`); parameters `policy.params.KEY`",
    ),
    "allocator": ("Allocators", "`allocator=NAME` (`conf/allocator/NAME.yaml`); parameters `allocator.KEY`"),
    "workload": ("Workload kinds", "`workload.kind` of a `conf/workload/` file; keys `workload.KEY`"),
    "sizes": ("Size distributions", "`workload.sizes: {dist: NAME, ...}`"),
    "lifetime": ("Lifetime models", "`workload.lifetime: {dist: NAME, ...}`"),
    "access": ("Access patterns", "`workload.access: {pattern: NAME, ...}`"),
}


def component_table() -> str:
    """Every registered component of every kind with its parameters, a table per kind."""
    out: list[str] = []
    for kind, reg in REGISTRIES.items():
        title, how = _KINDS.get(kind, (kind, ""))
        out += [
            f"**{title}** ({how}):",
            "",
            "| name | what it is | parameters (default, unit) |",
            "|---|---|---|",
        ]
        for comp in reg.items():
            params = "; ".join(_params(comp.params)) or "none"
            out.append(f"| `{comp.name}` | {_md(comp.doc)} | {_md(params)} |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def metric_table() -> str:
    """Every metric: where it appears, its unit, how it aggregates, which way is better."""
    out = [
        "| metric | meaning | unit | metrics.json | timeseries.csv (its own table) | summary.csv (over processes; "
        "over seeds) | better |",
        "|---|---|---|---|---|---|---|",
    ]
    better = {-1: "lower", 1: "higher", 0: ""}
    for m in METRICS:
        where = ""
        if m.json is not None:
            where = f"`{'processes[].' if m.scope == 'process' else 'system.'}{'.'.join(m.json)}`"
        agg = ""
        if m.column:
            how = {"process": m.over_processes, "system": "the machine's", "job": "derived"}[m.scope]
            agg = f"`{m.column}` ({how}; {m.over_seeds})"
        series = f"`{m.series}`" if m.series else ""
        out.append(
            f"| {m.name} | {_md(m.label)} | {m.unit} | {where} | {series} | {agg} | "
            f"{better[m.better] if m.column else ''} |"
        )
    return "\n".join(out)


def timeseries_table() -> str:
    """Every column of timeseries.csv with what it holds there.

    A sampled metric's label can say what metrics.json holds (a process's RSS
    at exit); its column holds the value at each sample, or a rate since the
    previous one (``Metric.series_label``, ``Metric.series_unit``).
    """
    out = [
        "| column | rows | meaning | unit |",
        "|---|---|---|---|",
        "| `time_s` | all | the sample's simulated time | s |",
        "| `pid` | all | the process (1, 2, ...), or 0 for the machine's row | |",
    ]
    rows = {"process": "pid ≥ 1", "system": "pid 0"}
    for m in sorted((m for m in METRICS if m.series), key=lambda m: m.series_pos):
        out.append(f"| `{m.series}` | {rows[m.scope]} | {_md(m.series_label)} | {m.series_unit} |")
    return "\n".join(out)


BLOCKS: dict[str, Callable[[], str]] = {
    "knobs": lambda: _SIZES_NOTE + "\n\n" + knob_table(),
    "costs": cost_table,
    "components": component_table,
    "metrics": metric_table,
    "timeseries": timeseries_table,
}

_BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)


def update_readme(text: str) -> str:
    """``text`` with every generated block rewritten from the declarations."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"README: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[name]()}\n{m.group(4)}"

    return _BLOCK.sub(repl, text)


# ---------------------------------------------------------------------------
# python run.py --help
# ---------------------------------------------------------------------------


def _wrap(key: str, default: str, unit: str, meaning: str, width: int = 24) -> str:
    head = f"  {key:<{width}} {default:<10} {unit:<6}"
    return (
        f"{head} {meaning}"
        if len(key) <= width
        else f"  {key}\n  {'':<{width}} {default:<10} {unit:<6} {meaning}"
    )


def help_text() -> str:
    """What ``python run.py --help`` prints (a Hydra help template: ``$$`` is a dollar sign)."""
    lines = [
        "vmexp: declarative experiments on Linux process memory management",
        "(glibc 2.36 malloc, demand paging, swap, page replacement) on SimPy.",
        "",
        "  python run.py                               one run of the default experiment",
        "  python run.py -m threshold=64k,128k,256k    a sweep, then summary.csv, figures and a report",
        "  python run.py -m experiment=thrashing       a preset from experiments/ (each is a sweep: -m)",
        "  python run.py -m ... hydra.launcher.n_jobs=2  at most 2 jobs at once (default: one per core)",
        "  python run.py KEY=VALUE GROUP=OPTION ...    change a setting, pick a group's option",
        "  python run.py --cfg job                     the composed config",
        "",
        _SIZES_NOTE.replace("`", ""),
        "",
        "== Settings ==  KEY  DEFAULT  UNIT  MEANING",
    ]
    for key, spec in _rows(Settings):
        if spec.kind == "section":
            if spec.group:
                lines += ["", f"== {key} ==  {key}=OPTION (default {_group_default(key)}): {spec.doc}"]
            elif "." not in key:  # a section of its own (cgroup): not under the group printed before it
                lines += ["", f"== {key} ==  {spec.doc}"]
            continue
        if spec.kind == "open":
            reg: Registry[object] = spec.registry
            if key == "policy.params":
                lines += ["", f"  {key}.KEY: {spec.doc}"]
            else:
                lines += ["", f"== {key} ==  {key}=OPTION (default {_group_default(key)}): {spec.doc}"]
            for comp in reg.items():
                params = "; ".join(p.replace("`", "") for p in _params(comp.params)) or "no parameters"
                lines.append(f"  {comp.name:<12} {comp.doc}")
                if key != "workload":
                    lines.append(f"  {'':<12}   {params}")
            if key == "workload":
                lines.append(
                    "  (every key of every kind, size distribution, lifetime and access pattern: README.md)"
                )
            continue
        lines.append(_wrap(key, _default(spec), _unit(spec), _meaning(spec)))
    lines += [
        "",
        "== Option files (conf/) ==",
        "$APP_CONFIG_GROUPS",
        "",
        "Metrics: the columns of summary.csv, the names report.metrics takes:",
        "  " + ", ".join(m.column for m in METRICS if m.column),
        "objective weighs all but "
        + ", ".join(c for c in FILE_METRICS if c != "objective")
        + " (counted from syscalls.csv after the run) and objective itself.",
        "README.md explains each setting and metric; python run.py --hydra-help shows Hydra's own flags.",
    ]
    text = "\n".join(lines) + "\n"
    assert "${" not in text, "the help is a Hydra template: OmegaConf would resolve ${...}"
    return text.replace("$", "$$").replace("$$APP_CONFIG_GROUPS", "$APP_CONFIG_GROUPS")


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m vmexp.docs", description=__doc__.splitlines()[0])
    ap.add_argument("readme", type=Path, nargs="?", default=Path("README.md"))
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="exit 1 when a generated block is stale")
    group.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    a = ap.parse_args(argv)
    text = a.readme.read_text(encoding="utf-8")
    new = update_readme(text)
    if a.write:
        if new != text:
            a.readme.write_text(new, encoding="utf-8")
            print(f"{a.readme}: generated blocks rewritten")
        return 0
    if new != text:
        print(
            f"{a.readme}: generated blocks are stale; run python -m vmexp.docs --write {a.readme}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    from vmexp.console import run_program

    run_program(main)
