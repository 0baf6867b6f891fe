"""The benchmark's metrics and baselines: L2-UVP, cos similarity, the linear (Bures) map.

Korotin et al. 2021 (arXiv:2106.01954); the official code is ``src/metrics.py`` (``score_fitted_maps``,
``score_baseline_maps``) of ``iamalexkorotin/Wasserstein2Benchmark``.

* L2-UVP(T) = 100 ||T - T*||^2_{L2(P)} / Var(Q) %  (forward, P -> Q). The inverse version is
  100 ||S - (T*)^{-1}||^2_{L2(Q)} / Var(P), evaluated on pairs Y = T*(X) so no inverse map is needed.
* cos(T - id, T* - id) in L2(P). Unlike the official code, which replaces ||T* - id||^2 by
  2 * cost from a separate 1024-sample estimate (and can exceed 1), all three terms are computed on the
  evaluation batch here, so the value always lies in [-1, 1].
* Linear baseline: the Gaussian OT (Bures) map W x + b between MC moments of P and Q
  (:func:`otlib.ot.gaussian.bures_map`, in float64).

Every function draws X ~ P under an explicit key in blocks of :data:`DRAW_BLOCK` rows (block b uses
``fold_in(key, b)``), so the samples depend on the key and n alone: ``chunk`` only bounds memory (it is rounded
up to whole blocks), and :func:`evaluator`, which draws the same rows inside the driver's jit, scores exactly
what :func:`l2_uvp` scores. ``map_fn`` takes and returns (n, D) arrays.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from otlib.ot.conjugate import ConjugateResult
from otlib.ot.gaussian import bures_map
from otlib.w2bench.hd import HDBenchmark
from otlib.w2bench.published import PUBLISHED

__all__ = ["PUBLISHED", "unexplained_variance", "l2_uvp", "l2_uvp_inverse", "cos_similarity", "linear_map", "apply_linear_map",
           "identity_l2_uvp", "linear_l2_uvp", "coupled_sample", "evaluator", "DEFAULT_N", "DEFAULT_CHUNK", "DRAW_BLOCK"]

MapFn = Callable[[jax.Array], jax.Array]

DEFAULT_N = 2 ** 14
DEFAULT_CHUNK = 4096
DRAW_BLOCK = 1024
"""Rows drawn per key: row i of a draw comes from block i // DRAW_BLOCK, whatever n and the chunk size."""


def _blocks(sample: Callable[[jax.Array, int], Any], key: jax.Array, first: int, rows: int) -> Any:
    """Rows ``first * DRAW_BLOCK`` to ``first * DRAW_BLOCK + rows`` of the draw of ``sample`` under ``key``."""
    count = -(-rows // DRAW_BLOCK)
    drawn = jax.vmap(lambda b: sample(jax.random.fold_in(key, b), DRAW_BLOCK))(jnp.arange(first, first + count))
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:])[:rows], drawn)


def coupled_sample(bench: HDBenchmark, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """n coupled draws (X, T*(X)), X ~ P: the rows every metric here scores for ``key`` (traceable)."""
    return _blocks(bench.sample_pair, key, 0, n)


def _chunks(sample: Callable[[jax.Array, int], Any], key: jax.Array, n: int, chunk: int) -> Iterator[Any]:
    """The n rows of :func:`_blocks`, in chunks of whole blocks (at least ``chunk`` rows each)."""
    if n < 1 or chunk < 1:
        raise ValueError(f"n and chunk must be positive, got n={n}, chunk={chunk}")
    per_chunk = -(-chunk // DRAW_BLOCK)
    for first in range(0, -(-n // DRAW_BLOCK), per_chunk):
        yield _blocks(sample, key, first, min(per_chunk * DRAW_BLOCK, n - first * DRAW_BLOCK))


def _pairs(bench: HDBenchmark, key: jax.Array, n: int, chunk: int) -> Iterator[tuple[jax.Array, jax.Array]]:
    """Chunks of coupled (X, T*(X)), X ~ P, n rows in all."""
    return _chunks(bench.sample_pair, key, n, chunk)


def _apply(map_fn: MapFn, x: jax.Array) -> jax.Array:
    out = jnp.asarray(map_fn(x))
    if out.shape != x.shape:
        raise ValueError(f"map_fn must map (n, D) to (n, D); got {tuple(x.shape)} -> {tuple(out.shape)}")
    return out


def unexplained_variance(predicted: jax.Array, truth: jax.Array, variance: jax.Array | float) -> jax.Array:
    """100 mean ||predicted - truth||^2 / variance (%): the L2-UVP of one batch, traceable, so a method's
    ``evaluate`` can compute it inside the driver's jit and seed vmap."""
    return 100.0 * jnp.mean(jnp.sum((predicted - truth) ** 2, axis=-1)) / variance


def l2_uvp(map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
           chunk: int = DEFAULT_CHUNK) -> float:
    """Forward L2-UVP % = 100 mean ||map_fn(X) - T*(X)||^2 / Var(Q), X ~ P."""
    total = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        total += float(jnp.sum((_apply(map_fn, x) - y) ** 2))
    return 100.0 * total / n / float(bench.var_target)


def l2_uvp_inverse(inv_map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
                   chunk: int = DEFAULT_CHUNK) -> float:
    """Inverse L2-UVP % = 100 mean ||inv_map_fn(Y) - X||^2 / Var(P), Y = T*(X), X ~ P."""
    total = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        total += float(jnp.sum((_apply(inv_map_fn, y) - x) ** 2))
    return 100.0 * total / n / bench.var_source


def cos_similarity(map_fn: MapFn, bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *,
                   chunk: int = DEFAULT_CHUNK) -> float:
    """Forward cos(T - id, T* - id) in L2(P), every term on the evaluation batch (see module doc)."""
    inner = norm_hat = norm_star = 0.0
    for x, y in _pairs(bench, key, n, chunk):
        d_hat, d_star = _apply(map_fn, x) - x, y - x
        inner += float(jnp.sum(d_hat * d_star))
        norm_hat += float(jnp.sum(d_hat ** 2))
        norm_star += float(jnp.sum(d_star ** 2))
    if norm_hat == 0.0:
        return 0.0  # the identity map; the official code also sets its cos to 0
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


def linear_map(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *, inverse: bool = False,
               chunk: int = DEFAULT_CHUNK) -> tuple[jax.Array, jax.Array]:
    """(W, b) of the Gaussian/Bures OT map between MC moments of P and Q.

    As in the official code: the mean of P is its exact value 0; the covariance of P and the mean and
    covariance of Q are estimated on ``n`` fresh draws each (independent keys). ``inverse=True`` gives
    the Q -> P map. Returned in float32.
    """
    key_p, key_q = jax.random.split(key)
    _, cov_p = _mc_moments(_chunks(bench.sample_source, key_p, n, chunk), bench.dim)
    mean_p = np.zeros(bench.dim)
    mean_q, cov_q = _mc_moments(_chunks(bench.sample_target, key_q, n, chunk), bench.dim)
    (mu1, s1), (mu2, s2) = ((mean_q, cov_q), (mean_p, cov_p)) if inverse else ((mean_p, cov_p), (mean_q, cov_q))
    with jax.enable_x64(True):  # the moments are float64; so is the map, rounded to float32 once at the end
        w, b = (np.asarray(a) for a in bures_map(*(jnp.asarray(a, jnp.float64) for a in (mu1, s1, mu2, s2))))
    return jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)


@jax.jit
def apply_linear_map(wb: tuple[jax.Array, jax.Array], x: jax.Array) -> jax.Array:
    """x -> W x + b on a batch (n, D)."""
    w, b = wb
    return jnp.matmul(x, w.T, precision=jax.lax.Precision.HIGHEST) + b


def identity_l2_uvp(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N) -> float:
    """Forward L2-UVP of the identity map (the ⌊ID⌉ baseline)."""
    return l2_uvp(lambda x: x, bench, key, n)


def linear_l2_uvp(bench: HDBenchmark, key: jax.Array, n: int = DEFAULT_N, *, n_fit: int = DEFAULT_N) -> float:
    """Forward L2-UVP of the linear (Bures) map fitted on ``n_fit`` draws (the ⌊L⌉ baseline)."""
    key_fit, key_eval = jax.random.split(key)
    wb = linear_map(bench, key_fit, n_fit)
    return l2_uvp(lambda x: apply_linear_map(wb, x), bench, key_eval, n)


def evaluator(bench: HDBenchmark, transport: Callable[[Any, jax.Array], jax.Array],
              inverse: Optional[Callable[[Any, jax.Array], Any]] = None, *, n: int = DEFAULT_N,
              n_inverse: Optional[int] = None) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """The driver's ``evaluate(state, key)`` for any transport method on this pair (traceable, so it is
    jitted and vmapped over seeds): ``l2_uvp`` of ``transport(state, x)`` and, given ``inverse(state, y)``,
    ``l2_uvp_inverse``, on the rows :func:`l2_uvp` and :func:`l2_uvp_inverse` score for the same key and n.
    ``n_inverse`` (default n) scores the inverse on fewer rows where it is costly (a conjugate solve
    per row). An ``inverse`` that returns a :class:`~otlib.ot.conjugate.ConjugateResult` also reports its
    solves: ``solver_iterations`` (mean) and ``solver_converged`` (the fraction that met the tolerance).
    """
    n_inverse = n if n_inverse is None else n_inverse

    def evaluate(state: Any, key: jax.Array) -> dict[str, jax.Array]:
        x, y = coupled_sample(bench, key, max(n, n_inverse if inverse is not None else 0))
        out = {"l2_uvp": unexplained_variance(transport(state, x[:n]), y[:n], bench.var_target)}
        if inverse is not None:
            solved = inverse(state, y[:n_inverse])
            if isinstance(solved, ConjugateResult):
                out["solver_iterations"] = jnp.mean(solved.num_iter.astype(jnp.float32))
                out["solver_converged"] = jnp.mean(solved.converged.astype(jnp.float32))
                solved = solved.x
            out["l2_uvp_inverse"] = unexplained_variance(solved, x[:n_inverse], bench.var_source)
        return out

    return evaluate
