"""Record what the real glibc does with each test trace, so the answers are known without gcc.

Run from the repository root, on a machine with gcc and strace::

    python tests/traces/record_expected.py           # rewrite tests/traces/expected.json
    python tests/traces/record_expected.py --check   # compare only; exit 1 on a difference

For every ``tests/traces/*.trace`` and each setting (glibc's defaults,
``threshold=64k``, ``threshold=256k``), plus the overrides the trace itself
asks for on a ``# overrides:`` line, the trace is replayed against the real
glibc (``vmexp.validate.real.replay_real``) and the file records the overrides,
the syscalls as ``[op, call, length]``, the ten mallinfo2 fields and the
minor/major faults of the replay. Each run is replayed twice and must give the
same answer both times: only reproducible facts are recorded.
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


def trace_overrides(path: Path) -> list[str]:
    """The overrides a trace needs under every setting, from its ``# overrides: a=b c=d`` line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("# overrides:"):
            return text.removeprefix("# overrides:").split()
    return []


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


def record() -> dict[str, Any]:
    strace_version = subprocess.run(["strace", "-V"], capture_output=True, text=True).stdout.splitlines()[0]
    out: dict[str, Any] = {
        "recorded_by": "tests/traces/record_expected.py",
        "glibc": os.confstr("CS_GNU_LIBC_VERSION"),
        "kernel": platform.release(),
        "strace": strace_version,
        "traces": {},
    }
    for path in sorted(HERE.glob("*.trace")):
        extra = trace_overrides(path)
        runs = {name: record_one(path, ov + extra) for name, ov in SETTINGS.items()}
        out["traces"][path.stem] = {"rule": rule_of(path), "runs": runs}
    return out


def dump(data: dict[str, Any]) -> str:
    """JSON with one syscall per line, so a change in glibc's behaviour reads as a small diff."""
    text = json.dumps(data, indent=1)
    # Fold every innermost list (no nested list or object) onto one line.
    inner = re.compile(r"\[\s+([^\[\]{}]*?)\s+\]")
    return inner.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def main() -> int:
    data = record()
    text = dump(data)
    if json.loads(text) != data:
        raise SystemExit("internal error: the folded JSON does not read back as the data")
    if "--check" in sys.argv[1:]:
        old = json.loads(EXPECTED.read_text(encoding="utf-8"))
        same = old["traces"] == data["traces"]
        print("expected.json matches the real glibc" if same else "expected.json differs from the real glibc")
        return 0 if same else 1
    EXPECTED.write_text(text, encoding="utf-8")
    n = sum(len(t["runs"]) for t in data["traces"].values())
    print(f"wrote {EXPECTED.relative_to(ROOT)}: {len(data['traces'])} traces, {n} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
