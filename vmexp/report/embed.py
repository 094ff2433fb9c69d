"""PNG figures inside HTML: a sweep's report.html, and a notebook's view of a run or a sweep (vmexp.api).

The PNG goes in as a data URI, so the page is one file that can be mailed or
moved, and a notebook shows it without serving the run directory.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["png_figure"]


def png_figure(path: Path) -> str:
    """``<figure>`` holding the PNG at ``path``; its name (without .png) is the image's alt text."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'></figure>"
