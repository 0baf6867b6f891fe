"""The CelebA64 benchmark's ResNet generator G in JAX, from an official state dict (evaluation mode).

Korotin et al. 2021, arXiv:2106.01954, §4 (the generator of the input measure: the ResNet of WGAN-QC,
Liu et al. 2019). Latents ``(n, 128)`` -> images ``(n, 3, 64, 64)`` in [-1, 1], NCHW
with OIHW weights as stored::

    stem:   fc 128 -> 8192, BN1d, LReLU(0.2), view (n, 512, 4, 4)
    RB(fin, fout), h = min(fin, fout):
            dx  = BN(conv3x3(LReLU(BN(conv3x3(x; fin -> h)), 0.2); h -> fout))      (convs without bias)
            out = LReLU(shortcut(x) + 0.1 dx, 0.2),   shortcut = BN(conv1x1) if fin != fout else id
    blocks: RB(512,512) x2, up; RB(512,512) x2, up; RB(512,256), RB(256,256), up;
            RB(256,128), RB(128,128), up; RB(128,64), RB(64,64)      (up = nearest-neighbour x2)
    head:   tanh(conv3x3(x; 64 -> 3) + b)

BatchNorm uses the stored running statistics, ``(x - mean) / sqrt(var + 1e-5) * weight + bias`` (batch
statistics would change G(z) completely). Convolutions use ``Precision.HIGHEST``; the parameters are cast
to the dtype of ``z``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from otlib.w2bench.torchfile import CorruptCheckpointError, load_state_dict

__all__ = ["LATENT_DIM", "BN_EPS", "RES_RATIO", "ResNetGParams", "params_from_state_dict", "load_resnet_g_params",
           "resnet_g", "resnet_g_layers", "load_resnet_g"]

LATENT_DIM = 128
BN_EPS = 1e-5
RES_RATIO = 0.1
LEAK = 0.2

_HI = jax.lax.Precision.HIGHEST

# (state-dict index j of ``resnet.j``, fin, fout); an upsampling follows the blocks at j = 1, 4, 7, 10.
_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (0, 512, 512), (1, 512, 512), (3, 512, 512), (4, 512, 512), (6, 512, 256), (7, 256, 256),
    (9, 256, 128), (10, 128, 128), (12, 128, 64), (13, 64, 64))
_UPSAMPLE_AFTER = (1, 4, 7, 10)

ResNetGParams = dict[str, Any]
"""``{"fc": {w, b}, "bn1d": BN, "blocks": [{conv_0, bn_0, conv_1, bn_1[, conv_s, bn_s]}], "conv_img": {w, b}}``;
a BN is ``{weight, bias, mean, var}``."""


def _bn_keys(prefix: str) -> list[str]:
    return [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"fc.weight": (8192, LATENT_DIM), "fc.bias": (8192,)}
    shapes.update({k: (8192,) for k in _bn_keys("bn1d")})
    for j, fin, fout in _BLOCKS:
        h = min(fin, fout)
        shapes[f"resnet.{j}.conv_0.weight"] = (h, fin, 3, 3)
        shapes.update({k: (h,) for k in _bn_keys(f"resnet.{j}.bn2d_0")})
        shapes[f"resnet.{j}.conv_1.weight"] = (fout, h, 3, 3)
        shapes.update({k: (fout,) for k in _bn_keys(f"resnet.{j}.bn2d_1")})
        if fin != fout:
            shapes[f"resnet.{j}.conv_s.weight"] = (fout, fin, 1, 1)
            shapes.update({k: (fout,) for k in _bn_keys(f"resnet.{j}.bn2d_s")})
    shapes.update({"conv_img.weight": (3, 64, 3, 3), "conv_img.bias": (3,)})
    return shapes


def params_from_state_dict(sd: dict[str, np.ndarray], *, source: str = "state dict") -> ResNetGParams:
    """Map the 147 state-dict tensors to a parameter tree, checking names and shapes (a strict load).

    The 0-dim ``num_batches_tracked`` counters are accepted and ignored (unused in evaluation mode).
    """
    shapes = _expected_shapes()
    if "fc.weight" not in sd or "conv_img.weight" not in sd:
        raise CorruptCheckpointError(f"{source}: not a ResNet_G state dict (no 'fc.weight' / 'conv_img.weight'); "
                                     f"keys: {sorted(sd)[:8]}{' ...' if len(sd) > 8 else ''}")
    missing = sorted(set(shapes) - set(sd))
    unexpected = sorted(k for k in set(sd) - set(shapes) if not k.endswith(".num_batches_tracked"))
    if missing or unexpected:
        raise CorruptCheckpointError(f"{source}: ResNet_G state dict has missing keys {missing} and unexpected "
                                     f"keys {unexpected}")
    for key, shape in shapes.items():
        if tuple(sd[key].shape) != shape:
            raise CorruptCheckpointError(f"{source}: {key!r} has shape {tuple(sd[key].shape)}, expected {shape} "
                                         f"for the benchmark's ResNet_G (z_dim 128, size 64, nfilter 64)")

    def arr(key: str) -> jax.Array:
        return jnp.asarray(sd[key], jnp.float32)

    def bn(prefix: str) -> dict[str, jax.Array]:
        return {"weight": arr(f"{prefix}.weight"), "bias": arr(f"{prefix}.bias"),
                "mean": arr(f"{prefix}.running_mean"), "var": arr(f"{prefix}.running_var")}

    blocks = []
    for j, fin, fout in _BLOCKS:
        block = {"conv_0": arr(f"resnet.{j}.conv_0.weight"), "bn_0": bn(f"resnet.{j}.bn2d_0"),
                 "conv_1": arr(f"resnet.{j}.conv_1.weight"), "bn_1": bn(f"resnet.{j}.bn2d_1")}
        if fin != fout:
            block.update(conv_s=arr(f"resnet.{j}.conv_s.weight"), bn_s=bn(f"resnet.{j}.bn2d_s"))
        blocks.append(block)
    return {"fc": {"w": arr("fc.weight"), "b": arr("fc.bias")}, "bn1d": bn("bn1d"), "blocks": blocks,
            "conv_img": {"w": arr("conv_img.weight"), "b": arr("conv_img.bias")}}


def load_resnet_g_params(path: str | os.PathLike) -> ResNetGParams:
    """Read a ``Final_G.pt`` (or ``*_G_v*.pt``) checkpoint (torch-free) as parameters."""
    return params_from_state_dict(load_state_dict(path), source=str(path))


def _bn(x: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
    """Evaluation-mode BatchNorm over axis 1 of (n, C) or (n, C, H, W)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = p["weight"] / jnp.sqrt(p["var"] + BN_EPS)
    return (x - p["mean"].reshape(shape)) * scale.reshape(shape) + p["bias"].reshape(shape)


def _conv(x: jax.Array, w: jax.Array) -> jax.Array:
    pad = w.shape[-1] // 2
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=_HI)


def _lrelu(x: jax.Array) -> jax.Array:
    return jnp.where(x >= 0, x, LEAK * x)


def _block(x: jax.Array, p: dict[str, Any]) -> jax.Array:
    shortcut = _bn(_conv(x, p["conv_s"]), p["bn_s"]) if "conv_s" in p else x
    dx = _lrelu(_bn(_conv(x, p["conv_0"]), p["bn_0"]))
    dx = _bn(_conv(dx, p["conv_1"]), p["bn_1"])
    return _lrelu(shortcut + RES_RATIO * dx)


def _upsample(x: jax.Array) -> jax.Array:
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


def resnet_g_layers(params: ResNetGParams, z: jax.Array) -> dict[str, jax.Array]:
    """G(z) and its intermediates: ``stem`` (n, 512, 4, 4), ``block{i}`` after the i-th block (and its
    upsampling, if any), ``pre_tanh`` and ``image`` (n, 3, 64, 64)."""
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[1] != LATENT_DIM:
        raise ValueError(f"expected latents of shape (n, {LATENT_DIM}), got {tuple(z.shape)}")
    p = jax.tree_util.tree_map(lambda a: a.astype(z.dtype), params)
    h = jnp.matmul(z, p["fc"]["w"].T, precision=_HI) + p["fc"]["b"]
    out = {"stem": _lrelu(_bn(h, p["bn1d"])).reshape(z.shape[0], 512, 4, 4)}
    h = out["stem"]
    for i, ((j, _, _), block) in enumerate(zip(_BLOCKS, p["blocks"])):
        h = _block(h, block)
        if j in _UPSAMPLE_AFTER:
            h = _upsample(h)
        out[f"block{i}"] = h
    out["pre_tanh"] = _conv(h, p["conv_img"]["w"]) + p["conv_img"]["b"][:, None, None]
    out["image"] = jnp.tanh(out["pre_tanh"])
    return out


def resnet_g(params: ResNetGParams, z: jax.Array) -> jax.Array:
    """G(z): latents (n, 128) -> images (n, 3, 64, 64) in [-1, 1]."""
    return resnet_g_layers(params, z)["image"]


_g_jit = jax.jit(resnet_g)


def load_resnet_g(path: str | os.PathLike) -> Callable[[jax.Array], jax.Array]:
    """Load a ResNet_G checkpoint and return ``G``: latents (n, 128) -> images (n, 3, 64, 64).

    Jitted, evaluation-mode BatchNorm (``G.params`` holds the parameters). The file is not checksummed
    here; :func:`otlib.w2bench.celeba.fetch` gives a verified path.
    """
    params = load_resnet_g_params(path)

    def G(z: jax.Array) -> jax.Array:
        return _g_jit(params, jnp.asarray(z))

    G.params = params  # type: ignore[attr-defined]
    return G
