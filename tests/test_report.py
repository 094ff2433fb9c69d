"""Figures, sweep summaries and reports: what a reader of a run or a sweep gets.

The numbers these tests hold the report to come from outside the report
code: real glibc 2.36's syscalls for a trace (tests/traces/expected.json),
arithmetic a reader can redo, and hand-written job results.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from tests import warm
from tests.conftest import ROOT, compose_cfg, settings
from vmexp.app import run_settings
from vmexp.config import settings_json, validate
from vmexp.libc.base import MALLINFO_FIELDS
from vmexp.report.run_figures import (
    MIN_SAMPLES,
    RunData,
    Table,
    _faults_fig,
    _heap_fig,
    _layout_fig,
    _memory_fig,
    _rate_tick,
    _title,
    draw_run_figures,
    heap_raster,
    layout_ticks,
    load_run,
    parse_maps,
    too_short,
)
from vmexp.report.style import STYLE, BinaryLocator, LogBinaryLocator, fmt_bytes
from vmexp.report.sweep import COLUMNS, ReportError, aggregate, figure_metrics, metric, summary_rows
from vmexp.report.sweep_figures import _X, _plot_metric, crossing, powers_of_two, thrashing_marks
from vmexp.report.table import SweepTable

PY = sys.executable
TRACES = ROOT / "tests" / "traces"
MiB = 1 << 20


# --- axes that speak in the units of memory ----------------------------------------


def test_byte_ticks_fall_on_multiples_of_a_power_of_two() -> None:
    # 64 MiB of RAM with some headroom: ticks every 16 MiB, not matplotlib's 0, 9.54, 19.07, ... MiB.
    ticks = [t for t in BinaryLocator().tick_values(0, 70 * MiB) if t <= 70 * MiB]
    assert ticks == [0, 16 * MiB, 32 * MiB, 48 * MiB, 64 * MiB]
    assert [fmt_bytes(t) for t in ticks] == ["0 B", "16 MiB", "32 MiB", "48 MiB", "64 MiB"]
    assert fmt_bytes(1536 * 1024) == "1.5 MiB"
    assert fmt_bytes(65536) == "64 KiB"


def test_log_byte_ticks_span_a_page_to_a_47_bit_address_space() -> None:
    ticks = LogBinaryLocator().tick_values(4096, 1 << 47)
    exponents = [int(t).bit_length() - 1 for t in ticks]
    assert all(1 << e == int(t) for e, t in zip(exponents, ticks, strict=True))  # powers of two only
    assert exponents[0] <= 12 and exponents[-1] >= 47  # from a 4 KiB page to 128 TiB
    assert len(ticks) <= 10
    assert "1 TiB" in [fmt_bytes(t) for t in ticks]


@pytest.mark.parametrize(
    ("top", "step", "expected"),
    [
        (0.02, 0.005, ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]),
        (0.1, 0.025, ["0.0%", "2.5%", "5.0%", "7.5%", "10.0%"]),
        (1.0, 0.2, ["0%", "20%", "40%", "60%", "80%", "100%"]),
    ],
)
def test_percent_ticks_have_the_decimals_that_keep_them_apart(
    top: float, step: float, expected: list[str]
) -> None:
    # CPU utilisation of 3.4..3.8 % (a short page-reference sweep): ticks every 0.5 %, which whole
    # percents labelled 0%, 0%, 1%, 2%, 2%, ... (the sweep's cpu_utilization.png, compare.png).
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MultipleLocator

    from vmexp.report.style import percent_axis

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [0.038, 0.035, 0.034])
        ax.set_ylim(0, top)
        ax.yaxis.set_major_locator(MultipleLocator(step))
        percent_axis(ax)
        fig.canvas.draw()
        ticks = zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
        labels = [label.get_text() for t, label in ticks if -1e-12 <= t <= top + 1e-12]  # those in view
        plt.close(fig)
    assert labels == expected


# --- swept values as people write them -----------------------------------------------


GROUPS = ("address_space", "machine", "policy", "allocator", "workload", "experiment")


def job_settings(*overrides: str) -> dict[str, Any] | None:
    """The settings.json a job with these overrides writes (None when they do not validate)."""
    try:
        s = settings(*overrides)
    except Exception:
        return None
    choices = {k: v for k, _, v in (o.partition("=") for o in overrides) if k in GROUPS}
    doc: dict[str, Any] = json.loads(settings_json(s, choices))
    return doc


def table_of(override: str, values: list[str], *extra: str) -> SweepTable:
    """A sweep of one key as summary_rows reads it: the override's key (no ``+``), each job's settings.json."""
    key = override.lstrip("+")
    rows = [
        {key: v, "status": "ok", "minflt": i, "_settings": job_settings(*extra, f"{override}={v}")}
        for i, v in enumerate(values)
    ]
    return SweepTable([key], rows)


@pytest.mark.parametrize(
    ("key", "value", "label", "extra"),
    [
        ("threshold", "64k", "64 KiB", ()),
        ("threshold", "65536", "64 KiB", ()),
        ("threshold", "64kb", "64 KiB", ()),  # kB is KiB, as in /proc/meminfo (README, The knobs)
        ("threshold", "null", "glibc's default (dynamic)", ()),
        ("allocator.top_pad", "0", "0 B", ()),
        ("+workload.volume", "2560M", "2.5 GiB", ("workload=working_set",)),
        ("page_size", "2M", "2 MiB", ()),
        ("workload.lifetime.long_lived", "0", "0", ("workload=working_set",)),
        ("workload.lifetime.long_lived", "0.05", "0.05", ("workload=working_set",)),
        ("policy.params.tau", "10ms", "10 ms", ("policy=ws",)),
        ("nprocs", "12", "12", ()),
        ("policy", "lru2q", "lru2q", ()),
    ],
)
def test_swept_values_read_with_their_units(key: str, value: str, label: str, extra: tuple[str, ...]) -> None:
    """The label comes from the job's settings.json (typed value and unit), not from the override text."""
    t = table_of(key, [value], *extra)
    assert t.label(key.lstrip("+"), value) == label


def test_sizes_sort_by_size_with_the_default_last_and_names_keep_their_order() -> None:
    assert table_of("threshold", ["256k", "null", "64k", "128k", "64k"]).order["threshold"] == [
        "64k",
        "128k",
        "256k",
        "null",
    ]
    assert table_of("ram", ["1G", "512M", "2M"]).order["ram"] == ["2M", "512M", "1G"]
    assert table_of("policy", ["lru", "fifo", "clock", "fifo"]).order["policy"] == ["lru", "fifo", "clock"]


# --- the marks of a thrashing curve ----------------------------------------------------


def test_crossing_interpolates_between_the_points_either_side() -> None:
    assert crossing([1, 2, 3, 4], [0.0, 0.2, 0.4, 0.8], 0.5) == pytest.approx(3.25)
    assert crossing([1, 2, 3], [0.9, 0.6, 0.1], 0.5) == pytest.approx(2.2)
    assert crossing([1, 2, 3], [0.1, 0.2, 0.3], 0.5) is None


def test_thrashing_marks_peak_fifty_percent_rule_and_l_equals_s() -> None:
    n = [1.0, 2.0, 3.0, 4.0, 5.0]
    cpu = [0.4, 0.8, 0.9, 0.5, 0.2]
    swap = [0.0, 0.0, 0.3, 0.7, 0.9]  # half busy halfway between 3 and 4 processes
    life = [
        0.0,
        0.0,
        1e-3,
        1e-5,
        1e-6,
    ]  # L = 0: no fault at all, left out; S = 1e-4 at the geometric midpoint
    marks = thrashing_marks(n, cpu, swap, life, 1e-4)
    assert marks["peak"] == 3.0 and marks["peak_cpu"] == 0.9
    assert marks["fifty"] == pytest.approx(3.5)
    assert marks["ls"] == pytest.approx(3.5)  # log L is linear between the points: 1e-4 halfway
    assert thrashing_marks(n, cpu, swap, [0.0] * 5, 1e-4)["ls"] is None


# --- a sweep directory from hand-written results ---------------------------------------


def _doc(**v: Any) -> dict[str, Any]:
    """A metrics.json document (schema 1) with one process and the given totals."""
    mallinfo = dict.fromkeys(MALLINFO_FIELDS, 0)
    mallinfo.update(arena=v.get("arena", 0), fordblks=v.get("fordblks", 0), uordblks=v.get("uordblks", 0))
    proc = {
        "pid": 1,
        "name": "p",
        "exit": v.get("exit", "ok"),
        "minflt": v.get("minflt", 0),
        "majflt": v.get("majflt", 0),
        "syscalls": {"brk": v.get("brk", 0), "mmap": v.get("mmap", 0), "munmap": 0, "mremap": 0},
        "mallinfo": mallinfo,
        "rss_peak_bytes": v.get("rss", 0),
        "vsz_peak_bytes": v.get("rss", 0),
        "rss_bytes": v.get("rss", 0),
        "enomem": 0,
        "page_table_peak_bytes": 4096,
        "cpu_time_s": v.get("cpu", 1.0),
    }
    system = {
        "ram_bytes": 64 * MiB,
        "free_bytes_min": 64 * MiB - v.get("rss", 0),
        "pswpin": 0,
        "pswpout": 0,
        "cpu_utilization": v.get("util", 0.5),
        "swap_utilization": 0.0,
        "sim_time_s": v.get("time", 1.0),
        "oom_kills": 0,
        "swap_service_time_s": 1e-4,
    }
    return {"schema": 1, "system": system, "processes": [proc]}


def _job(
    sweep: Path, num: int, overrides: list[str], doc: dict[str, Any] | None, cfg: dict[str, Any]
) -> Path:
    name = f"{num}_" + ",".join(overrides)
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if doc is None:
        (d / "run.json").write_text(json.dumps({"status": "failed", "error": "threshold: expected a size"}))
    else:
        (d / "metrics.json").write_text(json.dumps(doc))
        (d / "run.json").write_text(json.dumps({"status": "ok", "error": ""}))
        written = job_settings(*overrides)
        if written is not None:
            (d / "settings.json").write_text(json.dumps(written))
    return d


PRESET = {
    "name": "demo",
    "question": "Does the threshold matter?",
    "expected": "64 KiB takes three times the minor faults of 256 KiB.",
    "page_size": "4k",
    "report": {"metrics": ["minflt", "mmap", "arena_bytes|fordblks_bytes"]},
}


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """threshold 64k / 256k × seeds 0, 1, a failed job; minflt 300 ± 100 against 100 ± 0."""
    values = {
        ("64k", 0): {"minflt": 200, "mmap": 40, "arena": 4 * MiB, "fordblks": 1 * MiB},
        ("64k", 1): {"minflt": 400, "mmap": 40, "arena": 4 * MiB, "fordblks": 1 * MiB},
        ("256k", 0): {"minflt": 100, "mmap": 40, "arena": 8 * MiB, "fordblks": 2 * MiB},
        ("256k", 1): {"minflt": 100, "mmap": 40, "arena": 8 * MiB, "fordblks": 2 * MiB},
    }
    for i, ((thr, seed), v) in enumerate(values.items()):
        _job(tmp_path, i, [f"threshold={thr}", f"seed={seed}"], _doc(**v), PRESET)
    _job(tmp_path, 4, ["threshold=banana", "seed=0"], None, PRESET)
    return tmp_path


def test_summary_has_one_row_per_job_with_overrides_status_and_metrics(demo: Path) -> None:
    assert aggregate(demo, quiet=True) == 1  # one failed job
    rows = list(csv.DictReader((demo / "summary.csv").read_text().splitlines()))
    assert [(r["threshold"], r["seed"], r["status"]) for r in rows] == [
        ("64k", "0", "ok"),
        ("64k", "1", "ok"),
        ("256k", "0", "ok"),
        ("256k", "1", "ok"),
        ("banana", "0", "failed"),
    ]
    header = next(csv.reader((demo / "summary.csv").read_text().splitlines()))
    assert header == ["threshold", "seed", "job", "status", *COLUMNS, "error"]
    assert rows[0]["faults"] == "200" and rows[0]["fragmentation"] == "0.25"
    assert "threshold" in rows[4]["error"]


def test_the_report_pools_seeds_and_says_which_setting_wins_by_how_much(demo: Path) -> None:
    aggregate(demo, quiet=True)
    md = (demo / "report.md").read_text()
    assert "**Question.** Does the threshold matter?" in md
    assert "**Known result.** 64 KiB takes three times" in md
    assert "`seed`: 2 seeds per setting, pooled" in md
    # Means over the seeds: 300 against 100, so the higher is 3.00x the lower; constant mmap says so.
    assert (
        "**minor faults** (lower is better): best with threshold=256 KiB (100), worst with threshold=64 KiB (300); "
        "the highest is 3.00× the lowest." in md
    )
    assert "**mmap calls**: the same for every setting (40)." in md
    assert "| 64 KiB | 300 ± 141 |" in md  # sample standard deviation of 200 and 400
    assert "Totals over the processes of each job. `summary.csv`" in md  # no cell is undefined: no note on –
    assert "`4_threshold=banana,seed=0`: threshold: expected a size" in md


def test_the_report_explains_a_dash_only_where_its_table_has_one(tmp_path: Path) -> None:
    # The time between major faults of a run without any is undefined: the table shows –, and says why.
    preset = {**PRESET, "report": {"metrics": ["majflt", "mean_time_between_faults_s"]}}
    for i, (thr, majflt) in enumerate([("64k", 0), ("256k", 4)]):
        _job(tmp_path, i, [f"threshold={thr}"], _doc(minflt=100, majflt=majflt, cpu=2.0), preset)
    aggregate(tmp_path, quiet=True)
    md = (tmp_path / "report.md").read_text()
    assert "| 64 KiB | 0 | – |" in md and "| 256 KiB | 4 | 500 ms |" in md
    assert "– where a value is undefined (the mean time between major faults of a run without any)" in md


def test_figures_only_for_metrics_that_vary_and_seeds_as_bands(demo: Path) -> None:
    aggregate(demo, quiet=True)
    pngs = sorted(p.name for p in (demo / "figures").glob("*.png"))
    # mmap is 40 in every job: no figure. The joined entry draws arena and free bytes on one axis.
    assert pngs == ["arena_bytes+fordblks_bytes.png", "minflt.png"]


def test_a_sweep_of_seeds_alone_shows_the_spread_and_one_of_identical_jobs_still_has_a_figure(
    tmp_path: Path,
) -> None:
    seeds, same = tmp_path / "seeds", tmp_path / "same"
    for seed in range(4):
        _job(seeds, seed, [f"seed={seed}"], _doc(minflt=100 + 10 * seed, mmap=40), PRESET)
        _job(same, seed, [f"seed={seed}"], _doc(minflt=100, mmap=40), PRESET)
    aggregate(seeds, quiet=True)
    assert sorted(p.name for p in (seeds / "figures").glob("*.png")) == ["minflt.png"]
    assert "best with" not in (seeds / "report.md").read_text()  # no setting to prefer: only samples
    aggregate(same, quiet=True)
    assert [p.name for p in (same / "figures").glob("*.png")] == ["overview.png"]


def test_the_overview_of_a_sweep_with_one_finished_job_does_not_call_it_all_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One job ran, one failed: the overview figure said "All 1 finished jobs gave the same results".
    from matplotlib.axes import Axes

    said: list[str] = []
    text = Axes.text

    def spy(self: Axes, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
        said.append(s)
        return text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", spy)
    _job(tmp_path, 0, ["threshold=64k"], _doc(minflt=7), PRESET)
    _job(tmp_path, 1, ["threshold=banana"], None, PRESET)
    aggregate(tmp_path, quiet=True)
    assert [p.name for p in (tmp_path / "figures").glob("*.png")] == ["overview.png"]
    overview = [t for t in said if "minor faults: 7" in t]
    assert len(overview) == 1 and overview[0].startswith("The only job that finished:"), said


def test_report_html_is_self_contained_and_embeds_every_figure(demo: Path) -> None:
    aggregate(demo, quiet=True)
    page = (demo / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and "src='http" not in page
    images = page.split("src='data:image/png;base64,")[1:]
    assert len(images) == len(list((demo / "figures").glob("*.png"))) == 2
    for chunk in images:
        assert base64.b64decode(chunk.split("'", 1)[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<b>Question.</b> Does the threshold matter?" in page


def test_an_unknown_report_metric_is_a_one_line_error_after_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmexp.report.__main__ import main

    bad = {**PRESET, "report": {"metrics": ["minflt", "happiness"]}}
    _job(tmp_path, 0, ["threshold=64k"], _doc(minflt=1), bad)
    with pytest.raises(
        ReportError, match=r"^report\.metrics: 'happiness' is not a summary\.csv column \(valid: minflt,"
    ):
        aggregate(tmp_path, quiet=True)
    assert (tmp_path / "summary.csv").is_file()  # the numbers are on disk before the report fails
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "happiness" in err
    assert figure_metrics({}) and all(m in COLUMNS for m in figure_metrics({}))


def test_an_override_named_like_a_metric_does_not_hide_the_metric(tmp_path: Path) -> None:
    _job(
        tmp_path,
        0,
        ["threshold=64k", "+objective={minflt:1}"],
        _doc(minflt=7),
        {"objective": {"minflt": 1.0}},
    )
    keys, rows = summary_rows(tmp_path)
    assert keys == ["threshold", "cfg.objective"]
    assert rows[0]["objective"] == 7.0  # the weighted sum, as the job returned it to the sweeper


def test_jobs_left_by_an_earlier_sweep_into_the_same_directory_are_left_out(tmp_path: Path) -> None:
    old = _job(tmp_path, 0, ["address_space=i386", "workload.volume=1G"], _doc(minflt=1), PRESET)
    os.utime(old / ".hydra" / "overrides.yaml", (1_000_000_000, 1_000_000_000))
    new = _job(tmp_path, 0, ["workload.volume=1G", "address_space=i386"], _doc(minflt=2), PRESET)
    keys, rows = summary_rows(tmp_path)
    assert [r["job"] for r in rows] == [new.name] and keys == ["workload.volume", "address_space"]


def test_a_finished_job_whose_metrics_are_gone_or_cut_off_is_incomplete_not_ok(tmp_path: Path) -> None:
    # A partial copy of a sweep, a deleted or truncated metrics.json: run.json still says "ok".
    # The report must not count it as finished (nor stop at it): the others are reported.
    jobs = [
        _job(tmp_path, i, [f"threshold={t}"], _doc(minflt=10 * (i + 1)), PRESET)
        for i, t in enumerate(["64k", "128k", "256k"])
    ]
    (jobs[1] / "metrics.json").unlink()
    (jobs[2] / "metrics.json").write_text('{"schema": 1, "sys')
    assert aggregate(tmp_path, quiet=True) == 2
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert [(r["status"], r["minflt"], r["error"]) for r in rows] == [
        ("ok", "10", ""),
        ("incomplete", "", "metrics.json is missing (run.json says ok)"),
        ("incomplete", "", "metrics.json cannot be read"),
    ]
    assert "3 jobs, 2 failed" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_the_files_a_sweep_report_writes_follow_the_umask_as_its_figures_do(
    demo: Path, umask: int, mode: int
) -> None:
    # They were always 0600 (mkstemp's temporary): a colleague, a web server or the host user of a
    # container run as root could read the figures but not summary.csv, report.md or metrics.json.
    old = os.umask(umask)
    try:
        aggregate(demo, quiet=True)
    finally:
        os.umask(old)
    for name in ("summary.csv", "report.md", "report.html"):
        assert (demo / name).stat().st_mode & 0o777 == mode, name


def test_a_job_whose_syscalls_csv_is_cut_off_is_incomplete_and_named(tmp_path: Path) -> None:
    # The brk counts come from syscalls.csv: a row cut off midway was int('') and a traceback that
    # stopped the whole report (and vmexp.Run.summary).
    import vmexp

    jobs = [
        _job(tmp_path, i, [f"threshold={t}"], _doc(minflt=1), PRESET) for i, t in enumerate(["64k", "128k"])
    ]
    header = "pid,op,time_s,syscall,addr,length,result\n"
    (jobs[0] / "syscalls.csv").write_text(
        header + "1,0,0.000001,brk,0,0,93824992247808\n1,0,0.000002,brk,9382,"
    )
    (jobs[1] / "syscalls.csv").write_text(header + "1,0,0.000001,brk,0,135168,93824992247808\n")
    assert aggregate(tmp_path, quiet=True) == 1
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    where = f"{jobs[0] / 'syscalls.csv'}:3: not a syscalls.csv row"
    assert [(r["status"], r["error"][: len(where)], r["brk_grows"]) for r in rows] == [
        ("incomplete", where, ""),
        ("ok", "", "1"),
    ]
    with pytest.raises(vmexp.VmexpError, match="^" + re.escape(where)):
        vmexp.Run(jobs[0]).summary  # noqa: B018


def test_a_missing_sweep_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmexp.report.__main__ import main

    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"vmexp.report: error: {tmp_path / 'nope'}: no such sweep directory\n"
    (tmp_path / "summary.csv").write_text("")  # a file of the sweep rather than the sweep
    with pytest.raises(FileNotFoundError, match=r"summary\.csv: not a directory \(a sweep's\)$"):
        aggregate(tmp_path / "summary.csv", quiet=True)


def test_the_report_command_on_a_failed_run_says_the_run_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not "no job directories (with .hydra/overrides.yaml) found": it is a run, and why it has no figures.
    from vmexp.report.__main__ import main

    (tmp_path / "run.json").write_text(
        json.dumps({"status": "failed", "error": "threshold: expected a size"})
    )
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"vmexp.report: error: {tmp_path}: a run without metrics.json "
        "(the run failed: threshold: expected a size): no figures to draw\n"
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [("metrics.json", '{"schema": 1, "sys'), ("timeseries.csv", "time_s,pid,rss_bytes\n0,1\n")],
)
def test_the_report_command_names_a_run_file_that_is_cut_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    # A partial copy or a full disk: one line naming the file, not a JSONDecodeError or zip()'s ValueError.
    from vmexp.report.__main__ import main

    (tmp_path / "metrics.json").write_text(json.dumps(_doc(minflt=1)))
    (tmp_path / name).write_text(text)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"vmexp.report: error: {tmp_path / name}: cannot be read (") and err.count("\n") == 1
    )


def test_a_sweep_whose_jobs_all_failed_does_not_report_an_unchosen_preset_as_none(tmp_path: Path) -> None:
    # The jobs failed before settings.json: the settings table comes from Hydra's record, where a
    # group nobody chose (experiment) is null; the report said "| experiment | None |".
    for i, t in enumerate(["foo", "banana"]):
        job = _job(tmp_path, i, [f"threshold={t}"], None, PRESET)
        hydra = {
            "hydra": {
                "runtime": {"choices": {"experiment": None, "workload": "mixed", "hydra/launcher": "basic"}}
            }
        }
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    assert aggregate(tmp_path, quiet=True) == 2
    md = (tmp_path / "report.md").read_text()
    assert "| workload | mixed |" in md
    assert "- nothing varies between the finished jobs" in md  # threshold was swept: foo, banana
    assert "None" not in md and "| experiment |" not in md


def test_the_table_knows_what_was_swept() -> None:
    rows: list[dict[str, Any]] = [
        {"threshold": "64k", "seed": "0", "policy": "lru", "status": "ok", "minflt": 1},
        {"threshold": "64k", "seed": "1", "policy": "lru", "status": "ok", "minflt": 3},
        {"threshold": "null", "seed": "0", "policy": "lru", "status": "ok", "minflt": 5},
        {"threshold": "null", "seed": "1", "policy": "lru", "status": "ok", "minflt": 7},
    ]
    for r in rows:
        r["_settings"] = job_settings(f"threshold={r['threshold']}", f"seed={r['seed']}", "policy=lru")
    t = SweepTable(["threshold", "seed", "policy"], rows)
    assert t.swept == ["threshold"] and t.seeds == 2  # policy never changes; seeds are samples
    stats = t.by_setting(["minflt"])
    assert list(stats[("minflt", "mean")]) == [2.0, 6.0]
    assert t.setting(pd.Series(rows[2])) == "threshold=glibc's default (dynamic)"


# --- from a real run ----------------------------------------------------------------------


def _run_job(sweep: Path, num: int, overrides: list[str]) -> Path:
    """One job as Hydra would lay it out: its overrides and config under .hydra/, the run's files beside."""
    cfg = compose_cfg(*overrides)
    d = sweep / f"{num}_{','.join(o.replace('/', '_') for o in overrides)}"
    run_settings(validate(cfg), d, quiet=True)
    (d / ".hydra").mkdir()
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return d


def test_brk_grows_trims_and_returned_bytes_match_real_glibc(tmp_path: Path) -> None:
    # Real glibc 2.36 on trim.trace: brk grows the heap three times and trims it six times,
    # five trims of 49152 bytes and one of 53248 (tests/traces/expected.json, recorded with strace).
    real = json.loads((TRACES / "expected.json").read_text())["traces"]["trim"]["runs"]["default"]["syscalls"]
    lengths = [n for _, call, n in real if call == "brk"]
    assert sum(1 for n in lengths if n > 0) == 3 and sum(-n for n in lengths if n < 0) == 5 * 49152 + 53248
    _run_job(tmp_path, 0, ["workload=trace", f"workload.path={TRACES / 'trim.trace'}", "nprocs=1"])
    _, rows = summary_rows(tmp_path)
    assert rows[0]["brk_grows"] == 3
    assert rows[0]["brk_trims"] == 6
    assert rows[0]["brk_returned_bytes"] == 5 * 49152 + 53248


def test_run_figures_of_an_allocating_run_and_of_a_page_reference_string(tmp_path: Path) -> None:
    trace = _run_job(
        tmp_path, 0, ["workload=trace", f"workload.path={TRACES / 'fragmentation.trace'}", "nprocs=1"]
    )
    assert sorted(p.name for p in (trace / "figures").glob("*.png")) == [
        "faults.png",
        "heap.png",
        "layout.png",
        "memory.png",
        "syscalls.png",
    ]
    refs = tmp_path / "refs"
    s = settings(
        "workload=pageref",
        "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]",
        "nprocs=1",
        "ram=12k",
        "machine.min_free=0",
    )
    run_settings(s, refs, quiet=True)
    # No allocator, so no heap and no syscalls: those figures are left out, not drawn empty.
    assert sorted(p.name for p in (refs / "figures").glob("*.png")) == [
        "faults.png",
        "layout.png",
        "memory.png",
    ]
    # Redrawn from the directory alone, as `python -m vmexp.report RUN_DIR` does.
    for p in (trace / "figures").glob("*.png"):
        p.unlink()
    assert len(draw_run_figures(trace)) == 5


def test_a_failed_mmap_longer_than_int64_still_gets_its_figures(tmp_path: Path) -> None:
    """malloc(2^63-1) is a valid trace line: glibc tries mmap(2^63 + 4096) and fails, and
    syscalls.csv holds that length, which no int64 column can; the figures read it as a float."""
    trace = tmp_path / "huge.trace"
    trace.write_text("malloc 1 9223372036854775807\nmalloc 2 100\nfree 2\n")
    d = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={trace}", "nprocs=1"])
    assert "9223372036854779904" in (d / "syscalls.csv").read_text()
    assert not (d / "error.txt").exists()
    assert "syscalls.png" in {p.name for p in (d / "figures").glob("*.png")}
    _, rows = summary_rows(tmp_path)
    assert rows[0]["brk_grows"] == 1


def test_heap_raster_colours_each_pixel_by_the_chunk_under_it() -> None:
    base = 0x555555558000
    chunks = pd.DataFrame(
        [
            (base, 32, "in_use"),
            (base + 32, 64, "free"),
            (base + 96, 32, "tcache"),
            (base + 128, 128, "top"),
            (0x7FFFF7F00000, 48, "mmapped"),
        ],
        columns=["addr", "size", "state"],
    )
    image, bpp, labels = heap_raster(chunks, (base, base + 256), width=16, max_rows=4)
    assert bpp == 16  # chunk alignment: 256 heap bytes fill exactly one row of 16 pixels
    in_use, free, tcache, top, mmapped, gap = 0, 1, 2, 4, 5, 7
    assert image[0].tolist() == [in_use] * 2 + [free] * 4 + [tcache] * 2 + [top] * 8
    assert image[1].tolist() == [gap] * 16  # the blank row between the heap and the mmapped chunks
    assert image[2].tolist() == [mmapped] * 3 + [gap] * 13
    assert labels == [(0, "heap start"), (2, "1 mmapped")]


def test_maps_lines_parse_into_regions() -> None:
    text = (
        "555555554000-555555556000 r-xp 00000000 08:01 1048577                    server.0\n"
        "555555558000-55555666c000 rw-p 00000000 00:00 0                          [heap]\n"
        "7ffff7d1b000-7ffff7d6b000 rw-p 00000000 00:00 0\n"
    )
    assert parse_maps(text) == [
        (0x555555554000, 0x555555556000, "r-xp", "server.0"),
        (0x555555558000, 0x55555666C000, "rw-p", "[heap]"),
        (0x7FFFF7D1B000, 0x7FFFF7D6B000, "rw-p", ""),
    ]


def test_run_data_loads_what_the_figures_need(tmp_path: Path) -> None:
    d = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={TRACES / 'trim.trace'}", "nprocs=1"])
    data = load_run(d)
    assert data.pids == [1] and data.names == {1: "trace"}
    assert set(data.heap["state"]) <= {"in_use", "free", "tcache", "fastbin", "top", "mmapped"}
    assert any(name == "[heap]" for *_, name in data.maps[1])


# --- the figures' defects a newcomer met (issue 14): each held by what a reader sees -----------

KiB = 1 << 10
PAGE = 4096


def _proc(pid: int, name: str, **v: Any) -> dict[str, Any]:
    mallinfo = dict.fromkeys(("arena", "ordblks", "hblks", "hblkhd", "uordblks", "fordblks"), 0)
    mallinfo.update(v.pop("mallinfo", {}))
    return {"pid": pid, "name": name, "minflt": 0, "majflt": 0, "rss_peak_bytes": 0, "rss_bytes": 0,
            "swap_peak_bytes": 0, "vsz_bytes": 0, "mallinfo": mallinfo, **v}  # fmt: skip


def _run_data(
    tmp_path: Path,
    procs: list[dict[str, Any]],
    *,
    samples: int = 20,
    end: float = 1.0,
    heap: Table | None = None,
    maps: dict[int, list[tuple[int, int, str, str]]] | None = None,
) -> RunData:
    """A run's files as load_run would read them, written by hand: the numbers are the test's own."""
    rows = [
        {"time_s": end * i / max(samples - 1, 1), "pid": p["pid"], "rss_bytes": 0, "swap_bytes": 0,
         "hblkhd_bytes": 0, "minflt": 0, "majflt": 0}
        for i in range(samples) for p in procs
    ]  # fmt: skip
    system = {"sim_time_s": end, "ram_bytes": 64 * MiB, "page_size": PAGE, "free_bytes_min": 0,
              "swap_used_peak_bytes": 0, "pswpin": 0, "pswpout": 0}  # fmt: skip
    return RunData(
        run_dir=tmp_path,
        metrics={"schema": 1, "system": system, "processes": procs},
        ts=_table(rows),
        syscalls=Table(),
        heap=heap if heap is not None else Table(),
        maps=maps or {},
        cfg={"sample_interval": "10ms"},
    )


def _table(rows: list[dict[str, Any]]) -> Table:
    return Table({k: [r[k] for r in rows] for k in rows[0]})


def _overlaps(boxes: list[Any]) -> list[tuple[int, int]]:
    return [
        (i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])
    ]


def test_heap_map_row_labels_never_overlap_for_a_heap_of_many_rows(tmp_path: Path) -> None:
    # The README sweep's 64k job: a 5 MiB brk heap (five 1 MiB rows) above 168 mmapped chunks of
    # about 200 KiB. Labelling every heap row stacked five labels into a few points.
    base, chunk = 0x555555558000, 64 * KiB
    heap_rows = [(1, base + i * chunk, chunk, "in_use" if i % 3 else "free") for i in range(80)]
    mm = [(1, 0x7FFF00000000 + i * 256 * KiB, 200 * KiB, "mmapped") for i in range(168)]
    chunks = _table([dict(zip(("pid", "addr", "size", "state"), r, strict=True)) for r in heap_rows + mm])
    maps = {1: [(base, base + 80 * chunk, "rw-p", "[heap]")]}
    mi = {"arena": 80 * chunk, "fordblks": 27 * chunk, "uordblks": 53 * chunk, "ordblks": 27, "hblks": 168}
    data = _run_data(tmp_path, [_proc(1, "server.0", mallinfo=mi)], heap=chunks, maps=maps)
    with matplotlib.rc_context(STYLE):
        fig = _heap_fig(data, "t")
        assert fig is not None
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        image_ax = fig.axes[0]
        labels = [t for t in image_ax.get_yticklabels() if t.get_text()]
        texts = [t.get_text() for t in labels]
        assert texts[0] == "heap start" and texts[-1] == "168 mmapped"
        assert not _overlaps([t.get_window_extent(renderer) for t in labels]), texts


def test_heap_title_gives_free_space_with_and_without_the_top_chunk(tmp_path: Path) -> None:
    # 100 KiB of arena: 30 in use, 10 in a free chunk, 60 in the top chunk. fordblks counts the top:
    # 70 % of the arena is free, but of the 40 KiB below the top only 10 (25 %).
    base = 0x555555558000
    chunks = _table(
        [
            {"pid": 1, "addr": base, "size": 30 * KiB, "state": "in_use"},
            {"pid": 1, "addr": base + 30 * KiB, "size": 10 * KiB, "state": "free"},
            {"pid": 1, "addr": base + 40 * KiB, "size": 60 * KiB, "state": "top"},
        ]
    )
    mi = {"arena": 100 * KiB, "fordblks": 70 * KiB, "uordblks": 30 * KiB, "ordblks": 2}
    data = _run_data(tmp_path, [_proc(1, "p", mallinfo=mi)], heap=chunks,
                     maps={1: [(base, base + 100 * KiB, "rw-p", "[heap]")]})  # fmt: skip
    with matplotlib.rc_context(STYLE):
        fig = _heap_fig(data, "t")
    assert fig is not None
    title = fig.axes[0].get_title(loc="left")
    assert "free: 70% of the arena, 25% without its top chunk (60 KiB)" in title


def test_the_break_line_ends_when_its_process_exits(tmp_path: Path) -> None:
    # The README sweep's batch process exits at 1.7 s of a 2.2 s run: its break was drawn on,
    # flat, to the end of the run, a heap that no longer existed.
    base = 0x555555558000
    chunks = _table([{"pid": 1, "addr": base, "size": 132 * KiB, "state": "top"}])
    calls = _table(
        [
            {"time_s": 0.1, "pid": 1, "syscall": "brk", "length": 132 * KiB, "result": base + 132 * KiB},
            {"time_s": 0.5, "pid": 1, "syscall": "brk", "length": 64 * KiB, "result": base + 196 * KiB},
        ]
    )
    data = _run_data(tmp_path, [_proc(1, "batch", end_s=1.7)], end=2.2, heap=chunks,
                     maps={1: [(base, base + 196 * KiB, "rw-p", "[heap]")]})  # fmt: skip
    data = dataclasses.replace(data, syscalls=calls)
    with matplotlib.rc_context(STYLE):
        fig = _heap_fig(data, "t")
    assert fig is not None
    (line,) = [ln for ln in fig.axes[1].get_lines() if ln.get_label() == "break − heap start"]
    assert list(line.get_xdata()) == [0.1, 0.5, 1.7]
    assert fig.axes[1].get_xlim()[1] == pytest.approx(2.2)  # the axis still spans the run


def test_layout_ticks_fall_on_page_boundaries() -> None:
    # x86_64's TASK_SIZE is 2^47 - 4 KiB: its quarters (0x5ffffffff400) are not page-aligned.
    top = (1 << 47) - PAGE
    ticks = layout_ticks(top)
    assert all(t % PAGE == 0 for t in ticks)
    assert ticks == [0, 32 << 40, 64 << 40, 96 << 40, top]
    assert layout_ticks(3 << 30) == [0, 1 << 30, 2 << 30, 3 << 30]  # i386: 3 GiB of user space


def test_layout_shows_the_first_process_and_says_why(tmp_path: Path) -> None:
    def regions(n: int) -> list[tuple[int, int, str, str]]:
        return [
            (0x7FFFF0000000 + i * 2 * PAGE, 0x7FFFF0000000 + i * 2 * PAGE + PAGE, "rw-p", "")
            for i in range(n)
        ]

    # pid 4 has the most regions, so "the most to see" picked it in one run and pid 1 in another.
    maps = {1: regions(3), 2: regions(5), 3: regions(2), 4: regions(9)}
    data = _run_data(tmp_path, [_proc(p, f"p{p}") for p in maps], maps=maps)
    with matplotlib.rc_context(STYLE):
        fig = _layout_fig(data, "t")
        assert fig is not None
        assert fig.get_suptitle().startswith("Address space of pid 1 p1")
        said = " ".join(t.get_text() for t in fig.texts).replace("\u00a0", " ").replace("\n", " ")
        assert "first process" in said and "9 (pid 4)" in said
        left = fig.axes[0]
        assert all(int(t) % PAGE == 0 for t in left.get_yticks())


def test_a_run_too_short_for_its_sampling_period_shows_its_end_state_and_says_why(tmp_path: Path) -> None:
    # Belady's string, FIFO, 3 frames: 9 faults in under a millisecond, sampled every 10 ms.
    refs = _run_job(
        tmp_path,
        0,
        [
            "workload=pageref",
            "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]",
            "policy=fifo",
            "ram=12k",
            "machine.min_free=0",
        ],
    )
    data = load_run(refs)
    why = too_short(data)
    assert why is not None and why.startswith("Too short for a time series") and "10 ms" in why
    with matplotlib.rc_context(STYLE):
        faults = _faults_fig(data, "t")
        memory = _memory_fig(data, "t")
    assert any(t.get_text().startswith("Too short for a time series") for t in faults.texts)
    assert any(t.get_text().startswith("Too short for a time series") for t in memory.texts)
    # The bars: FIFO's 9 faults (textbook), minor and major, from metrics.json.
    ax = faults.axes[0]
    assert sum(bar.get_width() for bar in ax.patches) == 9
    # A run with enough samples draws its time series, and says nothing of the kind.
    assert too_short(_run_data(tmp_path, [_proc(1, "p")], samples=MIN_SAMPLES)) is None


def test_a_run_in_a_memory_cgroup_shows_the_limit_its_memory_levels_off_at(tmp_path: Path) -> None:
    # A container's 2 MiB on a 64 MiB machine: RSS stops below the group's limit, not RAM, and
    # the panel is scaled to the group (at RAM's scale 2 MiB would be a sliver); the titles say so.
    trace = tmp_path / "loop.trace"
    trace.write_text("malloc 1 4M\ntouch 1 0 4194304 w\ntouch 1 0 4194304 r\n")
    d = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={trace}", "cgroup.memory_max=2M"])
    data = load_run(d)
    title = _title(data, None)
    assert "a 2 MiB memory cgroup" in title
    with matplotlib.rc_context(STYLE):
        fig = _memory_fig(data, title)
    top = fig.axes[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert any(label.startswith("memory cgroup limit\n(2 MiB") for label in labels), labels
    assert not any(label.startswith("RAM") for label in labels), labels
    assert top.get_ylim()[1] == pytest.approx(1.12 * (2 << 20))


def test_a_run_without_swap_says_so_in_its_empty_swap_panel(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("malloc 1 1M\ntouch 1 0 1048576 w\ncompute 50ms\n")
    texts = {}
    for swap in ("0", "1M"):
        d = _run_job(
            tmp_path / swap, 0, ["workload=trace", f"workload.path={trace}", f"swap={swap}", "figures=false"]
        )
        with matplotlib.rc_context(STYLE):
            fig = _memory_fig(load_run(d), "t")
        texts[swap] = [t.get_text() for t in fig.axes[1].texts]
    assert texts["0"] == ["no swap space (swap=0): anonymous pages cannot leave RAM"]
    assert texts["1M"] == []


def test_the_report_gives_the_processes_a_reference_string_ran_not_the_unused_nprocs(tmp_path: Path) -> None:
    # nprocs is 4 by default; a reference string is one process (it said "nprocs | 4").
    for i, ram in enumerate(("12k", "16k")):
        _run_job(tmp_path, i, ["workload=pageref", "workload.refs=[1,2,3,4,1,2,5,1,2,3,4,5]", "policy=fifo",
                               f"ram={ram}", "machine.min_free=0", "figures=false"])  # fmt: skip
    aggregate(tmp_path, quiet=True)
    assert "| nprocs | 1 (from the reference string) |" in (tmp_path / "report.md").read_text()


def test_fault_rate_ticks_stay_short_enough_for_the_axis_label_to_fit() -> None:
    # A streaming run's first-touch rate reaches a million a second: "1,000,000" pushed the
    # y label out of the figure, "1M" does not.
    assert [_rate_tick(v) for v in (0, 1500, 40_000, 250_000, 1_000_000, 1_200_000)] == [
        "0", "1,500", "40k", "250k", "1M", "1.2M"
    ]  # fmt: skip


def _sweep_table(key: str, values: list[str], metric_name: str, ys: list[float], **cfg: Any) -> SweepTable:
    extra = [f"{k}={v}" for k, v in cfg.items()]
    rows = [
        {key: v, "status": "ok", metric_name: y, "_settings": job_settings(*extra, f"{key}={v}")}
        for v, y in zip(values, ys, strict=True)
    ]
    return SweepTable([key], rows, {"page_size": "4k", **cfg})


def _sweep_fig(table: SweepTable, names: list[str]) -> Figure:
    fig = Figure(figsize=(8, 4.3))
    FigureCanvasAgg(fig)
    with matplotlib.rc_context(STYLE):
        assert _plot_metric(fig, table, names, _X(table, table.swept[0]), None, None)
        fig.canvas.draw()
    return fig


def test_power_of_two_sweeps_sit_on_a_log2_axis_with_the_swept_values_as_ticks() -> None:
    table = _sweep_table("threshold", ["64k", "128k", "256k"], "minflt", [258062, 196139, 86157])
    ax = _sweep_fig(table, ["minflt"]).axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2  # type: ignore[attr-defined]
    assert list(ax.get_xticks()) == [64 * KiB, 128 * KiB, 256 * KiB]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64 KiB", "128 KiB", "256 KiB"]
    assert powers_of_two([1, 2, 4, 8]) and not powers_of_two([100, 200, 300]) and not powers_of_two([2, 4])
    linear = _sweep_table("threshold", ["100k", "200k", "300k"], "minflt", [3.0, 2.0, 1.0])
    assert _sweep_fig(linear, ["minflt"]).axes[0].get_xscale() == "linear"


def test_sweep_axes_of_times_start_at_zero_and_hold_the_highest_marker_whole() -> None:
    # sim_time_s of the README sweep: 2.53 s to 2.61 s. Its axis started at 2.53 s while counts started
    # at 0, and the highest marker was cut in half by the top of the axes.
    table = _sweep_table("threshold", ["64k", "128k", "256k"], "sim_time_s", [2.529, 2.607, 2.545])
    ax = _sweep_fig(table, ["sim_time_s"]).axes[0]
    assert ax.get_ylim()[0] == 0
    top_marker = ax.transData.transform((128 * KiB, 2.607))[1] + 3 * ax.figure.dpi / 72  # 6 pt marker
    assert top_marker <= ax.bbox.y1


def test_summed_peak_rss_says_it_is_a_sum_and_shows_the_ram_it_can_exceed() -> None:
    table = _sweep_table("threshold", ["64k", "128k", "256k"], "rss_peak_sum_bytes",
                         [100 * MiB, 97 * MiB, 98 * MiB], ram="64M")  # fmt: skip
    fig = _sweep_fig(table, ["rss_peak_sum_bytes"])
    assert "sum" in fig.axes[0].get_ylabel()
    assert any("need not coincide" in t.get_text() for t in fig.texts)
    assert any(line.get_ydata()[0] == 64 * MiB for line in fig.axes[0].lines)  # the RAM line
    # The machine's peak RSS is the peak of the sum at one time: it cannot exceed the RAM, and the
    # note about peaks added up (once on it, when it was the sum of peaks) would say the opposite.
    machine = _sweep_table("threshold", ["64k", "128k", "256k"], "rss_peak_bytes", [60 * MiB, 58 * MiB, 59 * MiB],
                           ram="64M")  # fmt: skip
    assert not any("need not coincide" in t.get_text() for t in _sweep_fig(machine, ["rss_peak_bytes"]).texts)
    frag = _sweep_table("threshold", ["64k", "128k", "256k"], "fragmentation", [0.25, 0.33, 0.2])
    assert any("include the top chunk" in t.get_text() for t in _sweep_fig(frag, ["fragmentation"]).texts)


def test_a_sweeps_runs_are_drawn_in_parallel_processes_each_complete(tmp_path: Path) -> None:
    jobs = [
        _run_job(tmp_path, i, ["workload=trace", f"workload.path={TRACES / t}", "nprocs=1", "figures=false"])
        for i, t in enumerate(("trim.trace", "fragmentation.trace"))
    ]
    # In a fresh interpreter, as at a sweep's end: a test process runs threads (pytest-xdist's), and
    # draw_runs_figures forks only a process that runs none.
    script = (
        "import json, sys; from pathlib import Path; from vmexp.report.run_figures import draw_runs_figures; "
        "d = draw_runs_figures([Path(a) for a in sys.argv[1:]], n_jobs=2); "
        "print(json.dumps({str(k): sorted(p.name for p in v) for k, v in d.items()}))"
    )
    r = subprocess.run([PY, "-c", script, *map(str, jobs)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    drawn = json.loads(r.stdout.splitlines()[-1])
    for job in jobs:
        assert drawn[str(job)] == sorted(p.name for p in (job / "figures").glob("*.png"))
        assert {"memory.png", "faults.png", "heap.png", "layout.png", "syscalls.png"} <= set(drawn[str(job)])


def test_a_runs_figures_drawn_in_parts_are_the_whole_set(tmp_path: Path) -> None:
    # The launcher draws a job's heap maps and its other figures in two processes at once.
    job = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={TRACES / 'trim.trace'}", "nprocs=1"])
    whole = {p.name: p.read_bytes() for p in draw_run_figures(job)}
    heap = draw_run_figures(job, only=("heap",))
    rest = draw_run_figures(job, only=("memory", "faults", "layout", "syscalls"))
    assert all(p.name.startswith("heap") for p in heap) and not any(p.name.startswith("heap") for p in rest)
    assert {p.name: p.read_bytes() for p in heap + rest} == whole


@pytest.mark.slow
def test_a_sweep_leaves_its_jobs_figures_to_its_end_and_the_report_command_draws_them(tmp_path: Path) -> None:
    # Hydra skips on_multirun_end when a job raises; here the callback is taken out instead. The jobs ran
    # one by one in the launching process (the basic launcher), left their figures to the sweep's end, and
    # `python -m vmexp.report DIR` draws what the missing end did not.
    trace = f"workload.path={TRACES / 'trim.trace'}"
    args = ["-m", "threshold=64k,256k", "workload=trace", trace, "nprocs=1", "~hydra.callbacks.sweep_report",
            "hydra/launcher=basic", f"hydra.sweep.dir={tmp_path}"]  # fmt: skip
    r = warm.run(args)
    assert r.returncode == 0, r.stderr
    jobs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(jobs) == 2 and not any(list((j / "figures").glob("*.png")) for j in jobs)
    rr = warm.run_module("vmexp.report", [tmp_path])
    assert rr.returncode == 0, rr.stderr
    assert "drawing the figures of 2 jobs" in rr.stderr
    for j in jobs:
        assert {"memory.png", "faults.png", "heap.png", "layout.png", "syscalls.png"} <= {
            p.name for p in (j / "figures").glob("*.png")
        }


def test_a_job_stopped_at_duration_is_a_hollow_ring_named_in_the_legend() -> None:
    from vmexp.report.sweep_figures import STOPPED_LABEL

    table = _sweep_table("threshold", ["64k", "128k", "256k"], "minflt", [258062, 196139, 86157])
    table.rows[2]["status"] = "stopped"
    table = SweepTable(["threshold"], table.rows, table.cfg)
    assert table.ok == 3  # a stopped job is drawn: its counts are real, only cut short
    ax = _sweep_fig(table, ["minflt"]).axes[0]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == [STOPPED_LABEL]
    (rings,) = [c for c in ax.collections if c.get_label() == STOPPED_LABEL]
    assert rings.get_offsets().tolist() == [[256 * KiB, 86157.0]]


def test_belady_marks_only_faults_that_rise_with_more_frames_and_stay_in_the_figure() -> None:
    # FIFO on Belady's string: 7, 4, 5 major faults with 2, 3, 4 frames. The rise ends at the last
    # point, at the right edge: its text was drawn beyond the figure, and only the arrow showed.
    pageref = {"workload": "pageref", "workload.refs": "[1,2,3,4,1,2,5,1,2,3,4,5]", "machine.min_free": "0"}
    table = _sweep_table("ram", ["8k", "12k", "16k"], "majflt", [7, 4, 5], **pageref)
    fig = _sweep_fig(table, ["majflt"])
    marks = [t for t in fig.axes[0].texts if "Belady" in t.get_text()]
    assert len(marks) == 1 and marks[0].get_text().startswith("4 → 5 with more frames")
    box = marks[0].get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0 and box.y1 <= fig.bbox.height
    # More frames, more resident memory: no anomaly in that.
    rss = _sweep_table("ram", ["8k", "12k", "16k"], "rss_peak_bytes", [8192, 12288, 16384], **pageref)
    assert not [t for t in _sweep_fig(rss, ["rss_peak_bytes"]).axes[0].texts if "Belady" in t.get_text()]


@pytest.mark.parametrize("name", ["fragmentation", "syscalls", "rss_peak_bytes", "minflt"])
def test_a_sweep_figures_axis_label_stays_inside_the_figure(name: str) -> None:
    # "heap fragmentation at exit (free / arena, the free top chunk included) (%)" in one line ran
    # off the figure at the top and the bottom; a long label now takes two lines, or the short name.
    table = _sweep_table("threshold", ["64k", "128k", "256k"], name, [0.25, 0.33, 0.2])
    fig = _sweep_fig(table, [name])
    label = fig.axes[0].yaxis.label
    box = label.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    assert box.x0 >= 0 and box.y0 >= 0 and box.y1 <= fig.bbox.height, (label.get_text(), box)
    assert label.get_text().replace("\n", " ").startswith((metric(name).label, metric(name).short))


def test_hues_that_coincide_stay_apart_by_marker_and_dashes() -> None:
    # Belady's sweep: fifo, lru and opt all take 5 faults from 5 frames on. Drawn as three solid lines
    # with round markers, opt's (drawn last) hid the other two, and the figure seemed to have one policy.
    rows: list[dict[str, Any]] = []
    for policy in ("fifo", "lru", "opt"):
        for threshold in ("64k", "128k", "256k"):
            s = job_settings("threshold=" + threshold, "policy=" + policy)
            faults = 6 if (policy, threshold) == ("fifo", "64k") else 5  # (a constant metric is not drawn)
            rows.append(
                {"threshold": threshold, "policy": policy, "status": "ok", "faults": faults, "_settings": s}
            )
    table = SweepTable(["threshold", "policy"], rows, {"page_size": "4k"})
    fig = Figure(figsize=(8, 4.3))
    FigureCanvasAgg(fig)
    with matplotlib.rc_context(STYLE):
        assert _plot_metric(fig, table, ["faults"], _X(table, "threshold"), "policy", None)
        fig.canvas.draw()
    ax = fig.axes[0]
    drawn = [line for line in ax.lines if len(line.get_xdata()) == 3]
    assert len(drawn) == 3
    assert len({line.get_marker() for line in drawn}) == 3
    assert sum(line.get_linestyle() == "-" for line in drawn) <= 1  # the others dashed: the one below shows
    legend = [leg for leg in fig.legends + [a.get_legend() for a in fig.axes] if leg is not None]
    handles = [h for leg in legend for h in leg.legend_handles if getattr(h, "get_marker", None)]
    assert len({h.get_marker() for h in handles}) == 3  # the legend shows which marker is which policy


def _area(ax: Any) -> float:
    """The area under an axes' stacked areas (shoelace over each polygon), in data units."""
    total = 0.0
    for coll in ax.collections:
        for path in coll.get_paths():
            x, y = path.vertices[:, 0], path.vertices[:, 1]
            total += abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2
    return total


def test_fault_rates_drawn_over_the_run_add_up_to_its_faults(tmp_path: Path) -> None:
    # 4 MiB written and read back through a 1 MiB group: 37 ms, sampled every 10 ms. The rate of the
    # last window (30 ms to the exit) was drawn with no width: the figure showed 1,642 of the 1,916
    # minor faults its title gave, and 94 of the 133 major ones.
    trace = tmp_path / "seq.trace"
    trace.write_text("malloc 1 4M\ntouch 1 0 4194288 w\ntouch 1 0 4194288 r\n")
    d = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={trace}", "cgroup.memory_max=1M",
                               "cgroup.image=0", "cgroup.kernel=0", "figures=false"])  # fmt: skip
    data = load_run(d)
    assert too_short(data) is None
    with matplotlib.rc_context(STYLE):
        fig = _faults_fig(data, "t")
    for ax, key in zip(fig.axes[:2], ("minflt", "majflt"), strict=True):
        total = sum(int(p[key]) for p in data.metrics["processes"])
        assert total > 0 and _area(ax) == pytest.approx(total, rel=1e-6), key


def test_the_memory_figure_marks_each_oom_kill_with_its_victim(tmp_path: Path) -> None:
    # 8 MiB, no swap: the OOM killer kills all four processes, the last one at the end of the run.
    # The figure showed their RSS stop as if they had finished.
    d = _run_job(tmp_path, 0, ["swap=0", "ram=8M", "duration=0.5s", "figures=false"])
    data = load_run(d)
    kills = data.metrics["system"]["oom_kill_log"]
    assert len(kills) >= 2
    with matplotlib.rc_context(STYLE):
        fig = _memory_fig(data, "t")
        fig.canvas.draw()
    top = fig.axes[0]
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert f"OOM kill ({len(kills)}),\nvictim's pid beside it" in labels, labels
    pids = [t for t in top.texts if t.get_text() in {str(k["pid"]) for k in kills}]
    assert sorted(t.get_text() for t in pids) == sorted(str(k["pid"]) for k in kills)
    legend = top.get_legend().get_window_extent()
    for t in pids:  # each pid readable: inside the axes' width, clear of the legend
        box = t.get_window_extent()
        assert top.bbox.x0 <= box.x0 and box.x1 <= top.bbox.x1 and not box.overlaps(legend), t.get_text()


def test_the_faults_figure_of_many_processes_says_what_its_shades_mean() -> None:
    # 40 processes: too many to name in a legend, so the stacks are shades of one ramp. The memory
    # figure said "dark = low pid"; the faults figure had no key at all.
    procs = [_proc(pid, f"p{pid}") for pid in range(1, 41)]
    data = _run_data(Path("/nonexistent"), procs)
    with matplotlib.rc_context(STYLE):
        faults = _faults_fig(data, "t")
        memory = _memory_fig(data, "t")
    for fig in (faults, memory):
        assert "40 processes\nstacked by pid\n(dark = low pid)" in [t.get_text() for t in fig.axes[0].texts]
    few = _run_data(Path("/nonexistent"), procs[:3])
    with matplotlib.rc_context(STYLE):
        assert not _faults_fig(few, "t").axes[0].texts  # a legend names them


def test_a_hue_legend_with_stopped_jobs_stays_inside_the_figure() -> None:
    # The thrashing sweep's cpu_utilization.png: hue machine.load_control, two jobs stopped at
    # duration. The legend was wider than the figure's margin: its title read "machine." and the
    # stopped label was cut at "(co".
    rows: list[dict[str, Any]] = []
    for lc in ("none", "ws"):
        for n in ("1", "2", "4", "8"):
            s = job_settings("nprocs=" + n, "machine.load_control=" + lc)
            status = "stopped" if (lc, n) == ("none", "8") else "ok"
            rows.append({"nprocs": n, "machine.load_control": lc, "status": status, "_settings": s,
                         "cpu_utilization": 0.1 * int(n) + (0.05 if lc == "ws" else 0)})  # fmt: skip
    table = SweepTable(["nprocs", "machine.load_control"], rows, {"page_size": "4k"})
    fig = Figure(figsize=(9.1, 4.3))  # as _figure(1) makes it: 6.2 + 1.9 + 1.0 inches
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=1.0 / 9.1, right=1 - 1.9 / 9.1)
    with matplotlib.rc_context(STYLE):
        assert _plot_metric(
            fig, table, ["cpu_utilization"], _X(table, "nprocs"), "machine.load_control", None
        )
        fig.canvas.draw()
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_title().get_text() == "machine.load_control"
    box = legend.get_window_extent()
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, (box, fig.bbox)


def test_a_peak_rss_far_below_the_ram_is_drawn_to_its_own_scale() -> None:
    # The address_space sweep: a few hundred KiB of RSS on 64 MiB of RAM. The axis went up to the
    # RAM line and the values lay flat on zero; now the axis is theirs and the RAM a note above it.
    small = _sweep_table("threshold", ["64k", "128k", "256k"], "rss_peak_bytes",
                         [88 * KiB, 192 * KiB, 556 * KiB], ram="64M")  # fmt: skip
    fig = _sweep_fig(small, ["rss_peak_bytes"])
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 1 * MiB
    assert not any(line.get_ydata()[0] == 64 * MiB for line in ax.lines)
    (note,) = [t for t in ax.texts if "RAM" in t.get_text()]
    assert note.get_text() == "RAM (64 MiB) far above"
    box = note.get_window_extent()
    assert box.y0 >= ax.bbox.y1 and box.x1 <= fig.bbox.x1  # above the data, inside the figure
    # Near the RAM the line stays: it is what the values are compared with.
    near = _sweep_table("threshold", ["64k", "128k", "256k"], "rss_peak_bytes",
                        [20 * MiB, 40 * MiB, 60 * MiB], ram="64M")  # fmt: skip
    assert any(line.get_ydata()[0] == 64 * MiB for line in _sweep_fig(near, ["rss_peak_bytes"]).axes[0].lines)


def test_a_long_dotted_hue_name_breaks_at_its_dots_to_stay_inside_the_figure() -> None:
    # A legend title has no spaces to wrap at: workload.lifetime.long_lived in one 10 pt line was
    # wider than the figure's right margin.
    key = "workload.lifetime.long_lived"
    rows: list[dict[str, Any]] = []
    for ll in ("0.01", "0.2"):
        for t in ("64k", "128k", "256k"):
            s = job_settings("threshold=" + t, f"{key}={ll}")
            rows.append(
                {"threshold": t, key: ll, "status": "ok", "_settings": s, "minflt": len(t) + float(ll)}
            )
    table = SweepTable(["threshold", key], rows, {"page_size": "4k"})
    fig = Figure(figsize=(9.1, 4.3))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=1.0 / 9.1, right=1 - 1.9 / 9.1)
    with matplotlib.rc_context(STYLE):
        assert _plot_metric(fig, table, ["minflt"], _X(table, "threshold"), key, None)
        fig.canvas.draw()
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_title().get_text() == "workload.lifetime.\nlong_lived"
    assert legend.get_window_extent().x1 <= fig.bbox.x1


def test_a_heap_snapshot_is_drawn_to_the_heap_it_had_then_not_the_heap_at_exit(tmp_path: Path) -> None:
    # The heap grows from 100 KB at the snapshot to 2 MB at exit. maps/ is the exit's: the snapshot's
    # map went on to the exit's size, and everything past its break read as heap in no chunk.
    from vmexp.report.run_figures import _NOCHUNK

    trace = tmp_path / "grow.trace"
    trace.write_text(
        "malloc 0 100000\ntouch 0\ncompute 50ms\n" + "".join(f"malloc {i} 100000\n" for i in range(1, 21))
    )
    d = _run_job(tmp_path, 0, ["workload=trace", f"workload.path={trace}", "heap_snapshots=[0.02s]",
                               "figures=false"])  # fmt: skip
    data = load_run(d)
    with matplotlib.rc_context(STYLE):
        fig = _heap_fig(data, "t", at=0.02)
    assert fig is not None
    codes = np.asarray(fig.axes[0].images[0].get_array())
    assert not (codes == _NOCHUNK).any()  # every byte of the heap then was in a chunk


def test_a_two_line_y_label_beside_wide_byte_ticks_stays_inside_the_figure() -> None:
    # The threshold sweep's arena_bytes.png: "bytes of the brk heap at exit (arena)" in two lines
    # beside "128 MiB" ticks needed more than the inch left of the axes; its first line was cut.
    from vmexp.report.sweep_figures import _figure

    table = _sweep_table("threshold", ["64k", "128k", "256k"], "arena_bytes", [17 * MiB, 34 * MiB, 125 * MiB])
    fig = _figure(1, legend=False)
    with matplotlib.rc_context(STYLE):
        assert _plot_metric(fig, table, ["arena_bytes"], _X(table, "threshold"), None, None)
        fig.canvas.draw()
    label = fig.axes[0].yaxis.label
    assert "\n" in label.get_text()  # the case: a label in two lines
    assert "128 MiB" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert label.get_window_extent().x0 >= 0


def test_the_swap_panel_of_a_zram_run_says_zram() -> None:
    # metrics.json has a "zram" section only when machine.swap_device=zram; the figure said "swap"
    # whatever the device, and a zram run read as one swapping to a disk.
    procs = [_proc(1, "p")]
    data = _run_data(Path("/nonexistent"), procs)
    with matplotlib.rc_context(STYLE):
        assert _memory_fig(data, "t").axes[1].get_ylabel() == "swap\n(stacked by pid)"
        data.metrics["system"]["zram"] = {"stored_bytes_peak": 0, "pool_bytes_peak": 0, "pool_bytes": 0}
        assert _memory_fig(data, "t").axes[1].get_ylabel() == "swap on zram\n(stacked by pid)"
