"""python -m vmexp.report SWEEP_DIR: (re)write summary.csv, figures and report of a sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmexp.report.sweep import aggregate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmexp.report", description=__doc__)
    ap.add_argument(
        "sweep_dir", type=Path, help="a multirun directory (its job folders hold .hydra/ and metrics.json)"
    )
    args = ap.parse_args(argv)
    try:
        failed = aggregate(args.sweep_dir)
    except (FileNotFoundError, NotADirectoryError) as e:
        print(f"vmexp.report: error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
