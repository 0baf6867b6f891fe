"""The CelebA64 benchmark's ConvICNN64 potential psi in JAX, from an official state dict.

Korotin et al. 2021, arXiv:2106.01954, §4 (the image pairs' ground-truth potentials). Images
are NCHW ``(n, 3, 64, 64)`` (or their row-major flattening ``(n, 12288)``), weights OIHW as stored, and
every convolution is a cross-correlation with symmetric zero padding::

    Q(x; W_q, W_l) = sum_r conv(x; W_q)[:, 4c + r]^2 + conv(x; W_l)[:, c]   (rank-4 quadratic conv, no bias)
    a   = Q_0(x)                                    3 -> 128,  k4 s2 p1, no activation
    h_1 = celu(conv(a) + b_1 + Q_1(x), 1)           128 -> 256, k4 s2 p1;  Q_1: 3 -> 256, k7 s4 p2
    h_2 = celu(conv(h_1) + b_2, 0.2)                256 -> 512, k4 s2 p1
    h_3 = celu(conv(h_2) + b_3, 0.2)                512 -> 1024, k4 s2 p1
    psi(x) = conv(h_3) + b_4 + 0.5 * sc * ||x||^2   1024 -> 1,  k4 s1 p0

The strong-convexity term (sc = 0.01, the network's default, also used in training) is not stored in
the file. Dropout is off (evaluation mode). Convolutions use ``Precision.HIGHEST`` (TF32 on a GPU would
add ~1e-3 relative error); the parameters are cast to the dtype of ``x``, so float64 inputs (under
``jax.enable_x64``) give a float64 evaluation of the float32 weights.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from otlib.w2bench.torchfile import CorruptCheckpointError, load_state_dict

__all__ = ["BENCHMARK_STRONG_CONVEXITY", "IMAGE_SHAPE", "DIM", "ConvICNN64Params", "params_from_state_dict",
           "load_conv_icnn64_params", "conv_icnn64_batch", "conv_icnn64_grad", "conv_icnn64_layers",
           "flip_kernels", "as_images", "load_conv_icnn64"]

BENCHMARK_STRONG_CONVEXITY = 1e-2
"""sc of the benchmark's ConvICNN64 potentials (the class default; not stored in the file)."""
IMAGE_SHAPE = (3, 64, 64)
DIM = 3 * 64 * 64
RANK = 4

_HI = jax.lax.Precision.HIGHEST

ConvICNN64Params = dict[str, jax.Array]
"""Keys of :data:`_SPEC` (``quad0_sq`` ... ``out_b``); 4-D weights OIHW."""

# short name -> (state-dict key, shape)
_SPEC: dict[str, tuple[str, tuple[int, ...]]] = {
    "quad0_sq": ("quadratic_layers.0.quadratic_decomposed.weight", (128 * RANK, 3, 4, 4)),
    "quad0_lin": ("quadratic_layers.0.linear.weight", (128, 3, 4, 4)),
    "quad1_sq": ("quadratic_layers.1.quadratic_decomposed.weight", (256 * RANK, 3, 7, 7)),
    "quad1_lin": ("quadratic_layers.1.linear.weight", (256, 3, 7, 7)),
    "conv1_w": ("convex_layers.0.weight", (256, 128, 4, 4)),
    "conv1_b": ("convex_layers.0.bias", (256,)),
    "conv2_w": ("pos_features.1.weight", (512, 256, 4, 4)),
    "conv2_b": ("pos_features.1.bias", (512,)),
    "conv3_w": ("pos_features.4.weight", (1024, 512, 4, 4)),
    "conv3_b": ("pos_features.4.bias", (1024,)),
    "out_w": ("pos_features.7.weight", (1, 1024, 4, 4)),
    "out_b": ("pos_features.7.bias", (1,)),
}


def params_from_state_dict(sd: dict[str, np.ndarray], *, source: str = "state dict") -> ConvICNN64Params:
    """Map the 12 state-dict tensors to named arrays, checking names and shapes (a strict load)."""
    expected = {key for key, _ in _SPEC.values()}
    if "quadratic_layers.0.quadratic_decomposed.weight" not in sd:
        raise CorruptCheckpointError(f"{source}: not a ConvICNN64 state dict (no "
                                     f"'quadratic_layers.0.quadratic_decomposed.weight'); keys: "
                                     f"{sorted(sd)[:8]}{' ...' if len(sd) > 8 else ''}")
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise CorruptCheckpointError(f"{source}: ConvICNN64 state dict has missing keys {missing} and "
                                     f"unexpected keys {unexpected}")
    params: ConvICNN64Params = {}
    for short, (key, shape) in _SPEC.items():
        if tuple(sd[key].shape) != shape:
            raise CorruptCheckpointError(f"{source}: {key!r} has shape {tuple(sd[key].shape)}, expected {shape} "
                                         f"for the benchmark's ConvICNN64")
        params[short] = jnp.asarray(sd[key], jnp.float32)
    return params


def load_conv_icnn64_params(path: str | os.PathLike) -> ConvICNN64Params:
    """Read a ``{Early,Mid,Late}_v{1,2}.pt`` checkpoint (torch-free) as parameters."""
    return params_from_state_dict(load_state_dict(path), source=str(path))


def flip_kernels(params: ConvICNN64Params) -> ConvICNN64Params:
    """Every 4-D weight rotated by 180 degrees in its kernel dimensions (biases unchanged).

    Non-negative weights stay non-negative, so the result is again a convex potential: used to build a
    second, different potential from one set of weights (a synthetic pair for tests).
    """
    return {k: (v[:, :, ::-1, ::-1] if v.ndim == 4 else v) for k, v in params.items()}


def as_images(x: jax.Array) -> jax.Array:
    """``(n, 12288)`` or ``(n, 3, 64, 64)`` -> ``(n, 3, 64, 64)`` (row-major C, H, W)."""
    x = jnp.asarray(x)
    if x.ndim == 2 and x.shape[1] == DIM:
        return x.reshape(x.shape[0], *IMAGE_SHAPE)
    if x.ndim == 4 and x.shape[1:] == IMAGE_SHAPE:
        return x
    raise ValueError(f"expected images of shape (n, 3, 64, 64) or (n, 12288), got {tuple(x.shape)}")


def _conv(x: jax.Array, w: jax.Array, stride: int, pad: int) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=_HI)


def _quadratic(x: jax.Array, w_sq: jax.Array, w_lin: jax.Array, stride: int, pad: int) -> jax.Array:
    q = _conv(x, w_sq, stride, pad)
    n, c, h, w = q.shape
    return jnp.sum((q * q).reshape(n, c // RANK, RANK, h, w), axis=2) + _conv(x, w_lin, stride, pad)


def conv_icnn64_layers(params: ConvICNN64Params, x: jax.Array) -> dict[str, jax.Array]:
    """Every intermediate of the forward pass (module doc): ``quad0``, ``pre1``, ``h1`` ... ``net`` (n,)."""
    x = as_images(x)
    p = {k: v.astype(x.dtype) for k, v in params.items()}
    out: dict[str, jax.Array] = {"quad0": _quadratic(x, p["quad0_sq"], p["quad0_lin"], 2, 1)}
    out["pre1"] = (_conv(out["quad0"], p["conv1_w"], 2, 1) + p["conv1_b"][:, None, None]
                   + _quadratic(x, p["quad1_sq"], p["quad1_lin"], 4, 2))
    out["h1"] = jax.nn.celu(out["pre1"], 1.0)
    out["pre2"] = _conv(out["h1"], p["conv2_w"], 2, 1) + p["conv2_b"][:, None, None]
    out["h2"] = jax.nn.celu(out["pre2"], 0.2)
    out["pre3"] = _conv(out["h2"], p["conv3_w"], 2, 1) + p["conv3_b"][:, None, None]
    out["h3"] = jax.nn.celu(out["pre3"], 0.2)
    out["net"] = (_conv(out["h3"], p["out_w"], 1, 0) + p["out_b"][:, None, None]).reshape(x.shape[0])
    return out


def conv_icnn64_batch(params: ConvICNN64Params, x: jax.Array,
                      strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> jax.Array:
    """psi on a batch of images (n, 3, 64, 64) or (n, 12288) -> (n,), quadratic term included."""
    net = conv_icnn64_layers(params, x)["net"]
    return net + 0.5 * strong_convexity * jnp.sum(jnp.reshape(x, (x.shape[0], -1)) ** 2, axis=-1)


def conv_icnn64_grad(params: ConvICNN64Params, x: jax.Array,
                     strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> jax.Array:
    """grad psi on a batch, the same shape as ``x`` (the images are independent, so this is the gradient
    of the batch sum, as the official ``autograd.grad`` with unit output gradients)."""
    return jax.grad(lambda x: jnp.sum(conv_icnn64_batch(params, x, strong_convexity)))(x)


_batch_jit = jax.jit(conv_icnn64_batch, static_argnums=2)
_grad_jit = jax.jit(conv_icnn64_grad, static_argnums=2)


def load_conv_icnn64(path: str | os.PathLike, *,
                     strong_convexity: float = BENCHMARK_STRONG_CONVEXITY) -> Callable[[jax.Array], jax.Array]:
    """Load a ConvICNN64 checkpoint and return ``psi``: images (n, 3, 64, 64) or (n, 12288) -> (n,).

    Jitted, sc = 0.01 by default; ``psi.grad`` is its gradient map (the same shape as its input) and
    ``psi.params`` holds the parameters. The file is not checksummed here;
    :func:`otlib.w2bench.celeba.fetch` gives a verified path.
    """
    params = load_conv_icnn64_params(path)

    def psi(x: jax.Array) -> jax.Array:
        return _batch_jit(params, jnp.asarray(x), strong_convexity)

    psi.grad = lambda x: _grad_jit(params, jnp.asarray(x), strong_convexity)  # type: ignore[attr-defined]
    psi.params = params  # type: ignore[attr-defined]
    return psi
