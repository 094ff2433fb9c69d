"""The look shared by every figure, and axes that speak in the units of memory.

Byte axes get ticks at multiples of a power of two, so they read
``0, 16 MiB, 32 MiB, 48 MiB, 64 MiB`` rather than matplotlib's decimal
``57.22 MiB``: memory sizes are powers of two, and a reader compares a
tick with a page, a threshold or a RAM size. Log byte axes put their ticks
at powers of two (every 2^k with k a multiple of a step chosen to keep
about six ticks), which is what a 4 KiB page next to a 128 TiB address
space needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import matplotlib

matplotlib.use("Agg")
from matplotlib.axes import Axes
from matplotlib.ticker import EngFormatter, FuncFormatter, Locator, MaxNLocator, PercentFormatter

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.11; only its name is used

__all__ = [
    "STYLE",
    "PALETTE",
    "STATE_COLORS",
    "BinaryLocator",
    "InViewMaxNLocator",
    "in_view",
    "LogBinaryLocator",
    "fmt_bytes",
    "bytes_axis",
    "percent_axis",
    "PercentTicks",
    "seconds_axis",
    "spans_orders",
    "binary_step",
]

# Applied with matplotlib.rc_context around each figure, so that drawing a
# figure never changes the caller's global matplotlib state.
STYLE: dict[RcKeyType, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#444444",
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    # A fixed title position: left to itself (None) matplotlib measures every tick label of the axes
    # (and of its siblings) at each draw to keep the title clear of top ticks these figures never have.
    "axes.titley": 1.0,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
    "font.family": "DejaVu Sans",
    "savefig.dpi": 100,
}

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

# Chunk states of a heap walk (vmexp.libc.base.CHUNK_STATES). In-use memory
# is dark and the holes that fragmentation leaves are the warm colours, so a
# fragmented heap reads as dark blocks sprinkled with orange.
STATE_COLORS: dict[str, str] = {
    "in_use": "#0B3C6E",
    "free": "#E69F00",
    "tcache": "#F0E442",
    "fastbin": "#CC79A7",
    "top": "#009E73",
    "mmapped": "#56B4E9",
}

_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def fmt_bytes(v: float, _pos: Any = None) -> str:
    """A tick label: ``16 MiB``, ``1.5 MiB``, ``512 B`` (no rounding noise: ticks are binary)."""
    if v < 0:
        return ""
    for unit, mult in _UNITS:
        if v >= mult:
            x = v / mult
            text = f"{x:.0f}" if x == int(x) else f"{x:.3g}"
            return f"{text} {unit}"
    return f"{v:.0f} B"


def binary_step(span: float, max_ticks: int = 7) -> int:
    """The smallest power of two that cuts ``span`` into at most ``max_ticks`` intervals."""
    if span <= 0:
        return 1
    step = 1 << max(0, math.ceil(math.log2(span / max_ticks)))
    while span / step > max_ticks:
        step <<= 1
    return step


def in_view(ticks: Sequence[float], lo: float, hi: float) -> list[float]:
    """The ticks inside [lo, hi] (to rounding).

    matplotlib builds a Tick (three lines and two texts) for every location
    a locator returns, and draws only those in view: a tick beyond the
    view on each side of each axis is a tenth of the ticks built for nothing.
    """
    eps = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    return [t for t in ticks if lo - eps <= t <= hi + eps]


class InViewMaxNLocator(MaxNLocator):
    """matplotlib's default linear locator (``AutoLocator``'s parameters), without the ticks out of view."""

    def __init__(self, nbins: int | Literal["auto"] = "auto") -> None:
        super().__init__(nbins=nbins, steps=[1, 2, 2.5, 5, 10])

    def __call__(self) -> Sequence[float]:
        assert self.axis is not None
        lo, hi = sorted(self.axis.get_view_interval())
        return in_view(super().__call__(), lo, hi)


class BinaryLocator(Locator):
    """Linear ticks at multiples of a power of two (bytes)."""

    def __init__(self, max_ticks: int = 6) -> None:
        self.max_ticks = max_ticks

    def __call__(self) -> Sequence[float]:
        assert self.axis is not None  # set by matplotlib before it asks for ticks
        lo, hi = sorted(self.axis.get_view_interval())
        return in_view(self.tick_values(lo, hi), lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        lo, hi = max(0.0, min(vmin, vmax)), max(vmin, vmax)
        step = binary_step(hi - lo, self.max_ticks)
        first = math.floor(lo / step) * step
        return [float(first + i * step) for i in range(int((hi - first) // step) + 2)]


class LogBinaryLocator(Locator):
    """Log ticks at 2^(k·e): e grows until about ``max_ticks`` fit (1 KiB, 1 MiB, 1 GiB... when wide)."""

    def __init__(self, max_ticks: int = 8) -> None:
        self.max_ticks = max_ticks

    def __call__(self) -> Sequence[float]:
        assert self.axis is not None
        lo, hi = sorted(self.axis.get_view_interval())
        return in_view(self.tick_values(lo, hi), lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        lo = math.floor(math.log2(max(vmin, 1.0)))
        hi = math.ceil(math.log2(max(vmax, 2.0)))
        for e in (1, 2, 3, 4, 5, 10):
            if (hi - lo) / e <= self.max_ticks:
                break
        first = math.floor(lo / e) * e
        return [float(2**k) for k in range(first, hi + e + 1, e)]


def bytes_axis(ax: Axes, which: str = "y", *, log: bool = False, max_ticks: int = 6) -> None:
    """Put binary ticks and ``KiB/MiB/GiB`` labels on an axis of bytes."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    if log:
        (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=2)
        axis.set_major_locator(LogBinaryLocator(max_ticks))
        axis.set_minor_locator(matplotlib.ticker.NullLocator())
    else:
        axis.set_major_locator(BinaryLocator(max_ticks))
    axis.set_major_formatter(FuncFormatter(fmt_bytes))


class PercentTicks(PercentFormatter):
    """Shares (0..1) as percent, with as many decimals as the ticks need and no more.

    A fixed number of decimals fails one range or the other: none makes a
    CPU utilisation between 3 % and 4.6 % read ``0%, 0%, 1%, 2%, 2%, ...``
    (ticks every 0.5 % rounded), two makes 0..100 % read ``20.00%``. The
    decimals are chosen when matplotlib hands the formatter its ticks.
    """

    def __init__(self) -> None:
        super().__init__(1.0, decimals=0)

    def set_locs(self, locs: list[float]) -> None:
        super().set_locs(locs)
        pct = [float(v) * 100 for v in locs]
        self.decimals = next(
            (d for d in range(6) if all(abs(round(p, d) - p) <= 1e-9 * max(1.0, abs(p)) for p in pct)), None
        )


def percent_axis(ax: Axes, which: str = "y") -> None:
    """Shares of 1 shown as percent (``2.5%``, ``5.0%``): tick labels that differ as the ticks do."""
    (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(PercentTicks())


def seconds_axis(ax: Axes, which: str = "y") -> None:
    """Durations as ``20 µs``, ``1.5 ms``: the engineering prefixes people say aloud."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_formatter(EngFormatter(unit="s", sep=" "))
    if axis.get_scale() == "linear":
        axis.set_major_locator(InViewMaxNLocator())


def spans_orders(values: Sequence[float], ratio: float = 100.0) -> bool:
    """True when positive values span more than ``ratio`` (then a log axis shows them all)."""
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if len(pos) < 2 or len(pos) < len([v for v in values if math.isfinite(v)]):
        return False  # a zero cannot sit on a log axis; such data stays linear
    return max(pos) / min(pos) > ratio
