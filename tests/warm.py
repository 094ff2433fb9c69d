"""``python run.py ARGS`` for the tests, each in a process forked from one that has imported vmexp.

A command the tests start pays Python's and vmexp's start-up before it does
anything: the imports of ``run.py`` (Hydra, numpy, the engine: about 0.5 s
of CPU) and, in a sweep, those of the plotting code its launcher loads
while the jobs run (pandas, matplotlib, seaborn: 1.5 s more). Forty-odd
commands paid that in every run of the suite. Here one server process per
test worker imports what ``run.py`` and its launcher import, as they import
it (``vmexp.launcher._preload`` and ``_import_plotting``), once; each
command is a fork of it that runs ``run.py`` as ``__main__`` with the
command's own argv, working directory, environment, stdin, stdout and
stderr (at the file-descriptor level, as a shell gives them), and ends as
Python ends a script (``SystemExit``, the traceback of an uncaught
exception, atexit). What a test sees is what ``subprocess.run`` would have
given, only sooner: ``run(args, ...)`` (``python run.py ARGS``) and
``run_module(module, args, ...)`` (``python -m MODULE ARGS``) take the
arguments of ``subprocess.run`` that the tests use and return a
``CompletedProcess``.

What a fresh interpreter alone shows stays with ``subprocess``: the import
of the package itself (``tests/test_packaging.py``, the docs example from
another directory), commands a test interrupts or kills (they need a
process group of their own), and the checks of what a command imports.
Without ``os.fork`` (not Linux or macOS) ``run`` is ``subprocess.run``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "run.py"

# The server: imports, then one command per line of stdin (JSON), answering on stdout with the
# child's pid and then its wait status. It never writes to sys.stdout itself (a child would flush
# what the buffer held into its own output): the answers go straight to the file descriptor.
_SERVER = r"""
import json, os, runpy, signal, sys
out = os.dup(1)
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
os.close(null)
import vmexp.cli
from vmexp.launcher import _import_plotting, _preload
_preload()
_import_plotting()
os.write(out, b"ready\n")
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.close(out)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        for fd, (path, flags) in enumerate(
            [(os.devnull, os.O_RDONLY), (req["stdout"], os.O_WRONLY), (req["stderr"], os.O_WRONLY)]
        ):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = req["argv"]
        sys.path[0] = os.getcwd() if req["module"] else os.path.dirname(os.path.abspath(req["argv"][0]))
        try:
            if req["module"]:  # python -m MODULE: argv[0] becomes the module's file
                runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(req["argv"][0], run_name="__main__")
        except SystemExit:
            raise
        except KeyboardInterrupt:  # as Python ends on one: the traceback, then killed by SIGINT
            sys.excepthook(*sys.exc_info())
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            raise SystemExit(1)
        raise SystemExit(0)
    os.write(out, b"%d\n" % pid)
    os.write(out, b"%d\n" % os.waitpid(pid, 0)[1])
"""


class _Server:
    """One warm process per test worker, started at its first command."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        )
        assert self.proc.stdin and self.proc.stdout
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout.fileno()
        self.pending = b""
        assert self._line(600) == b"ready", "tests/warm.py: the server did not start"

    def _line(self, timeout: float | None) -> bytes:
        """The server's next line; TimeoutError if none comes within ``timeout`` seconds."""
        while b"\n" not in self.pending:
            if timeout is not None and not select.select([self.stdout], [], [], timeout)[0]:
                raise TimeoutError
            chunk = os.read(self.stdout, 4096)
            if not chunk:
                raise RuntimeError("tests/warm.py: the server ended")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def run(
        self, module: str | None, argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        with tempfile.TemporaryDirectory(prefix="warm") as d:
            out, err = Path(d, "stdout"), Path(d, "stderr")
            out.touch()
            err.touch()
            req = {
                "module": module,
                "argv": argv,
                "cwd": str(cwd),
                "env": dict(env),
                "stdout": str(out),
                "stderr": str(err),
            }
            data = memoryview(json.dumps(req).encode() + b"\n")
            while data:
                data = data[self.stdin.write(data) or 0 :]
            pid = int(self._line(60))
            try:
                status = int(self._line(timeout))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._line(None)
                raise subprocess.TimeoutExpired(
                    argv, timeout or 0, out.read_bytes(), err.read_bytes()
                ) from None
            return os.waitstatus_to_exitcode(status), out.read_bytes(), err.read_bytes()

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)


_server: _Server | None = None


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([sys.executable, "run.py", *args], cwd=..., env=..., capture_output=True, text=True)``."""
    # run.py as the tests typed it: relative to the repository, absolute from anywhere else.
    script = "run.py" if Path(cwd).resolve() == ROOT else str(RUN_PY)
    return _run(None, [script, *map(str, args)], cwd, env, timeout)


def run_module(
    module: str,
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([sys.executable, "-m", module, *args], ...)``, as ``run`` does for run.py."""
    return _run(module, ["-m", *map(str, args)], cwd, env, timeout)


def _run(
    module: str | None,
    argv: list[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    timeout: float | None,
) -> subprocess.CompletedProcess[str]:
    global _server
    cmd = [sys.executable, *argv[:1], *([module] if module else []), *argv[1:]]
    if not hasattr(os, "fork"):
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if _server is None:
        _server = _Server()
        atexit.register(_server.close)
    code, out, err = _server.run(module, argv, Path(cwd), os.environ if env is None else env, timeout)
    return subprocess.CompletedProcess(cmd, code, out.decode(errors="replace"), err.decode(errors="replace"))
