"""vmexp: declarative experiments on Linux process memory management (glibc malloc, demand paging, swap).

The Python API (README "Python API"): ``vmexp.run``, ``vmexp.sweep``, ``vmexp.load``.
"""

from vmexp.api import Run, Sweep, VmexpError, load, run, sweep

__version__ = "0.1.0"

__all__ = ["Run", "Sweep", "VmexpError", "__version__", "load", "run", "sweep"]
