"""The benchmark's input measure P = Mix3: parameters (bit-exact) and a JAX sampler.

Korotin et al. 2021, arXiv:2106.01954; the official sampler is ``RandomGaussianMixSampler`` in
``src/distributions.py`` of ``iamalexkorotin/Wasserstein2Benchmark``.

Parameters, as ``RandomGaussianMixSampler(dim=D, num=3)`` builds them after NumPy seed 0, with a
*local* legacy ``RandomState(0)`` (never the global NumPy state):

1. per coordinate d: one legacy ``choice(range(3), 3, replace=False)`` (= one ``permutation(3)``),
   centres[k, d] = perm[k] * dist, then minus dist * (num - 1) / 2, so each coordinate is {-1, 0, 1};
2. maps = ``normal(size=(3, D, D))`` cast to float32, every row normalised to unit norm in float32;
3. mult = sqrt(mean_k ||c_k||^2 + D std^2) / sqrt(D) = 0.9092121...; centres and maps divided by it.

Sampling: k ~ Uniform{0,1,2}, z ~ N(0, I_D), x = std * M_k z + c_k (float32). The official noise
comes from torch's CUDA generator, so samples match only in distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MIX3_STD", "MIX3_NUM", "mix3_params", "mix3_covariance", "sample_mix3"]

MIX3_NUM = 3
MIX3_STD = 0.4
_DIST = 1.0


def mix3_params(dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centres (3, D) and linear maps (3, D, D), float32, exactly as the official sampler."""
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    rng = np.random.RandomState(seed)
    centres = np.zeros((MIX3_NUM, dim), dtype=np.float32)
    for d in range(dim):
        idx = rng.choice(range(MIX3_NUM), MIX3_NUM, replace=False)
        centres[:, d] += _DIST * idx
    centres -= _DIST * (MIX3_NUM - 1) / 2
    maps = rng.normal(size=(MIX3_NUM, dim, dim)).astype(np.float32)
    maps /= np.sqrt((maps ** 2).sum(axis=2, keepdims=True))
    mult = np.sqrt((centres ** 2).sum(axis=1).mean() + dim * MIX3_STD ** 2) / np.sqrt(dim)
    centres /= mult
    maps /= mult
    return centres, maps


def mix3_covariance(centres: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Analytic covariance (1/3) sum_k (c_k c_k^T + std^2 M_k M_k^T) in float64 (mean is 0)."""
    c = centres.astype(np.float64)
    m = maps.astype(np.float64)
    return (np.einsum("ki,kj->ij", c, c) + MIX3_STD ** 2 * np.einsum("kij,klj->il", m, m)) / len(c)


def sample_mix3(key: jax.Array, n: int, centres: jax.Array, maps: jax.Array) -> jax.Array:
    """n samples (n, D) of the mixture: k ~ U{0,1,2}, z ~ N(0, I), x = std M_k z + c_k (float32)."""
    key_k, key_z = jax.random.split(key)
    dim = centres.shape[-1]
    k = jax.random.randint(key_k, (n,), 0, centres.shape[0])
    z = jax.random.normal(key_z, (n, dim), dtype=jnp.float32)
    # All components' images (n, 3, D), then pick: memory n*3*D instead of gathering (n, D, D) maps.
    mz = jnp.einsum("kij,nj->nki", maps.astype(jnp.float32), z, precision=jax.lax.Precision.HIGHEST)
    picked = jnp.take_along_axis(mz, k[:, None, None], axis=1)[:, 0]
    return MIX3_STD * picked + centres.astype(jnp.float32)[k]
