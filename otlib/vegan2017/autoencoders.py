"""Encoders Q(Z|X) and decoders G(Z) shared by WAE-MMD, WAE-GAN and the VAE (WAE paper §4).

The WAE paper compares the three models on *identical* networks; so does this companion:

* ``"mlp"``: 64 -> 256 -> 256 -> d_z and back (ReLU), the digits-scale pair of this library;
* ``"conv"``: the WAE paper's MNIST pair (as configured in the released ``tolstikhin/wae`` code) for 28x28
  images: four stride-2 4x4 convolutions with 128, 256, 512, 1024 channels, then a dense layer to the
  code; the decoder maps the code to a 7x7x1024 tensor, then two stride-2 transposed convolutions (512,
  256) and a stride-1 one to one channel.
  Batch norm is left out (it couples the codes of a batch, hence Q_Z's statistics, and would need
  Flax ``batch_stats`` in the state).

An encoder returns ``(mean, log_var)``: a *deterministic* encoder (what the WAE experiments use) has
``log_var = None`` and Q(Z|x) = delta_{mean(x)}; a *Gaussian* one (the VAE's) is N(mean, diag exp(log_var))
with ``log_var`` clipped to [-50, 50] as in the released WAE code. A decoder returns pixel *logits*: the
image is ``sigmoid(logits)`` in [0, 1] (WAE §4: sigmoid output for MNIST), and the VAE's Bernoulli
likelihood uses the logits directly for numerical stability.

:class:`Autoencoder` bundles an encoder, a decoder and the prior P_Z = N(0, sigma_z^2 I) as pure
functions of a parameter pytree ``{"encoder": ..., "decoder": ...}``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "Autoencoder", "make_autoencoder",
           "ARCHITECTURES", "LOG_VAR_CLIP"]

LOG_VAR_CLIP = 50.0
"""Gaussian encoders clip log-variances to [-50, 50] (released WAE code, ``e_noise = gaussian``)."""

Posterior = tuple[jax.Array, Optional[jax.Array]]
"""``(mean, log_var)`` of Q(Z|x); ``log_var`` is ``None`` for a deterministic encoder."""


def _posterior(h: jax.Array, latent_dim: int, gaussian: bool) -> Posterior:
    """The last dense layer: d_z means, and d_z log-variances for a Gaussian encoder."""
    if not gaussian:
        return nn.Dense(latent_dim)(h), None
    out = nn.Dense(2 * latent_dim)(h)
    return out[..., :latent_dim], jnp.clip(out[..., latent_dim:], -LOG_VAR_CLIP, LOG_VAR_CLIP)


class MLPEncoder(nn.Module):
    """x (n, D) -> Q(Z|x) through dense ReLU layers (default D -> 256 -> 256 -> d_z)."""

    latent_dim: int
    hidden: Sequence[int] = (256, 256)
    gaussian: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> Posterior:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return _posterior(x, self.latent_dim, self.gaussian)


class MLPDecoder(nn.Module):
    """z (n, d_z) -> pixel logits (n, D): the encoder's layers in reverse (d_z -> 256 -> 256 -> D)."""

    output_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        for width in reversed(tuple(self.hidden)):
            z = nn.relu(nn.Dense(width)(z))
        return nn.Dense(self.output_dim)(z)


class ConvEncoder(nn.Module):
    """x (n, h*w) -> Q(Z|x) with stride-2 4x4 convolutions (WAE paper's MNIST encoder, without BN)."""

    latent_dim: int
    image_shape: tuple[int, int]
    channels: Sequence[int] = (128, 256, 512, 1024)
    gaussian: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> Posterior:
        h = x.reshape(x.shape[0], *self.image_shape, 1)
        for width in self.channels:
            h = nn.relu(nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME")(h))
        return _posterior(h.reshape(h.shape[0], -1), self.latent_dim, self.gaussian)


class ConvDecoder(nn.Module):
    """z (n, d_z) -> logits (n, h*w): dense to (h/4, w/4, 1024), two stride-2 up-convolutions, one stride-1.

    The WAE paper's MNIST decoder (FC 7x7x1024, FSConv 512, FSConv 256, FSConv 1; 4x4 kernels), BN left out.
    """

    image_shape: tuple[int, int]
    channels: Sequence[int] = (1024, 512, 256)

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width = self.image_shape
        if height % 4 or width % 4:
            raise ValueError(f"the convolutional decoder upsamples by 4: image sides must be multiples of 4, "
                             f"got {self.image_shape}; use architecture='mlp' for other shapes")
        first, *rest = self.channels
        h = nn.relu(nn.Dense(height // 4 * width // 4 * first)(z)).reshape(z.shape[0], height // 4, width // 4, first)
        for channels in rest:
            h = nn.relu(nn.ConvTranspose(channels, (4, 4), strides=(2, 2), padding="SAME")(h))
        h = nn.ConvTranspose(1, (4, 4), strides=(1, 1), padding="SAME")(h)
        return h.reshape(z.shape[0], height * width)


def _mlp_pair(latent_dim: int, image_shape: tuple[int, int], hidden: Sequence[int],
              gaussian: bool) -> tuple[nn.Module, nn.Module]:
    return (MLPEncoder(latent_dim, tuple(hidden), gaussian),
            MLPDecoder(image_shape[0] * image_shape[1], tuple(hidden)))


def _conv_pair(latent_dim: int, image_shape: tuple[int, int], hidden: Sequence[int],
               gaussian: bool) -> tuple[nn.Module, nn.Module]:
    del hidden  # the conv pair has the paper's fixed widths
    return ConvEncoder(latent_dim, tuple(image_shape), gaussian=gaussian), ConvDecoder(tuple(image_shape))


ARCHITECTURES = {"mlp": _mlp_pair, "conv": _conv_pair}
"""Encoder/decoder pairs by name."""


@dataclasses.dataclass(frozen=True)
class Autoencoder:
    """An encoder Q(Z|X), a decoder G and the prior P_Z = N(0, sigma_z^2 I_{d_z}), as pure functions.

    Parameters are ``{"encoder": ..., "decoder": ...}``; every method takes them explicitly.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    input_dim: int
    sigma_z2: float = 1.0

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters (Flax's default initialisers)."""
        k_enc, k_dec = jax.random.split(key)
        return {"encoder": self.encoder.init(k_enc, jnp.zeros((1, self.input_dim))),
                "decoder": self.decoder.init(k_dec, jnp.zeros((1, self.latent_dim)))}

    def posterior(self, params: dict, x: jax.Array) -> Posterior:
        """(mean, log_var) of Q(Z|x) for a batch ``x (n, D)``."""
        return self.encoder.apply(params["encoder"], x)

    def encode_mean(self, params: dict, x: jax.Array) -> jax.Array:
        """The posterior mean (the code itself for a deterministic encoder)."""
        return self.posterior(params, x)[0]

    def encode(self, params: dict, x: jax.Array, key: jax.Array) -> jax.Array:
        """One draw z~ ~ Q(Z|x) per row (reparameterised: mean + exp(log_var / 2) * eps).

        Encoding x ~ P_X this way gives i.i.d. draws of the aggregate posterior Q_Z (``tolstikhin/wae`` GitHub
        issue #5).
        """
        mean, log_var = self.posterior(params, x)
        if log_var is None:
            return mean
        return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)

    def decode_logits(self, params: dict, z: jax.Array) -> jax.Array:
        """Pixel logits of G(z)."""
        return self.decoder.apply(params["decoder"], z)

    def decode(self, params: dict, z: jax.Array) -> jax.Array:
        """The image G(z) = sigmoid(logits) in [0, 1] (for the VAE: the Bernoulli means, not draws)."""
        return jax.nn.sigmoid(self.decode_logits(params, z))

    def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
        """n draws of P_Z = N(0, sigma_z^2 I) (one sigma_z^2 for sampler and kernel)."""
        return jnp.sqrt(self.sigma_z2) * jax.random.normal(key, (n, self.latent_dim))

    def generate(self, params: dict, key: jax.Array, n: int) -> jax.Array:
        """n model samples G(Z), Z ~ P_Z."""
        return self.decode(params, self.sample_prior(key, n))

    def reconstruct(self, params: dict, x: jax.Array) -> jax.Array:
        """G(mean of Q(Z|x)): the reconstruction of ``x`` through the posterior mean."""
        return self.decode(params, self.encode_mean(params, x))


def make_autoencoder(architecture: str, latent_dim: int, image_shape: tuple[int, int], *,
                     hidden: Sequence[int] = (256, 256), gaussian: bool = False,
                     sigma_z2: float = 1.0) -> Autoencoder:
    """An :class:`Autoencoder` from the table :data:`ARCHITECTURES` (``"mlp"`` or ``"conv"``)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}")
    encoder, decoder = ARCHITECTURES[architecture](latent_dim, tuple(image_shape), hidden, gaussian)
    return Autoencoder(encoder, decoder, latent_dim, int(image_shape[0] * image_shape[1]), sigma_z2)
