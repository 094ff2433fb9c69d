"""Lifetime models of the generators (``workload.lifetime: {dist: NAME, ...}``), in allocation steps.

Each model is a frozen dataclass of its declared parameters, registered
under its name. ``death(rng)`` returns the function the generator's loop
calls for every block that is not long-lived: the step at which a block
allocated at step ``t`` is freed. The choice of model is made once, when
the function is built, so the loop compares no names.

``long_lived`` (every model): the fraction of blocks never freed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vmexp.fields import fraction, integer, number
from vmexp.registry import LIFETIMES
from vmexp.workload.stream import draws

__all__ = ["Death"]

Death = Callable[[int], int]


@dataclass(frozen=True)
class _Lifetime:
    long_lived: float = fraction(0.0, "fraction of the blocks never freed")


@LIFETIMES.register("exponential")
@dataclass(frozen=True)
class Exponential(_Lifetime):
    """Memoryless: a block dies at each step with probability 1/mean."""

    mean: float = number(None, "the mean lifetime in allocation steps", lo=1.0)

    def death(self, rng: np.random.Generator) -> Death:
        # Geometric: the discrete exponential on 1, 2, ... with exactly the mean asked for.
        p_die = 1.0 / self.mean
        lives = draws(lambda n: rng.geometric(p_die, n).tolist())
        return lambda t: t + next(lives)


@LIFETIMES.register("fixed")
@dataclass(frozen=True)
class Fixed(_Lifetime):
    """Every block lives the same number of steps (a sliding window)."""

    steps: int = integer(None, "the lifetime in allocation steps", lo=1)

    def death(self, rng: np.random.Generator) -> Death:
        steps = self.steps
        return lambda t: t + steps


@LIFETIMES.register("batch")
@dataclass(frozen=True)
class Batch(_Lifetime):
    """Blocks die together: all blocks of a batch of ``size`` are freed ``delay`` steps after it is complete."""

    size: int = integer(None, "blocks per batch", lo=1)
    delay: int = integer(0, "steps between a batch's completion and its death", lo=0)

    def death(self, rng: np.random.Generator) -> Death:
        batch, delay = self.size, self.delay
        return lambda t: (t // batch + 1) * batch + delay
