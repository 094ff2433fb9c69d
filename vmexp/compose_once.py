"""One composition of the config per command, where Hydra made two.

Before it runs a command, Hydra asks which mode the config wants
(``Hydra.get_mode``: ``hydra.mode`` may be set in a config file or as an
override): it composes the whole config, reads ``cfg.hydra.mode`` and
throws the config away; ``Hydra.run`` or ``Hydra.multirun`` then composes
it again with ``hydra.mode=RUN`` (or ``MULTIRUN``) added to the overrides.
A composition costs 0.15–0.2 s of CPU (the defaults tree, every YAML file,
a deep copy of the ConfigStore): about a third of a command that stops at
a bad value, and of the start of every run and sweep.

Here ``get_mode`` composes the config as the command will need it (in the
mode of its ``-m`` flag, with Hydra's check of sweep overrides) and keeps
it; the next composition of the same overrides, with or without the added
``hydra.mode=...``, gets that config with the override applied as Hydra
applies it (the key set, the override appended to
``hydra.overrides.hydra``). The mode found is the one Hydra finds: its own
composition differs only in skipping config groups left ``???`` and in not
checking sweep overrides, and a config that composes here has neither
problem. If it does not compose, Hydra's own ``get_mode`` runs, so every
error is reported as before.

Hydra 1.3 names; where they are missing (another release), nothing is
changed.
"""

from __future__ import annotations

from typing import Any

from hydra.types import RunMode

__all__ = ["compose_once"]

_installed = False
_multirun = False


def compose_once(*, multirun: bool) -> None:
    """Make Hydra compose the config once in this process's command (``multirun``: ``-m`` was given)."""
    global _installed, _multirun
    _multirun = multirun
    if _installed:
        return
    try:
        from hydra._internal.hydra import Hydra
    except ImportError:
        return
    hydras_get_mode = Hydra.get_mode  # for a config that does not compose in the mode asked for

    def get_mode(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        mode = RunMode.MULTIRUN if _multirun else RunMode.RUN
        try:
            cfg = self.compose_config(config_name=config_name, overrides=overrides, run_mode=mode)
        except Exception:
            return hydras_get_mode(self, config_name, overrides)
        _keep(self.config_loader, config_name, list(overrides), mode, cfg)
        return cfg.hydra.mode

    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    _installed = True


def _keep(loader: Any, name: str | None, kept: list[str], mode: RunMode, cfg: Any) -> None:
    """Answer the loader's next composition with ``cfg`` if it asks for the same one (once)."""
    load = loader.load_configuration

    def load_configuration(
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> Any:
        del loader.load_configuration  # one answer: the sweep's jobs compose their own configs
        added = overrides[len(kept) :]
        same = (
            config_name == name
            and run_mode == mode
            and from_shell
            and validate_sweep_overrides
            and overrides[: len(kept)] == kept
            and added in ([], [f"hydra.mode={mode.name}"])
        )
        if not same:
            return load(config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
        if added:
            cfg.hydra.mode = mode
            cfg.hydra.overrides.hydra.append(added[0])
        return cfg

    loader.load_configuration = load_configuration
