"""What ``pip install .`` gives: a wheel that carries every config and the ``vmexp`` command.

The configs live in ``conf/`` at the top of the repository (``conf/experiment``
a link to ``../experiments``); the package reaches them through the link
``vmexp/conf``. A wheel must hold real copies, so that an installed vmexp
finds every group, presets included, from any directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
_SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the source tree (the repository is left as it is)."""
    d = tmp_path_factory.mktemp("wheel")
    src = d / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_SKIP)
    r = subprocess.run(
        [PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(d / "dist"), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (found,) = (d / "dist").glob("vmexp-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_every_config_file_as_a_copy(wheel: Path) -> None:
    conf = ROOT / "conf"
    expected = {
        f"vmexp/conf/{(Path(d) / f).relative_to(conf).as_posix()}": (Path(d) / f).read_bytes()
        for d, _, files in os.walk(conf, followlinks=True)  # through conf/experiment -> ../experiments
        for f in files
        if f.endswith(".yaml")
    }
    assert any(name.startswith("vmexp/conf/experiment/") for name in expected)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        held = {n: z.read(n) for n in names if n.startswith("vmexp/conf/")}
        entry_points = next(
            z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")
        )
        metadata = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    assert held == expected
    assert "hydra_plugins/vmexp_launcher/vmexp_launcher.py" in names  # the default launcher of every sweep
    assert "vmexp = vmexp.cli:run" in entry_points
    assert "Requires-Python: >=3.11\n" in metadata


def test_dependencies_are_ranges_and_every_upper_bound_says_why() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    lines = text.splitlines()
    project = tomllib.loads(text)["project"]
    deps = list(project["dependencies"]) + [
        d for items in project["optional-dependencies"].values() for d in items
    ]
    for dep in deps:
        assert "==" not in dep, f"{dep}: a pin keeps vmexp from installing beside a user's own packages"
        assert ">=" in dep, f"{dep}: no lower bound"
        if "<" in dep:
            i = next(i for i, line in enumerate(lines) if f'"{dep}"' in line)
            said = "#" in lines[i] or lines[i - 1].lstrip().startswith("#")
            assert said, f"{dep}: an upper bound needs a comment naming the release that breaks"


@pytest.mark.slow
def test_an_installed_wheel_runs_a_preset_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import vmexp, sys\n"
        f"assert vmexp.__file__.startswith({str(site)!r}), vmexp.__file__\n"
        "sw = vmexp.sweep(['experiment=belady', 'policy=fifo', 'ram=12k,16k', 'figures=false'], quiet=True)\n"
        "print(list(sw.summary['faults']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run(
        [PY, "-P", "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[9, 10]"  # Belady's anomaly, from the packaged preset
    assert list((elsewhere / "outputs" / "sweeps").glob("*/*_belady/summary.csv"))
