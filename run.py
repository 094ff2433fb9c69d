"""vmexp: run an experiment (python run.py) or a sweep (python run.py -m threshold=64k,128k,256k)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vmexp import app

app.install_error_handler()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return app.main(cfg)


if __name__ == "__main__":
    main()
    sys.exit(app.exit_status())
