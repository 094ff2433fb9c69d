"""Page-replacement policies: one module each, all behind the interface of ``base``.

Importing this package imports every policy module, and each module's
``@register`` fills ``REGISTRY``, so the list of valid names is never
written by hand. ``make_policy`` is the one entry point the kernel needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vmexp.kernel.policies import clock, fifo, lfu, linux, lru, lru2q, opt, random, ws
from vmexp.kernel.policies.base import REGISTRY, FrameView, Policy, PolicyError, make_params, register

__all__ = [
    "REGISTRY",
    "FrameView",
    "Policy",
    "PolicyError",
    "make_params",
    "make_policy",
    "policy_class",
    "register",
]

# The modules are imported for their @register side effect.
_MODULES = (clock, fifo, lfu, linux, lru, lru2q, opt, random, ws)


def policy_class(name: str) -> type[Policy]:
    """The class registered as ``name``; an unknown name lists the valid ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(REGISTRY))
        raise PolicyError(f"policy={name}: unknown replacement policy (valid: {valid})") from None


def make_policy(
    name: str, params: Mapping[str, Any] | None, view: FrameView, rng: np.random.Generator
) -> Policy:
    """A ready policy from the config's ``policy.name`` and ``policy.params``.

    ``params`` may be any mapping (an OmegaConf ``DictConfig`` included) and
    may be ``None`` for a policy without parameters; unknown or invalid keys
    raise ``PolicyError`` naming the key.
    """
    cls = policy_class(name)
    values = {str(k): v for k, v in (params or {}).items()}
    return cls(view, make_params(cls, values), rng)
