"""python -m vmexp.report DIR: (re)write a sweep's summary.csv, figures and report, or a run's figures."""

from __future__ import annotations

import sys
from pathlib import Path

from vmexp.cliargs import Parser
from vmexp.console import keep_going_without_a_reader
from vmexp.report.lean import without_scipy_statistics
from vmexp.report.run_figures import RunFileError
from vmexp.report.sweep import ReportError, aggregate


def main(argv: list[str] | None = None) -> int:
    keep_going_without_a_reader()
    ap = Parser(prog="python -m vmexp.report", description=__doc__)
    ap.add_argument(
        "dir",
        type=Path,
        help="a multirun directory (its job folders hold .hydra/ and metrics.json), "
        "or one run's directory (its figures are redrawn)",
    )
    args = ap.parse_args(argv)
    from vmexp.api import Run, directory_kind

    try:
        # A sweep written where a run was (the same out_dir) is a sweep: its report, not the run's figures.
        is_run = args.dir.is_dir() and directory_kind(args.dir) == "run"
        if is_run and (args.dir / "metrics.json").is_file():
            from vmexp.report.run_figures import draw_run_figures

            for p in draw_run_figures(args.dir):
                print(p)
            return 0
        if is_run:  # a run that did not finish has nothing to draw
            run = Run(args.dir)
            why = f"the run failed: {run.error}" if run.status == "failed" else f"status {run.status}"
            raise ReportError(f"{args.dir}: a run without metrics.json ({why}): no figures to draw")
        with without_scipy_statistics():  # a command line: no user code here draws with seaborn
            import vmexp.report.report  # noqa: F401  (the sweep's figures and report; seaborn)
        failed = aggregate(args.dir)
    except (FileNotFoundError, NotADirectoryError, ReportError, RunFileError) as e:
        print(f"vmexp.report: error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    from vmexp.console import run_program

    run_program(main)
