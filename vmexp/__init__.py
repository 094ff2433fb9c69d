"""vmexp: declarative experiments on Linux process memory management (glibc malloc, demand paging, swap)."""

__version__ = "0.1.0"
