"""The 2-D metric: Sinkhorn divergences between point clouds (via OTT-JAX), as in Amos (2023) and ENOT.

A learned map T is judged on fresh samples X ~ μ, Y ~ ν (``eval_extra`` in Amos's ``w2ot/data.py``):

    forward error  S_ε(T(X), Y),        inverse error  S_ε(T⁻¹(Y), X),

where S_ε is the debiased Sinkhorn divergence (Feydy et al. 2019)

    S_ε(α, β) = OT_ε(α, β) - ½ OT_ε(α, α) - ½ OT_ε(β, β)

between the uniform empirical measures, with the squared-Euclidean cost c(x, y) = ‖x - y‖² (OTT's
``SqEuclidean``: no ½), so S_ε → W₂² as ε → 0 and S_ε(α, α) = 0. This is the ENOT tutorial's metric
(OTT-JAX 0.6.0, ``docs/tutorials/neural/300_ENOT.ipynb``: e.g. S(source, target) = 21.15 on square_five →
square_four). Amos's ``eval_extra`` reported the biased ``reg_ot_cost`` OT_ε instead, which is not zero
for a perfect map; the debiased form is used here for both papers.

ε is absolute (not relative to the cost's scale): ``EPSILON = 1e-2``, the value of Amos's first commit
(its later code ignores ε and falls back on OTT's default; the ENOT tutorial uses 1e-3). Sinkhorn is
started at ``ANNEAL_INIT · ε`` and ε is decayed geometrically to its target (ε-scaling), which brings
512-point clouds at ε = 1e-2 to OTT's default tolerance in a few hundred iterations instead of
thousands. OTT-JAX is an optional dependency (``pip install 'otlib[peers]'``), imported on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from otlib.data.toy2d import Pair

__all__ = ["EPSILON", "ANNEAL_INIT", "ANNEAL_DECAY", "MAX_ITERATIONS", "sinkhorn_divergence", "transport_errors"]

EPSILON = 1e-2
"""Entropic regularisation, absolute (w2ot's first commit: ``transport.solve(..., epsilon=1e-2)``)."""
ANNEAL_INIT = 1e3
"""ε-scaling starts at ``ANNEAL_INIT · ε`` (10 for ε = 1e-2: a blurred problem that Sinkhorn solves at once)."""
ANNEAL_DECAY = 0.9
"""Geometric decay of ε per Sinkhorn iteration until it reaches its target (about 66 iterations from 1e3·ε)."""
MAX_ITERATIONS = 100_000
"""Sinkhorn iteration cap for each of the three problems; the result is NaN when it is hit."""

Map = Callable[[jax.Array], jax.Array]


def _ott():
    try:
        from ott.geometry import costs, epsilon_scheduler
        from ott.tools.sinkhorn_divergence import sinkdiv
    except ImportError as error:
        raise ImportError("the Sinkhorn divergence needs OTT-JAX; install it with `pip install 'otlib[peers]'` "
                          "(ott-jax[neural]==0.6.0)") from error
    return sinkdiv, costs.SqEuclidean(), epsilon_scheduler.Epsilon


def sinkhorn_divergence(x: jax.Array, y: jax.Array, epsilon: float = EPSILON, *,
                        max_iterations: int = MAX_ITERATIONS) -> jax.Array:
    """Debiased Sinkhorn divergence S_ε between the point clouds ``x (n, d)`` and ``y (m, d)``, jitted.

    Uniform weights, cost ‖x - y‖² (so the value estimates W₂², not ½W₂²), absolute ``epsilon``,
    ε-scaling from ``ANNEAL_INIT · epsilon``. Returns a scalar; NaN if any of the three Sinkhorn problems
    did not reach OTT's default tolerance within ``max_iterations`` (raise it, or ``epsilon``).
    """
    return _sinkhorn_divergence(x, y, jnp.asarray(epsilon, jnp.float32), max_iterations)


@functools.partial(jax.jit, static_argnums=3)
def _sinkhorn_divergence(x: jax.Array, y: jax.Array, epsilon: jax.Array, max_iterations: int) -> jax.Array:
    sinkdiv, sq_euclidean, Epsilon = _ott()
    schedule = Epsilon(epsilon, init=ANNEAL_INIT, decay=ANNEAL_DECAY)
    divergence, out = sinkdiv(x, y, cost_fn=sq_euclidean, epsilon=schedule,
                              solve_kwargs={"max_iterations": max_iterations})
    return jnp.where(jnp.all(jnp.asarray(out.converged)), divergence, jnp.nan)


def transport_errors(forward_fn: Map, inverse_fn: Map | None, pair: Pair, key: jax.Array, n: int = 512, *,
                     epsilon: float = EPSILON) -> dict[str, jax.Array]:
    """Amos's 2-D metric (``eval_extra`` in ``w2ot/data.py``) with the debiased divergence, on ``n`` fresh samples.

    Args:
      forward_fn: the learned map T, ``(n, d) -> (n, d)`` (e.g. ∇f).
      inverse_fn: the learned inverse T⁻¹ (e.g. ∇f*), or None to skip the inverse error.
      pair: the measures μ → ν (:class:`otlib.data.toy2d.Pair`).
      key: draws X ~ μ and Y ~ ν (w2ot used ``PRNGKey(0)`` every time; pass a fixed key to do the same).
      n: sample size (512 in w2ot and the ENOT tutorial).
      epsilon: entropic regularisation, absolute.

    Returns:
      ``{"forward": S_ε(T(X), Y), "inverse": S_ε(T⁻¹(Y), X)}`` (no ``"inverse"`` without ``inverse_fn``).
    """
    key_x, key_y = jax.random.split(key)
    x, y = pair.source(key_x, n), pair.target(key_y, n)
    errors = {"forward": sinkhorn_divergence(forward_fn(x), y, epsilon)}
    if inverse_fn is not None:
        errors["inverse"] = sinkhorn_divergence(inverse_fn(y), x, epsilon)
    return errors
