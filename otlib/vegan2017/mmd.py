"""The maximum mean discrepancy with the inverse multiquadratic kernel: WAE-MMD's latent penalty D_Z.

WAE paper (Tolstikhin et al. 2018, arXiv:1711.01558), Algorithm 2: with codes z~_1..n ~ Q_Z and prior
draws z_1..m ~ P_Z,

    MMD_k^2(P_Z, Q_Z) ~= 1/(m(m-1)) sum_{l != j} k(z_l, z_j) + 1/(n(n-1)) sum_{l != j} k(z~_l, z~_j)
                         - 2/(nm) sum_{l, j} k(z_l, z~_j),

the unbiased U-statistic: the diagonal terms k(z, z) are left out, so its mean over draws is exactly the
squared MMD: for P_Z = Q_Z it is zero, and single estimates are often negative (``tolstikhin/wae`` GitHub
issue #13).

The kernel is the inverse multiquadratic (IMQ) k(x, y) = C / (C + ||x - y||^2) with C = 2 d_z sigma_z^2,
the expected squared distance of two draws of P_Z = N(0, sigma_z^2 I) (WAE §4). Its heavy tail still
gives gradient to codes far from the prior, where a Gaussian kernel's vanishes. The released WAE code
sums it over the scales C x {0.1, 0.2, 0.5, 1, 2, 5, 10} (``wae.py``); a sum of positive-definite
kernels is positive definite, and it is the default here.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["IMQ_SCALES", "imq_base_scale", "squared_distances", "imq_kernel", "mmd_u_statistic", "mmd_imq"]

IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Multipliers of C summed in the released WAE code (``wae.py``); ``(1.0,)`` is the paper's."""


def imq_base_scale(latent_dim: int, sigma_z2: float = 1.0) -> float:
    """C = 2 d_z sigma_z^2 = E ||Z - Z'||^2 for Z, Z' ~ N(0, sigma_z^2 I_{d_z}) (WAE §4)."""
    return 2.0 * latent_dim * sigma_z2


def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``(n, d), (m, d) -> (n, m)`` matrix of ||x_i - y_j||^2 (exact differences, never negative)."""
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def imq_kernel(x: jax.Array, y: jax.Array, base_scale: float,
               scales: Sequence[float] = IMQ_SCALES) -> jax.Array:
    """Gram matrix of sum_s k_s with k_s(x, y) = s C / (s C + ||x - y||^2), C = ``base_scale``.

    Each term is symmetric with k_s(x, x) = 1, so the diagonal of the sum is ``len(scales)``.
    """
    d2 = squared_distances(x, y)
    return sum(s * base_scale / (s * base_scale + d2) for s in scales)


def _off_diagonal_mean(gram: jax.Array) -> jax.Array:
    n = gram.shape[0]
    return (jnp.sum(gram) - jnp.trace(gram)) / (n * (n - 1))


def mmd_u_statistic(x: jax.Array, y: jax.Array, base_scale: float,
                    scales: Sequence[float] = IMQ_SCALES) -> jax.Array:
    """The unbiased estimate of MMD^2 between the laws of ``x (n, d)`` and ``y (m, d)`` (Algorithm 2).

    Both samples need at least two points (the within-sample means exclude the diagonal).
    """
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"the U-statistic needs at least 2 points per sample, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"samples must have the same dimension, got {x.shape} and {y.shape}; flatten "
                         f"convolutional codes to (n, d_z) first (tolstikhin/wae issue #4)")
    kxx = _off_diagonal_mean(imq_kernel(x, x, base_scale, scales))
    kyy = _off_diagonal_mean(imq_kernel(y, y, base_scale, scales))
    kxy = jnp.mean(imq_kernel(x, y, base_scale, scales))
    return kxx + kyy - 2.0 * kxy


def mmd_imq(codes: jax.Array, prior_draws: jax.Array, sigma_z2: float = 1.0,
            scales: Sequence[float] = IMQ_SCALES) -> jax.Array:
    """WAE-MMD's D_Z(Q_Z, P_Z): the U-statistic with C = 2 d_z sigma_z^2 taken from the code width."""
    return mmd_u_statistic(codes, prior_draws, imq_base_scale(codes.shape[-1], sigma_z2), scales)
