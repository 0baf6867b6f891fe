"""What a training method is: a small record of pure functions.

Every experiment of the three papers is the same loop (draw a batch from two measures, take a step,
now and then evaluate), so a *method* is only

* ``init(key) -> state``: a fresh training state (parameters, optimiser state, step counter: any pytree
  of arrays, no PRNG keys needed inside);
* ``step(state, key) -> (state, metrics)``: one update; it draws its own batch from the measures it
  closes over, so no data crosses from host to device; ``metrics`` is a dict of scalars that holds
  at least ``"loss"`` (the driver watches it for divergence);
* ``evaluate(state, key) -> metrics`` (optional): scalars computed between chunks (L2-UVP, say).

W2OT (Amos 2023), ENOT (Buzun et al. 2024) and POT/VAE (Bousquet et al. 2017) are three factories of
such records; the driver :func:`otlib.core.train.train` runs any of them, with seeds vmapped and steps
scanned. Everything here is pure, so ``jax.vmap`` over seeds and ``jax.lax.scan`` over steps apply.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import jax

__all__ = ["Method", "Sampler", "State", "Metrics"]

State = Any
"""A pytree of arrays."""
Metrics = Mapping[str, jax.Array]
"""Scalars by name."""
Sampler = Callable[[jax.Array, int], jax.Array]
"""A measure, as its sampler: ``sample(key, n) -> (n, d)``."""


@dataclasses.dataclass(frozen=True)
class Method:
    """A training method as pure functions (see the module docstring).

    Attributes:
      name: a short label for tables and progress bars.
      init: ``init(key) -> state``.
      step: ``step(state, key) -> (state, metrics)``, ``metrics["loss"]`` included.
      evaluate: optional ``evaluate(state, key) -> metrics``, run between chunks.
      config: the configuration the method was built from (any hashable record); the driver writes
        its ``repr`` into checkpoints so a run never resumes from another configuration's state.
      num_steps: the step count the configuration schedules (its learning-rate schedule's length), or
        ``None`` when nothing in the method depends on it; the driver trains exactly that many steps.
    """

    name: str
    init: Callable[[jax.Array], State]
    step: Callable[[State, jax.Array], tuple[State, Metrics]]
    evaluate: Optional[Callable[[State, jax.Array], Metrics]] = None
    config: Any = None
    num_steps: Optional[int] = None
