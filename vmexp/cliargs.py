"""Command-line parsing for vmexp's ``python -m`` commands, with the project's error contract.

argparse prints its usage block (three or four lines) above a misuse of the
command line, where every other bad input of vmexp gets one line naming what
is wrong and exit status 2. A script that reads the last line of stderr, or a
user scanning for ``error:``, then met a different shape for ``--runs abc``
than for a missing file. ``Parser`` keeps argparse's message and status and
drops the block, pointing to ``--help`` instead; ``--help`` itself is unchanged.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``NAME: error: MESSAGE (see PROG --help)``.

    ``name`` is the prefix the command's other errors use (``vmexp.compare``);
    subcommand parsers made by ``add_subparsers`` are of this class too and
    take their name from their ``prog``.
    """

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name or self.prog.removeprefix("python -m ")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.name}: error: {message} (see {self.prog} --help)\n")
