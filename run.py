"""vmexp: run an experiment (python run.py) or a sweep (python run.py -m threshold=64k,128k,256k).

The application itself is ``vmexp.cli`` (also the ``vmexp`` command of an installed package).
"""

import sys

try:
    from vmexp.cli import run
except ModuleNotFoundError as e:
    if (e.name or "vmexp").partition(".")[0] == "vmexp":
        raise
    # The Python that runs this file lacks a package vmexp needs (most often: another Python
    # than the virtual environment vmexp was installed into); say so in one line, not a traceback.
    print(
        f"vmexp: error: {sys.executable} cannot import {e.name}: install vmexp into this Python "
        "(pip install -e ., README 'Quick start'), or run the Python it is installed in",
        file=sys.stderr,
    )
    sys.exit(2)

if __name__ == "__main__":
    run()
