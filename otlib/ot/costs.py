"""Ground costs c(x, y) for neural OT and the maps they induce (ENOT, Buzun et al. 2024, Eq. 11-12).

A *translation-invariant* (TI) cost is c(x, y) = h(x − y) with h strictly convex and even. Its
Legendre transform h*(z) = sup_w <w, z> − h(w) turns a potential's gradient into a map, the *twist*
(Gangbo & McCann 1996; paper Eq. 11-12):

    T(x) = x − ∇h*(∇f(x)),        T⁻¹(y) = y − ∇h*(∇g(y)),

so both directions of a TI problem come from two potentials (ENOT's bidirectional mode). Costs
without a usable h* (the Euclidean distance, the geodesic distance on the sphere) need a separate map
network: they are *unidirectional* (``bidirectional = False``) and only define ``c`` and ``project``
(where a map's raw output is sent: the identity in R^d, normalisation on the sphere).

**Convention.** :class:`SqEuclidean` is c(x, y) = ½‖x − y‖², so T(x) = x − ∇f(x) and the transport
cost it reports is ½W₂². OTT-JAX's ``SqEuclidean`` is ‖x − y‖² (T(x) = x − ½∇f(x)), which is what
its tutorials and the ENOT paper's 2D numbers use; every cost has :meth:`to_ott` for comparisons
(×2 for the squared Euclidean cost, ×1 for the others, whose conventions coincide with OTT's).

Every cost is a frozen dataclass (hashable, a valid static ``jit`` argument) acting on batches:
``c(x, y)`` maps ``(..., d), (..., d) -> (...)``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

__all__ = ["COSTS", "Correlation", "Cost", "Euclidean", "PNormP", "SphereGeodesic", "SqEuclidean", "TICost",
           "empirical_ot_cost", "safe_norm"]


def safe_norm(z: jax.Array, axis: int = -1) -> jax.Array:
    """‖z‖₂ along ``axis`` with gradient 0 (a subgradient) at z = 0 instead of NaN."""
    sq = jnp.sum(z * z, axis=axis)
    nonzero = sq > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class Cost:
    """A ground cost c(x, y) on batches of points. Subclasses define :meth:`c`."""

    bidirectional: ClassVar[bool] = False
    """Whether a potential's gradient gives the map (a TI cost with a Legendre transform)."""

    ott_scale: ClassVar[float] = 1.0
    """OTT-JAX's cost of the same name is ``ott_scale`` times this one (2 for the squared Euclidean cost)."""

    def c(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """c(x, y) row by row: ``(..., d), (..., d) -> (...)``."""
        raise NotImplementedError

    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.c(x, y)

    def project(self, y: jax.Array) -> jax.Array:
        """Where a map network's raw output lives (the identity in R^d)."""
        return y

    def to_ott(self, value: jax.Array | float) -> jax.Array | float:
        """A transport cost in this module's convention, expressed in OTT-JAX's: ``ott_scale * value``."""
        return self.ott_scale * value


@dataclasses.dataclass(frozen=True)
class TICost(Cost):
    """c(x, y) = h(x - y), h strictly convex and even, with Legendre transform h* (paper §3.2).

    Subclasses define :meth:`h` and :meth:`h_legendre`; gradients come from ``jax.grad``.
    """

    bidirectional: ClassVar[bool] = True

    def h(self, z: jax.Array) -> jax.Array:
        """h(z) row by row: ``(..., d) -> (...)``."""
        raise NotImplementedError

    def h_legendre(self, z: jax.Array) -> jax.Array:
        """h*(z) = sup_w <w, z> - h(w), row by row."""
        raise NotImplementedError

    def c(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.h(x - y)

    def grad_h(self, z: jax.Array) -> jax.Array:
        """∇h(z) row by row (h acts on rows independently, so the gradient of the sum is per row)."""
        return jax.grad(lambda w: jnp.sum(self.h(w)))(z)

    def grad_h_legendre(self, z: jax.Array) -> jax.Array:
        """∇h*(z) = (∇h)^-1(z) row by row."""
        return jax.grad(lambda w: jnp.sum(self.h_legendre(w)))(z)

    def twist(self, x: jax.Array, grad: jax.Array) -> jax.Array:
        """The map a potential induces: x - ∇h*(∇f(x)) with ``grad`` = ∇f(x) (paper Eq. 11).

        h is even, so the same formula gives the inverse map from the other potential (Eq. 12).
        """
        return x - self.grad_h_legendre(grad)


@dataclasses.dataclass(frozen=True)
class SqEuclidean(TICost):
    """c(x, y) = ½‖x − y‖²: h = h* = ½‖·‖², T(x) = x − ∇f(x); distances are ½W₂² (see module doc)."""

    ott_scale: ClassVar[float] = 2.0  # OTT-JAX's SqEuclidean is ‖x − y‖²

    def h(self, z: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum(z * z, axis=-1)

    def h_legendre(self, z: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum(z * z, axis=-1)

    def grad_h_legendre(self, z: jax.Array) -> jax.Array:
        return z


@dataclasses.dataclass(frozen=True)
class PNormP(TICost):
    """c(x, y) = ‖x − y‖_p^p / p, h* = ‖·‖_q^q / q with 1/p + 1/q = 1 (OTT-JAX ``PNormP``, same convention).

    Attributes:
      p: the exponent, p > 1 (1.5 in the ENOT tutorial's half-moon → S-curve example).
    """

    p: float = 1.5

    def __post_init__(self) -> None:
        if not self.p > 1.0:
            raise ValueError(f"PNormP needs p > 1 for a strictly convex h with a Legendre transform, got p={self.p}")

    @property
    def q(self) -> float:
        """The conjugate exponent p / (p - 1)."""
        return self.p / (self.p - 1.0)

    def h(self, z: jax.Array) -> jax.Array:
        return jnp.sum(jnp.abs(z) ** self.p, axis=-1) / self.p

    def h_legendre(self, z: jax.Array) -> jax.Array:
        return jnp.sum(jnp.abs(z) ** self.q, axis=-1) / self.q


@dataclasses.dataclass(frozen=True)
class Euclidean(Cost):
    """c(x, y) = ‖x − y‖: h = ‖·‖ is not strictly convex (h* is the unit ball's indicator), so ENOT
    learns a separate map network (unidirectional mode, paper Fig. 1)."""

    def c(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return safe_norm(x - y)


@dataclasses.dataclass(frozen=True)
class SphereGeodesic(Cost):
    """c(x, y) = arccos(<x, y>) on the unit sphere (paper Fig. 2); maps are normalised onto it.

    Evaluated as 2 arcsin(‖x − y‖ / 2), equal for unit vectors and with a bounded gradient near
    x = y, where arccos' = -1/sqrt(1 - u²) blows up. At antipodes (‖x − y‖ = 2, or beyond it off the
    sphere) the value is π with gradient 0, never NaN.
    """

    def c(self, x: jax.Array, y: jax.Array) -> jax.Array:
        half_chord = 0.5 * safe_norm(x - y)
        inside = half_chord < 1.0
        return jnp.where(inside, 2.0 * jnp.arcsin(jnp.where(inside, half_chord, 0.0)), jnp.pi)

    def project(self, y: jax.Array) -> jax.Array:
        return y / safe_norm(y)[..., None]


@dataclasses.dataclass(frozen=True)
class Correlation(Cost):
    """c(x, y) = −<x, y>: the squared Euclidean cost less ½‖x‖² + ½‖y‖², which only shifts the dual
    objective by constants (used by ENOT's correlation parameterisation, authors' HD runs)."""

    def c(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return -jnp.sum(x * y, axis=-1)


COSTS: dict[str, type[Cost]] = {
    "sq_euclidean": SqEuclidean, "pnorm_p": PNormP, "euclidean": Euclidean,
    "sphere_geodesic": SphereGeodesic, "correlation": Correlation,
}
"""The costs by name, for notebook parameters: ``COSTS["pnorm_p"](p=1.5)``."""


def empirical_ot_cost(cost: Cost, x: jax.Array, y: jax.Array) -> float:
    """The exact OT cost between the uniform empirical measures of ``x`` and ``y`` (n points each).

    With equal uniform weights an optimal plan is a permutation (Birkhoff), found by the Hungarian
    algorithm (``scipy.optimize.linear_sum_assignment``) on the n x n cost matrix, in float64. An
    unbiased-in-the-limit check of a dual estimate that works for every cost here; it overestimates the
    population cost by a finite-sample term that shrinks with n (keep n <= a few thousand: O(n³)).
    """
    matrix = np.asarray(cost.c(jnp.asarray(x)[:, None, :], jnp.asarray(y)[None, :, :]), np.float64)
    rows, cols = scipy.optimize.linear_sum_assignment(matrix)
    return float(matrix[rows, cols].mean())
