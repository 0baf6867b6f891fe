"""Optimal transport between Gaussians in closed form: the one home of the PSD square root, the Bures
map and W₂ between Gaussians (Dowson & Landau 1982; Peyré & Cuturi 2019, arXiv:1803.00567, Remark 2.31).

For N(m₁, Σ₁) → N(m₂, Σ₂) the optimal map of the quadratic cost is affine, T(x) = W (x − m₁) + m₂ with

    W = Σ₁^{-1/2} (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} Σ₁^{-1/2},

and W₂² = ‖m₁ − m₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}. W₂² here is for the cost ‖x − y‖²
(OTT-JAX's convention); for the cost ½‖x − y‖² of :class:`otlib.ot.costs.SqEuclidean` halve it.
Every function is traceable; pass float64 arrays under ``jax.enable_x64(True)`` for float64 results.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["psd_sqrt", "bures_map", "gaussian_w2_squared"]


def psd_sqrt(matrix: jax.Array) -> jax.Array:
    """The symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0; input symmetrised)."""
    values, vectors = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * jnp.sqrt(jnp.clip(values, 0.0))) @ vectors.T


def bures_map(mean1: jax.Array, cov1: jax.Array, mean2: jax.Array, cov2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(W, b) of the OT map x ↦ W x + b from N(mean1, cov1) to N(mean2, cov2); cov1 must be non-singular.
    W is symmetric PSD (returned symmetrised) and b = mean2 − W mean1."""
    root = psd_sqrt(cov1)
    inv_root = jnp.linalg.inv(root)
    w = inv_root @ psd_sqrt(root @ cov2 @ root) @ inv_root
    w = 0.5 * (w + w.T)
    return w, mean2 - w @ mean1


def gaussian_w2_squared(mean1: jax.Array, cov1: jax.Array, mean2: jax.Array, cov2: jax.Array) -> jax.Array:
    """W₂² (cost ‖x − y‖²) between N(mean1, cov1) and N(mean2, cov2); degenerate covariances allowed."""
    root = psd_sqrt(cov1)
    cross = jnp.linalg.eigvalsh(root @ cov2 @ root)
    return (jnp.sum((mean1 - mean2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2)
            - 2.0 * jnp.sum(jnp.sqrt(jnp.clip(cross, 0.0))))
