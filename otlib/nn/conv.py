"""Amos's convolutional potential for 64x64 RGB images (Amos 2023, arXiv:2210.12153, the CelebA64 benchmark).

:class:`ConvPotential` maps flattened images ``(..., 3 * 64 * 64)`` in [-1, 1] (NCHW order, as the CelebA64
benchmark stores them) to scalars::

    u    = normalise((NHWC(x) + 1) / 2)                     ImageNet mean and std per channel
    z    = act(conv_k(... act(conv_1(u))))                  4x4 kernels, stride 2, SAME padding, widths w_1..w_k
    f(x) = act(conv(z; 2x2, VALID, 1 channel)) + 1/2 exp(log_alpha) ||x||^2

With the default five widths (128, 128, 256, 512, 1024) the stack takes 64x64 to 2x2 and the last
convolution to one value (with fewer widths its outputs are summed: a smaller network for quick runs). The
network is not convex; the quadratic term (``log_alpha`` learned, starting at 0) makes grad f start near the
identity. ``quadratic=False`` drops it (and ``log_alpha``): the plain
scalar network, for parameterisations that add their own 1/2 ||x||^2 (ENOT's correlation form).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from otlib.nn.nets import activation

__all__ = ["ConvPotential", "CONV_WIDTHS", "IMAGENET_MEAN", "IMAGENET_STD"]

CONV_WIDTHS: tuple[int, ...] = (128, 128, 256, 512, 1024)
"""The channel widths of Amos's CelebA64 potential."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvPotential(nn.Module):
    """Amos's conv potential (module docstring): ``(..., C * H * W) -> (...)``.

    Attributes:
      widths: output channels of the stride-2 4x4 convolutions.
      act: activation name (:func:`otlib.nn.nets.activation`), after every convolution and on the output.
      quadratic: add 1/2 exp(log_alpha) ||x||^2.
      image_shape: (C, H, W) of the flattened input.
    """

    widths: Sequence[int] = CONV_WIDTHS
    act: str = "elu"
    quadratic: bool = True
    image_shape: tuple[int, int, int] = (3, 64, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.act)
        c, h, w = self.image_shape
        batch = x.shape[:-1]
        u = x.reshape((-1, c, h, w)).transpose(0, 2, 3, 1)
        u = ((u + 1.0) / 2.0 - jnp.asarray(IMAGENET_MEAN, x.dtype)) / jnp.asarray(IMAGENET_STD, x.dtype)
        for width in self.widths:
            u = act(nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME")(u))
        u = act(nn.Conv(1, (2, 2), padding="VALID")(u))
        out = u.reshape(u.shape[0], -1).sum(axis=-1).reshape(batch)
        if self.quadratic:
            log_alpha = self.param("log_alpha", nn.initializers.zeros, ())
            out = out + 0.5 * jnp.exp(log_alpha) * jnp.sum(x * x, axis=-1)
        return out
