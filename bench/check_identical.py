"""Byte-identity check: the contract files of every preset and of the README sweep, before and after a change.

    python bench/check_identical.py record FILE.json     # before the change
    python bench/check_identical.py compare FILE.json    # after: lists every file that differs

A refactoring must not move a single byte of ``metrics.json``,
``syscalls.csv`` or ``timeseries.csv``, nor of a sweep's ``summary.csv``; this runs ``run.py`` as a user
would (every preset of ``experiments/`` as its sweep, plus the README's
threshold sweep and one default run), with figures off and the presets'
sizes trimmed where a sweep is long (``SMALL``), and records the SHA-256 of
each job's files, keyed by the preset and the job's overrides, and of each
sweep's ``summary.csv``. ``compare``
runs the same jobs again and names what changed. Wall time is printed, so
the same run doubles as a coarse end-to-end timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = ("metrics.json", "syscalls.csv", "timeseries.csv")

# Each case: a name and the run.py arguments. Long sweeps are cut to a few
# jobs (the same code paths, a fraction of the time).
CASES: dict[str, list[str]] = {
    "readme_sweep": ["-m", "threshold=64k,128k,256k"],
    "default_run": [],
    "address_space": ["-m", "experiment=address_space", "workload.volume=1G,3G"],
    "belady": ["-m", "experiment=belady"],
    "fragmentation": ["-m", "experiment=fragmentation"],
    "page_size": ["-m", "experiment=page_size"],
    "policies": ["-m", "experiment=policies"],
    "swap_device": ["-m", "experiment=swap_device", "ram=64M"],
    "thrashing": ["-m", "experiment=thrashing", "nprocs=1,7,12"],
    "threshold": ["-m", "experiment=threshold", "seed=0"],
    "trim": ["-m", "experiment=trim", "allocator.top_pad=0,1M"],
    "tuning": ["-m", "experiment=tuning", "hydra.sweeper.n_trials=4"],
}


def _job_key(job: Path) -> str:
    ov = job / ".hydra" / "overrides.yaml"
    pairs = yaml.safe_load(ov.read_text()) or [] if ov.is_file() else []
    return ",".join(sorted(str(p) for p in pairs if not str(p).startswith("hydra."))) or "-"


def run_case(name: str, args: list[str], tmp: Path) -> dict[str, str]:
    out = tmp / name
    multirun = "-m" in args
    where = f"hydra.sweep.dir={out}" if multirun else f"hydra.run.dir={out}"
    cmd = [sys.executable, "run.py", *args, "figures=false", where]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    print(f"{name:14s} {wall:6.1f} s  exit {r.returncode}", flush=True)
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
    hashes: dict[str, str] = {}
    jobs = [p.parent for p in out.rglob("metrics.json")]
    for job in sorted(jobs):
        key = _job_key(job)
        for f in FILES:
            path = job / f
            if path.is_file():
                hashes[f"{name}/{key}/{f}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    summary = out / "summary.csv"
    if summary.is_file():
        hashes[f"{name}/summary.csv"] = hashlib.sha256(summary.read_bytes()).hexdigest()
    return hashes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "compare"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--only", nargs="*", help="run only these cases")
    a = ap.parse_args()
    cases = {k: v for k, v in CASES.items() if not a.only or k in a.only}
    with tempfile.TemporaryDirectory(prefix="vmexp-identical-") as d:
        got: dict[str, str] = {}
        for name, args in cases.items():
            got.update(run_case(name, args, Path(d)))
    if a.mode == "record":
        a.file.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(got)} files in {a.file}")
        return 0
    want = json.loads(a.file.read_text())
    if a.only:
        want = {k: v for k, v in want.items() if k.split("/", 1)[0] in cases}
    differ = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    for k in differ:
        print(f"differs: {k}")
    for k in missing:
        print(f"missing: {k}")
    for k in extra:
        print(f"new:     {k}")
    same = len(want.keys() & got.keys()) - len(differ)
    print(
        f"identical: {same} of {len(want)} files; {len(differ)} differ, {len(missing)} missing, {len(extra)} new"
    )
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
