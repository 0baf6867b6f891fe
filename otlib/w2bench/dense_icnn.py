"""The benchmark's DenseICNN potential psi in JAX, from an official state dict
(Korotin et al. 2021, arXiv:2106.01954; ``DenseICNN`` in the official ``src/icnn.py``).

Forward pass (rank 1, CELU alpha 1, hidden sizes [max(2D,64), max(2D,64), max(D,32)]):

    q_l(x)_j = sum_r (sum_i x_i A_l[i,r,j])^2 + (W_l x)_j + b_l[j]            (ConvexQuadratic)
    z_1 = q_0(x)                                   (no activation)
    z_2 = celu(C_0 z_1 + q_1(x)),   z_3 = celu(C_1 z_2 + q_2(x))
    psi(x) = w . z_3 + 0.5 * sc * ||x||^2          (sc = 1e-2 in the benchmark)

The strong-convexity term is not stored in the checkpoint. Matmuls use ``Precision.HIGHEST`` (TF32 on
GPUs would add ~1e-3 relative error); the parameters are cast to the dtype of
``x``, so float64 inputs (under ``jax.enable_x64``) give a float64 evaluation of the float32 weights.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from otlib.w2bench.torchfile import CorruptCheckpointError, load_state_dict

__all__ = ["BENCHMARK_STRONG_CONVEXITY", "DenseICNNParams", "hidden_sizes", "params_from_state_dict",
           "load_dense_icnn_params", "dense_icnn", "dense_icnn_batch", "dense_icnn_grad", "load_dense_icnn"]

BENCHMARK_STRONG_CONVEXITY = 1e-2
"""sc used by the benchmark's ground-truth potentials (training used 1e-4)."""

_HI = jax.lax.Precision.HIGHEST

DenseICNNParams = dict[str, jax.Array]
"""Keys ``A0 W0 b0 A1 W1 b1 A2 W2 b2 C0 C1 w`` (see :func:`params_from_state_dict`)."""


def hidden_sizes(dim: int) -> tuple[int, int, int]:
    """The benchmark's hidden sizes [max(2D,64), max(2D,64), max(D,32)]."""
    return max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)


def params_from_state_dict(sd: dict[str, np.ndarray], *, source: str = "state dict") -> DenseICNNParams:
    """Map the 12 state-dict tensors to named arrays, checking every shape."""
    try:
        dim = int(sd["quadratic_layers.0.weight"].shape[1])
    except (KeyError, IndexError):
        raise CorruptCheckpointError(f"{source}: not a DenseICNN state dict "
                                     f"(no 2-D 'quadratic_layers.0.weight'); keys: {sorted(sd)}") from None
    h1, h2, h3 = hidden_sizes(dim)
    spec = {
        "A0": ("quadratic_layers.0.quadratic_decomposed", (dim, 1, h1)),
        "W0": ("quadratic_layers.0.weight", (h1, dim)),
        "b0": ("quadratic_layers.0.bias", (h1,)),
        "A1": ("quadratic_layers.1.quadratic_decomposed", (dim, 1, h2)),
        "W1": ("quadratic_layers.1.weight", (h2, dim)),
        "b1": ("quadratic_layers.1.bias", (h2,)),
        "A2": ("quadratic_layers.2.quadratic_decomposed", (dim, 1, h3)),
        "W2": ("quadratic_layers.2.weight", (h3, dim)),
        "b2": ("quadratic_layers.2.bias", (h3,)),
        "C0": ("convex_layers.0.weight", (h2, h1)),
        "C1": ("convex_layers.1.weight", (h3, h2)),
        "w": ("final_layer.weight", (1, h3)),
    }
    params: DenseICNNParams = {}
    for short, (key, shape) in spec.items():
        if key not in sd:
            raise CorruptCheckpointError(f"{source}: DenseICNN tensor {key!r} is missing")
        if tuple(sd[key].shape) != shape:
            raise CorruptCheckpointError(f"{source}: {key!r} has shape {tuple(sd[key].shape)}, expected "
                                         f"{shape} for the benchmark's DenseICNN at D={dim}")
        params[short] = jnp.asarray(sd[key])
    return params


def load_dense_icnn_params(path: str | os.PathLike) -> DenseICNNParams:
    """Read a ``{D}_v{k}.pt`` checkpoint (torch-free, :mod:`otlib.w2bench.torchfile`) as parameters."""
    return params_from_state_dict(load_state_dict(path), source=str(path))


def _quadratic(x: jax.Array, A: jax.Array, W: jax.Array, b: jax.Array) -> jax.Array:
    """ConvexQuadratic layer on a batch x (n, D): sum_r (x.A[:, r, :])^2 + x W^T + b, shape (n, h)."""
    quad = jnp.einsum("ni,irj->nrj", x, A, precision=_HI)
    return jnp.sum(quad * quad, axis=1) + jnp.matmul(x, W.T, precision=_HI) + b


def dense_icnn_batch(params: DenseICNNParams, x: jax.Array,
                     strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> jax.Array:
    """psi on a batch (n, D) -> (n,), written with matmuls over the whole batch."""
    p = jax.tree_util.tree_map(lambda a: a.astype(x.dtype), params)
    z = _quadratic(x, p["A0"], p["W0"], p["b0"])
    z = jax.nn.celu(jnp.matmul(z, p["C0"].T, precision=_HI) + _quadratic(x, p["A1"], p["W1"], p["b1"]))
    z = jax.nn.celu(jnp.matmul(z, p["C1"].T, precision=_HI) + _quadratic(x, p["A2"], p["W2"], p["b2"]))
    out = jnp.matmul(z, p["w"].T, precision=_HI)[:, 0]
    return out + 0.5 * strong_convexity * jnp.sum(x * x, axis=-1)


def dense_icnn(params: DenseICNNParams, x: jax.Array,
               strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> jax.Array:
    """psi(x) for a single point ``x`` of shape (D,), a scalar; pure, so grad/vmap apply."""
    return dense_icnn_batch(params, x[None], strong_convexity)[0]


def dense_icnn_grad(params: DenseICNNParams, x: jax.Array,
                    strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> jax.Array:
    """grad psi on a batch (n, D) -> (n, D): the map of one potential (the points are independent, so the
    gradient of the batch sum is the per-point gradient, as the benchmark's ``autograd.grad``)."""
    return jax.grad(lambda x: jnp.sum(dense_icnn_batch(params, x, strong_convexity)))(x)


_batch_jit = jax.jit(dense_icnn_batch, static_argnums=2)


def load_dense_icnn(path: str | os.PathLike, *,
                    strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> Callable[[jax.Array], jax.Array]:
    """Load a DenseICNN checkpoint and return ``psi: (n, D) -> (n,)`` (jitted; sc = 1e-2 by default).

    The file is not checksummed here; use :func:`otlib.w2bench.files.fetch` to obtain a verified path.
    """
    params = load_dense_icnn_params(path)

    def psi(x: jax.Array) -> jax.Array:
        return _batch_jit(params, jnp.asarray(x), strong_convexity)

    psi.params = params  # type: ignore[attr-defined]
    return psi
