"""``python -m vmexp``: the same command as ``vmexp`` and ``python run.py``."""

from vmexp.cli import run

if __name__ == "__main__":
    run()
