"""The launcher class Hydra instantiates for ``hydra/launcher=vmexp``; its work is ``vmexp.launcher``.

Hydra imports every module of ``hydra_plugins`` at each start, so this one
imports nothing of vmexp until a sweep is launched. (No ``from __future__
import annotations``: Hydra loads plugin modules outside ``sys.modules``,
where a dataclass cannot resolve string annotations.)
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class VmexpLauncherConf:
    _target_: str = "hydra_plugins.vmexp_launcher.vmexp_launcher.VmexpLauncher"
    # How many jobs run at once; null: one per core this process may use.
    n_jobs: Any = None


ConfigStore.instance().store(group="hydra/launcher", name="vmexp", node=VmexpLauncherConf, provider="vmexp")


class VmexpLauncher(Launcher):
    def __init__(self, n_jobs: Any = None) -> None:
        super().__init__()
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from vmexp.launcher import share_compositions  # a sweep is starting: vmexp is imported now

        share_compositions(hydra_context)  # the jobs' configs the sweeper composes, composed once
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from vmexp.launcher import launch

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        return launch(
            self.config, self.hydra_context, self.task_function, job_overrides, initial_job_idx, self.n_jobs
        )
