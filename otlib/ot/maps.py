"""What a trained transport method gives its user, whatever the method: one result type.

A :class:`TransportMap` holds one trained state (one seed: ``RunResult.seed(i)``) and the method's pure
functions of it: the forward map T: α → β, the inverse map T⁻¹: β → α where the method learns one, and the
dual estimate of the optimal transport cost between α and β. W2OT (Amos 2023) and ENOT (Buzun et al. 2024)
build theirs with ``transport_map(state)``.

Conventions: the squared-Euclidean cost is c(x, y) = ½‖x − y‖², so for it the estimate is ½W₂²(α, β);
OTT-JAX and Sinkhorn in :mod:`otlib.ot.sinkhorn` use ‖x − y‖², twice this.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax

__all__ = ["TransportMap"]


@dataclasses.dataclass(frozen=True)
class TransportMap:
    """A trained transport method's maps and cost estimate on one state.

    Attributes:
      state: the trained state of one seed.
      method: the method's name, for messages.
      forward: ``forward(state, x) -> T(x)`` on a batch (n, d).
      backward: ``backward(state, y) -> T⁻¹(y)`` on a batch (n, d), or None where the method learns no inverse.
      cost: ``cost(state, x, y) -> scalar``: the dual estimate of the transport cost from samples x ~ α,
        y ~ β, in the method's cost convention (½W₂² for the squared-Euclidean cost ½‖x − y‖²).
    """

    state: Any
    method: str
    forward: Callable[[Any, jax.Array], jax.Array]
    backward: Optional[Callable[[Any, jax.Array], jax.Array]]
    cost: Callable[[Any, jax.Array, jax.Array], jax.Array]

    def transport(self, x: jax.Array) -> jax.Array:
        """T(x) on a batch (n, d)."""
        return self.forward(self.state, x)

    def inverse(self, y: jax.Array) -> jax.Array:
        """T⁻¹(y) on a batch (n, d); an error where the method learns no inverse."""
        if self.backward is None:
            raise ValueError(f"{self.method} learns no inverse map here; use a method or form that does")
        return self.backward(self.state, y)

    def transport_cost(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """The dual estimate of the optimal transport cost between the measures of x and y (½W₂² for the
        squared-Euclidean cost; twice it is OTT-JAX's W₂²)."""
        return self.cost(self.state, x, y)
