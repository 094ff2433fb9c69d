"""Record what the real glibc does with each regression trace, so the answers are known without gcc.

Run from the repository root, on a machine with gcc and strace::

    python tests/regressions/record.py           # rewrite tests/regressions/expected.json
    python tests/regressions/record.py --check   # compare only; exit 1 on a difference

The traces here are the minimal disagreements between the simulator and the
real glibc that hypothesis shrank (tests/test_differential.py) or that the
fuzzers found; tests/test_differential.py replays each one through the
simulator against the answers recorded here (and live where gcc exists).
Each run is replayed twice and must give the same answer both times: only
reproducible facts are recorded. A trace may depend on RAM + swap only
through requests larger than any machine has (1 TiB and more), so that the
recorded answer holds for the simulator's default machine too.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from vmexp.validate.real import mallopt_from_overrides, replay_real  # noqa: E402

SETTINGS = {"default": [], "threshold=64k": ["threshold=64k"], "threshold=256k": ["threshold=256k"]}
EXPECTED = HERE / "expected.json"


def record_one(path: Path, overrides: list[str]) -> dict[str, Any]:
    answers = []
    for _ in range(2):
        res = replay_real(path, **mallopt_from_overrides(overrides))
        answers.append(
            {"syscalls": [list(c) for c in res.calls()], "mallinfo": res.mallinfo, "minflt": res.minflt}
        )
    if answers[0] != answers[1]:
        raise SystemExit(f"{path.name} {overrides}: two replays disagree, not recorded: {answers}")
    return answers[0]


def record() -> dict[str, Any]:
    return {
        path.stem: {name: record_one(path, ov) for name, ov in SETTINGS.items()}
        for path in sorted(HERE.glob("*.trace"))
    }


def main(argv: list[str]) -> int:
    got = record()
    if "--check" in argv:
        want = json.loads(EXPECTED.read_text())
        if got != want:
            print("the real glibc no longer gives the recorded answers", file=sys.stderr)
            return 1
        print(f"{len(got)} traces: the real glibc gives the recorded answers")
        return 0
    # One syscall per line: [op, call, length] lists are collapsed onto their line.
    text = re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]",
        lambda m: "[" + " ".join(m.group(1).split()) + "]",
        json.dumps(got, indent=1),
    )
    EXPECTED.write_text(text + "\n")
    print(f"recorded {len(got)} traces in {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
