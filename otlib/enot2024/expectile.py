"""Expectile regularisation of the Kantorovich dual (ENOT, Buzun et al. 2024, §3, Eq. 13-17).

ENOT trains a map T (the amortised argmin of the c-transform) and a potential g with one gradient step
each, no inner conjugate solver. Writing g^T(x) = c(x, T(x)) - g(T(x)) (Eq. 7), the binding condition
g^c(x) + g(y) = c(x, y) on the plan's support is enforced by expectile regression (Eq. 15):

    R_g = L_tau( g^T(x) - c(x, y) + g(y) ),      L_tau(u) = |tau - 1[u <= 0]| u²   (Eq. 13)

whose tau-expectile over x tends to the maximum as tau -> 1, so -g(y) is pushed onto the c-transform
of g^T. The loss of one step is the sum of four terms whose stop-gradients decide which network learns
from which term (as OTT-JAX 0.6.0's ``ExpectileNeuralDual`` computes it, in
``src/ott/neural/methods/expectile_neural_dual.py``; ŷ = sg(T(x))):

=================  =========================================================  ==================
term               value                                                      gradient reaches
=================  =========================================================  ==================
dual               −E[g(y) + c(x, ŷ) − g(ŷ)]                    (Eq. 16)       g, via g(y), g(ŷ)
amortization       E[c(x, T(x)) − g_sg(T(x))]                   (Eq. 17)       T only
reg. half 1        λ E L_tau(sg(g^T(x) − c(x, y)) + g(y))       (Eq. 15)       g, via g(y)
reg. half 2        λ E L_tau(sg(g(y) − c(x, y)) + g^T(x))       (Eq. 15)       g, via −g(ŷ)
=================  =========================================================  ==================

Both halves of the regulariser are the same number with different stop-gradients. Batches are paired
by index (no n x n cost matrix), so a step is O(n).

Implementation note: g(ŷ) (parameters differentiated, point fixed) and g_sg(T(x)) (parameters fixed,
point differentiated) are one forward pass; :func:`_split_gradients` evaluates g once there and routes
each term's cotangent to the parameters or to the point, so no forward pass is repeated whatever the
compiler does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["ENOTLoss", "enot_loss", "expectile_loss", "expectile_regulariser", "fit_expectile_regression"]

Params = Any
PotentialFn = Callable[[Params, jax.Array], jax.Array]
"""``potential(params, y) -> (n,)``: the Kantorovich potential g on a batch."""
TransportFn = Callable[[Params, jax.Array], jax.Array]
"""``transport(params, x) -> (n, d)``: the map T on a batch (a twisted gradient or a map network)."""
CostFn = Callable[[jax.Array, jax.Array], jax.Array]
"""``cost(x, y) -> (n,)``: the ground cost on index-paired rows."""


def expectile_loss(u: jax.Array, tau: float | jax.Array) -> jax.Array:
    """L_tau(u) = |tau − 1[u ≤ 0]| u² elementwise (paper Eq. 13): weight tau above 0, 1 − tau below.

    tau = 0.5 is half the squared error (the mean); tau -> 1 tends to the maximum (Bellini et al. 2014).
    """
    weight = jnp.where(u > 0, tau, 1.0 - tau)
    return weight * jnp.square(u)


def fit_expectile_regression(features: jax.Array, y: jax.Array, tau: float, *,
                             iterations: int = 50) -> jax.Array:
    """Coefficients b minimising mean L_tau(y − features @ b): linear expectile regression (asymmetric least
    squares, Newey & Powell 1987), by iteratively reweighted least squares.

    Each iteration solves the weighted least-squares problem with the weights w = |tau − 1[r ≤ 0]| of the
    current residuals r, as ``lstsq`` of the rows scaled by sqrt(w) (not the normal equations, whose
    condition number is the square of the design's: for polynomial features in float32 that flipped the
    order of the fitted curves); the weights stop changing once the residuals' signs do, which takes a few
    iterations. tau = 0.5 is ordinary least squares. Illustrates Eq. 13 (the paper's appendix expectile
    figure).
    """

    def reweight(coef: jax.Array, _: None) -> tuple[jax.Array, None]:
        root_weight = jnp.sqrt(jnp.where(y - features @ coef > 0, tau, 1.0 - tau))
        return jnp.linalg.lstsq(root_weight[:, None] * features, root_weight * y)[0], None

    ols = jnp.linalg.lstsq(features, y)[0]
    return jax.lax.scan(reweight, ols, None, length=iterations)[0]


def expectile_regulariser(g_transform_x: jax.Array, g_y: jax.Array, c_xy: jax.Array,
                          tau: float | jax.Array) -> jax.Array:
    """R_g = L_tau(g^T(x) − c(x, y) + g(y)) per pair, no stop-gradient (paper Eq. 15)."""
    return expectile_loss(g_transform_x - c_xy + g_y, tau)


class ENOTLoss(NamedTuple):
    """The terms of one ENOT step (means over the batch; see the table in the module docstring).

    ``reg_potential`` and ``reg_transform`` already carry the weight λ. ``w_dist`` = E g^T(x) + E g(y),
    the dual estimate of the transport cost in the training cost's convention (reported, no gradient).
    """

    dual: jax.Array
    amortization: jax.Array
    reg_potential: jax.Array
    reg_transform: jax.Array
    w_dist: jax.Array

    @property
    def total(self) -> jax.Array:
        """The loss differentiated by one ``value_and_grad`` over both parameter sets (as in OTT-JAX)."""
        return self.dual + self.amortization + self.reg_potential + self.reg_transform

    @property
    def potential_loss(self) -> jax.Array:
        """L_g = dual + λ R_g: the part that trains the potential (OTT's ``loss_g``)."""
        return self.dual + self.reg_potential + self.reg_transform

    @property
    def transport_loss(self) -> jax.Array:
        """L_f = amortization: the part that trains the map (OTT's ``loss_f``)."""
        return self.amortization


def _split_gradients(potential: PotentialFn, params: Params, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two copies of g(params, z) from one forward pass: the first differentiates ``params`` only (as
    g(sg(z))), the second ``z`` only (as g_sg(z)). Same values, the gradient routing of the module docstring's table."""

    @jax.custom_vjp
    def split(params, z):
        value = potential(params, z)
        return value, value

    def forward(params, z):
        value, pullback = jax.vjp(potential, params, z)
        return (value, value), pullback

    def backward(pullback, cotangents):
        to_params, to_point = cotangents
        return pullback(to_params)[0], pullback(to_point)[1]

    split.defvjp(forward, backward)
    return split(params, z)


def enot_loss(transport: TransportFn, potential: PotentialFn, cost: CostFn, transport_params: Params,
              potential_params: Params, x: jax.Array, y: jax.Array, *, tau: float | jax.Array,
              lam: float | jax.Array) -> ENOTLoss:
    """The four terms of one ENOT step on index-paired batches x ~ α, y ~ β (the module docstring's table).

    Args:
      transport: T(params, x), the map being amortised (x − ∇h*(∇f(x)), or a map network).
      potential: g(params, y), the potential on the target side.
      cost: the ground cost c(x, y) the dual is written with.
      transport_params, potential_params: the two parameter sets (gradients of :attr:`ENOTLoss.total`
        reach each only through the terms listed in the module docstring).
      x, y: batches (n, d) of the source and target measures.
      tau: the expectile (0.99 OTT default, 0.9 paper HD).
      lam: the regulariser's weight λ (``expectile_loss_coef``; 1.0 OTT default, 0.3 paper HD).
    """
    t_x = transport(transport_params, x)
    y_hat = jax.lax.stop_gradient(t_x)
    g_y = potential(potential_params, y)
    g_y_hat, g_sg_t_x = _split_gradients(potential, potential_params, t_x)
    c_xy = cost(x, y)
    g_transform = cost(x, y_hat) - g_y_hat                      # g^T(x) at the detached argmin (step 2)

    # Step 3: R_g twice, each half differentiable on one side only (c_xy is data, no gradient).
    sg = jax.lax.stop_gradient
    reg_potential = jnp.mean(expectile_regulariser(sg(g_transform), g_y, c_xy, tau))     # into g(y)
    reg_transform = jnp.mean(expectile_regulariser(g_transform, sg(g_y), c_xy, tau))     # into −g(ŷ)
    return ENOTLoss(
        dual=-jnp.mean(g_y + g_transform),                                       # step 4
        amortization=jnp.mean(cost(x, t_x) - g_sg_t_x),                           # step 5
        reg_potential=lam * reg_potential,
        reg_transform=lam * reg_transform,
        w_dist=sg(jnp.mean(g_transform) + jnp.mean(g_y)))
