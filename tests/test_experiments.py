"""The experiments library: every preset states its question, runs, reports, and shows its known result.

Each preset runs here as a user runs it (``python run.py -m experiment=X``)
at a small scale: a shorter duration and fewer sweep points given on the
command line (which replace the preset's own sweep of the same key). Where
the known result is cheap to see at that scale, the test checks it against
the textbook or the real system, not against numbers the code printed.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests import warm
from tests.conftest import CONF, ROOT
from vmexp.config import validate
from vmexp.report.sweep import figure_metrics

PRESETS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
Rows = list[dict[str, str]]


def _header(preset: str) -> str:
    """The preset's first comment block, without the '#' marks."""
    lines = (ROOT / "experiments" / f"{preset}.yaml").read_text().splitlines()
    assert lines[0] == "# @package _global_", f"{preset}: the first line must be '# @package _global_'"
    block = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        block.append(line.lstrip("#").strip())
    return " ".join(block)


def test_the_library_has_the_presets_the_issue_asks_for() -> None:
    assert set(PRESETS) >= {
        "threshold",
        "trim",
        "fragmentation",
        "policies",
        "belady",
        "thrashing",
        "page_size",
        "swap_device",
        "address_space",
        "tuning",
    }


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_states_question_known_result_and_sweep(preset: str) -> None:
    header = _header(preset)
    for part in ("Question:", "Known result", "Sweep:"):
        assert part in header, f"experiments/{preset}.yaml: the first comment block does not state '{part}'"
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    validate(cfg)
    assert cfg.name == preset
    assert cfg.question and cfg.expected, f"{preset}: question and expected feed the report"
    assert cfg.report.metrics, f"{preset}: report.metrics chooses the sweep figures"
    figure_metrics(OmegaConf.to_container(cfg, resolve=False))  # type: ignore[arg-type]  # raises on a bad name
    assert cfg.hydra.sweeper.params, f"{preset}: no sweep under hydra.sweeper.params"


# --- every preset runs, small ------------------------------------------------------------


def _by(rows: Rows, *keys: str) -> dict[tuple[str, ...], dict[str, str]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def _num(r: dict[str, str], key: str) -> float:
    return float(r[key])


def check_belady(rows: Rows, out: Path) -> None:
    # Textbook counts on 1,2,3,4,1,2,5,1,2,3,4,5 (faults = minflt + majflt).
    f = {k: int(r["faults"]) for k, r in _by(rows, "ram", "policy").items()}
    assert f[("12k", "fifo")] == 9 and f[("16k", "fifo")] == 10, f  # Belady's anomaly
    assert f[("12k", "lru")] == 10 and f[("16k", "lru")] == 8, f  # a stack algorithm
    assert "Belady's anomaly" in (out / "report.md").read_text()


def check_thrashing(rows: Rows, out: Path) -> None:
    cpu = sorted(
        (int(r["nprocs"]), _num(r, "cpu_utilization")) for r in rows if r["machine.load_control"] == "none"
    )
    peak = max(range(len(cpu)), key=lambda i: cpu[i][1])
    assert 0 < peak < len(cpu) - 1, f"no interior maximum: {cpu}"
    assert min(u for _, u in cpu[peak:]) <= cpu[peak][1] * 2 / 3, (
        f"falls by less than a third past the peak: {cpu}"
    )
    # Denning's load control: past the knee it keeps the CPU busy where the machine without it thrashes
    # (in the first second, while the controller finds the working sets; tests/test_loadctl.py holds
    # a whole run to 20 % of the peak).
    controlled = _num(_by(rows, "nprocs", "machine.load_control")[("12", "ws")], "cpu_utilization")
    assert controlled >= 2 * cpu[-1][1], (controlled, cpu)
    assert (out / "figures" / "thrashing.png").is_file()
    report = (out / "report.md").read_text()
    assert "**Thrashing curve**: CPU utilisation peaks" in report
    assert "**machine.load_control = ws**: CPU utilisation with 12 processes" in report


def check_policies(rows: Rows, out: Path) -> None:
    by = _by(rows, "policy")
    # A zipf (hot/cold) workload: recency keeps the hot pages, FIFO throws them out in turn.
    assert _num(by[("lru",)], "majflt") * 2 < _num(by[("fifo",)], "majflt"), by


def check_trim(rows: Rows, out: Path) -> None:
    by = _by(rows, "allocator.trim_threshold", "allocator.top_pad")
    assert int(by[("32M", "0")]["brk_trims"]) == 0 and int(by[("32M", "1M")]["brk_trims"]) == 0  # never trims
    assert int(by[("128k", "0")]["brk_trims"]) > 0 and int(by[("128k", "0")]["brk_returned_bytes"]) > 0
    # sysmalloc asks for the pad on top of every grow: a 1 MiB pad needs several times fewer brk calls.
    assert int(by[("128k", "1M")]["brk"]) * 4 < int(by[("128k", "0")]["brk"])
    # systrim keeps the pad at the top (R13): a 1 MiB pad returns less than no pad (the preset
    # said the pad did not change how much is returned: 5.1 MB against 12.5 MB).
    assert int(by[("128k", "1M")]["brk_returned_bytes"]) * 2 < int(by[("128k", "0")]["brk_returned_bytes"])


def check_fragmentation(rows: Rows, out: Path) -> None:
    glibc = _by(rows, "allocator")[("glibc",)]
    arena, in_use, rss = (_num(glibc, k) for k in ("arena_bytes", "uordblks_bytes", "rss_exit_bytes"))
    assert arena > 10 * in_use, (arena, in_use)  # pinned: the heap stays, the data is gone
    assert rss > 0.9 * arena, (rss, arena)  # RSS follows the heap, not the bytes in use


def check_page_size(rows: Rows, out: Path) -> None:
    by = _by(rows, "page_size")
    small, huge = by[("4k",)], by[("2M",)]
    assert _num(huge, "minflt") * 100 < _num(small, "minflt")  # one fault maps 512 times as much
    assert _num(huge, "page_table_peak_bytes") < _num(small, "page_table_peak_bytes")
    assert _num(huge, "rss_peak_bytes") > _num(small, "rss_peak_bytes")  # internal waste


def check_swap_device(rows: Rows, out: Path) -> None:
    by = _by(rows, "machine.swap_device")
    # 12.7 ms against 20 us per page: the disk leaves the CPU idle most of the time.
    assert _num(by[("hdd",)], "cpu_utilization") * 3 < _num(by[("nvme",)], "cpu_utilization")
    assert _num(by[("hdd",)], "swap_utilization") > 0.5


def check_address_space(rows: Rows, out: Path) -> None:
    by = _by(rows, "address_space")
    assert int(by[("i386",)]["enomem"]) > 0 and int(by[("x86_64",)]["enomem"]) == 0
    assert _num(by[("i386",)], "vsz_peak_bytes") < 3 << 30  # the 3 GiB of a 3G/1G split, less the gaps


def check_threshold(rows: Rows, out: Path) -> None:
    by = _by(rows, "threshold")
    low, dynamic = by[("64k",)], by[("null",)]
    assert _num(low, "mmap") > _num(dynamic, "mmap") and _num(low, "minflt") > _num(dynamic, "minflt")


def check_containers(rows: Rows, out: Path) -> None:
    by = _by(rows, "cgroup.limits")
    one, four = by[("[48M]",)], by[("[12M,12M,12M,12M]",)]
    # The same 48 MiB in four fixed shares: no group may use what another leaves idle.
    assert _num(four, "majflt") > 2 * _num(one, "majflt") and _num(four, "pswpout") > 2 * _num(one, "pswpout")


def check_tuning(rows: Rows, out: Path) -> None:
    assert (out / "optimization_results.yaml").is_file()
    best = yaml.safe_load((out / "optimization_results.yaml").read_text())["best_value"]
    assert min(_num(r, "objective") for r in rows) == pytest.approx(best)
    assert "**Best point**: objective" in (out / "report.md").read_text()
    assert (out / "figures" / "tuning.png").is_file()


SMALL: dict[str, tuple[list[str], Callable[[Rows, Path], None]]] = {
    "address_space": (["workload.volume=4G", "address_space=i386,x86_64"], check_address_space),
    "belady": (["ram=12k,16k", "policy=fifo,lru"], check_belady),
    "containers": (["cgroup.limits=[48M],[12M,12M,12M,12M]", "duration=1s"], check_containers),
    "fragmentation": (["workload.lifetime.long_lived=0.01", "allocator=glibc,best_fit"], check_fragmentation),
    "page_size": (["page_size=4k,2M", "duration=0.3s"], check_page_size),
    "policies": (["policy=fifo,lru", "duration=0.5s"], check_policies),
    "swap_device": (
        ["machine.swap_device=hdd,nvme", "nprocs=2", "ram=24M", "duration=1s"],
        check_swap_device,
    ),
    "thrashing": (["nprocs=2,7,12", "duration=1s"], check_thrashing),
    "threshold": (["threshold=64k,null", "seed=0", "duration=0.3s"], check_threshold),
    "trim": (["allocator.trim_threshold=128k,32M", "allocator.top_pad=0,1M"], check_trim),
    "tuning": (["hydra.sweeper.n_trials=2", "duration=0.2s"], check_tuning),
}


# Presets whose runs are of a kind no other test draws (i386's layout, Belady's page-reference string,
# 2 MiB pages, each swap device) also draw every job's figures; the others draw the sweep's figures
# and report only, which is what they add (tests/test_report.py draws runs like theirs).
JOB_FIGURES = {"address_space", "belady", "page_size", "swap_device"}


def test_every_preset_has_a_small_run() -> None:
    assert sorted(SMALL) == PRESETS, "a new preset needs its small run in SMALL"


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_and_reports_its_known_result(preset: str, tmp_path: Path) -> None:
    overrides, check = SMALL[preset]
    r = warm.run(
        ["-m", f"experiment={preset}", *overrides, f"hydra.sweep.dir={tmp_path}"]
        + ([] if preset in JOB_FIGURES else ["figures=false"]),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "vmexp: warning" not in r.stderr, r.stderr  # every figure was drawn
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert rows and all(row["status"] in ("ok", "stopped") for row in rows)  # small runs may be cut short
    for job in (tmp_path / row["job"] for row in rows if preset in JOB_FIGURES):
        assert {"memory.png", "faults.png", "layout.png"} <= {p.name for p in (job / "figures").glob("*.png")}
    assert list((tmp_path / "figures").glob("*.png"))
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((tmp_path / "figures").glob("*.png")))
    question = yaml.safe_load((tmp_path / rows[0]["job"] / ".hydra" / "config.yaml").read_text())["question"]
    assert f"**Question.** {question}" in (tmp_path / "report.md").read_text()
    check(rows, tmp_path)
