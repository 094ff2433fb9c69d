"""Importing the plotting code without what no vmexp figure uses: seaborn's scipy statistics.

seaborn imports ``scipy.stats`` and ``scipy.cluster`` at its own import
(about half of its 1.5 s of CPU) for kernel density estimates and
clustered heat maps; vmexp's figures draw lines, points and bars. With
``None`` in ``sys.modules`` those imports fail, and seaborn falls back to
its bundled KDE and leaves clustering off; the entries are removed again
after the import, so scipy imports as usual afterwards. Only command-line
processes take this path (the sweep's launcher and ``python -m
vmexp.report``), where no user code draws with seaborn: a notebook that
imports vmexp's report code gets seaborn as it always is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["UNUSED_BY_FIGURES", "without_scipy_statistics"]

# What seaborn imports only for what vmexp never draws.
UNUSED_BY_FIGURES = ("scipy.stats", "scipy.cluster")


@contextmanager
def without_scipy_statistics() -> Iterator[None]:
    """Imports inside see ``scipy.stats`` and ``scipy.cluster`` as missing (unless already imported)."""
    blocked = [name for name in UNUSED_BY_FIGURES if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
