"""Page-replacement policies: one module each, all behind the interface of ``base``.

The policies register themselves (``@register``) in
``vmexp.registry.POLICIES`` when their module is imported; the registry
imports every module of this package the first time a name is looked up,
so the list of valid names is never written by hand. ``make_policy`` is the
one entry point the kernel needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vmexp.kernel.policies.base import REGISTRY, FrameView, Policy, PolicyError, make_params, register
from vmexp.registry import POLICIES

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


def policy_class(name: str) -> type[Policy]:
    """The class registered as ``name``; an unknown name lists the valid ones."""
    cls: type[Policy] = POLICIES.get(name, "policy").obj
    return cls


def make_policy(
    name: str, params: Mapping[str, Any] | None, view: FrameView, rng: np.random.Generator
) -> Policy:
    """A ready policy from the config's ``policy.name`` and ``policy.params``.

    ``params`` may be the policy's typed ``Params``, any mapping of typed
    values or unit strings (an OmegaConf ``DictConfig`` included), or
    ``None`` for a policy without parameters; unknown or invalid keys raise
    ``PolicyError`` naming the key.
    """
    cls = policy_class(name)
    return cls(view, make_params(cls, params if params is not None else {}), rng)
