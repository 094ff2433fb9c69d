"""Record what the real glibc does with each trace of the corpus, so the answers are known without gcc.

Run from the repository root, on a machine with gcc and strace::

    python tests/traces/record_expected.py             # rewrite tests/traces/expected.json
    python tests/traces/record_expected.py NAME ...    # (re)record these traces, keep the others
    python tests/traces/record_expected.py --check     # compare only; exit 1 on a difference

This is the project's one corpus of real-glibc measurements: a trace per
fact of glibc 2.36 (the first comment line names the rule it shows), real
programs' traces, and every disagreement with the simulator that
tests/test_differential.py or the fuzzers found, shrunk. To add one, write
``tests/traces/NAME.trace`` and run this script with NAME;
``tests/test_malloc.py`` replays every recorded run through the model (and
against the real glibc where gcc and strace are present).

For every ``tests/traces/*.trace`` and each setting (glibc's defaults,
``threshold=64k``, ``threshold=256k``), plus the overrides the trace itself
asks for on a ``# overrides:`` line, the trace is replayed against the real
glibc (``vmexp.validate.real.replay_real``). A ``# also with: OVERRIDES``
line adds a run under those overrides alone, named by them. The file records
the overrides, the syscalls as ``[op, call, length]``, the ten mallinfo2
fields and the minor/major faults of the replay. Each run is replayed twice
and must give the same answer both times: only reproducible facts are
recorded. A trace may depend on the machine's RAM + swap (Linux's overcommit
check) only through requests no machine has (1 TiB and more), so that the
recorded answer holds anywhere.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from vmexp.validate.real import mallopt_from_overrides, replay_real  # noqa: E402

SETTINGS = {"default": [], "threshold=64k": ["threshold=64k"], "threshold=256k": ["threshold=256k"]}
EXPECTED = HERE / "expected.json"


def header(path: Path, key: str) -> list[list[str]]:
    """The overrides of every ``# KEY: a=b c=d`` line of a trace."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith(f"# {key}:"):
            found.append(text.removeprefix(f"# {key}:").split())
    return found


def runs_of(path: Path) -> dict[str, list[str]]:
    """Run name -> overrides: the three settings (plus ``# overrides:``), then each ``# also with:``."""
    extra = [ov for line in header(path, "overrides") for ov in line]
    runs = {name: ov + extra for name, ov in SETTINGS.items()}
    runs.update({" ".join(ov): ov for ov in header(path, "also with")})
    return runs


def rule_of(path: Path) -> str:
    """The first comment line: the rule the trace exercises."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def record_one(path: Path, overrides: list[str]) -> dict[str, Any]:
    results = []
    for _ in range(2):
        res = replay_real(path, **mallopt_from_overrides(overrides))
        results.append(
            {
                "overrides": overrides,
                "syscalls": [list(c) for c in res.calls()],
                "mallinfo": res.mallinfo,
                "minflt": res.minflt,
                "majflt": res.majflt,
            }
        )
    if results[0] != results[1]:
        raise SystemExit(f"{path.name} {overrides}: two replays differ, not recording:\n{results}")
    return results[0]


def record(names: list[str], keep: dict[str, Any]) -> dict[str, Any]:
    """Record the traces named (all when none is), keeping the recorded runs of the others from ``keep``."""
    strace_version = subprocess.run(["strace", "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    out: dict[str, Any] = {
        "recorded_by": "tests/traces/record_expected.py",
        "glibc": os.confstr("CS_GNU_LIBC_VERSION"),
        "kernel": platform.release(),
        "strace": strace_version,
        "traces": {},
    }
    paths = sorted(HERE.glob("*.trace"))
    unknown = set(names) - {p.stem for p in paths}
    if unknown:
        raise SystemExit(f"no such trace in {HERE.relative_to(ROOT)}: {', '.join(sorted(unknown))}")
    for path in paths:
        if names and path.stem not in names:
            if path.stem in keep:
                out["traces"][path.stem] = keep[path.stem]
            continue
        runs = {name: record_one(path, ov) for name, ov in runs_of(path).items()}
        out["traces"][path.stem] = {"rule": rule_of(path), "runs": runs}
    return out


def dump(data: dict[str, Any]) -> str:
    """JSON with one syscall per line, so a change in glibc's behaviour reads as a small diff."""
    text = json.dumps(data, indent=1)
    # Fold every innermost list (no nested list or object) onto one line.
    inner = re.compile(r"\[\s+([^\[\]{}]*?)\s+\]")
    return inner.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def main() -> int:
    args = sys.argv[1:]
    names = [a for a in args if not a.startswith("-")]
    old = json.loads(EXPECTED.read_text(encoding="utf-8")) if EXPECTED.exists() else {"traces": {}}
    data = record(names, old["traces"])
    text = dump(data)
    if json.loads(text) != data:
        raise SystemExit("internal error: the folded JSON does not read back as the data")
    if "--check" in args:
        same = old["traces"] == data["traces"]
        print("expected.json matches the real glibc" if same else "expected.json differs from the real glibc")
        return 0 if same else 1
    EXPECTED.write_text(text, encoding="utf-8")
    n = sum(len(t["runs"]) for t in data["traces"].values())
    print(f"wrote {EXPECTED.relative_to(ROOT)}: {len(data['traces'])} traces, {n} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
