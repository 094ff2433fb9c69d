"""vmexp's Hydra launcher (``hydra/launcher=vmexp``, the default): a sweep's jobs on this machine's cores.

Hydra takes launchers only from the ``hydra_plugins`` namespace package, so
the class lives here; what it does is ``vmexp.launcher``.
"""
