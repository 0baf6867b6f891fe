"""The benchmark's metrics and baselines: L2-UVP, cos similarity, the linear (Bures) map (digest §3).

* L2-UVP(T) = 100 ||T - T*||^2_{L2(P)} / Var(Q) %  (§3.1; forward, P -> Q). The inverse version is
  100 ||S - (T*)^{-1}||^2_{L2(Q)} / Var(P), evaluated on pairs Y = T*(X) so no inverse map is needed.
* cos(T - id, T* - id) in L2(P) (§3.2). Unlike the official code, which replaces ||T* - id||^2 by
  2 * cost from a separate 1024-sample estimate (and can exceed 1), all three terms are computed on the
  evaluation batch here, so the value always lies in [-1, 1].
* Linear baseline (§3.3): the Gaussian OT (Bures) map W x + b between MC moments of P and Q,
  W = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}, b = mu2 - W mu1 (square roots symmetrised).

All functions draw X ~ P under an explicit key, in chunks (chunk i uses ``fold_in(key, i)``), so memory
stays bounded at any n. ``map_fn`` takes and returns (n, D) arrays.
"""

from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from otlib.w2bench.hd import HDBenchmark

__all__ = ["PUBLISHED", "unexplained_variance", "l2_uvp", "l2_uvp_inverse", "cos_similarity", "linear_map", "apply_linear_map",
           "identity_l2_uvp", "linear_l2_uvp", "DEFAULT_N", "DEFAULT_CHUNK"]

MapFn = Callable[[jax.Array], jax.Array]

DEFAULT_N = 2 ** 14
DEFAULT_CHUNK = 4096

PUBLISHED: dict[int, dict[str, float]] = {
    d: {"identity": i, "linear": l}
    for d, i, l in zip((2, 4, 8, 16, 32, 64, 128, 256),
                       (32.7, 42.0, 58.6, 87.0, 121.0, 137.0, 145.0, 153.0),
                       (14.1, 14.9, 27.3, 41.6, 55.3, 63.9, 63.6, 67.4))
}
"""Korotin et al. (2021) HD table, forward L2-UVP %, rows ⌊ID⌉ and ⌊L⌉ (official poster; digest §5.1)."""


def _pairs(bench: HDBenchmark, key: jax.Array, n: int, chunk: int) -> Iterator[tuple[jax.Array, jax.Array]]:
    """Chunks of coupled (X, T*(X)), X ~ P, n rows in all."""
    if n < 1 or chunk < 1:
        raise ValueError(f"n and chunk must be positive, got n={n}, chunk={chunk}")
    for i, start in enumerate(range(0, n, chunk)):
        yield bench.sample_pair(jax.random.fold_in(key, i), min(chunk, n - start))


def _apply(map_fn: MapFn, x: jax.Array) -> jax.Array:
    out = jnp.asarray(map_fn(x))
    if out.shape != x.shape:
        raise ValueError(f"map_fn must map (n, D) to (n, D); got {tuple(x.shape)} -> {tuple(out.shape)}")
    return out


def unexplained_variance(predicted: jax.Array, truth: jax.Array, variance: jax.Array | float) -> jax.Array:
    """100 mean ||predicted - truth||^2 / variance (%): the L2-UVP of one batch, traceable, so a method's
    ``evaluate`` can compute it inside the driver's jit and seed vmap (§3.1)."""
    return 100.0 * jnp.mean(jnp.sum((predicted - truth) ** 2, axis=-1)) / variance


def l2_uvp(map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
           chunk: int = DEFAULT_CHUNK) -> float:
    """Forward L2-UVP % = 100 mean ||map_fn(X) - T*(X)||^2 / Var(Q), X ~ P (§3.1)."""
    total = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        total += float(jnp.sum((_apply(map_fn, x) - y) ** 2))
    return 100.0 * total / n / float(bench.var_target)


def l2_uvp_inverse(inv_map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
                   chunk: int = DEFAULT_CHUNK) -> float:
    """Inverse L2-UVP % = 100 mean ||inv_map_fn(Y) - X||^2 / Var(P), Y = T*(X), X ~ P (§3.1)."""
    total = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        total += float(jnp.sum((_apply(inv_map_fn, y) - x) ** 2))
    return 100.0 * total / n / bench.var_source


def cos_similarity(map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
                   chunk: int = DEFAULT_CHUNK) -> float:
    """Forward cos(T - id, T* - id) in L2(P) (§3.2), every term on the evaluation batch (see module doc)."""
    inner = norm_hat = norm_star = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        d_hat, d_star = _apply(map_fn, x) - x, y - x
        inner += float(jnp.sum(d_hat * d_star))
        norm_hat += float(jnp.sum(d_hat ** 2))
        norm_star += float(jnp.sum(d_star ** 2))
    if norm_hat == 0.0:
        return 0.0  # the identity map; the official code also sets its cos to 0 (§3.3)
    return inner / np.sqrt(norm_hat * norm_star)


def _mc_moments(chunks: Iterator[jax.Array], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1), accumulated in float64 over chunks."""
    s1, s2, n = np.zeros(dim), np.zeros((dim, dim)), 0
    for c in chunks:
        c = np.asarray(c, np.float64)
        s1 += c.sum(axis=0)
        s2 += c.T @ c
        n += len(c)
    mean = s1 / n
    return mean, (s2 - n * np.outer(mean, mean)) / (n - 1)


def _sym_sqrtm(a: np.ndarray) -> np.ndarray:
    r = np.real(scipy.linalg.sqrtm(a))
    return 0.5 * (r + r.T)


def linear_map(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *, inverse: bool = False,
               chunk: int = DEFAULT_CHUNK) -> tuple[jax.Array, jax.Array]:
    """(W, b) of the Gaussian/Bures OT map between MC moments of P and Q (§3.3).

    As in the official code: the mean of P is its exact value 0; the covariance of P and the mean and
    covariance of Q are estimated on ``n`` fresh draws each (independent keys). ``inverse=True`` gives
    the Q -> P map. Returned in float32.
    """
    key_p, key_q = jax.random.split(key)
    starts = range(0, n, chunk)
    _, cov_p = _mc_moments((bench.sample_source(jax.random.fold_in(key_p, i), min(chunk, n - s))
                            for i, s in enumerate(starts)), bench.dim)
    mean_p = np.zeros(bench.dim)
    mean_q, cov_q = _mc_moments((bench.sample_target(jax.random.fold_in(key_q, i), min(chunk, n - s))
                                 for i, s in enumerate(starts)), bench.dim)
    (mu1, s1), (mu2, s2) = ((mean_q, cov_q), (mean_p, cov_p)) if inverse else ((mean_p, cov_p), (mean_q, cov_q))
    r1 = _sym_sqrtm(s1)
    r1_inv = np.linalg.inv(r1)
    w = r1_inv @ _sym_sqrtm(r1 @ s2 @ r1) @ r1_inv
    w = 0.5 * (w + w.T)
    b = mu2 - w @ mu1
    return jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)


@jax.jit
def apply_linear_map(wb: tuple[jax.Array, jax.Array], x: jax.Array) -> jax.Array:
    """x -> W x + b on a batch (n, D)."""
    w, b = wb
    return jnp.matmul(x, w.T, precision=jax.lax.Precision.HIGHEST) + b


def identity_l2_uvp(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N) -> float:
    """Forward L2-UVP of the identity map (the ⌊ID⌉ baseline, §3.3)."""
    return l2_uvp(lambda x: x, bench, key, n)


def linear_l2_uvp(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *, n_fit: int = DEFAULT_N) -> float:
    """Forward L2-UVP of the linear (Bures) map fitted on ``n_fit`` draws (the ⌊L⌉ baseline, §3.3)."""
    key_fit, key_eval = jax.random.split(key)
    wb = linear_map(bench, key_fit, n_fit)
    return l2_uvp(lambda x: apply_linear_map(wb, x), bench, key_eval, n)
