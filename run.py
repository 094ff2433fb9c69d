"""vmexp: run an experiment (python run.py) or a sweep (python run.py -m threshold=64k,128k,256k).

The application itself is ``vmexp.cli`` (also the ``vmexp`` command of an installed package).
"""

from vmexp.cli import main

if __name__ == "__main__":
    main()
