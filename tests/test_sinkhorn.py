"""The 2-D metric: the Sinkhorn divergence is ~0 on equal clouds, symmetric, ≈ W₂², and flags non-convergence."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.data import toy2d
from otlib.ot.sinkhorn import _ott, sinkhorn_divergence, transport_errors

pytest.importorskip("ott")
N = 512  # one shape for every call: the solver is compiled once


def gaussian(key: jax.Array, mean, std: float = 1.0) -> jax.Array:
    return jnp.asarray(mean, jnp.float32) + std * jax.random.normal(key, (N, 2))


def test_zero_on_identical_clouds_positive_and_symmetric_otherwise():
    x = gaussian(jax.random.key(0), [0.0, 0.0])
    y = gaussian(jax.random.key(1), [1.0, 0.0])
    assert abs(float(sinkhorn_divergence(x, x))) < 1e-3
    forward, backward = float(sinkhorn_divergence(x, y)), float(sinkhorn_divergence(y, x))
    assert forward > 0.5
    np.testing.assert_allclose(forward, backward, rtol=1e-4)


@pytest.mark.parametrize("mean, std, w2_squared", [
    ([3.0, 0.0], 1.0, 9.0),  # W₂²(N(0, I), N(m, I)) = ‖m‖²
    # ‖m‖² + tr(Σ₁ + Σ₂ - 2(Σ₁^½ Σ₂ Σ₁^½)^½), which is ‖m‖² + d (σ₂ - σ₁)² for isotropic Σ
    ([0.0, 2.0], 2.0, 4.0 + 2 * (2.0 - 1.0) ** 2),
])
def test_matches_closed_form_gaussian_w2(mean, std, w2_squared):
    x = gaussian(jax.random.key(2), [0.0, 0.0])
    y = gaussian(jax.random.key(3), mean, std)
    np.testing.assert_allclose(float(sinkhorn_divergence(x, y)), w2_squared, rtol=0.1)


def test_transport_errors_of_exact_and_identity_maps():
    shift = jnp.array([2.0, -1.0])
    pair = toy2d.Pair("shift", toy2d.standard_normal, lambda key, n: toy2d.standard_normal(key, n) + shift,
                      "N(0, I) → N(m, I)", ((-4.0, 6.0), (-5.0, 4.0)))
    exact = transport_errors(lambda x: x + shift, lambda y: y - shift, pair, jax.random.key(4))
    assert set(exact) == {"forward", "inverse"}
    assert float(exact["forward"]) < 0.1 and float(exact["inverse"]) < 0.1
    identity = transport_errors(lambda x: x, None, pair, jax.random.key(4))
    assert set(identity) == {"forward"}
    np.testing.assert_allclose(float(identity["forward"]), 5.0, rtol=0.1)


def test_square_five_to_four_matches_the_enot_tutorial():
    # OTT-JAX 0.6.0's ENOT tutorial: Sinkhorn divergence source ↔ target = 21.15 on 512 points (ε = 1e-3 there)
    errors = transport_errors(lambda x: x, None, toy2d.pair("square_five_to_four"), jax.random.key(5))
    np.testing.assert_allclose(float(errors["forward"]), 21.15, atol=0.6)


def test_nan_when_sinkhorn_does_not_converge():
    x = gaussian(jax.random.key(0), [0.0, 0.0])
    y = gaussian(jax.random.key(1), [1.0, 0.0])
    assert np.isnan(float(sinkhorn_divergence(x, y, max_iterations=20)))


def test_missing_ott_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "ott.tools.sinkhorn_divergence", None)
    with pytest.raises(ImportError, match="pip install 'otlib\\[peers\\]'"):
        _ott()
