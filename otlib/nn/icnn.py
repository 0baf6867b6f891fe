"""Amos's input-convex neural network (ICNN) potential (Amos 2023, arXiv:2210.12153; ``w2ot/models/icnn.py``).

The potential is convex in its input x (Amos, Xu and Kolter 2017):

    z_1   = act(W_x^0 x + b_0)
    z_l   = act(ActNorm(W_z^l z_{l-1} + W_x^l x + b_l))            for l = 2..L
    f(x)  = act(W_z^out z_L + W_x^out x + b_out) + 1/2 exp(log_alpha) ||x||^2

Every W_z is a raw kernel passed through softplus and divided by its fan-in, so it is positive; the
activation (ELU or leaky-ReLU) is convex and non-decreasing and ActNorm has a positive scale, so each
z_l is a convex function of x and f is strongly convex (exp(log_alpha) > 0).

ActNorm (Kingma and Dhariwal 2018) is ``exp(log_scale) * (h + bias)``, trainable per feature. As in the
reference code, its first call with a *batch* of inputs (``init`` on a data batch) sets
``bias = -mean`` and ``log_scale = -log std`` so that the hidden layer starts standardised; initialised
on a single point it starts at the identity (bias 0, scale 1). Either way it stays convex.

The benchmark width rule (Amos's ``config/dual_trainer/icnn_hd_benchmark.yaml``; the Korotin et al. 2021 DenseICNN
sizes) is
:func:`hd_widths`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from otlib.nn.nets import activation

__all__ = ["ICNN", "ActNorm", "PositiveDense", "hd_widths"]

_KERNEL_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
"""All kernels, W_z before its softplus included (as ``w2ot/models/icnn.py``)."""


def hd_widths(dim: int) -> tuple[int, int, int]:
    """Hidden widths for the HD benchmark at dimension D: ``(2b, 2b, b)``, ``b = max(D, 32)`` (Amos's
    ``icnn_hd_benchmark.yaml``)."""
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    b = max(dim, 32)
    return (2 * b, 2 * b, b)


class PositiveDense(nn.Module):
    """``z -> softplus(K) z / fan_in`` without bias: the non-negative weights W_z of an ICNN."""

    features: int

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        fan_in = z.shape[-1]
        kernel = self.param("kernel", _KERNEL_INIT, (fan_in, self.features))
        return z @ (nn.softplus(kernel) / fan_in)


class ActNorm(nn.Module):
    """``h -> exp(log_scale) * (h + bias)`` per feature, with data-dependent initialisation.

    Initialised on a batch ``(n, width)``: ``bias = -mean(h)``, ``log_scale = -log(std(h) + eps)``;
    initialised on a single point: the identity.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        batched = h.ndim > 1
        flat = h.reshape(-1, h.shape[-1])

        def init_bias(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
            return -flat.mean(axis=0) if batched else jnp.zeros(shape, h.dtype)

        def init_log_scale(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
            return -jnp.log(flat.std(axis=0) + self.eps) if batched else jnp.zeros(shape, h.dtype)

        bias = self.param("bias", init_bias, (h.shape[-1],))
        log_scale = self.param("log_scale", init_log_scale, (h.shape[-1],))
        return jnp.exp(log_scale) * (h + bias)


class ICNN(nn.Module):
    """Amos's ICNN potential ``f: (..., D) -> (...)`` (module docstring).

    Attributes:
      widths: hidden widths ``(h_1, ..., h_L)``; :func:`hd_widths` for the HD benchmark.
      act: a convex, non-decreasing activation name (``"elu"`` for HD, ``"leaky_relu_0.2"`` in 2-D).
    """

    widths: Sequence[int]
    act: str = "elu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not self.widths:
            raise ValueError("ICNN needs at least one hidden width, e.g. widths=(64, 64, 32)")
        act = activation(self.act)
        z = act(nn.Dense(self.widths[0], kernel_init=_KERNEL_INIT, name="Wx_0")(x))
        for l, width in enumerate(self.widths[1:], start=1):
            h = PositiveDense(width, name=f"Wz_{l}")(z) + nn.Dense(width, kernel_init=_KERNEL_INIT, name=f"Wx_{l}")(x)
            z = act(ActNorm(name=f"ActNorm_{l}")(h))
        out = PositiveDense(1, name="Wz_out")(z) + nn.Dense(1, kernel_init=_KERNEL_INIT, name="Wx_out")(x)
        log_alpha = self.param("log_alpha", nn.initializers.zeros, ())
        return act(out)[..., 0] + 0.5 * jnp.exp(log_alpha) * jnp.sum(x * x, axis=-1)
