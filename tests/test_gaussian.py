"""Gaussian OT in closed form (otlib.ot.gaussian) against independent computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from otlib.ot.gaussian import bures_map, gaussian_w2_squared, psd_sqrt


def _spd(key, d, shift=0.5):
    a = jax.random.normal(key, (d, d), jnp.float64)
    return a @ a.T / d + shift * jnp.eye(d)


@pytest.mark.parametrize("d", [1, 3, 8])
def test_closed_forms_in_float64(d):
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(d), 4)
        c1, c2 = _spd(k[0], d), _spd(k[1], d)
        m1, m2 = jax.random.normal(k[2], (d,), jnp.float64), jax.random.normal(k[3], (d,), jnp.float64)
        root = psd_sqrt(c1)
        np.testing.assert_allclose(root @ root, c1, atol=1e-12)
        np.testing.assert_allclose(root, np.real(scipy.linalg.sqrtm(np.asarray(c1))), atol=1e-10)
        w, b = bures_map(m1, c1, m2, c2)
        # the map pushes N(m1, C1) onto N(m2, C2): W C1 W = C2, W m1 + b = m2, and W is symmetric PSD
        np.testing.assert_allclose(w @ c1 @ w, c2, atol=1e-10)
        np.testing.assert_allclose(w @ m1 + b, m2, atol=1e-12)
        assert float(jnp.linalg.eigvalsh(w).min()) > 0
        # W2^2 is the expected squared displacement of that map: E||x - T(x)||^2 = ||m1 - m2||^2 + tr((I - W) C1 (I - W))
        eye = jnp.eye(d)
        displacement = jnp.sum((m1 - (w @ m1 + b)) ** 2) + jnp.trace((eye - w) @ c1 @ (eye - w))
        assert float(gaussian_w2_squared(m1, c1, m2, c2)) == pytest.approx(float(displacement), rel=1e-10)
        assert float(gaussian_w2_squared(m1, c1, m1, c1)) == pytest.approx(0.0, abs=1e-10)


def test_degenerate_covariances_and_scalar_case():
    # 1-D: W2^2(N(0, s1^2), N(m, s2^2)) = m^2 + (s1 - s2)^2; a rank-one covariance is allowed
    assert float(gaussian_w2_squared(jnp.zeros(1), jnp.eye(1) * 4.0, jnp.ones(1) * 3.0, jnp.eye(1))) == pytest.approx(10.0)
    flat = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    assert float(gaussian_w2_squared(jnp.zeros(2), flat, jnp.zeros(2), flat)) == pytest.approx(0.0, abs=1e-6)


def test_bures_formula_matches_scipy_sqrtm():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 3, 3))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    m1, m2 = rng.normal(size=(2, 3))
    root = scipy.linalg.sqrtm(cov1)
    want = np.sum((m1 - m2) ** 2) + np.trace(cov1 + cov2) - 2 * np.trace(scipy.linalg.sqrtm(root @ cov2 @ root)).real
    got = gaussian_w2_squared(*(jnp.asarray(v, jnp.float32) for v in (m1, cov1, m2, cov2)))
    assert float(got) == pytest.approx(want, rel=1e-4)
