"""Amos's ICNN is convex in its input (at initialisation and for any parameters); the companion nets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.nn.icnn import ICNN, ActNorm, hd_widths
from otlib.nn.nets import InitNN, PotentialMLP

DIM = 4


def _perturb(params, key, scale=0.5):
    """Every parameter moved by Gaussian noise: raw W_z kernels may turn negative, ActNorm scales shrink."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def _icnn_params(act: str, perturbed: bool):
    model = ICNN(widths=(16, 16, 8), act=act)
    key_init, key_batch, key_noise = jax.random.split(jax.random.key(0), 3)
    params = model.init(key_init, jax.random.normal(key_batch, (64, DIM)))["params"]
    if perturbed:
        params = _perturb(params, key_noise)
    return model, params


@pytest.mark.parametrize("act", ["elu", "leaky_relu_0.2"])
@pytest.mark.parametrize("perturbed", [False, True])
def test_chord_inequality(act, perturbed):
    model, params = _icnn_params(act, perturbed)
    f = lambda x: model.apply({"params": params}, x)  # noqa: E731
    key_x, key_y = jax.random.split(jax.random.key(1))
    x = 2.0 * jax.random.normal(key_x, (256, DIM))
    y = 2.0 * jax.random.normal(key_y, (256, DIM))
    t = jnp.linspace(0.0, 1.0, 11)[:, None]
    for ti in t:
        gap = ti * f(x) + (1 - ti) * f(y) - f(ti * x + (1 - ti) * y)
        assert float(gap.min()) >= -1e-5 * (1.0 + float(jnp.abs(f(x)).max()))


@pytest.mark.parametrize("perturbed", [False, True])
def test_hessian_is_positive_semidefinite(perturbed):
    model, params = _icnn_params("elu", perturbed)
    hessian = jax.vmap(jax.hessian(lambda x: model.apply({"params": params}, x)))
    points = 2.0 * jax.random.normal(jax.random.key(2), (32, DIM))
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian(points), np.float64))
    # The 1/2 exp(log_alpha) ||x||^2 term makes f strongly convex: eigenvalues >= exp(log_alpha) > 0.
    log_alpha = float(params["log_alpha"])
    assert eigenvalues.min() >= np.exp(log_alpha) - 1e-4


def test_non_convex_control_fails_the_check():
    # The checks above can fail: the same points find the non-convexity of a perturbed plain MLP potential.
    model = PotentialMLP(widths=(16, 16))
    params = model.init(jax.random.key(0), jnp.zeros(DIM))["params"]
    params = _perturb(params, jax.random.key(3), scale=2.0)
    params["log_alpha"] = jnp.asarray(-6.0)
    hessian = jax.vmap(jax.hessian(lambda x: model.apply({"params": params}, x)))
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian(2.0 * jax.random.normal(jax.random.key(2), (32, DIM)))))
    assert eigenvalues.min() < -1e-3


def test_actnorm_standardises_its_initialisation_batch():
    h = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (512, 5))
    layer = ActNorm()
    params = layer.init(jax.random.key(1), h)
    out = layer.apply(params, h)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-3)
    single = layer.init(jax.random.key(1), h[0])  # a single point: the identity
    np.testing.assert_allclose(layer.apply(single, h), h)


def test_shapes_and_width_rule():
    assert hd_widths(2) == (64, 64, 32) and hd_widths(64) == (128, 128, 64) and hd_widths(256) == (512, 512, 256)
    model, params = _icnn_params("elu", False)
    assert model.apply({"params": params}, jnp.ones((7, DIM))).shape == (7,)
    assert model.apply({"params": params}, jnp.ones(DIM)).shape == ()
    with pytest.raises(ValueError, match="positive integer"):
        hd_widths(0)


def test_initnn_starts_at_the_identity_and_potential_mlp_is_quadratic_plus_mlp():
    y = jax.random.normal(jax.random.key(0), (9, DIM))
    h = InitNN(widths=(16, 8))
    np.testing.assert_array_equal(h.apply(h.init(jax.random.key(1), y), y), y)
    f = PotentialMLP(widths=(16, 8))
    params = f.init(jax.random.key(1), y)["params"]
    assert f.apply({"params": params}, y).shape == (9,)
    params_zero = jax.tree.map(jnp.zeros_like, params)  # act(0) = 0 for ELU: only 1/2 ||x||^2 remains
    np.testing.assert_allclose(f.apply({"params": params_zero}, y), 0.5 * jnp.sum(y * y, -1), rtol=1e-6)
